"""Who may do what in the deployed GCP half: least privilege and keyless AWS → GCP calls."""

from __future__ import annotations

from tests.gcp_stack.conftest import PROJECT_NUMBER

PROJECT = "skybridge-dev-000000"
REGION = "europe-west1"
POOL = f"projects/{PROJECT}/locations/global/workloadIdentityPools/skybridge-dev-aws"
RELAY = f"serviceAccount:skybridge-dev-relay@{PROJECT}.iam.gserviceaccount.com"
PUBSUB_AGENT = f"serviceAccount:service-{PROJECT_NUMBER}@gcp-sa-pubsub.iam.gserviceaccount.com"


def members(fake, resource: str) -> dict[str, set[str]]:
    """role → members of one resource's IAM policy on the fake."""
    policy = fake.policies.get(resource, {"bindings": []})
    return {binding["role"]: set(binding["members"]) for binding in policy["bindings"]}


def test_ingest_is_invokable_by_the_relay_only(deployed):
    service = f"projects/{PROJECT}/locations/{REGION}/services/skybridge-dev-ingest"
    assert members(deployed, service) == {"roles/run.invoker": {RELAY}}


def test_relay_account_is_usable_by_the_relay_role_principal_set_only(deployed):
    account = f"projects/{PROJECT}/serviceAccounts/{RELAY.removeprefix('serviceAccount:')}"
    principal_set = (
        f"principalSet://iam.googleapis.com/projects/{PROJECT_NUMBER}/locations/global/"
        "workloadIdentityPools/skybridge-dev-aws/attribute.aws_role/skybridge-dev-relay"
    )
    assert members(deployed, account) == {"roles/iam.workloadIdentityUser": {principal_set}}


def test_provider_admits_only_the_relay_role_of_the_configured_account(deployed):
    provider = deployed.store[f"iam:{POOL}/providers/aws-relay"]
    assert provider["aws"] == {"accountId": "111111111111"}
    assert provider["attributeMapping"]["google.subject"] == "assertion.arn"
    assert "assumed-role/" in provider["attributeMapping"]["attribute.aws_role"]
    assert provider["attributeCondition"] == (
        "attribute.aws_account == '111111111111' && attribute.aws_role == 'skybridge-dev-relay'"
    )


def test_functions_publish_and_write_only_where_they_must(deployed):
    topic = f"projects/{PROJECT}/topics/skybridge-dev-submissions"
    bucket = f"b/{PROJECT}-skybridge-dev-assets/iam"
    assert members(deployed, topic) == {
        "roles/pubsub.publisher": {
            f"serviceAccount:skybridge-dev-ingest@{PROJECT}.iam.gserviceaccount.com"
        }
    }
    assert members(deployed, bucket) == {
        "roles/storage.objectCreator": {
            f"serviceAccount:skybridge-dev-store@{PROJECT}.iam.gserviceaccount.com"
        }
    }


def test_store_trigger_dead_letters_through_the_pubsub_service_agent(deployed):
    (name,) = [k for k in deployed.store if "/subscriptions/eventarc-" in k]
    subscription = deployed.store[name]
    assert subscription["deadLetterPolicy"] == {
        "deadLetterTopic": f"projects/{PROJECT}/topics/skybridge-dev-dead-letter",
        "maxDeliveryAttempts": 5,
    }
    dead_letter = f"projects/{PROJECT}/topics/skybridge-dev-dead-letter"
    assert members(deployed, dead_letter) == {"roles/pubsub.publisher": {PUBSUB_AGENT}}
    assert members(deployed, name.removeprefix("pubsub:")) == {
        "roles/pubsub.subscriber": {PUBSUB_AGENT}
    }


def test_nothing_is_granted_to_all_users(deployed):
    granted = {m for policy in deployed.policies.values() for b in policy["bindings"]
               for m in b["members"]}  # fmt: skip
    assert not granted & {"allUsers", "allAuthenticatedUsers"}


def test_bucket_is_private_versioned_and_expires_objects(deployed):
    bucket = deployed.store[f"storage:b/{PROJECT}-skybridge-dev-assets"]
    assert bucket["iamConfiguration"] == {
        "uniformBucketLevelAccess": {"enabled": True},
        "publicAccessPrevention": "enforced",
    }
    assert bucket["versioning"] == {"enabled": True}
    assert {"action": {"type": "Delete"}, "condition": {"age": 30}} in bucket["lifecycle"]["rule"]
    assert bucket["labels"] == {"skybridge-stack": "skybridge-dev"}
