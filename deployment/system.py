"""One plan, one approval and one summary for both clouds (`make plan|deploy|destroy ENV=…`).

    python -m deployment plan    --env dev      # cdk diff + the GCP plan, a line per cloud
    python -m deployment deploy  --env dev      # both plans, one question, then in order
    python -m deployment destroy --env dev      # what goes, one question, AWS first

Order: GCP first (the AWS stack reads the ingest URL and the Workload Identity
configuration from gcp-outputs/<env>.json), then AWS, then GCP once more, only to point
the uptime check at the API URL AWS now reports (refused if that pass would change
anything else). Destroy: AWS first, so the relay stops calling before its target goes.

The one approval covers exactly what was shown: the GCP plan (applied from its saved plan
file, so a change made since is refused, not applied), `cdk deploy --all` of the diff
shown (given `--require-approval never` only because it was approved here), and the
uptime-check pass. `--auto-approve` skips the question, except for a protected environment
(prod): there only `--confirm <env name>` does, and without it the question asks for the
name. Exit codes: 0 done (or nothing to do), 1 an error or a refusal, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import environments

ROOT = Path(__file__).resolve().parents[1]
PROTECTED = {"prod"}  # environments AUTO_APPROVE alone never changes
UPTIME_PREFIX = "uptime_check/"  # what the second GCP pass may change
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class Refused(Exception):
    """The run stops here with one sentence; nothing more is changed."""


# -- what each CLI says, read back ------------------------------------------------------


@dataclass
class Counts:
    added: int = 0
    changed: int = 0
    destroyed: int = 0
    replaced: int = 0  # included in `changed` (CloudFormation) or in added + destroyed (GCP)

    @property
    def any(self) -> bool:
        return bool(self.added or self.changed or self.destroyed)

    def line(self) -> str:
        text = f"{self.added} to add, {self.changed} to change, {self.destroyed} to destroy"
        return text + (f" ({self.replaced} replaced)" if self.replaced else "")


# `cdk diff`: one line per resource under "Resources": `[+] AWS::SNS::Topic Path LogicalId`,
# `[~]` changed (with "replace" when CloudFormation would replace it), `[-]` removed.
CDK_RESOURCE = re.compile(r"^\[(?P<op>[-+~])\] (?P<type>[A-Za-z0-9]+::[A-Za-z0-9:]+) (?P<rest>.*)$")


def cdk_diff_counts(output: str) -> Counts:
    counts = Counts()
    for line in ANSI.sub("", output).splitlines():
        found = CDK_RESOURCE.match(line.strip())
        if not found:
            continue
        op = found["op"]
        if op == "+":
            counts.added += 1
        elif op == "-":
            counts.destroyed += 1
        else:
            counts.changed += 1
            counts.replaced += "replace" in found["rest"]
    return counts


# `cdk deploy --progress events`: `STACK | 3/40 | 10:15:02 AM | CREATE_COMPLETE | TYPE |
# Construct/Path (LogicalId) reason` (toolkit-lib's HistoryActivityPrinter.formatActivity).
CDK_EVENT = re.compile(
    r"^(?P<stack>[A-Za-z][\w-]*) \| (?:\s*\d+/\d+ \| )?"
    r"(?P<h>\d{1,2}):(?P<m>\d{2}):(?P<s>\d{2})\s*(?P<ampm>[AP]M)? \| "
    r"(?P<status>[A-Z_]+)(?: \(skipped\))?\s*\| (?P<type>\S+)\s*\| (?P<rest>.*)$"
)


@dataclass
class Timed:
    key: str
    action: str  # create, update, replace, delete
    seconds: float
    status: str = "done"


def _clock(found: re.Match[str]) -> int:
    hour = int(found["h"]) % 12 if found["ampm"] else int(found["h"])
    hour += 12 if found["ampm"] == "PM" else 0
    return hour * 3600 + int(found["m"]) * 60 + int(found["s"])


def cdk_event_timings(output: str) -> list[Timed]:
    """Each resource's time from its first *_IN_PROGRESS to its last *_COMPLETE/_FAILED. A
    replacement (UPDATE, then DELETE of the old one at clean-up) is timed to its UPDATE's
    end: the clean-up runs after every other change."""
    first: dict[str, int] = {}
    ends: dict[str, dict[str, tuple[int, str]]] = {}  # key → verb → (time, status)
    for line in ANSI.sub("", output).splitlines():
        found = CDK_EVENT.match(line.strip())
        if not found or found["type"] == "AWS::CloudFormation::Stack":
            continue
        rest = found["rest"].strip()
        logical = re.search(r"\((\w+)\)", rest)
        key = f"{found['type']} {logical[1] if logical else rest.split(' ')[0]}"
        at, status = _clock(found), found["status"]
        if status.endswith("_IN_PROGRESS"):
            first.setdefault(key, at)
        elif status.endswith(("_COMPLETE", "_FAILED")):
            ends.setdefault(key, {})[status.split("_")[0]] = (at, status)
    timed = []
    for key, by_verb in ends.items():
        if "UPDATE" in by_verb and "DELETE" in by_verb:
            action, (end, status) = "replace", by_verb["UPDATE"]
        elif "CREATE" in by_verb:
            action, (end, status) = "create", by_verb["CREATE"]
        elif "DELETE" in by_verb:
            action, (end, status) = "delete", by_verb["DELETE"]
        else:
            action, (end, status) = "update", next(iter(by_verb.values()))
        seconds = float((end - first.get(key, end)) % 86400)  # a run past midnight
        timed.append(Timed(key, action, seconds, "failed" if "FAILED" in status else "done"))
    return sorted(timed, key=lambda t: -t.seconds)


def summary_counts(timed: Sequence[Timed], terraform: bool = False) -> Counts:
    """What was done, counted as each tool counts it: CloudFormation counts a replace as a
    change; Terraform, and gcp_stack after it, as one added and one destroyed (and nothing
    but create, update, replace and delete)."""
    counts = Counts()
    for item in timed:
        if item.status != "done":
            continue
        if item.action == "create":
            counts.added += 1
        elif item.action == "delete":
            counts.destroyed += 1
        elif item.action == "replace":
            counts.replaced += 1
            if terraform:
                counts.added, counts.destroyed = counts.added + 1, counts.destroyed + 1
            else:
                counts.changed += 1
        elif item.action == "update" or not terraform:
            counts.changed += 1
    return counts


# -- running the two CLIs ------------------------------------------------------------------


@dataclass
class Tools:
    """How to call each CLI: the Makefile's `$(CDK)` and this interpreter's gcp_stack."""

    cdk: list[str] = field(default_factory=lambda: ["npx", "--no-install", "cdk"])
    python: str = sys.executable
    out: IO[str] = field(default_factory=lambda: sys.stdout)
    seen: list[tuple[float, str]] = field(default_factory=list)  # the last run's lines
    ask: Callable[[str], str | None] = field(default=lambda prompt: _ask(prompt))

    def gcp(self, *args: str) -> list[str]:
        return [self.python, "-m", "gcp_stack", *args]

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def run(self, argv: list[str], *, show: bool = True) -> tuple[int, str]:
        """Run `argv`, showing its output as it comes (both streams) and keeping it."""
        if show:
            self.say(f"$ {shlex.join(argv)}")
        kept: list[str] = []
        self.seen = []  # (seconds since start, line): for timings
        started = time.monotonic()
        try:
            process = subprocess.Popen(
                argv,
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                stdin=subprocess.DEVNULL,
                env=os.environ | {"NO_COLOR": "1"},
            )
        except FileNotFoundError:
            raise Refused(
                f"{argv[0]} is not installed: run `make node_modules/.installed`"
            ) from None
        assert process.stdout is not None
        for line in process.stdout:
            kept.append(line)
            self.seen.append((time.monotonic() - started, line.rstrip("\n")))
            if show:
                self.out.write(line)
                self.out.flush()
        return process.wait(), "".join(kept)


def _ask(prompt: str) -> str | None:
    print(prompt, end="", flush=True)
    line = sys.stdin.readline()
    if not sys.stdin.isatty():
        print(flush=True)  # the answer was not echoed: end the prompt's line
    return line if line else None  # None: end of input, nobody to answer


# -- the steps -----------------------------------------------------------------------------


@dataclass
class CloudPlan:
    cloud: str
    counts: Counts
    detail: str = ""  # what else the line says (stacks, plan file)
    plan_file: Path | None = None
    unknown: str = ""  # what happens, when it cannot be counted beforehand

    def line(self) -> str:
        if self.unknown:
            return f"{self.cloud}: {self.unknown}"
        changes = self.counts.line() if self.counts.any else "no changes"
        return f"{self.cloud}: {changes}" + (f" — {self.detail}" if self.detail else "")


@dataclass
class System:
    env: environments.Environment
    tools: Tools
    gcp_args: list[str] = field(default_factory=list)  # e.g. --api-endpoint for the fake
    build: Path = ROOT / "build" / "deploy"
    outputs: Path = ROOT  # where gcp-outputs/ and cdk-outputs/ are (tests: elsewhere)

    @property
    def name(self) -> str:
        return self.env.name

    @property
    def aws_outputs(self) -> Path:
        return self.outputs / "cdk-outputs" / f"{self.name}.json"

    def cdk(self, *args: str) -> list[str]:
        argv = [*self.tools.cdk, *args, "-c", f"env={self.name}"]
        if self.outputs != ROOT:
            # Relative: the CDK app joins it to the checkout (and names it relative to it).
            gcp = os.path.relpath(self.outputs / "gcp-outputs" / f"{self.name}.json", ROOT)
            argv += ["-c", f"gcp_outputs={gcp}"]
        return argv

    def gcp_common(self) -> list[str]:
        common = ["--env", self.name, *self.gcp_args]
        if self.outputs != ROOT:
            common += ["--outputs-dir", str(self.outputs / "gcp-outputs")]
            common += ["--aws-outputs", str(self.aws_outputs)]
        return common

    # plans

    def gcp_plan(self, destroy: bool = False) -> CloudPlan:
        plan_file = self.build / f"gcp-{self.name}{'-destroy' * destroy}.plan"
        args = ["plan", "--detailed-exitcode", *self.gcp_common(), "--out", str(plan_file)]
        # The approval covers the data too: the destroy plan records that consent.
        args += ["--destroy", "--allow-destroy-data"] * destroy
        code, output = self.tools.run(self.tools.gcp(*args))
        if code not in (0, 2):
            raise Refused(f"the GCP plan failed (exit {code}, above): fix that, then run it again")
        return CloudPlan("GCP", gcp_plan_counts(output, plan_file), plan_file=plan_file)

    def aws_plan(self) -> CloudPlan:
        code, output = self.tools.run(self.cdk("diff"))
        if code != 0:
            raise Refused(f"cdk diff failed (exit {code}, above): fix that, then run it again")
        stacks = re.findall(r"^Stack (\S+)", ANSI.sub("", output), re.MULTILINE)
        return CloudPlan("AWS", cdk_diff_counts(output), ", ".join(stacks))

    def aws_destroy_plan(self) -> CloudPlan:
        code, output = self.tools.run(self.cdk("list"))
        if code != 0:
            raise Refused(f"cdk list failed (exit {code}, above): fix that, then run it again")
        stacks = [line.strip() for line in ANSI.sub("", output).splitlines() if line.strip()]
        stacks = [s for s in stacks if re.fullmatch(r"[A-Za-z][\w-]*", s)]
        return CloudPlan(
            "AWS",
            Counts(destroyed=len(stacks)),
            unknown=f"destroy stack {', '.join(stacks)} and every resource in it",
        )

    # approval

    def approve(self, action: str, plans: list[CloudPlan], auto: bool, confirm: str) -> None:
        name = self.name
        if confirm:
            if confirm != name:
                raise Refused(
                    f"CONFIRM={confirm} does not name this environment: pass CONFIRM={name} "
                    f"to {action} {name}"
                )
            return
        protected = name in PROTECTED
        if auto and not protected:
            return
        if auto:
            self.tools.say(
                f"AUTO_APPROVE does not approve {name}: type its name below, or pass "
                f"CONFIRM={name}."
            )
        self.tools.say(covers(action, name, plans))
        word = name if protected else "yes"
        answer = self.tools.ask(f"Type {word!r} to {action} {name}: ")
        if answer is None:
            how = f"CONFIRM={name}" if protected else "AUTO_APPROVE=1"
            raise Refused(f"nobody to ask (no input): pass {how} to {action} {name} unattended")
        given = answer.strip()
        accepted = given == name if protected else given.lower() in ("y", "yes")
        if not accepted:
            raise Refused(f"{action} cancelled: nothing changed")

    # applies

    def gcp_apply(self, command: str, plan: CloudPlan, only_uptime: bool = False) -> Applied:
        args = [command]
        summary_file = self.build / f"gcp-{self.name}-{command}-summary.json"
        if plan.plan_file is not None:
            args += [str(plan.plan_file)]
        args += self.gcp_common()
        summary_file.unlink(missing_ok=True)
        args += ["--summary-out", str(summary_file)]
        started = time.monotonic()
        code, _ = self.tools.run(self.tools.gcp(*args))
        seconds = time.monotonic() - started
        timed = gcp_timings(self.tools.seen, summary_file, seconds)
        if code != 0:
            raise Refused(
                f"gcp_stack {command} failed (exit {code}, above): what it finished "
                f"stays; run `make {command} ENV={self.name}` again to go on"
            )
        return Applied("GCP" + " (uptime check)" * only_uptime, timed, seconds)

    def uptime_pass(self) -> Applied | None:
        """GCP once more, now that AWS reports the API URL: only the uptime check and what
        depends on it may change."""
        plan = self.gcp_plan()
        changes = saved_changes(plan)
        pending = [c["key"] for c in changes if c.get("action") not in ("no-op", None)]
        allowed = uptime_keys(changes)
        others = [key for key in pending if key not in allowed]
        if others:
            raise Refused(
                f"the second GCP pass would change more than the uptime check "
                f"({', '.join(others)}): run `make plan ENV={self.name}` to see why, then "
                "deploy again"
            )
        if not pending:
            return None
        return self.gcp_apply("deploy", plan, only_uptime=True)

    def aws_deploy(self) -> Applied:
        outputs = self.aws_outputs
        argv = self.cdk(
            "deploy",
            "--all",
            "-c",
            "wheelhouse=true",
            "--require-approval",
            "never",
            "--progress",
            "events",
            "--outputs-file",
            str(outputs),
        )
        return self._aws_apply("deploy", argv, "CloudFormation rolled the stack back")

    def aws_destroy(self) -> Applied:
        argv = self.cdk("destroy", "--all", "--force", "--progress", "events")
        return self._aws_apply("destroy", argv, "GCP is left as it is")

    def _aws_apply(self, command: str, argv: list[str], meanwhile: str) -> Applied:
        """Run `cdk deploy|destroy`, timed, with each resource's time from its events."""
        started = time.monotonic()
        code, output = self.tools.run(argv)
        seconds = time.monotonic() - started
        if code != 0:
            raise Refused(
                f"cdk {command} failed (exit {code}, above; {meanwhile}): fix that, then "
                f"`make {command} ENV={self.name}` again"
            )
        return Applied("AWS", cdk_event_timings(output), seconds)


