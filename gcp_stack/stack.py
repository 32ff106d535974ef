"""The GCP half as data: a pure function from configuration to the list of resources.

What things are called lives in `names.py`, the monitoring resources in `monitoring.py`.
"""

from __future__ import annotations

from environments import Environment
from gcp_stack.monitoring import monitoring
from gcp_stack.names import Names
from gcp_stack.resources import (
    STACK_LABEL,
    AwsProvider,
    Bucket,
    Function,
    IamMember,
    Resource,
    ServiceAccount,
    ServiceApi,
    Subscription,
    Topic,
    TriggerDeadLetterPolicy,
    WorkloadIdentityPool,
)

SERVICES = (
    "cloudfunctions.googleapis.com",
    "run.googleapis.com",
    "cloudbuild.googleapis.com",
    "artifactregistry.googleapis.com",
    "eventarc.googleapis.com",
    "pubsub.googleapis.com",
    "storage.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "sts.googleapis.com",
    "monitoring.googleapis.com",
    "logging.googleapis.com",
)
PUBSUB_AGENT = "serviceAccount:service-{project_number}@gcp-sa-pubsub.iam.gserviceaccount.com"
# What a function build needs when it runs as its own account, not the default Cloud Build
# one: https://cloud.google.com/functions/docs/securing/build-custom-sa
BUILD_ROLES = ("roles/logging.logWriter", "roles/artifactregistry.writer",
               "roles/storage.objectViewer")  # fmt: skip


