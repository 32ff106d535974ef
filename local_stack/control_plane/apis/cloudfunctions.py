"""Cloud Functions v2: a function gets a URL and a Cloud Run service; a Pub/Sub trigger gets
an Eventarc trigger and a subscription, which Google deletes with the function; the source
is uploaded to a signed URL; operations live under the location.

https://cloud.google.com/functions/docs/reference/rest/v2/projects.locations.functions

Every create and update is a deployment that ends ACTIVE or FAILED ("deployment failed and
the function is not serving", the State enum of the v2 discovery document), with the
operation failing too:
- a build without `buildConfig.source` fails — which is what an update whose mask names
  `buildConfig` but whose body lacks the source leaves (the mask replaces the whole field,
  https://google.aip.dev/134);
- `Fidelity.failing_builds`: the next build of those functions fails;
- `Fidelity.eventarc_agent_delay`: the Eventarc service agent refuses for a while after
  its first use (terraform-provider-google issues #11213, #16011);
- `Fidelity.account_propagation`: a service account created a moment ago "does not
  exist" (400; transport/error_retry_predicates.go: IamServiceAccountNotFound);
- `Fidelity.trigger_recreation`: changing `eventTrigger` gives the function a new Eventarc
  trigger and a new subscription, without the old one's dead-letter policy or IAM policy;
- `Fidelity.id_rules`: "Function name must contain only lower case Latin letters, digits
  and a hyphen (-). It must start with letter, must not end with a hyphen, and must be at
  most 63 characters long."
"""

from __future__ import annotations

import re
import time
import uuid
from typing import TYPE_CHECKING, Any, ClassVar

from local_stack.control_plane.apis.base import Answer, ApiRules, Request
from local_stack.control_plane.apis.iam import refuse_invisible
from local_stack.control_plane.errors import GoogleError

if TYPE_CHECKING:
    from local_stack.control_plane.server import ControlPlane

FUNCTION_ID = re.compile(r"^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$")
EVENTARC_REFUSAL = (
    "Creating trigger failed: Permission denied while using the Eventarc Service Agent. If "
    "you recently started to use Eventarc, it may take a few minutes before all necessary "
    "permissions are propagated to the Service Agent. Otherwise, verify that it has Eventarc "
    "Service Agent role."
)


def _accounts(body: dict[str, Any]) -> list[str]:
    build = body.get("buildConfig", {}).get("serviceAccount", "")
    return [
        body.get("serviceConfig", {}).get("serviceAccountEmail", ""),
        body.get("eventTrigger", {}).get("serviceAccountEmail", ""),
        build.rsplit("/", 1)[-1],
    ]


