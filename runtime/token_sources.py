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
delivery never waits for a refresh while the cached token is still good.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from pathlib import Path
from typing import Protocol

import requests

from runtime.settings import Settings, SettingsError

log = logging.getLogger("skybridge.token")

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
IAM_CREDENTIALS = "https://iamcredentials.googleapis.com"


class TokenError(RuntimeError):
    """A token could not be obtained; the message names the step that failed."""


class TokenSource(Protocol):
    def token(self) -> str | None: ...


class NoTokenSource:
    def token(self) -> None:
        return None


class StaticTokenSource:
    def __init__(self, value: str) -> None:
        self.value = value

    def token(self) -> str:
        return self.value


def jwt_expiry(token: str) -> float:
    """The `exp` claim of a JWT (not verified: we minted-by-proxy it, the server verifies)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (IndexError, ValueError, KeyError, TypeError) as error:
        raise TokenError(f"the ID token is not a JWT with an exp claim: {error}") from None


class RefreshingIdToken:
    """Caches an ID token; refreshes it in the background `margin` seconds before expiry."""

    def __init__(self, margin: float = 300.0, clock=time.time) -> None:
        self.margin = margin
        self.clock = clock
        self._token: str | None = None
        self._expiry = 0.0
        self._lock = threading.Lock()
        self._refreshing = False

    def _fetch(self) -> str:
        raise NotImplementedError

    def _store(self, token: str) -> str:
        expiry = jwt_expiry(token)
        with self._lock:
            self._token, self._expiry = token, expiry
        return token

    def token(self) -> str:
        now = self.clock()
        with self._lock:
            token, expiry = self._token, self._expiry
            stale = token is not None and now >= expiry - self.margin
            start_refresh = stale and now < expiry - 5 and not self._refreshing
            if start_refresh:
                self._refreshing = True
        if token is not None and now < expiry - self.margin:
            return token
        if start_refresh:
            threading.Thread(target=self._refresh_in_background, daemon=True).start()
            return token  # still valid for a while: deliver with it
        return self._store(self._fetch())

    def _refresh_in_background(self) -> None:
        try:
            self._store(self._fetch())
        except TokenError as error:
            log.warning(
                "background token refresh failed: %s",
                error,
                extra={"event": "token.refresh_failed"},
            )
        finally:
            with self._lock:
                self._refreshing = False


class GceMetadataTokenSource(RefreshingIdToken):
    def __init__(self, audience: str) -> None:
        super().__init__()
        self.audience = audience

    def _fetch(self) -> str:
        import google.auth.exceptions
        import google.auth.transport.requests
        import google.oauth2.id_token

        try:
            return google.oauth2.id_token.fetch_id_token(
                google.auth.transport.requests.Request(), self.audience
            )
        except google.auth.exceptions.GoogleAuthError as error:
            raise TokenError(f"metadata server: {error}") from None


class AwsWorkloadIdentityTokenSource(RefreshingIdToken):
    """AWS instance identity → Google ID token for `service_account`, keylessly."""

    def __init__(
        self,
        credential_config: dict,
        service_account: str,
        audience: str,
        *,
        iam_endpoint: str = IAM_CREDENTIALS,
        session: requests.Session | None = None,
        margin: float = 300.0,
        clock=time.time,
    ) -> None:
        super().__init__(margin=margin, clock=clock)
        from google.auth import aws

        self.credentials = aws.Credentials.from_info(credential_config, scopes=[CLOUD_PLATFORM])
        self.service_account = service_account
        self.audience = audience
        self.iam_endpoint = iam_endpoint.rstrip("/")
        self.session = session or _session()

    def _federated_access_token(self) -> str:
        import google.auth.exceptions
        import google.auth.transport.requests

        try:
            self.credentials.refresh(google.auth.transport.requests.Request(self.session))
        except google.auth.exceptions.GoogleAuthError as error:
            raise TokenError(f"Workload Identity token exchange (IMDS/STS): {error}") from None
        return self.credentials.token

    def _fetch(self) -> str:
        access_token = self._federated_access_token()
        url = (
            f"{self.iam_endpoint}/v1/projects/-/serviceAccounts/"
            f"{self.service_account}:generateIdToken"
        )
        try:
            response = self.session.post(
                url,
                json={"audience": self.audience, "includeEmail": True},
                headers={"Authorization": f"Bearer {access_token}"},
                timeout=10,
            )
        except requests.RequestException as error:
            raise TokenError(f"generateIdToken: {error}") from None
        if response.status_code != 200:
            raise TokenError(
                f"generateIdToken answered HTTP {response.status_code}: {response.text[:300]}"
            )
        return response.json()["token"]


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no per-request proxy lookup
    return session


def token_source_from_settings(settings: Settings, audience: str) -> TokenSource:
    kind = settings.token_source
    if kind == "none":
        return NoTokenSource()
    if kind == "static":
        settings.require("static_token")
        return StaticTokenSource(settings.static_token)
    if kind == "gce-metadata":
        return GceMetadataTokenSource(audience)
    settings.require("gcp_credential_config", "gcp_service_account")
    path = Path(settings.gcp_credential_config)
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise SettingsError(
            f"SKYBRIDGE_GCP_CREDENTIAL_CONFIG: cannot read {path}: {error}"
        ) from None
    return AwsWorkloadIdentityTokenSource(config, settings.gcp_service_account, audience)
