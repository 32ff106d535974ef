"""Pub/Sub: topic and subscription ids.

`Fidelity.id_rules`: "It must start with a letter, and contain only letters ([A-Za-z]),
numbers ([0-9]), dashes (-), underscores (_), periods (.), tildes (~), plus (+) or percent
signs (%). It must be between 3 and 255 characters in length, and it must not start with
'goog'." (pubsub v1 discovery document, Topic.name and Subscription.name)
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, ClassVar

from local_stack.control_plane.apis.base import ApiRules, Request
from local_stack.control_plane.errors import GoogleError

if TYPE_CHECKING:
    from local_stack.control_plane.server import ControlPlane

RESOURCE_ID = re.compile(r"^[A-Za-z][-A-Za-z0-9_.~+%]{2,254}$")


class PubSub(ApiRules):
    api: ClassVar[str] = "pubsub"

    def check(self, plane: ControlPlane, request: Request) -> None:
        if not plane.fidelity.id_rules or request.action != "create":
            return
        kind, _, short = request.name.rpartition("/")
        if kind.endswith(("/topics", "/subscriptions")) and (
            not RESOURCE_ID.match(short) or short.startswith("goog")
        ):
            raise GoogleError(
                400,
                f"Invalid resource name given (name={request.name}). Refer to "
                "https://cloud.google.com/pubsub/docs/pubsub-basics#resource_names for more "
                "information.",
                "INVALID_ARGUMENT",
            )
