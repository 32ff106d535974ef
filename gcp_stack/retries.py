"""Which failed calls are worth repeating, and for how long: one class per kind of error.

Modelled on the Terraform google provider's retry predicates
(google/transport/error_retry_predicates.go, named next to each class): a call that fails
with an error of a class is repeated with exponential backoff until that class's deadline,
then reported with the class named ("gave up after 600s: … (service account not yet
visible)"). Anything that matches no class fails at once.

Two budgets: `transient` (overload, transport; seconds to minutes) and `propagation`
(Google's eventual consistency after an enable or a create; Google documents "a few
minutes", Terraform's default timeouts are 20 minutes).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import httplib2
from googleapiclient.errors import HttpError

Budget = Literal["transient", "propagation"]


@dataclass(frozen=True)
class Failure:
    """A failed call as Google described it."""

    status: int  # 0: no HTTP answer (transport error)
    message: str
    reason: str = ""  # google.rpc.ErrorInfo reason, e.g. SERVICE_DISABLED
    metadata: dict[str, str] = field(default_factory=dict)
    body: str = ""
    unreachable: bool = False  # nothing listens there, or the name does not resolve

    @classmethod
    def of(cls, error: BaseException) -> Failure:
        if not isinstance(error, HttpError):
            unreachable = isinstance(
                error, ConnectionRefusedError | socket.gaierror | httplib2.ServerNotFoundError
            )
            return cls(0, f"transport error: {error}", unreachable=unreachable)
        try:
            content = error.content.decode() if isinstance(error.content, bytes) else ""
            detail = json.loads(content)["error"]
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            return cls(error.status_code, error.reason or str(error))
        info: dict[str, Any] = next(
            (d for d in detail.get("details", []) if str(d.get("@type", "")).endswith("ErrorInfo")),
            {},
        )
        return cls(
            error.status_code,
            detail.get("message", ""),
            info.get("reason", ""),
            info.get("metadata", {}),
            content,
        )

    @property
    def service_disabled(self) -> str | None:
        """The service (`pubsub.googleapis.com`) a 403 SERVICE_DISABLED names, if it is one."""
        if self.status == 403 and self.reason == "SERVICE_DISABLED":
            return self.metadata.get("service", "")
        return None


@dataclass(frozen=True)
class ErrorClass:
    name: str
    source: str
    budget: Budget
    matches: Callable[[Failure, Any], bool]  # (failure, the Api's state) → retry?


def _transport(failure: Failure, _: Any) -> bool:
    # A refused connection or an unknown host will not fix itself within the deadline.
    return failure.status == 0 and not failure.unreachable


CLASSES = (
    # isNetworkTemporaryError, isNetworkTimeoutError, isIoEOFError,
    # isConnectionResetNetworkError
    ErrorClass("transport error", "error_retry_predicates.go: isNetwork*Error", "transient",
               _transport),
    # isCommonRetryableErrorCode (429, 500, 502, 503); 504 is a gateway timeout, as transient.
    ErrorClass("server overloaded or unavailable",
               "error_retry_predicates.go: isCommonRetryableErrorCode", "transient",
               lambda f, _: f.status in (429, 500, 502, 503, 504)),
    # is409OperationInProgressError
    ErrorClass("operation in progress", "error_retry_predicates.go: is409OperationInProgressError",
               "transient", lambda f, _: f.status == 409 and "operationInProgress" in f.body),
    # ServiceUsageServiceBeingActivated (resource_google_project_service.go uses it)
    ErrorClass("another enable in progress",
               "error_retry_predicates.go: ServiceUsageServiceBeingActivated", "propagation",
               lambda f, _: f.status == 400
               and "Another activation or deactivation is in progress" in f.message),
    # A 403 SERVICE_DISABLED for a service this run saw enabled: the enable is propagating
    # ("If you enabled this API recently, wait a few minutes … and retry").
    ErrorClass("API enable still propagating",
               "https://cloud.google.com/service-usage/docs/enable-disable", "propagation",
               lambda f, api: bool(f.service_disabled) and f.service_disabled in api.enabled),
    # IamServiceAccountNotFound (tpgiamresource/iam.go retries setIamPolicy on it)
    ErrorClass("service account not yet visible",
               "error_retry_predicates.go: IamServiceAccountNotFound", "propagation",
               lambda f, _: f.status == 400 and "Service account" in f.message
               and "does not exist" in f.message),
    # PubsubTopicProjectNotReady
    ErrorClass("project not ready for Pub/Sub",
               "error_retry_predicates.go: PubsubTopicProjectNotReady", "propagation",
               lambda f, _: f.status == 400 and "retry this operation" in f.message),
)  # fmt: skip

# Operation errors (the call succeeded, the long-running operation failed) worth a new
# attempt: the Eventarc service agent's first use (terraform-provider-google issues
# #11213, #16011, still open in 2025: "If you recently started to use Eventarc, it may take
# a few minutes before all necessary permissions are propagated to the Service Agent").
EVENTARC_AGENT = ErrorClass(
    "Eventarc service agent not yet authorised",
    "terraform-provider-google issues 11213, 16011",
    "propagation",
    lambda f, _: "Permission denied while using the Eventarc Service Agent" in f.message,
)


def classify(error: BaseException, api: Any) -> tuple[Failure, ErrorClass | None]:
    """The failure and the class it belongs to (None: not worth repeating)."""
    if not isinstance(error, HttpError | OSError | httplib2.HttpLib2Error):
        raise error
    failure = Failure.of(error)
    return failure, next((c for c in CLASSES if c.matches(failure, api)), None)
