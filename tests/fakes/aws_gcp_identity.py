"""Loopback stand-ins for the services behind keyless AWS → GCP identity, for token tests.

* `FakeImds` — the EC2 instance metadata service, IMDSv2 only: a session token from
  `PUT /latest/api/token`, then every metadata read must carry it (401 otherwise).
* `FakeGoogleSts` — `POST /v1/token`: accepts only a token exchange whose subject token is a
  GetCallerIdentity request signed (SigV4, checked here with botocore) with the key the fake
  IMDS handed out, carrying our provider as `x-goog-cloud-target-resource`.
* `FakeIamCredentials` — `generateIdToken` and `generateAccessToken`, for bearers the fakes
  issued and that have not expired, answering errors in Google's shapes.

`FakeAwsGcpIdentity` runs all three, shares one clock and one ledger of issued access tokens
between them, and writes the `external_account` credential configuration pointing at them.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as AwsCredentials

PROVIDER = (
    "//iam.googleapis.com/projects/123456789012/locations/global/"
    "workloadIdentityPools/skybridge/providers/aws"
)
SERVICE_ACCOUNT = "relay@skybridge-test.iam.gserviceaccount.com"
ROLE = "skybridge-relay"
AVAILABILITY_ZONE = "eu-west-1b"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
AWS4_REQUEST = "urn:ietf:params:aws:token-type:aws4_request"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
UNAUTHENTICATED = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential."
)


class Reply(Exception):
    """Raised inside a handler to answer with `status` and a JSON (or text) body."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status, self.body = status, body


class LoopbackService:
    """A threaded HTTP server on a free loopback port that counts the requests it serves."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                service._serve(self, "GET")

            def do_PUT(self) -> None:
                service._serve(self, "PUT")

            def do_POST(self) -> None:
                service._serve(self, "POST")

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    @property
    def count(self) -> int:
        with self.lock:
            return len(self.requests)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def handle(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, Any]:
        raise NotImplementedError

    def _serve(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        with self.lock:
            self.requests.append((method, handler.path))
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        try:
            status, payload = self.handle(method, handler.path, handler.headers, body)
        except Reply as reply:
            status, payload = reply.status, reply.body
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        handler.send_response(status)
        kind = "text/plain" if isinstance(payload, str) else "application/json"
        handler.send_header("Content-Type", kind)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)


class FakeImds(LoopbackService):
    def __init__(self) -> None:
        super().__init__()
        self.role = ROLE
        self.access_key_id = "ASIA" + secrets.token_hex(8).upper()
        self.secret_access_key = secrets.token_urlsafe(30)
        self.aws_session_token = secrets.token_urlsafe(40)
        self.hand_out_secret: str | None = None  # a key other than the one STS checks against
        self.session_tokens: set[str] = set()
        self.unauthorized = 0  # reads refused for want of a session token

    def handle(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, Any]:
        path = urlsplit(path).path
        if path == "/latest/api/token":
            if method != "PUT":
                raise Reply(405, "")
            ttl = headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")
            if not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
                raise Reply(400, "")
            token = secrets.token_urlsafe(32)
            with self.lock:
                self.session_tokens.add(token)
            return 200, token
        with self.lock:
            if headers.get("X-aws-ec2-metadata-token") not in self.session_tokens:
                self.unauthorized += 1
                raise Reply(401, "")
        meta = "/latest/meta-data"
        if path == f"{meta}/placement/availability-zone":
            return 200, AVAILABILITY_ZONE
        if path == f"{meta}/placement/region":
            return 200, AVAILABILITY_ZONE[:-1]
        if path.rstrip("/") == f"{meta}/iam/security-credentials":
            return 200, self.role
        if path == f"{meta}/iam/security-credentials/{self.role}":
            expiration = datetime.now(UTC) + timedelta(hours=6)
            return 200, {
                "Code": "Success",
                "LastUpdated": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "Type": "AWS-HMAC",
                "AccessKeyId": self.access_key_id,
                "SecretAccessKey": self.hand_out_secret or self.secret_access_key,
                "Token": self.aws_session_token,
                "Expiration": expiration.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        raise Reply(404, "")


class AccessTokens:
    """The access tokens Google would recognise: token → expiry, on the shared clock."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.lifetime = 3600
        self._expiry: dict[str, float] = {}
        self._lock = threading.Lock()

    def issue(self, prefix: str) -> tuple[str, int]:
        token = f"ya29.{prefix}-{secrets.token_urlsafe(24)}"
        with self._lock:
            self._expiry[token] = self.clock() + self.lifetime
        return token, self.lifetime

    def check(self, authorization: str | None) -> str:
        token = (authorization or "").removeprefix("Bearer ")
        with self._lock:
            expiry = self._expiry.get(token)
        if expiry is None or self.clock() >= expiry:
            raise Reply(401, google_error(401, "UNAUTHENTICATED", UNAUTHENTICATED))
        return token


def google_error(code: int, status: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status}}


def invalid_grant(description: str) -> Reply:
    return Reply(400, {"error": "invalid_grant", "error_description": description})