def covers(action: str, name: str, plans: list[CloudPlan]) -> str:
    """What the one approval approves, said before asking."""
    lines = [f"Plan for {name}:"] + [f"  {plan.line()}" for plan in plans]
    if action == "deploy":
        lines += [
            "This one approval covers, in this order:",
            "  1. GCP: the plan above (from its plan file when saved: a change made since is "
            "refused, not applied)",
            "  2. AWS: `cdk deploy --all` of the diff above (passed --require-approval never, "
            "because it is approved here)",
            "  3. GCP again: only the uptime check (and its alert policy), pointed at the API "
            "URL AWS reports (refused if anything else would change)",
        ]
    else:
        lines += [
            "This one approval covers, in this order:",
            "  1. AWS: `cdk destroy --all --force` (every stack above; the database's final "
            "snapshot is kept as its removal policy says)",
            "  2. GCP: `gcp_stack destroy` of what the stack owns (data included)",
        ]
    return "\n".join(lines)


@dataclass
class Applied:
    cloud: str
    timed: list[Timed]
    seconds: float


def gcp_plan_counts(output: str, plan_file: Path | None) -> Counts:
    """From the saved plan when there is one, else from the `Plan: …` line."""
    if plan_file is not None and plan_file.is_file():
        summary = json.loads(plan_file.read_text()).get("summary", {})
        return Counts(
            added=summary.get("create", 0) + summary.get("replace", 0),
            changed=summary.get("update", 0),
            destroyed=summary.get("delete", 0) + summary.get("replace", 0),
            replaced=summary.get("replace", 0),
        )
    counts = Counts()
    line = next((ln for ln in reversed(output.splitlines()) if ln.startswith("Plan: ")), "")
    for number, word in re.findall(r"(\d+) to (create|update|replace|delete)", line):
        n = int(number)
        if word == "create":
            counts.added += n
        elif word == "update":
            counts.changed += n
        elif word == "delete":
            counts.destroyed += n
        else:
            counts.added, counts.destroyed, counts.replaced = (
                counts.added + n,
                counts.destroyed + n,
                counts.replaced + n,
            )
    return counts


