"""The monitoring both clouds are given, read from what the stacks generate: the CloudWatch
alarms and dashboard of the synthesized CloudFormation template, and the log-based metrics,
alert policies and dashboard charts of gcp_stack's desired state."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import environments
from gcp_stack import stack as gcp
from gcp_stack.resources import AlertPolicy, Dashboard, LogMetric, Resource
from gcp_stack.resources.base import REFERENCE
from local_stack import alarms
from local_stack.probe import UPTIME_CHECK_ID

ROOT = Path(__file__).resolve().parent.parent
LOCAL_API_URL = "http://127.0.0.1:8080/"  # gives the desired state its uptime check


@dataclass(frozen=True)
class CloudWatchMetric:
    """A metric as CloudWatch names it, and where the monitoring refers to it."""

    namespace: str
    name: str
    dimensions: Mapping[str, Any]  # name → literal value, or a template token (dict)
    statistic: str
    used_by: str

    @property
    def dimension_list(self) -> list[dict[str, Any]]:
        return [{"Name": k, "Value": v} for k, v in self.dimensions.items()]


@dataclass
class Definitions:
    template: dict[str, Any] = field(default_factory=dict)
    resources: list[Resource] = field(default_factory=list)
    # What apply learns from GCP (`{output:<key>:<field>}` references), here the local
    # stand-ins' values; "*" answers for any key.
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)

    def resolved(self, value: Any) -> Any:
        def lookup(match: re.Match) -> str:
            key, _, name = match.group(1).rpartition(":")
            found = self.outputs.get(key) or self.outputs.get("*") or {}
            return str(found.get(name, match.group(0)))

        if isinstance(value, dict):
            return {k: self.resolved(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolved(v) for v in value]
        return REFERENCE.sub(lookup, value) if isinstance(value, str) else value

    # -- AWS ------------------------------------------------------------------------------

    def cloudwatch_alarms(self) -> dict[str, dict[str, Any]]:
        return {
            key: r["Properties"]
            for key, r in self.template.get("Resources", {}).items()
            if r["Type"] == "AWS::CloudWatch::Alarm"
        }

    def cloudwatch_metrics(self) -> list[CloudWatchMetric]:
        """Every metric an alarm or a dashboard widget refers to."""
        found = [
            CloudWatchMetric(p["Namespace"], p["MetricName"],
                             {d["Name"]: d["Value"] for d in p.get("Dimensions", [])},
                             p.get("ExtendedStatistic") or p["Statistic"], f"alarm {key}")
            for key, p in self.cloudwatch_alarms().items()
        ]  # fmt: skip
        for key, resource in self.template.get("Resources", {}).items():
            if resource["Type"] == "AWS::CloudWatch::Dashboard":
                body = dashboard_body(resource["Properties"]["DashboardBody"])
                found += list(widget_metrics(body, f"dashboard {key}"))
        return found

    def aws_rules(self) -> list[alarms.Rule]:
        return alarms.cloudwatch_rules(self.template)

    # -- GCP ------------------------------------------------------------------------------

    def log_metrics(self) -> dict[str, str]:
        return {r.name: r.filter for r in self.resources if isinstance(r, LogMetric)}

    def alert_policies(self) -> list[dict[str, Any]]:
        return [self.resolved(r.spec) for r in self.resources if isinstance(r, AlertPolicy)]

    def charts(self) -> list[tuple[str, dict[str, Any]]]:
        """(title, timeSeriesFilter) of every data set of every dashboard tile."""
        found = []
        for resource in self.resources:
            if isinstance(resource, Dashboard):
                for tile in resource.spec.get("mosaicLayout", {}).get("tiles", []):
                    widget = tile["widget"]
                    for data_set in widget.get("xyChart", {}).get("dataSets", []):
                        query = self.resolved(data_set["timeSeriesQuery"]["timeSeriesFilter"])
                        found.append((widget.get("title", ""), query))
        return found

    def gcp_rules(self) -> list[alarms.Rule]:
        return alarms.gcp_rules(self.alert_policies())

    def rules(self) -> list[alarms.Rule]:
        return self.aws_rules() + self.gcp_rules()


def dashboard_body(body: Any) -> dict[str, Any]:
    """The dashboard JSON with every CloudFormation token (Ref, Fn::GetAtt…) inside
    Fn::Join replaced by a marker, so it parses; the marker stands for "a resource's"."""
    if isinstance(body, str):
        return json.loads(body)
    parts = body["Fn::Join"][1]
    text = "".join(p if isinstance(p, str) else TOKEN for p in parts)
    return json.loads(text)


TOKEN = "{{token}}"  # noqa: S105 — a placeholder, not a secret


def widget_metrics(body: Mapping[str, Any], used_by: str) -> Iterator[CloudWatchMetric]:
    """The metrics of each metric widget: arrays [namespace, name, dim, value, …, {opts}],
    where "." repeats the previous row's value (the CloudWatch dashboard body structure:
    https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/CloudWatch-Dashboard-Body-Structure.html)."""
    for widget in body.get("widgets", []):
        properties = widget.get("properties", {})
        previous: list[Any] = []
        for row in properties.get("metrics", []):
            options = row[-1] if row and isinstance(row[-1], dict) else {}
            values = [v for v in row if not isinstance(v, dict)]
            values = [previous[i] if v == "." and i < len(previous) else v
                      for i, v in enumerate(values)]  # fmt: skip
            previous = values
            namespace, name, rest = values[0], values[1], values[2:]
            dims = {rest[i]: ({"token": rest[i + 1]} if TOKEN in rest[i + 1] else rest[i + 1])
                    for i in range(0, len(rest) - 1, 2)}  # fmt: skip
            stat = options.get("stat", properties.get("stat", "Average"))
            title = properties.get("title", "")
            yield CloudWatchMetric(namespace, name, dims, stat, f"{used_by} widget {title!r}")


def gcp_definitions(env: str = "dev") -> list[Resource]:
    return gcp.build(environments.load(env), api_url=LOCAL_API_URL)


def local_outputs(prefix: str) -> dict[str, dict[str, str]]:
    """What apply would learn from GCP, for the local stack: the trigger's subscription is
    the stack's push subscription (local_stack.stack.Names), the uptime check's id the
    prober's (local_stack.probe)."""
    return {"*": {"subscription": f"{prefix}-store-push", "check_id": UPTIME_CHECK_ID}}


