"""Each Google API's own rules, one module per API (see `base.ApiRules`)."""

from __future__ import annotations

from local_stack.control_plane.apis.base import Answer, ApiRules, Request
from local_stack.control_plane.apis.cloudfunctions import CloudFunctions
from local_stack.control_plane.apis.iam import Iam
from local_stack.control_plane.apis.logging import Logging
from local_stack.control_plane.apis.monitoring import Monitoring
from local_stack.control_plane.apis.pubsub import PubSub
from local_stack.control_plane.apis.resourcemanager import ResourceManager
from local_stack.control_plane.apis.serviceusage import ServiceUsage
from local_stack.control_plane.apis.storage import Storage

RULES: dict[str, ApiRules] = {
    rules.api: rules
    for rules in (
        CloudFunctions(),
        Iam(),
        Logging(),
        Monitoring(),
        PubSub(),
        ResourceManager(),
        ServiceUsage(),
        Storage(),
    )
}
GENERIC = ApiRules()


def rules_of(api: str) -> ApiRules:
    return RULES.get(api, GENERIC)


__all__ = ["GENERIC", "RULES", "Answer", "ApiRules", "Request", "rules_of"]