def build(environment: Environment, api_url: str = "") -> list[Resource]:
    gcp, aws = environment.gcp, environment.aws
    names = Names(environment.prefix, gcp.project)
    labels = {STACK_LABEL: environment.prefix}
    services = [ServiceApi(f"service/{name}") for name in SERVICES]
    all_apis = tuple(s.key for s in services)
    sa = {
        role: ServiceAccount(
            f"service_account/{names.account(role)}",
            depends_on=("service/iam.googleapis.com",),
            display_name=f"skybridge {role} ({environment.name})",
            description=f"{description} Managed by gcp_stack ({environment.prefix}).",
        )
        for role, description in {
            "ingest": "Runs the ingest function; may publish to the submissions topic.",
            "store": "Runs the store function; may create objects in the assets bucket.",
            "relay": "The AWS relay, through Workload Identity; may invoke ingest.",
            "build": "Builds the functions; may write build logs and images, read sources.",
        }.items()
    }
    builder = [
        IamMember(
            f"iam_member/project:{gcp.project} {role} serviceAccount:{names.email('build')}",
            (sa["build"].key,),
            target="project",
            role=role,
            member=f"serviceAccount:{names.email('build')}",
        )
        for role in BUILD_ROLES
    ]
    build_deps = (sa["build"].key, *(member.key for member in builder))
    topic = Topic(f"topic/{names.topic}", all_apis, labels=labels)
    dead_letter = Topic(f"topic/{names.dead_letter}", all_apis, labels=labels)
    dead_letter_sub = Subscription(
        f"subscription/{names.dead_letter}",
        (dead_letter.key,),
        topic=names.dead_letter,
        labels=labels,
    )
    # Receipts: store publishes one per stored object; the relay on AWS is the only
    # subscriber (pull, through Workload Identity: no inbound endpoint on AWS).
    receipts = Topic(f"topic/{names.receipts}", all_apis, labels=labels)
    receipts_sub = Subscription(
        f"subscription/{names.receipts_subscription}",
        (receipts.key,),
        topic=names.receipts,
        labels=labels,
        ack_deadline_seconds=60,
    )
    bucket = Bucket(
        f"bucket/{names.bucket}",
        all_apis,
        location=gcp.region,
        labels=labels,
        retention_days=environment.retention.stored_days,
    )
    env_common = {"SKYBRIDGE_SOURCE": "aws", "SKYBRIDGE_METRICS": "none"}
    ingest = Function(
        f"function/{names.function('ingest')}",
        (*all_apis, sa["ingest"].key, topic.key, *build_deps),
        entry_point="ingest",
        runtime=gcp.function_runtime,
        service_account=names.email("ingest"),
        build_service_account=names.email("build"),
        environment=env_common
        | {"SKYBRIDGE_TOPIC": f"projects/{gcp.project}/topics/{names.topic}"},
        labels=labels,
    )
    store = Function(
        f"function/{names.function('store')}",
        (*all_apis, sa["store"].key, topic.key, bucket.key, receipts.key, *build_deps),
        entry_point="store",
        runtime=gcp.function_runtime,
        service_account=names.email("store"),
        build_service_account=names.email("build"),
        environment=env_common
        | {
            "SKYBRIDGE_BUCKET": names.bucket,
            "SKYBRIDGE_RECEIPTS_TOPIC": f"projects/{gcp.project}/topics/{names.receipts}",
        },
        labels=labels,
        trigger_topic=names.topic,
    )
    pool = WorkloadIdentityPool(
        f"workload_identity_pool/{names.pool}",
        all_apis,
        description=f"AWS account {aws.account}: the skybridge relay ({environment.name})",
    )
    provider = AwsProvider(
        f"workload_identity_provider/{names.provider}",
        (pool.key,),
        pool=names.pool,
        account=aws.account,
        role_name=aws.relay_role_name,
    )
    relay_principal = (
        "principalSet://iam.googleapis.com/projects/{project_number}/locations/global/"
        f"workloadIdentityPools/{names.pool}/attribute.aws_role/{aws.relay_role_name}"
    )
    bindings = [
        ("topic", names.topic, "roles/pubsub.publisher", f"serviceAccount:{names.email('ingest')}",
         (topic.key, sa["ingest"].key)),
        ("bucket", names.bucket, "roles/storage.objectCreator",
         f"serviceAccount:{names.email('store')}", (bucket.key, sa["store"].key)),
        # Receipts, least privilege: store may only publish to the receipts topic, the relay
        # may only pull from (and ack on) its subscription.
        ("topic", names.receipts, "roles/pubsub.publisher",
         f"serviceAccount:{names.email('store')}", (receipts.key, sa["store"].key)),
        ("subscription", names.receipts_subscription, "roles/pubsub.subscriber",
         f"serviceAccount:{names.email('relay')}", (receipts_sub.key, sa["relay"].key)),
        ("run_service", names.function("ingest"), "roles/run.invoker",
         f"serviceAccount:{names.email('relay')}", (ingest.key, sa["relay"].key)),
        ("run_service", names.function("store"), "roles/run.invoker",
         f"serviceAccount:{names.email('store')}", (store.key,)),
        ("project", "", "roles/eventarc.eventReceiver", f"serviceAccount:{names.email('store')}",
         (sa["store"].key,)),
        ("service_account", names.email("relay"), "roles/iam.workloadIdentityUser",
         relay_principal, (sa["relay"].key, provider.key)),
        # Authenticated push (the trigger pushes as the store account): projects whose
        # Pub/Sub service agent predates 2021-04-08 lack this grant.
        # https://cloud.google.com/pubsub/docs/authenticate-push-subscriptions
        ("service_account", names.email("store"), "roles/iam.serviceAccountTokenCreator",
         PUBSUB_AGENT, (sa["store"].key,)),
        # Dead-lettering: the Pub/Sub service agent forwards from the trigger's subscription
        # (which Eventarc names itself) to the dead-letter topic.
        ("topic", names.dead_letter, "roles/pubsub.publisher", PUBSUB_AGENT, (dead_letter.key,)),
        ("trigger_subscription", names.function("store"), "roles/pubsub.subscriber",
         PUBSUB_AGENT, (store.key,)),
    ]  # fmt: skip
    iam = [
        IamMember(
            f"iam_member/{kind}:{target or gcp.project} {role} {member}",
            deps,
            target=f"{kind}:{target}" if target else kind,
            role=role,
            member=member,
        )
        for kind, target, role, member, deps in bindings
    ]
    dead_letter_policy = TriggerDeadLetterPolicy(
        f"trigger_dead_letter_policy/{names.function('store')}",
        (store.key, dead_letter.key, iam[-2].key, iam[-1].key),
        function=names.function("store"),
        dead_letter_topic=names.dead_letter,
        max_delivery_attempts=gcp.max_delivery_attempts,
    )
    return [
        *services,
        *sa.values(),
        *builder,
        topic,
        dead_letter,
        dead_letter_sub,
        receipts,
        receipts_sub,
        bucket,
        ingest,
        store,
        pool,
        provider,
        *iam,
        dead_letter_policy,
        *monitoring(environment, names, all_apis, api_url, dead_letter_policy.key),
    ]
