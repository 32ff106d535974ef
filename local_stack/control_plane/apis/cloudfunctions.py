"""Cloud Functions v2: a function gets a URL and a Cloud Run service; a Pub/Sub trigger gets
an Eventarc trigger and a subscription, which Google deletes with the function; the source
is uploaded to a signed URL; operations live under the location.

https://cloud.google.com/functions/docs/reference/rest/v2/projects.locations.functions
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, ClassVar

from local_stack.control_plane.apis.base import Answer, ApiRules, Request

if TYPE_CHECKING:
    from local_stack.control_plane.server import ControlPlane


class CloudFunctions(ApiRules):
    api: ClassVar[str] = "cloudfunctions"

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
        resource |= {"state": "ACTIVE", "url": f"https://{short}-fake.a.run.app"}
        resource["serviceConfig"] = resource.get("serviceConfig", {}) | {
            "uri": resource["url"],
            "service": name.replace("functions", "services"),
        }
        if "eventTrigger" in resource:  # what Eventarc creates for a Pub/Sub trigger
            trigger = f"{name.rsplit('/functions/', 1)[0]}/triggers/{short}-123"
            subscription = f"projects/{name.split('/')[1]}/subscriptions/eventarc-{short}-sub"
            resource["eventTrigger"]["trigger"] = trigger
            plane.store[plane.key("eventarc", trigger)] = {
                "name": trigger,
                "transport": {"pubsub": {"subscription": subscription}},
            }
            plane.store[plane.key("pubsub", subscription)] = {
                "name": subscription,
                "topic": resource["eventTrigger"]["pubsubTopic"],
            }

    def deleted(self, plane: ControlPlane, resource: dict[str, Any]) -> None:
        # Google deletes the Eventarc trigger it made, and that trigger's subscription.
        trigger = resource.get("eventTrigger", {}).get("trigger")
        if trigger:
            made = plane.store.pop(plane.key("eventarc", trigger), {})
            subscription = made.get("transport", {}).get("pubsub", {}).get("subscription")
            plane.store.pop(plane.key("pubsub", subscription or ""), None)

    def operation_name(self, resource: dict[str, Any], number: int) -> str:
        location = "/".join(resource.get("name", "").split("/")[:4])
        return f"{location}/operations/op-{number}"
