"""What the service accepts, and the defaults it fills in: names, deadlines, policies."""

from __future__ import annotations

import re

from google.pubsub_v1 import types

from local_stack.pubsub.errors import invalid

TOPIC_RE = re.compile(r"^projects/[^/]+/topics/[A-Za-z][\w.~+%-]{2,254}$")
SUBSCRIPTION_RE = re.compile(r"^projects/[^/]+/subscriptions/[A-Za-z][\w.~+%-]{2,254}$")
DEFAULT_ACK_DEADLINE = 10
DEFAULT_MIN_BACKOFF = 10.0  # a retry policy's bounds when it leaves them unset
DEFAULT_MAX_BACKOFF = 600.0
IMMUTABLE = {"name", "topic", "enable_message_ordering", "filter"}


def bounds(policy: types.RetryPolicy) -> tuple[float, float]:
    """A retry policy's minimum and maximum backoff, Google's defaults where unset."""
    low = policy.minimum_backoff.total_seconds() if "minimum_backoff" in policy else None
    high = policy.maximum_backoff.total_seconds() if "maximum_backoff" in policy else None
    return (
        DEFAULT_MIN_BACKOFF if low is None else low,
        DEFAULT_MAX_BACKOFF if high is None else high,
    )


def validate_subscription(proto: types.Subscription) -> None:
    """Fills Google's defaults in, or raises INVALID_ARGUMENT as Google does."""
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
