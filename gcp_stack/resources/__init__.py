"""Resource kinds, one module each, all with the surface of `base.Resource`.

Adding a kind means adding a module here (and using it in `gcp_stack.stack`), never
touching the engine.
"""

from gcp_stack.resources.base import STACK_LABEL, Context, Resource, resolve
from gcp_stack.resources.bucket import Bucket
from gcp_stack.resources.function import Function
from gcp_stack.resources.iam_member import IamMember
from gcp_stack.resources.logging_metric import LogMetric
from gcp_stack.resources.monitoring import (
    AlertPolicy,
    Dashboard,
    MonitoringObject,
    NotificationChannel,
    UptimeCheck,
)
from gcp_stack.resources.pubsub import Subscription, Topic
from gcp_stack.resources.service_account import ServiceAccount
from gcp_stack.resources.service_api import ServiceApi
from gcp_stack.resources.trigger_dead_letter import TriggerDeadLetterPolicy
from gcp_stack.resources.workload_identity import AwsProvider, WorkloadIdentityPool

# Every kind, so that orphans are found even of a kind the stack no longer declares.
KINDS: tuple[type[Resource], ...] = (
    AlertPolicy, AwsProvider, Bucket, Dashboard, Function, IamMember, LogMetric,
    NotificationChannel, ServiceAccount, ServiceApi, Subscription, Topic,
    TriggerDeadLetterPolicy, UptimeCheck, WorkloadIdentityPool,
)  # fmt: skip

__all__ = [
    "KINDS",
    "STACK_LABEL",
    "AlertPolicy",
    "AwsProvider",
    "Bucket",
    "Context",
    "Dashboard",
    "Function",
    "IamMember",
    "LogMetric",
    "MonitoringObject",
    "NotificationChannel",
    "Resource",
    "ServiceAccount",
    "ServiceApi",
    "Subscription",
    "Topic",
    "TriggerDeadLetterPolicy",
    "UptimeCheck",
    "WorkloadIdentityPool",
    "resolve",
]