class FakeGoogleSts(LoopbackService):
    def __init__(self, imds: FakeImds, tokens: AccessTokens) -> None:
        super().__init__()
        self.imds = imds
        self.tokens = tokens
        self.audience = PROVIDER
        self.verified_callers: list[str] = []  # access key ids whose signature checked out
        self.scopes: list[str | None] = []

    def handle(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, Any]:
        if (method, urlsplit(path).path) != ("POST", "/v1/token"):
            raise Reply(404, google_error(404, "NOT_FOUND", "not found"))
        form = {key: values[0] for key, values in parse_qs(body.decode()).items()}
        if form.get("grant_type") != TOKEN_EXCHANGE:
            raise Reply(400, {"error": "unsupported_grant_type", "error_description": "grant"})
        if form.get("requested_token_type") != ACCESS_TOKEN_TYPE:
            raise Reply(400, {"error": "invalid_request", "error_description": "token type"})
        if form.get("audience") != self.audience:
            raise invalid_grant(
                f"The audience {form.get('audience')!r} does not match a workload identity "
                "pool provider that trusts this caller."
            )
        if form.get("subject_token_type") != AWS4_REQUEST:
            raise invalid_grant("subject_token_type must be aws4_request for an AWS provider")
        self.scopes.append(form.get("scope"))
        self.verified_callers.append(self.verify_subject_token(form.get("subject_token", "")))
        token, lifetime = self.tokens.issue("federated")
        return 200, {
            "access_token": token,
            "issued_token_type": ACCESS_TOKEN_TYPE,
            "token_type": "Bearer",
            "expires_in": lifetime,
        }

    def verify_subject_token(self, subject_token: str) -> str:
        """Check the serialized request the way Google does before it calls AWS with it."""
        try:
            request = json.loads(unquote(subject_token))
            headers = {item["key"].lower(): item["value"] for item in request["headers"]}
            url, method = request["url"], request["method"]
        except (ValueError, KeyError, TypeError) as error:
            raise invalid_grant(
                f"The subject token is not a serialized AWS request: {error}"
            ) from None
        parts = urlsplit(url)
        region = AVAILABILITY_ZONE[:-1]
        if method != "POST" or parts.scheme != "https":
            raise invalid_grant("The subject token must be an HTTPS POST")
        if parts.hostname != f"sts.{region}.amazonaws.com" or headers.get("host") != parts.hostname:
            raise invalid_grant(f"The subject token is not for AWS STS in {region}: {url}")
        if parse_qs(parts.query) != {"Action": ["GetCallerIdentity"], "Version": ["2011-06-15"]}:
            raise invalid_grant("The subject token is not a GetCallerIdentity request")
        if headers.get("x-goog-cloud-target-resource") != self.audience:
            raise invalid_grant("x-goog-cloud-target-resource does not name this provider")
        match = re.fullmatch(
            r"AWS4-HMAC-SHA256 Credential=(?P<akid>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)"
            r"/sts/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+),"
            r" Signature=(?P<sig>[0-9a-f]{64})",
            headers.get("authorization", ""),
        )
        if match is None:
            raise invalid_grant("The subject token has no AWS4-HMAC-SHA256 Authorization")
        signed = match["signed"].split(";")
        # google-auth adds x-goog-cloud-target-resource after signing, and Google accepts that.
        required = {"host", "x-amz-date", "x-amz-security-token"}
        if not required <= set(signed):
            raise invalid_grant(f"Headers left unsigned: {sorted(required - set(signed))}")
        if match["akid"] != self.imds.access_key_id or match["region"] != region:
            raise invalid_grant("The request was signed with an unknown access key")
        if headers["x-amz-security-token"] != self.imds.aws_session_token:
            raise invalid_grant("The request carries an unknown AWS session token")
        amz_date = headers["x-amz-date"]
        signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        if abs((datetime.now(UTC) - signed_at).total_seconds()) > 900:
            raise invalid_grant("Signature expired: x-amz-date is more than 15 minutes off")
        aws_request = AWSRequest(
            method=method, url=url, headers={name: headers[name] for name in signed}, data=b""
        )
        aws_request.context["timestamp"] = amz_date
        signer = SigV4Auth(
            AwsCredentials(self.imds.access_key_id, self.imds.secret_access_key), "sts", region
        )
        expected = signer.signature(
            signer.string_to_sign(aws_request, signer.canonical_request(aws_request)),
            aws_request,
        )
        if expected != match["sig"]:
            raise invalid_grant(
                "The request signature we calculated does not match the signature you provided."
            )
        return match["akid"]