def for_local(prefix: str, env: str = "dev") -> Definitions:
    """The environment's GCP monitoring, pointed at a local stack named with `prefix`
    (which must be the environment's, or no name-filter would match)."""
    wanted = environments.load(env).prefix
    if prefix != wanted:
        raise ValueError(
            f"the local stack is named {prefix!r}; {env}'s monitoring needs {wanted!r}"
        )
    return Definitions(resources=gcp_definitions(env), outputs=local_outputs(prefix))


CACHE = ROOT / ".local_stack" / "cdk"


def synthesize(env: str, outdir: Path) -> dict[str, Any]:
    """The AWS stack's template, synthesized offline the way `cdk synth` runs the app
    (CDK_OUTDIR and CDK_CONTEXT_JSON are how the CLI hands an app its output directory and
    context). Takes ~20 s, so the demo runs it in the background, and the result is kept
    under .local_stack/cdk/ keyed by a hash of everything the synth reads."""
    context = json.loads((ROOT / "cdk.json").read_text())["context"] | {"env": env}
    cached = CACHE / f"{env}-{_inputs_hash(env)}.template.json"
    if cached.exists():
        return json.loads(cached.read_text())
    environ = os.environ | {"CDK_OUTDIR": str(outdir), "CDK_CONTEXT_JSON": json.dumps(context)}
    subprocess.run([sys.executable, "-m", "aws_stack"], cwd=ROOT, env=environ, check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    (template,) = outdir.glob(f"skybridge-{env}*.template.json")
    CACHE.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, cached)
    return json.loads(template.read_text())


def _inputs_hash(env: str) -> str:
    digest = hashlib.sha256()
    files = [
        ROOT / "cdk.json",
        ROOT / "environments" / f"{env}.toml",
        *sorted((ROOT / "aws_stack").rglob("*.py")),
        *sorted((ROOT / "runtime").rglob("*.py")),
    ]
    for path in files:  # fmt: skip
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
