"""Service Usage: `services.enable` records the service as ENABLED; reading a service never
enabled answers DISABLED (not 404).

https://cloud.google.com/service-usage/docs/reference/rest/v1/services/get

Fidelity rules (`Fidelity.services_disabled`, `.enable_propagation`, `.enable_duration`):
- every API but Service Usage and Resource Manager starts disabled, and a call to a
  disabled API answers 403 PERMISSION_DENIED with ErrorInfo reason SERVICE_DISABLED
  ("… API has not been used in project … before or it is disabled"), and keeps doing so
  for a while after the enable ("If you enabled this API recently, wait a few minutes for
  the action to propagate to our systems and retry") — the message Google sends, quoted in
  terraform-provider-google's provider_billing_project_test.go;
- an enable while another is in progress answers 400 "Another activation or deactivation
  is in progress" (transport/error_retry_predicates.go: ServiceUsageServiceBeingActivated).
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any, ClassVar

from local_stack.control_plane.apis.base import Answer, ApiRules, Request
from local_stack.control_plane.apis.resourcemanager import PROJECT_NUMBER
from local_stack.control_plane.errors import GoogleError, error_info

if TYPE_CHECKING:
    from local_stack.control_plane.server import ControlPlane

ALWAYS_ON = frozenset({"serviceusage", "cloudresourcemanager"})
TITLES = {
    "storage": "Cloud Storage",
    "pubsub": "Cloud Pub/Sub",
    "iam": "Identity and Access Management (IAM)",
    "cloudfunctions": "Cloud Functions",
    "run": "Cloud Run Admin",
    "monitoring": "Cloud Monitoring",
    "logging": "Cloud Logging",
    "eventarc": "Eventarc",
}


def project_of(plane: ControlPlane, request: Request) -> str | None:
    found = re.search(r"(?:^|/)projects/([^/]+)", request.name)
    if found:
        return found.group(1)
    if "project" in request.query:
        return request.query["project"].removeprefix("projects/")
    bucket = re.match(r"b/([^/]+)", request.name)
    return plane.projects.get(plane.key("storage", f"b/{bucket.group(1)}")) if bucket else None


def refuse_if_disabled(plane: ControlPlane, request: Request) -> None:
    """403 SERVICE_DISABLED for a call to an API not (yet) enabled in the caller's project."""
    if not plane.fidelity.services_disabled or request.api in ALWAYS_ON:
        return
    service = f"{request.api}.googleapis.com"
    project = project_of(plane, request)
    keys = (
        [f"projects/{project}/services/{service}"]
        if project
        else [k for k in plane.enabled_at if k.endswith(f"/services/{service}")]
    )
    now = time.monotonic()
    ready = any(now - plane.enabled_at.get(k, now + 1) >= plane.fidelity.enable_propagation
                for k in keys)  # fmt: skip
    if ready:
        return
    title = TITLES.get(request.api, request.api)
    raise GoogleError(
        403,
        f"{title} API has not been used in project {PROJECT_NUMBER} before or it is disabled. "
        f"Enable it by visiting https://console.developers.google.com/apis/api/{service}/"
        f"overview?project={PROJECT_NUMBER} then retry. If you enabled this API recently, wait "
        "a few minutes for the action to propagate to our systems and retry.",
        "PERMISSION_DENIED",
        [error_info("SERVICE_DISABLED", service=service, consumer=f"projects/{PROJECT_NUMBER}")],
    )


class ServiceUsage(ApiRules):
    api: ClassVar[str] = "serviceusage"

    def action(self, plane: ControlPlane, request: Request) -> Answer | None:
        if request.action != "enable":
            return None
        now = time.monotonic()
        if now < plane.moments.get("enabling until", 0.0):
            raise GoogleError(
                400,
                "Another activation or deactivation is in progress. Please retry later.",
                "FAILED_PRECONDITION",
            )
        if plane.fidelity.enable_duration:
            plane.moments["enabling until"] = now + plane.fidelity.enable_duration
        resource = {
            "name": request.name,
            "state": "ENABLED",
            "config": {"name": request.name.rsplit("/", 1)[-1]},
        }
        plane.store[plane.key(self.api, request.name)] = resource
        plane.enabled_at.setdefault(request.name, now)
        return 200, plane.operation(request.method, resource)

    def get(self, plane: ControlPlane, request: Request) -> dict[str, Any]:
        disabled = {"name": request.name, "state": "DISABLED"}
        return plane.store.get(plane.key(self.api, request.name), disabled)