class FakeIamCredentials(LoopbackService):
    def __init__(self, tokens: AccessTokens) -> None:
        super().__init__()
        self.tokens = tokens
        self.service_account = SERVICE_ACCOUNT
        self.id_token_lifetime = 3600
        self.bearers: list[str] = []
        self.hold: threading.Event | None = None  # when set, generateIdToken waits for it
        self._serial = 0

    def handle(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, Any]:
        match = re.fullmatch(
            r"/v1/projects/-/serviceAccounts/(?P<email>[^/:]+):(?P<verb>generate\w+)",
            unquote(urlsplit(path).path),
        )
        if method != "POST" or match is None:
            raise Reply(404, google_error(404, "NOT_FOUND", f"no such method: {path}"))
        bearer = self.tokens.check(headers.get("Authorization"))
        with self.lock:
            self.bearers.append(bearer)
        if match["email"] != self.service_account:
            raise Reply(
                403,
                google_error(
                    403,
                    "PERMISSION_DENIED",
                    "Permission 'iam.serviceAccounts.getOpenIdToken' denied",
                ),
            )
        request = json.loads(body or b"{}")
        if match["verb"] == "generateAccessToken":
            if CLOUD_PLATFORM not in request.get("scope", []):
                raise Reply(400, google_error(400, "INVALID_ARGUMENT", "scope is required"))
            token, lifetime = self.tokens.issue("impersonated")
            expire = datetime.fromtimestamp(self.tokens.clock() + lifetime, UTC)
            return 200, {"accessToken": token, "expireTime": expire.strftime("%Y-%m-%dT%H:%M:%SZ")}
        if match["verb"] != "generateIdToken":
            raise Reply(404, google_error(404, "NOT_FOUND", f"no such method: {path}"))
        if not request.get("audience"):
            raise Reply(400, google_error(400, "INVALID_ARGUMENT", "audience is required"))
        if self.hold is not None:
            self.hold.wait(timeout=10)
        return 200, {"token": self.id_token(request["audience"], request.get("includeEmail"))}

    def id_token(self, audience: str, include_email: bool) -> str:
        now = int(self.tokens.clock())
        with self.lock:
            self._serial += 1
            serial = self._serial
        claims: dict[str, Any] = {
            "aud": audience,
            "azp": "104857600000000000000",
            "exp": now + self.id_token_lifetime,
            "iat": now,
            "iss": "https://accounts.google.com",
            "sub": "104857600000000000000",
            "jti": str(serial),
        }
        if include_email:
            claims |= {"email": self.service_account, "email_verified": True}
        header = {"alg": "RS256", "kid": "fake", "typ": "JWT"}
        signature = secrets.token_bytes(64)  # shaped like one; nobody verifies it here
        return ".".join(
            b64url(part) for part in (json.dumps(header), json.dumps(claims), signature)
        )


def b64url(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


class FakeGceMetadata(LoopbackService):
    """The Google metadata server's identity endpoint."""

    def __init__(self, iam: FakeIamCredentials) -> None:
        super().__init__()
        self.iam = iam

    def handle(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, Any]:
        parts = urlsplit(path)
        if headers.get("Metadata-Flavor") != "Google":
            raise Reply(403, "Missing Metadata-Flavor:Google header.")
        if parts.path != "/computeMetadata/v1/instance/service-accounts/default/identity":
            raise Reply(404, "not found")
        audience = parse_qs(parts.query).get("audience", [""])[0]
        if not audience:
            raise Reply(400, "non-empty audience parameter required")
        return 200, self.iam.id_token(audience, include_email=True)


class FakeAwsGcpIdentity:
    """IMDS, Google STS and IAM Credentials on loopback, sharing a clock and token ledger."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.tokens = AccessTokens(clock)
        self.imds = FakeImds()
        self.sts = FakeGoogleSts(self.imds, self.tokens)
        self.iam = FakeIamCredentials(self.tokens)
        self.services = (self.imds, self.sts, self.iam)

    def __enter__(self) -> FakeAwsGcpIdentity:
        for service in self.services:
            service.start()
        return self

    def __exit__(self, *_: object) -> None:
        if self.iam.hold is not None:
            self.iam.hold.set()
        for service in self.services:
            service.stop()

    @property
    def request_count(self) -> int:
        return sum(service.count for service in self.services)

    def credential_config(
        self, *, imdsv2: bool = True, impersonate: bool = False, audience: str = PROVIDER
    ) -> dict[str, Any]:
        """The `external_account` JSON `gcp_stack` writes, pointed at these fakes."""
        source = {
            "environment_id": "aws1",
            "region_url": f"{self.imds.url}/latest/meta-data/placement/availability-zone",
            "url": f"{self.imds.url}/latest/meta-data/iam/security-credentials",
            # Only signed, never called: the fake STS checks the signature itself.
            "regional_cred_verification_url": (
                "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"
            ),
        }
        if imdsv2:
            source["imdsv2_session_token_url"] = f"{self.imds.url}/latest/api/token"
        config: dict[str, Any] = {
            "type": "external_account",
            "audience": audience,
            "subject_token_type": AWS4_REQUEST,
            "token_url": f"{self.sts.url}/v1/token",
            "credential_source": source,
        }
        if impersonate:
            config["service_account_impersonation_url"] = (
                f"{self.iam.url}/v1/projects/-/serviceAccounts/{self.iam.service_account}"
                ":generateAccessToken"
            )
        return config
