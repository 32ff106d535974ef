"""Dead-lettering on the subscription behind a function's Pub/Sub trigger."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from gcp_stack.errors import OperationFailed
from gcp_stack.resources.base import Context, Resource


def trigger_subscription(ctx: Context, resource: str, function: str) -> str | None:
    """The subscription Eventarc made for `function`'s trigger (None while there is none).

    Eventarc names it itself, so it is found through the live function and its trigger.
    """
    functions = ctx.api.client("cloudfunctions", "v2").projects().locations().functions()
    name = f"projects/{ctx.project}/locations/{ctx.region}/functions/{function}"
    live = ctx.api.get_or_none(resource, lambda: functions.get(name=name))
    trigger = (live or {}).get("eventTrigger", {}).get("trigger")
    if not trigger:
        return None
    triggers = ctx.api.client("eventarc", "v1").projects().locations().triggers()
    found = ctx.api.get_or_none(resource, lambda: triggers.get(name=trigger))
    return (found or {}).get("transport", {}).get("pubsub", {}).get("subscription")


@dataclass
class TriggerDeadLetterPolicy(Resource):
    """Dead-lettering on the subscription Eventarc created for a function's Pub/Sub trigger.

    Cloud Functions has no dead-letter setting of its own: the policy goes on the trigger's
    subscription, whose name is read from the live function and its Eventarc trigger.
    """

    function: str = ""
    dead_letter_topic: str = ""
    max_delivery_attempts: int = 5
    kind: ClassVar[str] = "trigger_dead_letter_policy"

    def body(self, ctx: Context) -> dict[str, Any]:
        return {
            "deadLetterPolicy": {
                "deadLetterTopic": f"projects/{ctx.project}/topics/{self.dead_letter_topic}",
                "maxDeliveryAttempts": self.max_delivery_attempts,
            },
            "retryPolicy": {"minimumBackoff": "10s", "maximumBackoff": "600s"},
        }

    def read(self, ctx: Context) -> dict[str, Any] | None:
        subscription = trigger_subscription(ctx, self.key, self.function)
        if subscription is None:
            return None
        subscriptions = ctx.api.client("pubsub", "v1").projects().subscriptions()
        live = ctx.api.get_or_none(self.key, lambda: subscriptions.get(subscription=subscription))
        return live if live and "deadLetterPolicy" in live else None

    def create(self, ctx: Context) -> None:
        self.update(ctx, ["deadLetterPolicy", "retryPolicy"])

    def update(self, ctx: Context, mask: list[str]) -> None:
        subscription = trigger_subscription(ctx, self.key, self.function)
        if subscription is None:
            raise OperationFailed(self.key, "update", f"function {self.function} has no trigger")
        subscriptions = ctx.api.client("pubsub", "v1").projects().subscriptions()
        body = {"subscription": self.body(ctx), "updateMask": ",".join(mask)}
        ctx.api.call(self.key, "update", lambda: subscriptions.patch(name=subscription, body=body))

    def delete(self, ctx: Context) -> None:
        return None  # goes with the function's trigger

    def outputs(self, live: dict[str, Any]) -> dict[str, Any]:
        return {"subscription": live.get("name", "").rsplit("/", 1)[-1]}

    def follows(self) -> dict[str, str]:
        # A trigger change re-creates Eventarc's subscription without this policy.
        return {dep: "eventTrigger" for dep in self.depends_on if dep.startswith("function/")}
