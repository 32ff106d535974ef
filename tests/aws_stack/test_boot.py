"""The instance's boot, run the way cloud-init runs it, from the synthesized template.

The launch template's UserData is taken from the synthesized dev stack (built with a
wheelhouse for this machine by the project's own packaging), its `Fn::Join`/`Ref`s resolved
with this test's values, and run as root with an empty environment by a non-login bash in
a mount-namespace sandbox (tests/aws_stack/sandbox.py). Real parts: bash, curl, unzip,
venv, pip, the AWS CLI against moto's server (the CDK assets uploaded to S3 as cdk-assets
would, the SSM parameters, the Secrets Manager secret), MariaDB for RDS, the runtime from
the artifact. Loopback stand-ins: IMDSv2, Google STS and IAM Credentials
(tests/fakes/aws_gcp_identity.py), the ingest function (tests/fakes/ingest.py), the RDS
CA download; dnf, systemd, cfn-signal and sleep (tests/fakes/instance.py).

The only rewrites of the rendered script are the two addresses a test cannot serve:
IMDS's link-local 169.254.169.254 and the RDS trust-store URL, pointed at loopback. The
AWS CLI and boto3 find moto through /root/.aws/config's `endpoint_url` and their
credentials through IMDS (`ec2_metadata_service_endpoint`), as they would on EC2.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pymysql
import pytest
import requests
from sqlalchemy.engine import make_url

import environments
from aws_stack import instance_boot
from deployment.packaging import ROOT, build_wheelhouse
from local_stack.ports import free_port
from tests import mysql_server
from tests.aws_stack import cfn
from tests.aws_stack.conftest import synth
from tests.aws_stack.sandbox import Sandbox, available
from tests.fakes import instance
from tests.fakes.aws_gcp_identity import FakeAwsGcpIdentity
from tests.fakes.ingest import FakeIngest

pytestmark = [
    pytest.mark.mysql,
    # A boot installs the runtime from the wheelhouse: about a minute alone, several on a
    # loaded 2-core machine (the first test also synthesizes and builds the wheelhouse).
    pytest.mark.timeout(900),
    pytest.mark.skipif(available() is not None, reason=str(available())),
]

ACCOUNT, REGION, STACK = "111111111111", "eu-west-1", "skybridge-dev"
SCRIPT = "/var/lib/cloud/instance/scripts/part-001"  # where cloud-init puts user data
API = f"http://127.0.0.1:{instance_boot.APP_PORT}"
BOOT_TIMEOUT = 600


def host_platforms() -> tuple[str, ...]:
    from packaging.tags import sys_tags

    return tuple(sorted({tag.platform for tag in sys_tags() if "linux" in tag.platform}))


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> tuple[dict, Path]:
    """The dev stack, synthesized with a wheelhouse for this machine (the instances' own
    is arm64/3.12): (template, cloud assembly directory)."""
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    wheelhouse = build_wheelhouse(ROOT / "build" / "wheelhouse", None, host_platforms(), python)
    _, raw = synth("dev", tmp_path_factory.mktemp("cdk-boot"), wheelhouse=str(wheelhouse))
    return raw, Path(raw["_path"]).parent


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def identity() -> Iterator[FakeAwsGcpIdentity]:
    with FakeAwsGcpIdentity() as fakes:
        yield fakes


@pytest.fixture(scope="module")
def ingest() -> Iterator[FakeIngest]:
    with FakeIngest() as fake:
        yield fake


@pytest.fixture(scope="module")
def tls(tmp_path_factory) -> dict[str, Path]:
    """A CA and a server certificate for 127.0.0.1 it signed (RDS's bundle and endpoint)."""
    from datetime import UTC, datetime, timedelta
    from ipaddress import IPv4Address

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    root = tmp_path_factory.mktemp("tls")
    now = datetime.now(UTC)

    def certificate(subject, issuer, key, signer, *, ca: bool, san=None):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, server_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = certificate("test RDS root", "test RDS root", ca_key, ca_key, ca=True)
    server = certificate(
        "127.0.0.1", "test RDS root", server_key, ca_key, ca=False,
        san=[x509.IPAddress(IPv4Address("127.0.0.1"))],
    )  # fmt: skip
    paths = {"ca": root / "ca.pem", "cert": root / "server.pem", "key": root / "server-key.pem"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return paths


@pytest.fixture(scope="module")
def rds(tls) -> Iterator[str]:
    """MariaDB standing in for RDS: a throwaway server (tests/mysql_server.py) with TLS, as
    RDS has; the runtime verifies its certificate against the bundle the boot downloads."""
    server = mysql_server.ThrowawayServer(
        (f"--ssl-ca={tls['ca']}", f"--ssl-cert={tls['cert']}", f"--ssl-key={tls['key']}")
    )
    try:
        server.start()
    except (RuntimeError, OSError) as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the boot test needs a MariaDB server binary: {error}")
        pytest.skip(f"no MariaDB for the boot test: {error}")
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def trust_store(tmp_path_factory, tls) -> Iterator[str]:
    """Serves the test CA where the boot downloads the RDS bundle from."""
    root = tmp_path_factory.mktemp("truststore")
    (root / "global").mkdir()
    (root / "global" / "global-bundle.pem").write_bytes(tls["ca"].read_bytes())
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *_: None  # type: ignore[attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/global/global-bundle.pem"
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def database(rds) -> Iterator[dict]:
    """A database and a user of its own, as RDS's generated secret describes them."""
    url = make_url(rds)
    name = f"skybridge_boot_{uuid.uuid4().hex[:8]}"
    user, password = name[:32], uuid.uuid4().hex
    admin = pymysql.connect(
        host=url.host, port=url.port or 3306, user=url.username, password=url.password or ""
    )
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        # Both hosts: mariadb-install-db's anonymous ''@localhost would shadow '%'.
        for host in ("%", "localhost"):
            cursor.execute(f"CREATE USER '{user}'@'{host}' IDENTIFIED BY '{password}'")
            cursor.execute(f"GRANT ALL ON `{name}`.* TO '{user}'@'{host}'")
    try:
        yield {
            "engine": "mysql",
            "host": url.host,
            "port": url.port or 3306,
            "username": user,
            "password": password,
            "dbname": name,
        }
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
            for host in ("%", "localhost"):
                cursor.execute(f"DROP USER IF EXISTS '{user}'@'{host}'")
        admin.close()


class World:
    """The AWS account the boot runs against (moto), and the rendered user data."""

    def __init__(self, template, moto_url, identity, ingest, trust_store, database) -> None:
        self.raw, self.assembly = template
        self.moto_url, self.identity, self.ingest = moto_url, identity, ingest
        self.trust_store, self.database = trust_store, database
        aws = partial(
            boto3.client,
            region_name=REGION,
            endpoint_url=moto_url,
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        self.s3, self.ssm, self.secrets = aws("s3"), aws("ssm"), aws("secretsmanager")
        self.refs = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": STACK,
        }
        self._upload_assets()
        self.parameters = self._create_parameters()
        self._create_secret()

    def resources(self, kind: str) -> dict[str, dict]:
        return {k: r for k, r in self.raw["Resources"].items() if r["Type"] == kind}

    def _upload_assets(self) -> None:
        """As cdk-assets publishes them: a directory zipped, a file as it is."""
        manifest = json.loads((self.assembly / f"{STACK}.assets.json").read_text())
        for asset in manifest["files"].values():
            source = self.assembly / asset["source"]["path"]
            for destination in asset["destinations"].values():
                bucket = cfn.substitute(destination["bucketName"], self.refs)
                if bucket not in [b["Name"] for b in self.s3.list_buckets()["Buckets"]]:
                    self.s3.create_bucket(
                        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
                    )
                body = source.read_bytes() if source.is_file() else zipped(source)
                self.s3.put_object(Bucket=bucket, Key=destination["objectKey"], Body=body)

    def _create_parameters(self) -> dict[str, str]:
        values = {
            "ingest-url": self.ingest.url,
            "gcp-credential-config": json.dumps(self.identity.credential_config(impersonate=True)),
            "gcp-service-account": self.identity.iam.service_account,
        }
        names = {}
        # Every parameter the template declares exists, with the template's own value, as
        # CloudFormation would create it; the test sets the three that point at its fakes.
        self.values = {}
        for logical, resource in self.resources("AWS::SSM::Parameter").items():
            name = resource["Properties"]["Name"]
            names[name.rsplit("/", 1)[-1]] = name
            self.refs[logical] = name
            if isinstance(resource["Properties"].get("Value"), str):
                self.values[name] = resource["Properties"]["Value"]
        self.values |= {names[key]: value for key, value in values.items()}
        self.reset_parameters()
        return names

    def reset_parameters(self) -> None:
        for name, value in self.values.items():
            self.ssm.put_parameter(Name=name, Value=value, Type="String", Overwrite=True)

    def _create_secret(self) -> None:
        self.secret_arn = self.secrets.create_secret(
            Name=f"{STACK}-database", SecretString=json.dumps(self.database)
        )["ARN"]
        for logical in self.resources("AWS::SecretsManager::SecretTargetAttachment"):
            self.refs[logical] = self.secret_arn  # its Ref is the secret's ARN

    def set_secret(self, value: dict) -> None:
        self.secrets.put_secret_value(SecretId=self.secret_arn, SecretString=json.dumps(value))

    def user_data(self) -> str:
        (launch_template,) = self.resources("AWS::EC2::LaunchTemplate").values()
        text = cfn.resolve(
            launch_template["Properties"]["LaunchTemplateData"]["UserData"], self.refs
        )
        assert instance_boot.IMDS in text and instance_boot.RDS_CA_URL in text
        return text.replace(instance_boot.IMDS, self.identity.imds.url).replace(
            instance_boot.RDS_CA_URL, self.trust_store
        )

    def aws_config(self, s3_endpoint: str | None = None) -> str:
        config = (
            "[default]\n"
            f"endpoint_url = {self.moto_url}\n"
            f"ec2_metadata_service_endpoint = {self.identity.imds.url}/\n"
        )
        if s3_endpoint:  # one CLI attempt per call: the boot's own retries are under test
            config += (
                f"max_attempts = 1\nservices = boot\n"
                f"[services boot]\ns3 =\n  endpoint_url = {s3_endpoint}\n"
            )
        return config


def zipped(directory: Path) -> bytes:
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(directory).as_posix())
    return buffer.getvalue()


@pytest.fixture(scope="module")
def world(template, moto_url, identity, ingest, trust_store, database) -> World:
    return World(template, moto_url, identity, ingest, trust_store, database)


class Boot:
    """One instance's boot in a fresh sandbox; its services are stopped afterwards."""

    def __init__(self, world: World, root: Path, s3_endpoint: str | None = None) -> None:
        self.sandbox = Sandbox(root)
        instance.install(self.sandbox)
        aws = Path(sys.executable).with_name("aws")
        self.sandbox.install("/usr/local/bin/aws", f'#!/bin/sh\nexec {aws} "$@"\n')
        self.sandbox.install("/root/.aws/config", world.aws_config(s3_endpoint), mode=0o600)
        # The services run as the service account: on EC2 every user reaches IMDS and the
        # AWS endpoints, so here it gets the same directions in its own home (read-only to
        # it, as the unit makes the file system; nothing in them is secret).
        self.sandbox.install(
            f"{instance_boot.SERVICE_HOME}/.aws/config", world.aws_config(), mode=0o644
        )
        self.sandbox.install(SCRIPT, world.user_data(), mode=0o700)
        self.world = world

    def run(self):
        assert port_is_free(instance_boot.APP_PORT), (
            f"port {instance_boot.APP_PORT} is taken: the boot test needs it (the API's port)"
        )
        started = time.monotonic()
        self.done = self.sandbox.run(SCRIPT, env={}, timeout=BOOT_TIMEOUT)
        self.seconds = time.monotonic() - started
        return self.done

    def pid(self, unit: str) -> int | None:
        path = self.sandbox.path(f"{instance.STATE}/{unit}.service.pid")
        return int(path.read_text()) if path.exists() else None

    def signals(self) -> list[str]:
        return instance.records(self.sandbox, "cfn-signal")

    def stop(self) -> None:
        for unit in instance_boot.units():
            pid = self.pid(unit)
            if pid is None:
                continue
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
                time.sleep(0.1)


def process_environment(pid: int | None) -> dict[str, str]:
    assert pid is not None
    entries = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(entry.decode().split("=", 1) for entry in entries if b"=" in entry)


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


@pytest.fixture
def boot(world, tmp_path) -> Iterator[partial]:
    boots: list[Boot] = []

    def make(**options) -> Boot:
        boots.append(Boot(world, tmp_path / f"boot{len(boots)}", **options))
        return boots[-1]

    try:
        yield make  # type: ignore[misc]
    finally:
        for one in boots:
            one.stop()
        world.reset_parameters()
        world.set_secret(world.database)


def test_the_boot_starts_both_services_and_signals_success(boot, world):
    machine = boot()
    done = machine.run()

    assert done.returncode == 0, done.stderr[-4000:]
    print(f"\nboot took {machine.seconds:.1f} s")
    (sent,) = machine.signals()
    assert f"--stack {STACK} " in sent and "--exit-code 0" in sent
    (group,) = world.resources("AWS::AutoScaling::AutoScalingGroup")
    assert f"--resource {group} " in sent and f"--region {REGION}" in sent

    # Both services run the boot's own files: the venv's Python, in the app directory ...
    accounts = machine.sandbox.path("/etc/passwd").read_text().splitlines()
    (service_uid,) = [int(line.split(":")[2]) for line in accounts
                      if line.startswith(f"{instance_boot.SERVICE_USER}:")]  # fmt: skip
    for unit in instance_boot.units():
        pid = machine.pid(unit)
        assert pid and Path(f"/proc/{pid}").exists(), f"{unit} is not running"
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert argv[0].decode() == instance_boot.PYTHON
        assert os.readlink(f"/proc/{pid}/cwd") == instance_boot.APP_DIR
        # ... as the service account the boot made, not as root.
        assert process_uid(pid) == service_uid != 0, f"{unit} runs as uid {process_uid(pid)}"
    ready = requests.get(f"{API}/readyz", timeout=5)
    assert ready.status_code == 200 and ready.json()["database"] == "ok"

    # The relay delivers a submission to the ingest endpoint SSM named, with a Google ID
    # token obtained keylessly through IMDS, STS and IAM Credentials.
    accepted = requests.post(
        f"{API}/v1/submissions", json={"type": "boot", "data": {"n": 1}}, timeout=10
    )
    assert accepted.status_code == 202, accepted.text
    submission = accepted.json()["id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not world.ingest.received[submission]:
        time.sleep(0.2)
    assert world.ingest.received[submission] == 1
    assert world.ingest.authorizations[-1].startswith("Bearer ")

    # The units run with the environment's limits and retention: the API counts clients by
    # the address the ALB saw (one trusted X-Forwarded-For hop), the relay purges by age.
    dev = environments.load("dev")
    api_env = process_environment(machine.pid("skybridge-api"))
    relay_env = process_environment(machine.pid("skybridge-relay"))
    assert api_env["SKYBRIDGE_TRUSTED_PROXY_HOPS"] == "1"
    assert api_env["SKYBRIDGE_SUBMISSIONS_PER_MINUTE"] == str(
        dev.limits.submissions_per_ip_per_minute
    )
    assert relay_env["SKYBRIDGE_RETENTION_STORED_DAYS"] == str(dev.retention.stored_days)
    assert relay_env["SKYBRIDGE_RETENTION_FAILED_DAYS"] == str(dev.retention.failed_days)

    # What the boot wrote: the region from IMDS (cloud-init's environment has none).
    runtime_env = machine.sandbox.path(instance_boot.RUNTIME_ENV).read_text()
    assert f"AWS_REGION={REGION}\n" in runtime_env
    gcp_env = machine.sandbox.path(instance_boot.GCP_ENV).read_text()
    assert f"SKYBRIDGE_INGEST_URL={world.ingest.url}\n" in gcp_env


def process_uid(pid: int) -> int:
    """The real uid a process runs as (/proc/PID/status, proc(5))."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])


def assert_failed_loudly(machine: Boot, says: str) -> None:
    done = machine.done
    assert done.returncode != 0, "the boot should have failed"
    assert says in done.stderr, done.stderr[-3000:]
    assert "boot FAILED" in done.stderr
    (sent,) = machine.signals()
    assert "--exit-code 1" in sent and "--reason" in sent
    for unit in instance_boot.units():
        assert machine.pid(unit) is None, f"{unit} was started"
    assert not any("--now" in line for line in instance.records(machine.sandbox, "systemctl"))


def test_a_missing_ssm_parameter_fails_the_boot_naming_it(boot, world):
    name = world.parameters["ingest-url"]
    world.ssm.delete_parameter(Name=name)
    machine = boot()
    machine.run()
    assert_failed_loudly(machine, f"cannot read SSM parameter {name}")
    assert not machine.sandbox.path(instance_boot.GCP_ENV).exists()


def test_an_empty_ssm_parameter_fails_the_boot_naming_it(boot, world):
    name = world.parameters["gcp-service-account"]
    world.ssm.put_parameter(Name=name, Value=" ", Type="String", Overwrite=True)
    machine = boot()
    machine.run()
    assert_failed_loudly(machine, f"SSM parameter {name} is empty")
    assert not machine.sandbox.path(instance_boot.GCP_ENV).exists()


def test_an_unreachable_s3_fails_the_boot_after_retrying_with_backoff(boot):
    machine = boot(s3_endpoint=f"http://127.0.0.1:{free_port()}")
    machine.run()
    assert_failed_loudly(machine, "gave up after 5 attempts: aws s3 cp")
    assert "while downloading the artifact" in machine.done.stderr
    assert instance.records(machine.sandbox, "sleep")[:4] == ["2", "4", "8", "16"]


def test_a_wrong_database_secret_fails_the_boot_naming_the_secret(boot, world):
    world.set_secret(world.database | {"password": "not-the-password"})
    machine = boot()
    machine.run()
    assert_failed_loudly(machine, f"credentials from {world.secret_arn}")
    assert "while migrating the database" in machine.done.stderr
