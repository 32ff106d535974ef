"""What the service accepts, and the defaults it fills in: names, deadlines, policies, limits.

Sources: the field comments of google/pubsub/v1/pubsub.proto (shipped in google-cloud-pubsub
as google/pubsub_v1/types/pubsub.py), https://cloud.google.com/pubsub/quotas#resource_limits
and https://cloud.google.com/pubsub/docs/pubsub-basics#resource_names. Where Google's
emulator was measured to be stricter than a comment, the measurement is named.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta
from urllib.parse import urlsplit

from google.pubsub_v1 import types

from local_stack.pubsub.errors import invalid
from local_stack.pubsub.filters import compile_filter

# A resource id starts with a letter, is 3-255 letters, digits or `-_.~+%`, and must not
# start with "goog" (pubsub-basics#resource_names).
_ID = r"(?!goog)[A-Za-z][\w.~+%-]{2,254}"
TOPIC_RE = re.compile(rf"^projects/[^/]+/topics/{_ID}$")
SUBSCRIPTION_RE = re.compile(rf"^projects/[^/]+/subscriptions/{_ID}$")
SNAPSHOT_RE = re.compile(rf"^projects/[^/]+/snapshots/{_ID}$")
SCHEMA_RE = re.compile(rf"^projects/[^/]+/schemas/{_ID}$")
PROJECT_RE = re.compile(r"^projects/[^/]+$")
DEFAULT_ACK_DEADLINE = 10
DEFAULT_MIN_BACKOFF = 10.0  # a retry policy's bounds when it leaves them unset
DEFAULT_MAX_BACKOFF = 600.0
# Subscription retention: 10 minutes to 7 days, 7 days when unset. The proto comment now
# allows 31 days; Google's emulator rejects 8 days (measured, issue #18), and we keep to it.
SUBSCRIPTION_RETENTION = (timedelta(minutes=10), timedelta(days=7))
DEFAULT_RETENTION = timedelta(days=7)
TOPIC_RETENTION = (timedelta(minutes=10), timedelta(days=31))  # Topic proto comment
MAX_PUBLISH_MESSAGES = 1000  # quotas#resource_limits: messages per publish request
MAX_PUBLISH_BYTES = 10 * 1024 * 1024  # request size; the client splits batches at 10**7
MAX_ATTRIBUTES = 100
MAX_ATTRIBUTE_KEY_BYTES = 256
MAX_ATTRIBUTE_VALUE_BYTES = 1024
MAX_ORDERING_KEY_BYTES = 1024
IMMUTABLE_SUBSCRIPTION = {"name", "topic", "enable_message_ordering", "filter"}
IMMUTABLE_TOPIC = {"name"}


def bounds(policy: types.RetryPolicy) -> tuple[float, float]:
    """A retry policy's minimum and maximum backoff, Google's defaults where unset."""
    low = policy.minimum_backoff.total_seconds() if "minimum_backoff" in policy else None
    high = policy.maximum_backoff.total_seconds() if "maximum_backoff" in policy else None
    return (
        DEFAULT_MIN_BACKOFF if low is None else low,
        DEFAULT_MAX_BACKOFF if high is None else high,
    )


def _check_retention(field: str, value: timedelta, limits: tuple[timedelta, timedelta]) -> None:
    low, high = limits
    if not low <= value <= high:
        raise invalid(
            f"Invalid {field}: {value.total_seconds():g}s; it must be between "
            f"{low.total_seconds():g}s and {high.total_seconds():g}s"
        )


def validate_topic(topic: types.Topic) -> None:
    if not TOPIC_RE.match(topic.name):
        raise invalid(f"Invalid [topics] name: ({topic.name})")
    if "message_retention_duration" in topic:
        retention = topic.message_retention_duration
        _check_retention("message_retention_duration", retention, TOPIC_RETENTION)


def validate_push_endpoint(push_config: types.PushConfig) -> None:
    """A push endpoint is an absolute http(s) URL (https in the cloud; the emulators allow
    http so loopback endpoints work)."""
    endpoint = push_config.push_endpoint
    if not endpoint:
        return
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise invalid(f"Invalid push_endpoint given (endpoint={endpoint}): it must be a URL")


def validate_subscription(proto: types.Subscription) -> None:
    """Fills Google's defaults in, or raises INVALID_ARGUMENT as Google does."""
    if not SUBSCRIPTION_RE.match(proto.name):
        raise invalid(f"Invalid [subscriptions] name: ({proto.name})")
    deadline = proto.ack_deadline_seconds or DEFAULT_ACK_DEADLINE
    if not 10 <= deadline <= 600:
        raise invalid("The value for ack_deadline_seconds must be between 10 and 600")
    proto.ack_deadline_seconds = deadline
    policy = proto.dead_letter_policy
    if policy.dead_letter_topic:
        attempts = policy.max_delivery_attempts or 5
        if not 5 <= attempts <= 100:
            raise invalid("max_delivery_attempts must be between 5 and 100")
        policy.max_delivery_attempts = attempts
    if "retry_policy" in proto:
        low, high = bounds(proto.retry_policy)
        if not 0 <= low <= high <= 600:
            raise invalid("retry_policy needs 0 <= minimum_backoff <= maximum_backoff <= 600s")
    if "message_retention_duration" in proto:
        retention = proto.message_retention_duration
        _check_retention("message_retention_duration", retention, SUBSCRIPTION_RETENTION)
    else:
        proto.message_retention_duration = DEFAULT_RETENTION
    validate_push_endpoint(proto.push_config)
    compile_filter(proto.filter)


