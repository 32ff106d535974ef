"""Monitoring as code, checked against what the code emits, on both clouds.

One local stack runs once for this module through the demo's acts and the fault acts
(`scenario`), with its signals followed the way the clouds follow them (local_stack.signals).
Then:

- the metric contract: every metric an alarm, dashboard widget, log-based metric, alert
  policy or chart refers to was produced with exactly that namespace, name and dimensions
  (CloudWatch) or the log fields / labels the filter selects (GCP), and each chart's and
  alert's aligner and reducer apply to its metric's kind;
- every alarm fires: each CloudWatch alarm and GCP alert policy the template and the
  desired state define, evaluated locally with its own statistic, period, evaluation
  periods, threshold and missing-data rule (time compressed SCALE times), is ALARM during
  the act that should trip it and not during normal traffic. The list is the template's
  and the desired state's: an alarm without a fault here fails the test.

Clients reach the API through the load balancer's stand-in (local_stack.balancer), which
counts requests and its own and the target's 5xx as the ALB does.

It lives beside the other aws_stack tests to share their one synth per session (`dev`).
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest

import environments
from local_stack import alarms, definitions
from local_stack.acts import Act, Traffic, demo_acts, run_acts
from local_stack.filters import compile_filter, fields
from local_stack.metric_kinds import RESOURCE_LABELS, aggregation_problems, descriptor
from local_stack.signals import Point, Signals
from local_stack.stack import LocalStack, Options
from local_stack.watch import Monitor
from smoke import check
from tests.fakes import poison_ingest, poison_store
from tests.runtime.test_receipts import receipt_for

pytestmark = pytest.mark.slow
SCALE = 120.0  # one CloudWatch minute is half a second here
ENV = environments.load("dev")

# Metrics the local stack produces (the runtime's EMF, the load balancer's and the RDS
# instance's stand-ins); the other namespace is AWS's own measurement of EC2, which nothing
# local imitates: its names and dimensions are checked against AWS's documentation instead.
EMULATED = {"Skybridge", "AWS/ApplicationELB", "AWS/RDS"}
AWS_METRICS = {
    # https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/viewing_metrics_with_cloudwatch.html
    "AWS/EC2": ({"CPUUtilization"}, {"AutoScalingGroupName", "InstanceId", "ImageId",
                                     "InstanceType"}),
}  # fmt: skip
# Target 5xx need the database away, which needs MySQL behind a proxy: its own test below.
OWN_SCENARIO = {"HTTPCode_Target_5XX_Count": "Target5xx"}
# The RDS instance's metrics come from local_stack.rds on a MySQL server of the scenario's
# own (`database_scenario`); its alarms and the act that trips each.
DATABASE = "AWS/RDS"
DATABASE_TRIPPED_BY = {"DatabaseStorage": "database filling", "DatabaseCpu": "database busy"}
# The reconciliation window of the scenario's relay, and one redelivery before `failed`:
# a submission without a receipt is forwarded again after 3 s and failed after 3 + 6 s, so
# its age passes UnconfirmedAge's twice the window (600 s in dev, 5 s at SCALE) on the way.
CONFIRM_WINDOW = 3.0
MAX_REDELIVERIES = 1


@dataclass
class Scenario:
    stack: LocalStack
    monitor: Monitor
    defs: definitions.Definitions
    acts: dict[str, Act] = field(default_factory=dict)
    scale: float = SCALE

    def points(self) -> list[Point]:
        return self.monitor.all_points()


def fault_acts(stack: LocalStack, traffic: Traffic) -> list[Act]:
    def post(type_: str, count: int) -> list[check.Sent]:
        bodies = [{"type": type_, "data": {"n": i, "nonce": uuid.uuid4().hex}}
                  for i in range(count)]  # fmt: skip
        return check.post_all(stack.public_url, bodies, concurrency=8, progress=lambda _: None)

    def poison_ingest_items(stack: LocalStack) -> None:
        post(poison_ingest.POISON_TYPE, 3)

    failing = threading.Event()

    def keep_failing(stack: LocalStack) -> None:
        publisher, n = stack.publisher(), 0
        while not failing.wait(0.1):
            body = {"type": poison_store.POISON_TYPE, "submission_id": f"poison-{n}"}
            publisher.publish(stack.names.topic, json.dumps(body).encode())
            n += 1

    def store_failing(stack: LocalStack) -> None:
        """Store fails every delivery while deliveries keep coming: ten a second published
        straight to the topic for the whole act, so the 5xx keep their rate whatever the
        AWS side's backlog (a burst through the API alone fails at a rate that falls as
        its retries back off, and comes late while the relay still drains the outage)."""
        threading.Thread(target=keep_failing, args=(stack,), daemon=True).start()
        post(poison_store.POISON_TYPE, 60)
        publisher = stack.publisher()
        publisher.publish(stack.names.topic, b"not an envelope").result(timeout=10)

    def store_back(stack: LocalStack) -> None:
        failing.set()

    def store_stalled(stack: LocalStack) -> None:
        stack.children["store"].signal(signal.SIGSTOP)  # pushes hang; messages wait

    def relay_down(stack: LocalStack) -> None:
        """The relay stops while store, resumed, works off its backlog: the receipts it
        publishes wait in the relay's subscription."""
        stack.stop_component("relay")
        stack.children["store"].signal(signal.SIGCONT)

    def relay_back(stack: LocalStack) -> None:
        stack.start_component("relay")

    def receipts_lost(stack: LocalStack) -> None:
        """GCP loses every receipt (the relay's subscription is gone): forwarded
        submissions stay unconfirmed, are forwarded again, then fail."""
        stack.subscriber().delete_subscription(subscription=stack.names.receipts_subscription)

    def receipts_back(stack: LocalStack) -> None:
        stack.create_receipts_subscription()

    def receipt_forged(stack: LocalStack) -> None:
        """A receipt whose sha256 is not the accepted one (someone else's content)."""
        (sent,) = post("receipt.forged", 1)
        item = {"id": sent.id, "object_name": sent.object_name, "sha256": sent.sha256}
        receipt = receipt_for(item, bucket=stack.names.bucket, generation=1, sha256="0" * 64)
        stack.publisher().publish(
            stack.names.receipts_topic, receipt.model_dump_json().encode()
        ).result(timeout=10)

    def api_down(stack: LocalStack) -> None:
        # Clients keep calling the load balancer, faster than before (the answers are its
        # own 502s now); the prober and the uptime checkers find /healthz gone.
        traffic.rate = 40
        stack.stop_component("api")

    return [
        Act("relay gives up", "ingest rejects for good", poison_ingest_items, seconds=3),
        Act("store failing", "store fails every delivery", store_failing, seconds=8,
            end=store_back),
        Act("store stalled", "store hangs: messages wait", store_stalled, seconds=11),
        Act("relay down", "the relay is gone: receipts wait", relay_down, seconds=13,
            end=relay_back),
        Act("receipts lost", "GCP drops every receipt", receipts_lost, seconds=11,
            end=receipts_back),
        Act("receipt forged", "a receipt with another hash", receipt_forged, seconds=3),
        Act("API down", "the API's process is gone", api_down, seconds=5),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def scenario(dev, tmp_path_factory):
    template = dev[1]
    defs = definitions.for_local(ENV.prefix)
    defs.template = template
    options = Options(
        workdir=tmp_path_factory.mktemp("monitoring"),
        prefix=ENV.prefix,
        sample_interval=0.25,
        store_source=poison_store.__file__,
        ingest_source=poison_ingest.__file__,
        confirm_window=CONFIRM_WINDOW,
        relay_env={"SKYBRIDGE_CONFIRM_MAX_REDELIVERIES": str(MAX_REDELIVERIES)},
    )
    with LocalStack(options) as stack:
        signals = Signals(stack.logs, service_prefix=ENV.prefix)
        monitor = Monitor(signals, log_metrics=defs.log_metrics(), interval=0.1).start()
        traffic = Traffic(stack.public_url, rate=10).start()
        acts = [*demo_acts(outage=12), *fault_acts(stack, traffic)]
        try:
            run_acts(stack, acts)
        finally:
            traffic.stop()
            monitor.stop()
        yield Scenario(stack, monitor, defs, {act.name: act for act in acts})


# -- the database (RDS) ---------------------------------------------------------------------

# The instance's allocated storage in the scenario: the storage alarm's threshold plus this
# much above what the fresh database takes (a 20 GiB volume cannot be filled in a test;
# the headroom left is what the alarm watches). Normal traffic writes far less; the
# filling act writes three times as much.
STORAGE_HEADROOM = 8 * 1024**2
# Compressed twice as much as the main scenario: the CPU alarm's 5 periods of 5 minutes are
# 6.25 s, a stretch that a shared machine's other work leaves the server far more often
# than 12.5 s (the server's CPU share is what the alarm is about; no threshold changes).
DATABASE_SCALE = 240.0
FILL_BODY_CHARS = 240_000  # under the API's 256 KiB body limit
FILL_SUBMISSIONS = 3 * STORAGE_HEADROOM // FILL_BODY_CHARS


@dataclass
class DatabaseScenario:
    all_points: list[Point]
    acts: dict[str, Act]
    host_busy: float  # the machine's CPUs' busy share while the database was busy, in %
    scale: float = DATABASE_SCALE

    def points(self) -> list[Point]:
        return self.all_points


def host_cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all the machine's CPUs so far (proc(5), /proc/stat)."""
    with open("/proc/stat") as stat:
        ticks = [int(value) for value in stat.readline().split()[1:9]]
    return sum(ticks) - ticks[3] - ticks[4], sum(ticks)  # idle and iowait are not busy


def database_acts(url: str, cpus: int, host: dict[str, tuple[int, int]]) -> list[Act]:
    """`host`: the machine's CPU ticks when the busy act starts and ends, to tell a machine
    too loaded for the server to get its CPU from a CPU metric that is wrong."""
    from local_stack import rds

    burning = threading.Event()
    burners: list[threading.Thread] = []

    def fill(stack: LocalStack) -> None:
        """Large submissions through the API, as a flood of uploads would: the tables'
        files grow past the headroom."""
        bodies = [{"type": "database.filling",
                   "data": {"blob": uuid.uuid4().hex * (FILL_BODY_CHARS // 32)}}
                  for _ in range(FILL_SUBMISSIONS)]  # fmt: skip
        sent = check.post_all(stack.public_url, bodies, concurrency=4)
        assert {s.status for s in sent} == {202}, {s.status for s in sent}

    def burn() -> None:
        connection = rds.connect(url)
        with connection.cursor() as cursor:
            while burning.is_set():  # short queries, so the act ends when it should
                cursor.execute("SELECT BENCHMARK(2000000, SHA2('skybridge', 256))")
        connection.close()

    def busy(stack: LocalStack) -> None:
        """Queries that keep the server's CPU busy (runaway reports, say): four per vCPU,
        so the server's threads hold their CPU against the stack's own processes."""
        host["busy"] = host_cpu_ticks()
        burning.set()
        burners[:] = [threading.Thread(target=burn, daemon=True) for _ in range(4 * cpus)]
        for burner in burners:
            burner.start()

    def calm(stack: LocalStack) -> None:
        host["calm"] = host_cpu_ticks()
        burning.clear()
        for burner in burners:
            burner.join(timeout=30)

    return [
        Act("normal traffic", "submissions flow; the database has room and idles", seconds=8),
        Act("database filling", "large submissions fill the instance's storage", fill,
            seconds=6),
        # The CPU alarm wants 5 periods of 5 minutes (6.25 s here) at 90 % or more: three
        # times that, so a moment of a shared machine's other work does not decide it.
        Act("database busy", "queries keep the instance's CPU busy", busy, seconds=19,
            end=calm),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def database_scenario(dev, tmp_path_factory):
    """The stack on a MySQL/MariaDB server of its own (an RDS instance's CPU and
    connections are its whole server's, so not a shared one) pinned to one CPU (an
    instance with one vCPU: on a 2-core machine that also runs the stack, a 2-vCPU
    instance's CPU could not be kept busy) that the stack stays off, with local_stack.rds
    writing the instance's metrics once a compressed minute. Without a server: CI fails,
    elsewhere it skips."""
    from local_stack import rds
    from runtime.db import create_db_engine, migrate
    from runtime.settings import Settings
    from tests.mysql_server import ThrowawayServer

    (storage,) = [r for r in definitions.Definitions(dev[1]).aws_rules()
                  if alarm_key(r) == "DatabaseStorage"]  # fmt: skip
    cpus = os.sched_getaffinity(0)
    cpu = max(cpus)
    try:
        server = ThrowawayServer(cpus={cpu}).start()
    except (RuntimeError, OSError, subprocess.SubprocessError) as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the RDS scenario needs a MySQL/MariaDB server: {error}")
        pytest.skip(f"no MySQL/MariaDB server for the RDS scenario: {error}")
    try:
        connection = rds.connect(server.url)
        with connection.cursor() as cursor:
            cursor.execute("CREATE DATABASE skybridge CHARACTER SET utf8mb4")
        connection.close()
        url = server.url + "skybridge"
        engine = create_db_engine(Settings(database_url=url))
        migrate(engine)
        engine.dispose()
        connection = rds.connect(url)
        used = rds.used_bytes(connection)
        connection.close()
        options = Options(
            workdir=tmp_path_factory.mktemp("database"),
            prefix=ENV.prefix,
            database_url=url,
            db_allocated_bytes=int(storage.threshold) + used + STORAGE_HEADROOM,
            rds_period=60 / DATABASE_SCALE,
        )
        # The stack (and this process: its children inherit it) keeps off the server's CPU,
        # as an RDS instance's vCPU is its own; before, the stack's processes competed for
        # it and a loaded machine left the server under the alarm's 90 %.
        os.sched_setaffinity(0, cpus - {cpu} or cpus)
        with LocalStack(options) as stack:
            monitor = Monitor(Signals(stack.logs, service_prefix=ENV.prefix), interval=0.1)
            monitor.start()
            traffic = Traffic(stack.public_url, rate=10).start()
            host: dict[str, tuple[int, int]] = {}
            acts = database_acts(url, cpus=1, host=host)
            try:
                run_acts(stack, acts)
            finally:
                traffic.stop()
                monitor.stop()
        (busy, total), (busy_after, total_after) = host["busy"], host["calm"]
        host_busy = 100 * (busy_after - busy) / max(1, total_after - total)
        yield DatabaseScenario(monitor.all_points(), {a.name: a for a in acts}, host_busy)
    finally:
        os.sched_setaffinity(0, cpus)
        server.stop()


@pytest.mark.mysql
def test_every_rds_metric_is_emitted_with_its_exact_name_unit_and_dimensions(
    dev, database_scenario
):
    defs = definitions.Definitions(dev[1])
    metrics = [m for m in defs.cloudwatch_metrics() if m.namespace == DATABASE]
    assert {m.name for m in metrics} == {"FreeStorageSpace", "CPUUtilization",
                                         "DatabaseConnections"}  # fmt: skip
    assert {m.used_by.split()[0] for m in metrics} == {"alarm", "dashboard"}
    assert unproduced_cloudwatch(metrics, database_scenario.points()) == []
    units = {(p.name, p.unit) for p in database_scenario.points() if p.namespace == DATABASE}
    assert units == {("FreeStorageSpace", "Bytes"), ("CPUUtilization", "Percent"),
                     ("DatabaseConnections", "Count")}  # fmt: skip


@pytest.mark.mysql
def test_the_database_alarms_fire_in_their_fault_and_are_quiet_in_normal_traffic(
    dev, database_scenario
):
    rules = [r for r in definitions.Definitions(dev[1]).aws_rules()
             if r.metric.startswith(f"{DATABASE}/")]  # fmt: skip
    assert {alarm_key(r) for r in rules} == DATABASE_TRIPPED_BY.keys()
    problems = firing_problems(database_scenario, rules, DATABASE_TRIPPED_BY, frozenset())
    # The server had one CPU of this machine's; the rest of the stack and whatever else
    # runs here had the others, and competed for its one.
    assert problems == [], f"the machine was {database_scenario.host_busy:.0f} % busy meanwhile"


# -- the metric contract ------------------------------------------------------------------


def unproduced_cloudwatch(metrics, points: list[Point]) -> list[str]:
    problems = []
    for metric in metrics:
        if metric.namespace not in EMULATED:
            names, dims = AWS_METRICS.get(metric.namespace, (set(), set()))
            if metric.name not in names or not metric.dimensions.keys() <= dims:
                problems.append(
                    f"{metric.used_by}: {metric.namespace}/{metric.name} "
                    f"{sorted(metric.dimensions)} is not a documented metric"
                )
            continue
        matches = alarms.dimension_matcher(metric.dimension_list)
        if not any(
            p.namespace == metric.namespace and p.name == metric.name and matches(p) for p in points
        ):
            emitted = sorted({p.dimensions for p in points if p.name == metric.name})
            problems.append(f"{metric.used_by}: nothing emitted {metric.namespace}/"
                            f"{metric.name} with dimensions {dict(metric.dimensions)} "
                            f"(emitted: {emitted})")  # fmt: skip
    return problems


def test_every_cloudwatch_metric_is_emitted_with_its_exact_dimensions(scenario):
    metrics = scenario.defs.cloudwatch_metrics()
    assert {m.used_by.split()[0] for m in metrics} == {"alarm", "dashboard"}
    here = [m for m in metrics if m.name not in OWN_SCENARIO and m.namespace != DATABASE]
    assert unproduced_cloudwatch(here, scenario.points()) == []


def test_contract_catches_a_misspelt_dimension(scenario):
    template = copy.deepcopy(scenario.defs.template)
    alarm = next(p for p in definitions.Definitions(template).cloudwatch_alarms().values()
                 if p["Namespace"] == "Skybridge")  # fmt: skip
    alarm["Dimensions"][0]["Name"] = "Servce"
    metrics = definitions.Definitions(template).cloudwatch_metrics()
    problems = unproduced_cloudwatch(
        [m for m in metrics if m.name not in OWN_SCENARIO and m.namespace != DATABASE],
        scenario.points(),
    )
    assert len(problems) == 1 and "Servce" in problems[0]


def test_every_log_based_metric_counts_entries_the_functions_write(scenario):
    entries = scenario.monitor.signals.entries
    for name, text in scenario.defs.log_metrics().items():
        read = fields(text)
        assert all(any(e.field(f) is not None for e in entries) for f in read), (name, read)
        selects = compile_filter(text)
        assert any(selects(e.field) for e in entries), f"{name}: {text} selects no entry"


def gcp_queries(defs: definitions.Definitions) -> list[tuple[str, str, dict]]:
    """(where, filter, aggregation) of every alert condition and chart."""
    found = [
        (f"alert {c['displayName']!r}", c["conditionThreshold"]["filter"],
         (c["conditionThreshold"].get("aggregations") or [{}])[0])
        for policy in defs.alert_policies() for c in policy["conditions"]
    ]  # fmt: skip
    found += [(f"chart {title!r}", q["filter"], q.get("aggregation", {}))
              for title, q in defs.charts()]  # fmt: skip
    return found


def test_every_gcp_filter_names_a_real_metric_resource_and_labels(scenario):
    problems = []
    for where, text, _ in gcp_queries(scenario.defs):
        metric = alarms.metric_type(text)
        known = descriptor(metric)
        if known is None or (
            metric.startswith("logging.googleapis.com/user/")
            and metric.rsplit("/", 1)[1] not in scenario.defs.log_metrics()
        ):
            problems.append(f"{where}: unknown metric {metric}")
            continue
        for path in fields(text):
            if path.startswith("resource.labels."):
                resource = known.resource or "cloud_run_revision"
                if path.removeprefix("resource.labels.") not in RESOURCE_LABELS[resource]:
                    problems.append(f"{where}: {resource} has no label {path}")
            elif (
                path.startswith("metric.labels.")
                and path.removeprefix("metric.labels.") not in known.labels
            ):
                problems.append(f"{where}: {metric} has no label {path}")
        selects = compile_filter(text)
        if not any(selects(alarms.point_lookup(p)) for p in scenario.points()):
            problems.append(f"{where}: {text} selects nothing the local stack produced")
    assert problems == []


def test_every_aggregation_applies_to_its_metric_kind(scenario):
    problems = []
    for where, text, aggregation in gcp_queries(scenario.defs):
        known = descriptor(alarms.metric_type(text), "cloud_run_revision")
        assert known is not None
        problems += [
            f"{where}: {problem}"
            for problem in aggregation_problems(
                known,
                aggregation.get("perSeriesAligner", "ALIGN_NONE"),
                aggregation.get("crossSeriesReducer", "REDUCE_NONE"),
            )
        ]
    assert problems == []


# -- every alarm fires --------------------------------------------------------------------

# The act that must trip each alarm (by its construct id or alert condition name).
TRIPPED_BY = {
    "OutboxAge": "GCP away",
    "FailedSubmissions": "relay gives up",
    "NoHealthyHosts": "API down",
    "Elb5xx": "API down",
    "UnconfirmedAge": "receipts lost",
    "UnconfirmedFailed": "receipts lost",
    "ReceiptMismatch": "receipt forged",
    "function errors": "store failing",
    "dead letters": "store failing",
    "delivery backlog": "store stalled",
    "receipts not consumed": "relay down",
    "API unreachable": "API down",
}


def alarm_key(rule: alarms.Rule) -> str:
    if rule.cloud == "gcp":
        return rule.name
    known = TRIPPED_BY.keys() | DATABASE_TRIPPED_BY.keys() | set(OWN_SCENARIO.values())
    return next((k for k in known if rule.name.startswith(f"Monitoring{k}")), rule.name)


def states(scenario: Scenario | DatabaseScenario, rule: alarms.Rule, act: Act) -> list[str]:
    points, scale = scenario.points(), scenario.scale
    return [state for _, state in rule.timeline(points, act.started, act.ended, scale)]


def firing_problems(
    scenario: Scenario | DatabaseScenario,
    rules: list[alarms.Rule],
    tripped_by: dict[str, str] = TRIPPED_BY,
    elsewhere: frozenset[str] = frozenset({*OWN_SCENARIO.values(), *DATABASE_TRIPPED_BY}),
) -> list[str]:
    """Why each rule is not proven: no fault for it, fires in normal traffic, or never
    fires in its fault (with the data it saw). `elsewhere`: the alarms another scenario
    proves."""
    problems = []
    normal = scenario.acts["normal traffic"]
    for rule in rules:
        name = alarm_key(rule)
        if name in elsewhere:
            continue
        if name not in tripped_by:
            problems.append(f"{rule.cloud} {rule.name}: no fault scenario trips it")
            continue
        if alarms.ALARM in states(scenario, rule, normal):
            problems.append(f"{name} fires in normal traffic")
        act = scenario.acts[tripped_by[name]]
        fault = states(scenario, rule, act)
        if alarms.ALARM not in fault:
            # What the rule saw: the newest window's aligned value at each evaluation.
            chosen, (_, threshold) = rule.select(scenario.points()), rule.scaled(scenario.scale)
            evaluations = rule.timeline(chosen, act.started, act.ended, scenario.scale)
            newest = [rule.windows(chosen, t, scenario.scale)[-1] for t, _ in evaluations]
            seen = [None if v is None else round(v, 1) for v in newest]
            problems.append(
                f"{name} never fired during {act.name!r}: {fault}; its windows {seen[:40]} "
                f"against {rule.comparison} {threshold:g}"
            )
    return problems


def test_every_alarm_and_alert_policy_fires_in_its_fault_and_is_quiet_in_normal_traffic(scenario):
    rules = scenario.defs.rules()  # every alarm of the template, every policy condition
    assert {r.cloud for r in rules} == {"aws", "gcp"}
    assert firing_problems(scenario, rules) == []


def test_an_alarm_without_a_fault_or_on_a_misspelt_dimension_is_caught(scenario):
    """The test above can fail: a new alarm nothing trips, and one whose dimension no
    emitted metric has (it would never fire)."""
    template = copy.deepcopy(scenario.defs.template)
    resources = template["Resources"]
    original = next(k for k in resources if k.startswith("MonitoringOutboxAge"))
    resources["MonitoringBrandNewAlarm"] = copy.deepcopy(resources[original])
    resources[original]["Properties"]["Dimensions"][0]["Value"] = "relai"
    rules = definitions.Definitions(template).aws_rules()
    problems = firing_problems(scenario, rules)
    assert any(p.startswith("aws MonitoringBrandNewAlarm: no fault") for p in problems)
    assert any(p.startswith("OutboxAge never fired") for p in problems)
    assert len(problems) == 2, problems


def test_unconfirmed_age_is_quiet_while_an_outage_backlog_drains_with_receipts_on_time(
    dev, tmp_path, monkeypatch
):
    """After half an hour with GCP away, 300 submissions wait in the outbox; GCP comes back,
    the relay forwards one a second and each receipt comes 5 s after its forwarding. The
    UnconfirmedAge alarm (its own threshold, period and evaluation periods, on a simulated
    clock, no compression) stays quiet throughout the drain, since no receipt is late; and
    fires once receipts stop for longer than its threshold. (Measured from acceptance, the
    age was the outage's length during the drain, and the alarm fired.)"""
    from datetime import UTC, datetime, timedelta

    from runtime import outbox, receipts, submissions
    from runtime.db import create_db_engine, migrate
    from runtime.envelope import SubmissionIn
    from runtime.settings import Settings

    (rule,) = [r for r in definitions.Definitions(dev[1]).aws_rules()
               if alarm_key(r) == "UnconfirmedAge"]  # fmt: skip
    clock = [datetime(2026, 1, 1, tzinfo=UTC)]
    for module in (outbox, submissions):
        monkeypatch.setattr(module, "utcnow", lambda: clock[0])
    engine = create_db_engine(Settings(database_url=f"sqlite:///{tmp_path / 'drain.sqlite3'}"))
    migrate(engine)
    points: list[Point] = []

    def tick(seconds: float) -> None:
        """Let `seconds` pass, then sample the relay's gauge as it does."""
        clock[0] += timedelta(seconds=seconds)
        with engine.begin() as connection:
            _, age = receipts.unconfirmed(connection, clock[0])
        points.append(Point(clock[0].timestamp(), "Skybridge", "UnconfirmedOldestAgeSeconds",
                            (("Service", "relay"),), age, "Seconds"))  # fmt: skip

    accepted = {}
    for n in range(300):  # GCP away for 30 minutes: the backlog grows
        item = submissions.accept(engine, SubmissionIn(type="outage", data={"n": n}), None).row
        accepted[item["id"]] = {"id": item["id"], "sha256": item["sha256"],
                                "object_name": f"submissions/{item['id']}.json"}  # fmt: skip
        if n % 10 == 9:
            tick(60)
    drained_from = clock[0].timestamp()
    in_flight: list[tuple[datetime, str]] = []
    for second in range(300):  # GCP back: one forwarded a second, confirmed 5 s later
        (claimed,) = outbox.claim(engine, 1, 60)
        sid, later = claimed.submission_id, clock[0] + timedelta(hours=1)
        outbox.settle(engine, [claimed], forwarded={sid: "m"}, failed={}, retry={},
                      confirm_by={sid: later})  # fmt: skip
        in_flight.append((clock[0] + timedelta(seconds=5), claimed.submission_id))
        due = [sid for at, sid in in_flight if at <= clock[0]]
        in_flight = [(at, sid) for at, sid in in_flight if at > clock[0]]
        receipts.apply(engine, [receipt_for(accepted[sid]) for sid in due], clock[0])
        if second % 10 == 9:
            tick(1)
        else:
            clock[0] += timedelta(seconds=1)
    drained_until = clock[0].timestamp()
    for _ in range(int(rule.threshold / 10) + 30):  # the last five's receipts never come
        tick(10)
    quiet = rule.timeline(points, drained_from, drained_until)
    during = [round(p.value) for p in points if drained_from <= p.time <= drained_until]
    assert alarms.ALARM not in [state for _, state in quiet], during
    late = rule.timeline(points, drained_until, clock[0].timestamp())
    assert late[-1][1] == alarms.ALARM, late
    engine.dispose()


@pytest.mark.mysql
def test_target_5xx_alarm_fires_while_the_database_is_away(dev, mysql_database_url, tmp_path):
    """The API answers 503 while MySQL is unreachable: the load balancer (its stand-in in
    front of the API) counts target 5xx and the Target5xx alarm fires, and not Elb5xx (the
    target answered); while the database answers, neither does."""
    import requests
    from sqlalchemy.engine import make_url

    from local_stack.balancer import Balancer
    from local_stack.ports import free_port
    from local_stack.processes import Child, http_ready
    from runtime import commands
    from tests.fakes.tcp_proxy import TcpProxy

    defs = definitions.Definitions(dev[1])
    (rule,) = [r for r in defs.aws_rules() if alarm_key(r) == "Target5xx"]
    (elb,) = [r for r in defs.aws_rules() if alarm_key(r) == "Elb5xx"]
    url = make_url(mysql_database_url)
    with TcpProxy(url.host or "127.0.0.1", url.port or 3306) as proxy:
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
        env = {"PATH": "/usr/bin:/bin", "SKYBRIDGE_DATABASE_URL": proxied,
               "SKYBRIDGE_METRICS": "emf"}  # fmt: skip
        subprocess.run(commands.migrate_argv(), env=env, check=True, capture_output=True)
        port = free_port()
        api = Child("api", commands.api_argv(f"127.0.0.1:{port}", 4), env, tmp_path)
        api.start(http_ready(f"http://127.0.0.1:{port}/healthz"))
        emf = (tmp_path / "balancer.log").open("a", buffering=1)
        balancer = Balancer(f"http://127.0.0.1:{port}", write=lambda line: emf.write(line + "\n"))
        balancer.start()
        monitor = Monitor(Signals(tmp_path), interval=0.05).start()
        session = requests.Session()
        session.trust_env = False

        def hammer(seconds: float) -> Act:
            """Eight clients posting as fast as the API answers (bounded by `seconds`)."""
            act = Act("", "", started=time.time())
            deadline = time.monotonic() + seconds

            def client() -> None:
                while time.monotonic() < deadline:
                    body = {"type": "db.fault", "data": {"nonce": uuid.uuid4().hex}}
                    session.post(f"{balancer.url}/v1/submissions", json=body, timeout=10)

            with ThreadPoolExecutor(8) as pool:
                for _ in range(8):
                    pool.submit(client)
            act.ended = time.time()
            return act

        try:
            healthy = hammer(2.0)
            proxy.cut()
            away = hammer(10.0)
        finally:
            proxy.restore()
            balancer.stop()
            emf.close()
            api.stop()
            monitor.stop()
    points = monitor.all_points()
    metric = next(m for m in defs.cloudwatch_metrics() if m.name in OWN_SCENARIO)
    assert unproduced_cloudwatch([metric], points) == []
    # Compressed less than the scenario's: "10 a minute" is then 10 in 3 s, which four sync
    # workers answering 503 reach on a loaded machine without a load test.
    scale = 20
    timeline = [state for _, state in rule.timeline(points, healthy.started, healthy.ended, scale)]
    assert alarms.ALARM not in timeline
    timeline = [state for _, state in rule.timeline(points, away.started, away.ended, scale)]
    errors = [p.time for p in points if p.name == metric.name]
    assert alarms.ALARM in timeline, (timeline, len(errors), away)
    assert alarms.ALARM not in [s for _, s in elb.timeline(points, away.started, away.ended, scale)]