def saved_changes(plan: CloudPlan) -> list[dict[str, Any]]:
    """The changes of a saved plan, no-ops included (none without a plan file)."""
    if plan.plan_file is None or not plan.plan_file.is_file():
        return []
    changes: list[dict[str, Any]] = json.loads(plan.plan_file.read_text()).get("changes", [])
    return changes


def uptime_keys(changes: Sequence[dict[str, Any]]) -> set[str]:
    """The uptime check and everything that depends on it, directly or not (its alert
    policy filters on the check's id): what the API URL brings, so what the second GCP pass
    may change."""
    depends = {c["key"]: set(c.get("depends_on", [])) for c in changes}
    found = {key for key in depends if key.startswith(UPTIME_PREFIX)}
    while more := {key for key, on in depends.items() if key not in found and on & found}:
        found |= more
    return found


SYMBOL_ACTIONS = {"+": "create", "~": "update", "-/+": "replace", "-": "delete"}


def gcp_timings(
    seen: Sequence[tuple[float, str]], summary_file: Path | None, seconds: float
) -> list[Timed]:
    """Per-resource times from gcp_stack's apply summary. Without one (it stopped before
    writing it),
    each action from the plan it printed and, as its time, when its `done` line came after
    the plan's (an upper bound: changes run in parallel)."""
    if summary_file is not None and summary_file.is_file():
        summary = json.loads(summary_file.read_text())
        return sorted(
            (
                Timed(c["key"], c["action"], float(c["seconds"]), c["status"])
                for c in summary.get("changes", [])
            ),
            key=lambda t: -t.seconds,
        )
    actions: dict[str, str] = {}
    applying_since = 0.0
    timed = []
    for at, line in seen:
        if planned := re.match(r"^(-/\+|[-+~]) (.+)$", line):
            actions[planned[2]] = SYMBOL_ACTIONS[planned[1]]
        elif line.startswith("Plan: "):
            applying_since = at
        elif done := re.match(r"^\s+(done|failed) (.+)$", line):
            key = done[2]
            timed.append(Timed(key, actions.get(key, "update"), at - applying_since, done[1]))
    return sorted(timed, key=lambda t: -t.seconds)


