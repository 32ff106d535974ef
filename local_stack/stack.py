"""The whole system on loopback: the same processes as in the clouds, emulators for the rest.

client → balancer (the ALB's stand-in) → API (gunicorn) → outbox ← relay
                                              (on MySQL: rds, the instance's metrics)
Pub/Sub emulator ← ingest (functions-framework) ← relay
       └─push─→ store (functions-framework) → fake-gcs-server
                  └─receipt─→ receipts topic ─pull─→ relay (marks `stored`)
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gcp_stack.names import Names as CloudNames
from local_stack.ports import free_port
from local_stack.processes import Child, http_ready, log_ready, tcp_ready
from local_stack.storage import FakeGcs
from runtime import commands
from smoke import storage

PROJECT = "skybridge-local"


@dataclass
class Names:
    """The cloud's names for the same things (gcp_stack.names), so that a monitoring filter
    naming a subscription or a function selects the same one here."""

    prefix: str = "skybridge-local"

    @property
    def cloud(self) -> CloudNames:
        return CloudNames(self.prefix, PROJECT)

    def _topic(self, topic_id: str) -> str:
        return f"projects/{PROJECT}/topics/{topic_id}"

    def _subscription(self, subscription_id: str) -> str:
        return f"projects/{PROJECT}/subscriptions/{subscription_id}"

    @property
    def topic(self) -> str:
        return self._topic(self.cloud.topic)

    @property
    def dead_letter_topic(self) -> str:
        return self._topic(self.cloud.dead_letter)

    @property
    def push_subscription(self) -> str:
        # On GCP Eventarc names the trigger's subscription itself.
        return self._subscription(f"{self.prefix}-store-push")

    @property
    def dead_letter_subscription(self) -> str:
        return self._subscription(self.cloud.dead_letter)

    @property
    def receipts_topic(self) -> str:
        return self._topic(f"{self.prefix}-receipts")

    @property
    def receipts_subscription(self) -> str:
        return self._subscription(f"{self.prefix}-receipts-relay")

    @property
    def bucket(self) -> str:
        return f"{self.prefix}-assets"


@dataclass
class Options:
    workdir: Path
    database_url: str = ""
    api_workers: int = 2
    max_delivery_attempts: int = 5
    push_min_backoff: float = 0.2
    push_max_backoff: float = 2.0
    ack_deadline: int = 10
    # Reconciliation: short enough for a demo, longer than the push retry budget above
    # (5 attempts, backoff 0.2 → 2 s: about 6 s), so nothing in flight is sent twice.
    confirm_window: float = 20.0
    reconcile: bool = True
    # Retention (runtime/retention.py): days the relay keeps stored / failed rows; 0 keeps.
    retention_stored_days: int = 0
    retention_failed_days: int = 0
    relay_env: dict[str, str] = field(default_factory=dict)
    store_source: str = ""  # another functions-framework source for `store` (fault tests)
    ingest_source: str = ""  # likewise for `ingest`
    pubsub: str = "ours"  # or "google": gcloud's emulator (Java), where installed
    prefix: str = "skybridge-local"  # what the GCP stack's prefix would be (Names)
    sample_interval: float = 0.25  # seconds between platform samples (Pub/Sub, health checks)
    # The RDS instance's stand-in (local_stack.rds, MySQL/MariaDB only): its allocated
    # storage (the entry point passes the environment's; 20 GiB is dev's) and how often it
    # writes a data point (RDS: a minute; tests compress it like the alarms' periods).
    db_allocated_bytes: int = 20 * 1024**3
    rds_period: float = 60.0


class LocalStack:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.names = Names(options.prefix)
        self.logs = options.workdir / "logs"
        self.database_url = (
            options.database_url or f"sqlite:///{options.workdir / 'skybridge.sqlite3'}"
        )
        names = ("pubsub", "ingest", "store", "api", "balancer")
        self.ports = {name: free_port() for name in names}
        self.gcs = FakeGcs(self.logs)
        self.children: dict[str, Child] = {}

    # -- endpoints ------------------------------------------------------------------------

    @property
    def pubsub_host(self) -> str:
        return f"127.0.0.1:{self.ports['pubsub']}"

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    @property
    def public_url(self) -> str:
        """Where clients send requests: the load balancer's stand-in, as on AWS."""
        return self.url("balancer")

    @property
    def on_mysql(self) -> bool:
        """Whether the database is a MySQL/MariaDB server (an RDS instance's stand-in)."""
        return self.database_url.startswith("mysql")

    def endpoints(self) -> dict[str, str]:
        return {
            "balancer": self.url("balancer"),
            "api": self.url("api"),
            "ingest": self.url("ingest"),
            "store": self.url("store"),
            "pubsub": self.pubsub_host,
            "storage": self.gcs.url,
            "database": self.database_url,
            "logs": str(self.logs),
        }

    def environ(self) -> dict[str, str]:
        """What every child sees: emulator hosts, the database, quiet Python."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("SKYBRIDGE_")}
        return base | {
            "PYTHONUNBUFFERED": "1",
            "PUBSUB_EMULATOR_HOST": self.pubsub_host,
            "STORAGE_EMULATOR_HOST": self.gcs.url,
            "GOOGLE_CLOUD_PROJECT": PROJECT,
            "SKYBRIDGE_DATABASE_URL": self.database_url,
            "SKYBRIDGE_TOPIC": self.names.topic,
            "SKYBRIDGE_BUCKET": self.names.bucket,
            "SKYBRIDGE_INGEST_URL": self.url("ingest") + "/",
            "SKYBRIDGE_TOKEN_SOURCE": "none",
            "SKYBRIDGE_SOURCE": "local",
            "SKYBRIDGE_METRICS": "emf",  # the API and relay write what CloudWatch reads
            "SKYBRIDGE_RECEIPTS_TOPIC": self.names.receipts_topic,
        }

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> LocalStack:
        """Start everything, in parallel where nothing depends on the order: the functions
        and the API boot while the emulators come up and the database migrates; resources
        are created once the emulators answer; the relay starts after the migration."""
        try:
            waiting = [self._spawn(name)
                       for name in ("pubsub", "store", "ingest", "api", "balancer")]  # fmt: skip
            self.gcs.start()
            self._migrate()  # before anything is ready, so before the API takes a request
            waiting.append(self._spawn("relay"))
            waiting.append(self._spawn("probe"))
            if self.on_mysql:
                waiting.append(self._spawn("rds"))
            for name, ready in waiting:
                self.children[name].wait_ready(ready)
                if name == "pubsub":
                    self._create_resources()
        except BaseException:
            self.stop()
            raise
        return self

    def _child(self, name: str) -> Child:
        env = self.environ()
        if name == "pubsub":
            port = str(self.ports["pubsub"])
            argv = [sys.executable, "-m", "local_stack.pubsub", "--port", port,
                    "--sample-interval", str(self.options.sample_interval)]  # fmt: skip
            if self.options.pubsub == "google":
                (self.logs / "pubsub").mkdir(parents=True, exist_ok=True)
                argv = ["gcloud", "beta", "emulators", "pubsub", "start"]
                argv += [f"--host-port=127.0.0.1:{port}", f"--data-dir={self.logs / 'pubsub'}"]
        elif name in ("ingest", "store"):
            # functions-framework's own command line, served with Cloud Run's request log.
            argv = commands.function_argv(name, self.ports[name])
            argv[1:3] = ["-m", "local_stack.function_host"]
            source = {"store": self.options.store_source, "ingest": self.options.ingest_source}
            if source[name]:
                argv[argv.index("--source") + 1] = source[name]
        elif name == "api":
            argv = commands.api_argv(f"127.0.0.1:{self.ports['api']}", self.options.api_workers)
        elif name == "relay":
            argv = commands.relay_argv()
            env |= {
                "SKYBRIDGE_RELAY_BACKOFF_BASE": "0.2",
                "SKYBRIDGE_RELAY_BACKOFF_MAX": "2",
                "SKYBRIDGE_RELAY_BREAKER_COOLDOWN": "1",
                "SKYBRIDGE_RELAY_LEASE_SECONDS": "10",
                "SKYBRIDGE_RELAY_POLL_INTERVAL": "0.05",
                "SKYBRIDGE_RELAY_GAUGE_INTERVAL": str(self.options.sample_interval),
                "SKYBRIDGE_RECEIPTS_SUBSCRIPTION": self.names.receipts_subscription,
                "SKYBRIDGE_RECEIPTS_PULL_TIMEOUT": "2",
                "SKYBRIDGE_CONFIRM_WINDOW_SECONDS": str(self.options.confirm_window),
                "SKYBRIDGE_RECONCILE": "true" if self.options.reconcile else "false",
                "SKYBRIDGE_RECONCILE_INTERVAL_SECONDS": "0.5",
                "SKYBRIDGE_RETENTION_STORED_DAYS": str(self.options.retention_stored_days),
                "SKYBRIDGE_RETENTION_FAILED_DAYS": str(self.options.retention_failed_days),
            } | self.options.relay_env
        elif name == "balancer":
            argv = [sys.executable, "-m", "local_stack.balancer",
                    "--port", str(self.ports["balancer"]), "--target", self.url("api")]  # fmt: skip
        elif name == "probe":
            argv = [sys.executable, "-m", "local_stack.probe", self.url("api"),
                    "--interval", str(self.options.sample_interval)]  # fmt: skip
        elif name == "rds":
            argv = [sys.executable, "-m", "local_stack.rds", "--database-url", self.database_url,
                    "--allocated-bytes", str(self.options.db_allocated_bytes),
                    "--period", str(self.options.rds_period)]  # fmt: skip
        else:
            raise KeyError(name)
        return Child(name, argv, env, self.logs)

    def start_component(self, name: str) -> None:
        _, ready = self._spawn(name)
        self.children[name].wait_ready(ready)

    def _spawn(self, name: str) -> tuple[str, Callable[[], bool]]:
        """Start one process; its name and the check that says it is ready."""
        child = self._child(name)
        ready = {
            "pubsub": tcp_ready(self.ports["pubsub"]),
            "ingest": http_ready(self.url("ingest") + "/"),
            "store": http_ready(self.url("store") + "/"),
            "api": http_ready(self.url("api") + "/healthz"),
            "balancer": tcp_ready(self.ports["balancer"]),
            "relay": log_ready(child.log_path, '"event": "relay.started"'),
            "probe": log_ready(child.log_path, '"state": "healthy"'),
            "rds": log_ready(child.log_path, '"event": "rds.started"'),
        }[name]
        self.children[name] = child.spawn()
        return name, ready

    def stop_component(self, name: str) -> None:
        self.children[name].stop()

    def kill_component(self, name: str) -> None:
        self.children[name].kill()

    def dead_children(self) -> list[str]:
        return [name for name, child in self.children.items() if not child.alive]

    # Callers before what they call, so a request in flight can finish: the relay waits on
    # ingest, ingest on Pub/Sub, the push to store on Pub/Sub and store on storage.
    STOP_WAVES = (("balancer", "probe", "rds", "relay", "api"), ("ingest", "store"), ("pubsub",))

    def stop(self) -> None:
        """Stop every process; safe to call twice and after a child died. Each wave is told
        at once and then waited for, so a wave takes as long as its slowest process."""
        for wave in self.STOP_WAVES:
            running = [self.children[name] for name in wave if name in self.children]
            for child in running:
                child.signal(signal.SIGTERM)
            for child in running:
                child.stop()
        in_waves = {name for wave in self.STOP_WAVES for name in wave}
        for name, child in self.children.items():
            if name not in in_waves:
                child.stop()
        self.gcs.stop()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- set-up ---------------------------------------------------------------------------

    def publisher(self):
        """A real Pub/Sub publisher client on this stack's emulator (no process-wide env)."""
        import grpc
        from google.cloud import pubsub_v1
        from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport

        channel = grpc.insecure_channel(self.pubsub_host)
        return pubsub_v1.PublisherClient(transport=PublisherGrpcTransport(channel=channel))

    def bucket(self):
        """The bucket `store` writes to, through a real client on fake-gcs-server."""
        return storage.bucket(self.names.bucket, endpoint=self.gcs.url)

    def subscriber(self):
        import grpc
        from google.cloud import pubsub_v1
        from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

        channel = grpc.insecure_channel(self.pubsub_host)
        return pubsub_v1.SubscriberClient(transport=SubscriberGrpcTransport(channel=channel))

    def _create_resources(self) -> None:
        from google.protobuf import duration_pb2

        publisher = self.publisher()
        subscriber = self.subscriber()
        names, options = self.names, self.options
        publisher.create_topic(name=names.topic)
        publisher.create_topic(name=names.dead_letter_topic)
        subscriber.create_subscription(
            name=names.dead_letter_subscription, topic=names.dead_letter_topic
        )
        subscriber.create_subscription(
            request={
                "name": names.push_subscription,
                "topic": names.topic,
                "ack_deadline_seconds": options.ack_deadline,
                "push_config": {"push_endpoint": self.url("store") + "/"},
                "retry_policy": {
                    "minimum_backoff": duration_pb2.Duration(
                        nanos=int(options.push_min_backoff * 1e9)
                    ),
                    "maximum_backoff": duration_pb2.Duration(seconds=int(options.push_max_backoff)),
                },
                "dead_letter_policy": {
                    "dead_letter_topic": names.dead_letter_topic,
                    "max_delivery_attempts": options.max_delivery_attempts,
                },
            }
        )
        publisher.create_topic(name=names.receipts_topic)
        self.create_receipts_subscription()
        storage.emulator_client(self.gcs.url).create_bucket(names.bucket)

    def create_receipts_subscription(self) -> None:
        """The relay's pull subscription on the receipts topic (the fault tests re-create it)."""
        self.subscriber().create_subscription(
            request={
                "name": self.names.receipts_subscription,
                "topic": self.names.receipts_topic,
                "ack_deadline_seconds": 10,
            }
        )

    def _migrate(self) -> None:
        import subprocess

        done = subprocess.run(
            commands.migrate_argv(), env=self.environ(), capture_output=True, text=True
        )
        if done.returncode != 0:
            # migrate's own sentence says why (unreachable, refused, no such database).
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            why = lines[-1].removeprefix("error: ") if lines else f"exit {done.returncode}"
            raise RuntimeError(f"the database did not migrate: {why}")
