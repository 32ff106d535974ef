"""The relay's token sources, against loopback fakes of IMDSv2, Google STS and IAM Credentials."""

from __future__ import annotations

import json
import threading
import time

import pytest

from runtime.settings import Settings, SettingsError
from runtime.token_sources import (
    AwsWorkloadIdentityTokenSource,
    GceMetadataTokenSource,
    NoTokenSource,
    StaticTokenSource,
    TokenError,
    jwt_claims,
    token_source_from_settings,
)
from tests.fakes.aws_gcp_identity import (
    SERVICE_ACCOUNT,
    FakeAwsGcpIdentity,
    FakeClock,
    FakeGceMetadata,
)

INGEST_URL = "https://ingest-abc123-ew.a.run.app/"


@pytest.fixture(autouse=True)
def no_aws_environment(monkeypatch):
    """google-auth prefers AWS_* variables to the metadata service; these tests need the latter."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def identity(clock):
    with FakeAwsGcpIdentity(clock) as identity:
        yield identity


def aws_source(identity, clock, **config_options):
    return AwsWorkloadIdentityTokenSource(
        identity.credential_config(**config_options),
        SERVICE_ACCOUNT,
        INGEST_URL,
        iam_endpoint=identity.iam.url,
        clock=clock,
    )


def wait_for(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


# -- AWS Workload Identity ----------------------------------------------------------------


def test_exchange_yields_an_id_token_for_the_service_account_and_ingest_url(identity, clock):
    token = aws_source(identity, clock).token()

    claims = jwt_claims(token)
    assert claims["aud"] == INGEST_URL
    assert claims["email"] == SERVICE_ACCOUNT
    assert claims["exp"] == int(clock()) + 3600
    assert identity.sts.verified_callers == [identity.imds.access_key_id]
    assert identity.iam.bearers[0].startswith("ya29.federated-")
    assert identity.imds.unauthorized == 0


def test_cached_token_is_served_without_any_request(identity, clock):
    source = aws_source(identity, clock)
    first = source.token()
    requests_after_first = identity.request_count

    clock.advance(3600 - 301)  # just outside the refresh margin

    assert source.token() == first
    assert identity.request_count == requests_after_first


def test_refresh_inside_the_margin_runs_in_background_and_does_not_block(identity, clock):
    source = aws_source(identity, clock)
    first = source.token()
    identity.iam.hold = threading.Event()  # the next generateIdToken waits until released
    clock.advance(3600 - 200)  # inside the 300 s margin, far from expiry

    started = time.monotonic()
    assert source.token() == first
    assert time.monotonic() - started < 0.5
    wait_for(lambda: len(identity.iam.bearers) == 2)  # the refresh is underway, held

    identity.iam.hold.set()
    wait_for(lambda: source.token() != first)
    assert jwt_claims(source.token())["exp"] == int(clock()) + 3600


def test_expired_token_is_replaced_before_the_call_returns(identity, clock):
    source = aws_source(identity, clock)
    first = source.token()
    clock.advance(3600)

    second = source.token()

    assert second != first
    assert jwt_claims(second)["exp"] == int(clock()) + 3600


def test_concurrent_callers_share_one_exchange(identity, clock):
    source = aws_source(identity, clock)
    tokens: list[str] = []
    threads = [threading.Thread(target=lambda: tokens.append(source.token())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(set(tokens)) == 1 and len(tokens) == 8
    assert len(identity.sts.verified_callers) == 1


def test_failed_background_refresh_keeps_serving_the_cached_token(identity, clock, caplog):
    source = aws_source(identity, clock)
    first = source.token()
    identity.sts.audience = "//iam.googleapis.com/projects/1/locations/global/other"
    clock.advance(3600 - 200)

    assert source.token() == first
    wait_for(lambda: "background ID token refresh failed" in caplog.text)
    assert source.token() == first


def test_wrong_audience_is_refused_by_sts(identity, clock):
    identity.sts.audience = (
        "//iam.googleapis.com/projects/123456789012/locations/global/"
        "workloadIdentityPools/skybridge/providers/someone-else"
    )
    with pytest.raises(TokenError, match=r"Google STS token exchange.*invalid_grant"):
        aws_source(identity, clock).token()
    assert identity.iam.count == 0


def test_signature_made_with_another_key_is_refused_by_sts(identity, clock):
    identity.imds.hand_out_secret = "not-the-key-of-" + identity.imds.access_key_id
    with pytest.raises(TokenError, match=r"STS.*signature we calculated does not match"):
        aws_source(identity, clock).token()
    assert identity.sts.verified_callers == []


def test_expired_bearer_is_refused_by_generate_id_token(identity, clock):
    identity.tokens.lifetime = 0  # STS hands out access tokens that are already expired
    with pytest.raises(TokenError, match=r"generateIdToken.*HTTP 401.*UNAUTHENTICATED"):
        aws_source(identity, clock).token()


def test_metadata_reads_without_an_imdsv2_session_token_are_refused(identity, clock):
    with pytest.raises(TokenError, match=r"instance metadata \(IMDSv2.*Unable to retrieve AWS"):
        aws_source(identity, clock, imdsv2=False).token()
    assert identity.imds.unauthorized == 1
    assert identity.sts.count == 0


def test_impersonation_url_supplies_the_iam_endpoint(identity, clock):
    source = AwsWorkloadIdentityTokenSource(
        identity.credential_config(impersonate=True), SERVICE_ACCOUNT, INGEST_URL, clock=clock
    )

    claims = jwt_claims(source.token())

    assert source.iam_endpoint == identity.iam.url
    assert claims["aud"] == INGEST_URL
    assert identity.iam.bearers[0].startswith("ya29.federated-")  # generateAccessToken
    assert identity.iam.bearers[1].startswith("ya29.impersonated-")  # generateIdToken


def test_unreachable_iam_credentials_names_generate_id_token(identity, clock):
    source = AwsWorkloadIdentityTokenSource(
        identity.credential_config(), SERVICE_ACCOUNT, INGEST_URL, iam_endpoint="http://127.0.0.1:9"
    )
    with pytest.raises(TokenError, match=r"generateIdToken"):
        source.token()


# -- GCE metadata ---------------------------------------------------------------------------


def test_gce_metadata_token_is_fetched_once_and_cached(identity, clock):
    metadata = FakeGceMetadata(identity.iam)
    metadata.start()
    try:
        source = GceMetadataTokenSource(INGEST_URL, metadata_url=metadata.url, clock=clock)
        first = source.token()
        assert source.token() == first
    finally:
        metadata.stop()
    assert jwt_claims(first)["aud"] == INGEST_URL
    assert metadata.count == 1


def test_gce_metadata_unreachable_is_a_token_error():
    source = GceMetadataTokenSource(INGEST_URL, metadata_url="http://127.0.0.1:9")
    with pytest.raises(TokenError, match="metadata server"):
        source.token()


# -- from settings --------------------------------------------------------------------------


def settings(**values) -> Settings:
    return Settings(**values)


def test_none_sends_no_authorization():
    source = token_source_from_settings(settings(token_source="none"), INGEST_URL)
    assert isinstance(source, NoTokenSource)
    assert source.token() is None


def test_static_token_is_presented_as_is():
    source = token_source_from_settings(
        settings(token_source="static", static_token="abc"), INGEST_URL
    )
    assert isinstance(source, StaticTokenSource)
    assert source.token() == "abc"


def test_static_without_a_token_names_the_variable():
    with pytest.raises(SettingsError, match="SKYBRIDGE_STATIC_TOKEN"):
        token_source_from_settings(settings(token_source="static"), INGEST_URL)


def test_aws_wif_without_its_settings_names_both_variables():
    with pytest.raises(
        SettingsError, match="SKYBRIDGE_GCP_CREDENTIAL_CONFIG, SKYBRIDGE_GCP_SERVICE_ACCOUNT"
    ):
        token_source_from_settings(settings(token_source="aws-wif"), INGEST_URL)


def test_id_token_without_an_audience_names_the_ingest_url():
    with pytest.raises(SettingsError, match="SKYBRIDGE_INGEST_URL"):
        token_source_from_settings(settings(token_source="gce-metadata"), "")


def test_aws_wif_with_an_unreadable_config_names_the_variable(tmp_path):
    values = dict(
        token_source="aws-wif",
        gcp_credential_config=str(tmp_path / "missing.json"),
        gcp_service_account=SERVICE_ACCOUNT,
    )
    with pytest.raises(SettingsError, match=r"SKYBRIDGE_GCP_CREDENTIAL_CONFIG.*cannot read"):
        token_source_from_settings(settings(**values), INGEST_URL)


def test_aws_wif_with_a_non_aws_config_names_the_variable(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"type": "service_account", "client_email": "x"}))
    values = dict(
        token_source="aws-wif", gcp_credential_config=str(path), gcp_service_account=SERVICE_ACCOUNT
    )
    with pytest.raises(SettingsError, match=r"SKYBRIDGE_GCP_CREDENTIAL_CONFIG.*not a usable"):
        token_source_from_settings(settings(**values), INGEST_URL)


def test_aws_wif_from_settings_obtains_an_id_token(identity, tmp_path):
    path = tmp_path / "credential-config.json"
    path.write_text(json.dumps(identity.credential_config(impersonate=True)))
    values = dict(
        token_source="aws-wif", gcp_credential_config=str(path), gcp_service_account=SERVICE_ACCOUNT
    )

    source = token_source_from_settings(settings(**values), INGEST_URL)

    assert isinstance(source, AwsWorkloadIdentityTokenSource)
    assert jwt_claims(source.token())["email"] == SERVICE_ACCOUNT