def print_summary(tools: Tools, name: str, applied: list[Applied], limit: int = 10) -> None:
    tools.say(f"\nSummary for {name}:")
    if not applied:
        tools.say("  no changes on either cloud")
    for part in applied:
        aws = part.cloud == "AWS"
        counts = summary_counts(part.timed, terraform=not aws)
        timed = part.timed
        tools.say(
            f"  {part.cloud}: {counts.added} added, {counts.changed} changed, "
            f"{counts.destroyed} destroyed in {part.seconds:.1f}s"
        )
        for item in timed[:limit]:
            mark = " FAILED" if item.status == "failed" else ""
            tools.say(f"    {item.seconds:7.1f}s  {item.action:<8} {item.key}{mark}")
        if len(timed) > limit:
            tools.say(f"    … and {len(timed) - limit} more, each quicker")


# -- the commands --------------------------------------------------------------------------


def plan(system: System) -> int:
    gcp = system.gcp_plan()
    aws = system.aws_plan()
    system.tools.say(f"\nPlan for {system.name}:\n  {gcp.line()}\n  {aws.line()}")
    return 0


def deploy(system: System, auto: bool, confirm: str) -> int:
    gcp = system.gcp_plan()
    aws = system.aws_plan()
    if not (gcp.counts.any or aws.counts.any):
        system.tools.say(f"\nNo changes: both clouds match the code for {system.name}.")
        return 0
    system.approve("deploy", [gcp, aws], auto, confirm)
    applied = [system.gcp_apply("deploy", gcp)]
    if aws.counts.any:
        applied.append(system.aws_deploy())
    if (uptime := system.uptime_pass()) is not None:
        applied.append(uptime)
    print_summary(system.tools, system.name, applied)
    return 0