def validate_publish(messages: Sequence[types.PubsubMessage], size: int) -> None:
    if not messages:
        raise invalid("The request contains no messages")
    if len(messages) > MAX_PUBLISH_MESSAGES:
        raise invalid(
            f"The value for message_count is too large. You passed {len(messages)} in the "
            f"request, but the maximum value is {MAX_PUBLISH_MESSAGES}."
        )
    if size > MAX_PUBLISH_BYTES:
        raise invalid(f"The value for request_size is too large ({size} > {MAX_PUBLISH_BYTES})")
    for message in messages:
        if not message.data and not message.attributes:
            raise invalid("Some messages are empty: a message needs data or attributes")
        if len(message.attributes) > MAX_ATTRIBUTES:
            raise invalid(f"A message may carry at most {MAX_ATTRIBUTES} attributes")
        for key, value in message.attributes.items():
            if key.startswith("goog"):
                raise invalid(f"Invalid attribute key {key!r}: it must not start with goog")
            if len(key.encode()) > MAX_ATTRIBUTE_KEY_BYTES:
                raise invalid(f"Attribute key longer than {MAX_ATTRIBUTE_KEY_BYTES} bytes")
            if len(value.encode()) > MAX_ATTRIBUTE_VALUE_BYTES:
                raise invalid(f"Attribute value longer than {MAX_ATTRIBUTE_VALUE_BYTES} bytes")
        if len(message.ordering_key.encode()) > MAX_ORDERING_KEY_BYTES:
            raise invalid(f"ordering_key longer than {MAX_ORDERING_KEY_BYTES} bytes")


def masked_update(current, patch, paths: list[str], immutable: set[str]):
    """A copy of `current` with the update mask's fields taken from `patch`."""
    kind = type(current)
    unknown = [p for p in paths if p in immutable or p.split(".")[0] not in kind.meta.fields]
    if not paths or unknown:
        raise invalid(f"update_mask names no field that can be updated: {unknown or paths}")
    updated = kind.deserialize(kind.serialize(current))
    for path in paths:
        # A nested path ("schema_settings.first_revision_id", as Google's samples send it)
        # changes that field only, and leaves its siblings as they were.
        *parents, leaf = path.split(".")
        target, source = updated, patch
        try:
            for name in parents:
                target, source = getattr(target, name), getattr(source, name)
            setattr(target, leaf, getattr(source, leaf))
        except (AttributeError, TypeError):
            raise invalid(f"update_mask names no field that can be updated: {path}") from None
    return updated
