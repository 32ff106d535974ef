"""Where the relay's bearer token comes from.

* `none`          — no Authorization header (the local stack: functions on loopback).
* `static`        — a fixed token (tests, or a token minted elsewhere).
* `gce-metadata`  — an ID token from the GCE/Cloud Run metadata server.
* `aws-wif`       — on EC2, keyless: the instance role's AWS identity is exchanged for a
  Google access token through Workload Identity Federation (google-auth's AWS
  external-account credentials: IMDSv2 → signed GetCallerIdentity → Google STS), then IAM
  Credentials `generateIdToken` turns that into an ID token for the relay's service account
  with the ingest URL as audience. (google-auth has no public path from AWS credentials
  straight to an ID token.)

ID tokens are cached until shortly before they expire and refreshed in the background, so
delivery never waits for a refresh while the cached token is still good. Every failure is a
`TokenError` naming the step that failed; the relay treats it as a failed delivery attempt.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import requests

from runtime import httpclient
from runtime.settings import Settings, SettingsError

log = logging.getLogger("skybridge.token")

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
GOOGLE_STS = "https://sts.googleapis.com/v1/token"
GCE_METADATA = "http://metadata.google.internal"


class TokenError(RuntimeError):
    """A token could not be obtained; the message names the step that failed."""


class TokenSource(Protocol):
    def token(self) -> str | None:
        """The bearer token to present, or None to send no Authorization header."""
        ...


class NoTokenSource:
    def token(self) -> None:
        return None


class StaticTokenSource:
    def __init__(self, value: str) -> None:
        self.value = value

    def token(self) -> str:
        return self.value


def jwt_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, not verified: the service we present it to verifies it."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError) as error:
        raise TokenError(f"the ID token is not a JWT: {error}") from None
    if not isinstance(claims, dict):
        raise TokenError("the ID token's payload is not a JSON object")
    return claims


def jwt_expiry(token: str) -> float:
    try:
        return float(jwt_claims(token)["exp"])
    except (KeyError, TypeError, ValueError):
        raise TokenError("the ID token has no numeric exp claim") from None


class CachedIdTokenSource:
    """An ID token cached until `margin` seconds before it expires.

    Inside the margin the cached token is still handed out while one background thread
    fetches its successor; a caller waits only when there is no token, or the one there is
    has less than `min_validity` seconds left (too little to finish a delivery with).
    Subclasses implement `fetch()`.
    """

    def __init__(
        self,
        *,
        margin: float = 300.0,
        min_validity: float = 60.0,
        retry_after: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.margin = margin
        self.min_validity = min_validity
        self.retry_after = retry_after
        self.clock = clock
        self._token: str | None = None
        self._refresh_at = 0.0
        self._expiry = 0.0
        self._refreshing = False
        self._next_background_attempt = 0.0
        self._lock = threading.Lock()  # guards the fields above; never held over I/O
        self._fetch_lock = threading.Lock()  # one fetch at a time (credentials aren't shared-safe)

    def fetch(self) -> str:
        raise NotImplementedError

    def token(self) -> str:
        now = self.clock()
        with self._lock:
            cached = self._token
            if cached is not None and now < self._refresh_at:
                return cached
            if cached is not None and now < self._expiry - self.min_validity:
                if not self._refreshing and now >= self._next_background_attempt:
                    self._refreshing = True
                    threading.Thread(
                        target=self._refresh_in_background, name="id-token-refresh", daemon=True
                    ).start()
                return cached
        with self._fetch_lock:
            with self._lock:  # another caller may have fetched while this one waited
                if self._token is not None and self.clock() < self._expiry - self.min_validity:
                    return self._token
            return self._fetch_and_store()

    def _fetch_and_store(self) -> str:
        token = self.fetch()
        expiry = jwt_expiry(token)
        now = self.clock()
        with self._lock:
            self._token, self._expiry = token, expiry
            # A token shorter-lived than twice the margin is refreshed at half its life.
            self._refresh_at = expiry - min(self.margin, max(expiry - now, 0.0) / 2)
        return token

    def _refresh_in_background(self) -> None:
        try:
            with self._fetch_lock:
                self._fetch_and_store()
        except TokenError as error:
            log.warning(
                "background ID token refresh failed, still using the cached token: %s",
                error,
                extra={"event": "token.refresh_failed"},
            )
            with self._lock:
                self._next_background_attempt = self.clock() + self.retry_after
        finally:
            with self._lock:
                self._refreshing = False


class GceMetadataTokenSource(CachedIdTokenSource):
    """An ID token for `audience` from the metadata server of a Google-hosted runtime."""

    def __init__(
        self,
        audience: str,
        *,
        metadata_url: str = GCE_METADATA,
        session: requests.Session | None = None,
        timeout: float = 10.0,
        **cache: Any,
    ) -> None:
        super().__init__(**cache)
        self.audience = audience
        self.metadata_url = metadata_url.rstrip("/")
        self.session = session or httpclient.session()
        self.timeout = timeout

    def fetch(self) -> str:
        url = f"{self.metadata_url}/computeMetadata/v1/instance/service-accounts/default/identity"
        try:
            response = self.session.get(
                url,
                params={"audience": self.audience, "format": "full"},
                headers={"Metadata-Flavor": "Google"},
                timeout=self.timeout,
            )
        except requests.RequestException as error:
            raise TokenError(f"metadata server: {error}") from error
        if response.status_code != 200:
            raise TokenError(
                f"metadata server answered HTTP {response.status_code}: {response.text[:300]}"
            )
        return response.text.strip()


class AwsWorkloadIdentityTokenSource(CachedIdTokenSource):
    """AWS instance identity → Google ID token for `service_account`, keylessly.

    `credential_config` is the `external_account` JSON that `gcp_stack` writes. The IAM
    Credentials endpoint is `iam_endpoint` if given, else the host of the config's
    `service_account_impersonation_url`, else `https://iamcredentials.<universe_domain>`.
    """

    def __init__(
        self,
        credential_config: Mapping[str, Any],
        service_account: str,
        audience: str,
        *,
        iam_endpoint: str | None = None,
        session: requests.Session | None = None,
        timeout: float = 10.0,
        **cache: Any,
    ) -> None:
        super().__init__(**cache)
        from google.auth import aws

        source = credential_config.get("credential_source") or {}
        if credential_config.get("type") != "external_account" or not str(
            source.get("environment_id", "")
        ).startswith("aws"):
            raise ValueError("not an AWS external_account credential configuration")
        # google-auth raises ValueError subclasses for configurations it cannot use.
        self.credentials = aws.Credentials.from_info(
            dict(credential_config), scopes=[CLOUD_PLATFORM]
        )
        self.service_account = service_account
        self.audience = audience
        self.iam_endpoint = (iam_endpoint or _iam_endpoint(credential_config)).rstrip("/")
        self.session = session or httpclient.session()
        self.timeout = timeout
        self._sts_url = credential_config.get("token_url") or GOOGLE_STS
        self._impersonation_url = credential_config.get("service_account_impersonation_url")

    def fetch(self) -> str:
        return self._generate_id_token(self._federated_access_token())

    def _federated_access_token(self) -> str:
        import google.auth.exceptions

        request = _TracedRequest(self.session, self.timeout)
        try:
            self.credentials.refresh(request)
        except google.auth.exceptions.GoogleAuthError as error:
            raise TokenError(f"{self._step(request.last_url)} failed: {error}") from error
        if not self.credentials.token:
            raise TokenError("Google STS token exchange returned no access token")
        return self.credentials.token

    def _step(self, url: str | None) -> str:
        if url is None:
            return "Workload Identity federation (before any request)"
        if url.startswith(self._sts_url):
            return f"Google STS token exchange ({url})"
        if self._impersonation_url and url.startswith(self._impersonation_url):
            return f"generateAccessToken for the impersonated service account ({url})"
        return f"instance metadata (IMDSv2, {url})"

    def _generate_id_token(self, access_token: str) -> str:
        url = (
            f"{self.iam_endpoint}/v1/projects/-/serviceAccounts/"
            f"{quote(self.service_account, safe='@.')}:generateIdToken"
        )
        try:
            response = self.session.post(
                url,
                json={"audience": self.audience, "includeEmail": True},
                headers={"Authorization": f"Bearer {access_token}"},
                timeout=self.timeout,
            )
        except requests.RequestException as error:
            raise TokenError(f"generateIdToken ({url}) failed: {error}") from error
        if response.status_code != 200:
            raise TokenError(
                f"generateIdToken for {self.service_account} answered HTTP "
                f"{response.status_code}: {response.text[:300]}"
            )
        try:
            return str(response.json()["token"])
        except (ValueError, KeyError, TypeError):
            raise TokenError("generateIdToken answered without a token") from None


class _TracedRequest:
    """google-auth's transport over our session, remembering the last URL it was asked for
    (so an error can name the step) and bounding every call by our timeout, not its 120 s."""

    def __init__(self, session: requests.Session, timeout: float) -> None:
        import google.auth.transport.requests

        self._request = google.auth.transport.requests.Request(session)
        self._timeout = timeout
        self.last_url: str | None = None

    def __call__(self, url: str, method: str = "GET", body=None, headers=None, **kwargs: Any):
        self.last_url = url
        kwargs["timeout"] = kwargs.get("timeout") or self._timeout
        return self._request(url, method=method, body=body, headers=headers, **kwargs)


def _iam_endpoint(config: Mapping[str, Any]) -> str:
    impersonation = config.get("service_account_impersonation_url")
    if impersonation:
        parts = urlsplit(impersonation)
        return f"{parts.scheme}://{parts.netloc}"
    return f"https://iamcredentials.{config.get('universe_domain') or 'googleapis.com'}"


def token_source_from_settings(settings: Settings, audience: str) -> TokenSource:
    """The token source `settings.token_source` names; `audience` is the ingest URL."""
    kind = settings.token_source
    if kind == "none":
        return NoTokenSource()
    if kind == "static":
        settings.require("static_token")
        return StaticTokenSource(settings.static_token)
    if not audience:
        raise SettingsError(
            f"missing required setting(s): SKYBRIDGE_INGEST_URL (the audience of the "
            f"{kind} ID token)"
        )
    if kind == "gce-metadata":
        return GceMetadataTokenSource(audience)
    settings.require("gcp_credential_config", "gcp_service_account")
    path, config = _credential_config(settings)
    try:
        return AwsWorkloadIdentityTokenSource(config, settings.gcp_service_account, audience)
    except (ValueError, TypeError, AttributeError) as error:
        raise SettingsError(
            f"SKYBRIDGE_GCP_CREDENTIAL_CONFIG: {path} is not a usable AWS Workload Identity "
            f"credential configuration: {error}"
        ) from None


def _credential_config(settings: Settings) -> tuple[Path, dict[str, Any]]:
    path = Path(settings.gcp_credential_config)
    try:
        return path, json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise SettingsError(
            f"SKYBRIDGE_GCP_CREDENTIAL_CONFIG: cannot read {path}: {error}"
        ) from None


def google_credentials_from_settings(settings: Settings) -> Any:
    """Credentials for Google's client libraries (the receipts subscriber): on AWS the
    Workload Identity configuration, which impersonates the relay's service account; else
    None, so the client uses Application Default Credentials (or an emulator)."""
    if settings.token_source != "aws-wif":  # noqa: S105 — a kind, not a secret
        return None
    settings.require("gcp_credential_config")
    from google.auth import aws

    path, config = _credential_config(settings)
    try:
        return aws.Credentials.from_info(config, scopes=[CLOUD_PLATFORM])
    except (ValueError, TypeError, AttributeError) as error:
        raise SettingsError(
            f"SKYBRIDGE_GCP_CREDENTIAL_CONFIG: {path} is not a usable AWS Workload Identity "
            f"credential configuration: {error}"
        ) from None