class CloudFunctions(ApiRules):
    api: ClassVar[str] = "cloudfunctions"

    def check(self, plane: ControlPlane, request: Request) -> None:
        if request.action not in ("create", "patch"):
            return
        function_id = request.query.get("functionId")
        if (
            plane.fidelity.id_rules
            and function_id is not None
            and not FUNCTION_ID.match(function_id)
        ):
            raise GoogleError(
                400,
                "Function name must contain only lower case Latin letters, digits and a hyphen "
                "(-). It must start with letter, must not end with a hyphen, and must be at "
                "most 63 characters long.",
                "INVALID_ARGUMENT",
            )
        refuse_invisible(plane, _accounts(request.body))

    def action(self, plane: ControlPlane, request: Request) -> Answer | None:
        if request.action != "generateUploadUrl":
            return None
        upload = f"/upload/{uuid.uuid4().hex}"
        return 200, {
            "uploadUrl": f"{plane.url}{upload}",
            "storageSource": {"bucket": "gcf-v2-uploads", "object": upload[8:] + ".zip"},
        }

    def created(self, plane: ControlPlane, name: str, resource: dict[str, Any]) -> None:
        if "/functions/" not in name:
            return
        short = name.rsplit("/", 1)[-1]
        resource["url"] = f"https://{short}-fake.a.run.app"
        resource["serviceConfig"] = resource.get("serviceConfig", {}) | {
            "uri": resource["url"],
            "service": name.replace("functions", "services"),
        }
        self._deploy(plane, name, resource, new_trigger=True)

    def patched(
        self, plane: ControlPlane, request: Request, before: dict[str, Any], after: dict[str, Any]
    ) -> None:
        for field in ("url",):
            after.setdefault(field, before.get(field))
        after["serviceConfig"] = after.get("serviceConfig", {}) | {
            k: v for k, v in before.get("serviceConfig", {}).items() if k in ("uri", "service")
        }
        old = before.get("eventTrigger", {})
        trigger = after.get("eventTrigger")
        changed = (
            trigger is not None and {k: v for k, v in old.items() if k != "trigger"} != trigger
        )
        if trigger is not None and "trigger" in old:
            trigger["trigger"] = old["trigger"]  # output-only: kept across updates
        recreate = changed and plane.fidelity.trigger_recreation
        if recreate or trigger is None:
            self._drop_trigger(plane, before)
            if trigger is not None:
                trigger.pop("trigger", None)
        self._deploy(plane, request.name, after, new_trigger=recreate)

    def _deploy(
        self, plane: ControlPlane, name: str, resource: dict[str, Any], new_trigger: bool
    ) -> None:
        """Build and roll out: ACTIVE, or FAILED with the reason in stateMessages."""
        short = name.rsplit("/", 1)[-1]
        failure = ""
        if "source" not in resource.get("buildConfig", {}):
            failure = "Build failed: the function has no source (buildConfig.source is empty)."
        elif short in plane.fidelity.failing_builds:
            plane.fidelity.failing_builds.discard(short)
            failure = "Build failed: the build step exited with a non-zero status."
        elif "eventTrigger" in resource and plane.fidelity.eventarc_agent_delay:
            first = plane.moments.setdefault("eventarc first use", time.monotonic())
            if time.monotonic() - first < plane.fidelity.eventarc_agent_delay:
                failure = EVENTARC_REFUSAL
        if failure:
            resource["state"] = "FAILED"
            resource["stateMessages"] = [{"severity": "ERROR", "message": failure}]
            return
        resource["state"] = "ACTIVE"
        resource.pop("stateMessages", None)
        trigger = resource.get("eventTrigger")
        if trigger is not None and (new_trigger or "trigger" not in trigger):
            self._make_trigger(plane, name, trigger)

    def _make_trigger(self, plane: ControlPlane, name: str, trigger: dict[str, Any]) -> None:
        """What Eventarc creates for a Pub/Sub trigger: a trigger and its subscription."""
        short, number = name.rsplit("/", 1)[-1], plane.next_id()
        made = f"{name.rsplit('/functions/', 1)[0]}/triggers/{short}-{number}"
        subscription = f"projects/{name.split('/')[1]}/subscriptions/eventarc-{short}-{number}-sub"
        trigger["trigger"] = made
        plane.store[plane.key("eventarc", made)] = {
            "name": made,
            "transport": {"pubsub": {"subscription": subscription}},
        }
        plane.store[plane.key("pubsub", subscription)] = {
            "name": subscription,
            "topic": trigger["pubsubTopic"],
        }

    def _drop_trigger(self, plane: ControlPlane, resource: dict[str, Any]) -> None:
        trigger = resource.get("eventTrigger", {}).get("trigger")
        if trigger:
            made = plane.store.pop(plane.key("eventarc", trigger), {})
            subscription = made.get("transport", {}).get("pubsub", {}).get("subscription") or ""
            plane.store.pop(plane.key("pubsub", subscription), None)
            plane.policies.pop(subscription, None)

    def failure(self, resource: dict[str, Any]) -> str:
        if resource.get("state") != "FAILED":
            return ""
        return next((m["message"] for m in resource.get("stateMessages", [])), "deploy failed")

    def deleted(self, plane: ControlPlane, resource: dict[str, Any]) -> None:
        # Google deletes the Eventarc trigger it made, and that trigger's subscription.
        self._drop_trigger(plane, resource)

    def operation_name(self, resource: dict[str, Any], number: int) -> str:
        location = "/".join(resource.get("name", "").split("/")[:4])
        return f"{location}/operations/op-{number}"