def destroy(system: System, auto: bool, confirm: str) -> int:
    aws = system.aws_destroy_plan()
    gcp = system.gcp_plan(destroy=True)
    system.approve("destroy", [aws, gcp], auto, confirm)
    applied = [system.aws_destroy(), system.gcp_apply("destroy", gcp)]
    print_summary(system.tools, system.name, applied)
    return 0


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m deployment",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["plan", "deploy", "destroy"])
    parser.add_argument("--env", default="dev", help="environments/<env>.toml (default dev)")
    parser.add_argument(
        "--auto-approve",
        action="store_true",
        help="do not ask (make: AUTO_APPROVE=1); not enough for prod",
    )
    parser.add_argument(
        "--confirm",
        default="",
        metavar="ENV",
        help="approve by naming the environment (make: CONFIRM=prod)",
    )
    parser.add_argument(
        "--cdk",
        default=os.environ.get("CDK", "npx --no-install cdk"),
        help="how to run the CDK CLI (make: $(CDK))",
    )
    parser.add_argument(
        "--outputs-root",
        type=Path,
        default=ROOT,
        help="where gcp-outputs/ and cdk-outputs/ are read and written (default: the checkout)",
    )
    parser.add_argument(
        "--gcp-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="pass ARG to every gcp_stack call (e.g. --api-endpoint=URL)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    tools = Tools(cdk=shlex.split(args.cdk))
    try:
        environment = environments.load(args.env)
        system = System(environment, tools, gcp_args=args.gcp_arg, outputs=args.outputs_root)
        if args.command == "plan":
            return plan(system)
        if args.command == "deploy":
            return deploy(system, args.auto_approve, args.confirm)
        return destroy(system, args.auto_approve, args.confirm)
    except (Refused, environments.EnvironmentFileError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: what was sent may still complete; run `make {args.command} "
            f"ENV={args.env}` again to see where things stand",
            file=sys.stderr,
        )
        return 130
