"""A small exception hierarchy: every error names the resource and the operation."""

from __future__ import annotations


class GcpStackError(Exception):
    """Anything gcp_stack reports to its user."""


class NoCredentials(GcpStackError):
    pass


class ApiCallFailed(GcpStackError):
    def __init__(
        self,
        resource: str,
        operation: str,
        status: int,
        message: str,
        *,
        reason: str = "",
        service_disabled: str = "",
        gave_up: str = "",
    ) -> None:
        text = f"{operation} {resource}: HTTP {status}: {message}"
        if gave_up:
            text += f" ({gave_up})"
        if service_disabled:
            text += f"; enable {service_disabled} in the project, or let deploy enable it"
        super().__init__(text)
        self.resource, self.operation, self.status = resource, operation, status
        self.message, self.reason, self.service_disabled = message, reason, service_disabled


class OperationFailed(GcpStackError):
    def __init__(self, resource: str, operation: str, message: str) -> None:
        super().__init__(f"{operation} {resource}: the operation failed: {message}")
        self.resource, self.operation, self.message = resource, operation, message


class OperationTimedOut(GcpStackError):
    def __init__(self, resource: str, operation: str, seconds: float) -> None:
        super().__init__(f"{operation} {resource}: not done after {seconds:.0f}s")
        self.resource, self.operation = resource, operation


class ApplyFailed(GcpStackError):
    def __init__(self, failures: dict[str, BaseException], skipped: list[str]) -> None:
        lines = [
            f"  {key}: {error}" if isinstance(error, GcpStackError)
            else f"  {key}: unexpected {type(error).__name__}: {error}"
            for key, error in failures.items()
        ]  # fmt: skip
        if skipped:
            lines.append(f"  not attempted (their dependencies failed): {', '.join(skipped)}")
        super().__init__("apply stopped part-way; run deploy again to finish:\n" + "\n".join(lines))
        self.failures, self.skipped = failures, skipped
