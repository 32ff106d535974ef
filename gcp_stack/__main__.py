"""python -m gcp_stack COMMAND [options]: the GCP half of skybridge, planned and applied
like Terraform (plan, saved plans, targets, a lock in Cloud Storage, no adoption unasked).

Exit codes as Terraform's: 0 done, 1 an error (one sentence saying what is wrong and how to
fix it), 2 only from `plan --detailed-exitcode` when there are changes; 130 interrupted.
Every command takes `COMMAND --help`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Literal, NoReturn
from urllib.parse import urlsplit

from pydantic import ValidationError
from rich.console import Console
from rich.text import Text

import environments
from deployment.packaging import ROOT, build_artifact
from environments import outputs as handover
from environments import plans
from gcp_stack import stack
from gcp_stack.api import Api
from gcp_stack.engine import Applied, Change, DataLoss, Engine, FieldChange, Plan
from gcp_stack.errors import GcpStackError
from gcp_stack.lock import StackLock
from gcp_stack.names import Names
from gcp_stack.resources import Context, Resource
from gcp_stack.resources.base import REFERENCE

SYMBOLS = {
    "create": ("+", "green"),
    "update": ("~", "yellow"),
    "replace": ("-/+", "red"),
    "delete": ("-", "red"),
    "conflict": ("!", "red"),
}
COMMANDS = {
    "synth": "print the desired state as JSON (no cloud needed)",
    "plan": "show what deploy would change, and save it with --out",
    "deploy": "apply a plan (a fresh one, or a saved one), then write gcp-outputs/<env>.json",
    "destroy": "delete everything the stack owns (APIs stay enabled)",
    "outputs": "print what deploy hands the AWS side",
    "import": "adopt an existing resource the plan shows as a conflict (adds the stack label)",
    "force-unlock": "remove the stack's lock left by a run that died",
}
# What `COMMAND --help` says before the options, as Terraform's help does.
DETAILS = {
    "synth": """
Prints every resource the stack declares (key, kind, dependencies, request body) for the
environment, without calling Google. Keys that hold the project number show the
placeholder {project_number}; plan shows the number itself.""",
    "plan": """
Reads the live state of every resource the stack declares, and finds what carries the
stack's label in every region (orphans), then prints what deploy would change:
  +   create      ~   update in place      -/+ replace      -   delete
  !   conflict: exists but is not this stack's (adopt it with `import`)
A delete or replace that loses data (a bucket's objects, a subscription's backlog, a
topic's retained messages) says so; deploy refuses it without --allow-destroy-data.
Changes nothing. With --out FILE the plan is saved, and `deploy FILE` applies exactly it.""",
    "deploy": """
Without PLAN: makes a plan, shows it and asks before applying it (y or yes; --auto-approve
does not ask). With PLAN, a file from `plan --out`: applies exactly that plan without
asking, and refuses if the configuration or the live state of what it changes moved
since. Holds the stack's lock while it runs. Ends with one line
"Apply complete: N added, M changed, K destroyed." and each change's time.""",
    "destroy": """
Deletes everything the stack declares and everything labelled as the stack's, but what is
not this stack's (no stack label) and the enabled APIs. Asks first (--auto-approve does
not). Data (bucket objects, backlogs) is deleted only with --allow-destroy-data, which
empties the buckets first (Terraform's force_destroy). PLAN: a file from
`plan --destroy --out FILE`.""",
    "outputs": """
Reads the deployed stack and prints what deploy hands the AWS side (gcp-outputs/<env>.json):
the ingest URL, the relay's credential configuration, topics, bucket.""",
    "import": """
Puts the stack's label on an existing resource of a name the stack declares, so that the
stack manages it from now on (and destroy deletes it). The next plan shows how it differs.""",
    "force-unlock": """
Deletes the lock object (gs://<project>-gcp-stack-locks/<stack>.lock) whoever holds it.
Only when the run that held it is dead: the lock stops two runs changing the stack at
once.""",
}
EXAMPLES = {
    "plan": """examples:
  python -m gcp_stack plan --env dev
  python -m gcp_stack plan --env dev --out dev.plan           # then: deploy dev.plan
  python -m gcp_stack plan --env dev -out=dev.plan            # Terraform's spelling
  python -m gcp_stack plan --env dev --target topic/skybridge-dev-submissions
  python -m gcp_stack plan --env dev --destroy --out destroy.plan""",
    "deploy": """examples:
  python -m gcp_stack deploy --env dev
  python -m gcp_stack deploy dev.plan --summary-out build/gcp-apply.json""",
    "destroy": """examples:
  python -m gcp_stack destroy --env dev --allow-destroy-data
  python -m gcp_stack destroy destroy.plan""",
}
LOCKED = ("deploy", "destroy", "import")  # the commands that change anything
FORMAT = argparse.RawDescriptionHelpFormatter


class UsageError(Exception):
    """A command line that cannot work; the message says why and how to fix it."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an http(s) URL with a host, such as https://api.example.com"
        )
    return value


def _common(parser: argparse.ArgumentParser) -> None:
    """The options every command takes, listed after its own (as Terraform's help does)."""
    common = parser.add_argument_group("options of every command")
    common.add_argument("--env", help="environments/<env>.toml (default dev, or the plan's)")
    common.add_argument("--project", help="override gcp.project")
    common.add_argument("--region", help="override gcp.region")
    common.add_argument(
        "--parallelism", type=int, default=8, help="reads and changes in flight at once"
    )
    common.add_argument(
        "--api-endpoint",
        type=_url,
        default=os.environ.get("GCP_STACK_API_ENDPOINT"),
        help="send every API call to this server, e.g. the fake control plane "
        "(env GCP_STACK_API_ENDPOINT)",
    )
    common.add_argument(
        "--api-url",
        type=_url,
        help="the AWS API's URL, for the uptime check (default: ApiUrl in --aws-outputs; "
        "no uptime check when unknown)",
    )
    common.add_argument(
        "--aws-outputs", type=Path, help="cdk deploy's outputs file (cdk-outputs/<env>.json)"
    )
    common.add_argument(
        "--outputs-dir",
        type=Path,
        default=handover.ROOT / "gcp-outputs",
        help="where deploy writes <env>.json",
    )
    common.add_argument(
        "--poll-interval", type=float, default=1.0, help="first wait between operation polls (s)"
    )


def _selection(command: argparse._ArgumentGroup, name: str) -> None:
    """Options that choose what a plan changes (plan, deploy and destroy)."""
    command.add_argument(
        "--target", "-target", action="append", default=[], metavar="KEY",
        help="only this resource and what it depends on (destroy: what depends on it); "
        "repeatable",
    )  # fmt: skip
    if name != "destroy":
        command.add_argument(
            "--replace", "-replace", action="append", default=[], metavar="KEY",
            help="replace this resource even if nothing differs; repeatable",
        )  # fmt: skip
    command.add_argument(
        "--allow-destroy-data", action="store_true",
        help="let deletes and replaces lose the data they hold (buckets are emptied first)",
    )  # fmt: skip


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = _Parser(prog="python -m gcp_stack", description=__doc__, formatter_class=FORMAT)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, summary in COMMANDS.items():
        parsed = commands.add_parser(
            name, help=summary, prog=f"python -m gcp_stack {name}",
            usage=f"python -m gcp_stack {name}{' [PLAN]' if name in ('deploy', 'destroy') else ''}"
            f"{' KEY' if name == 'import' else ''} [options]",
            description=f"{summary[0].upper()}{summary[1:]}.\n{DETAILS[name]}",
            epilog=EXAMPLES.get(name), formatter_class=FORMAT,
        )  # fmt: skip
        parsed.set_defaults(
            json=False, detailed_exitcode=False, auto_approve=False, plan=None, destroy=False,
            out=None, target=[], replace=[], allow_destroy_data=False, summary_out=None,
        )  # fmt: skip
        if name in ("deploy", "destroy"):
            parsed.add_argument(
                "plan", nargs="?", type=Path, metavar="PLAN",
                help="a plan file from `plan --out`: apply exactly it, without asking",
            )  # fmt: skip
        if name == "import":
            parsed.add_argument("key", help="the resource's key, as the plan names it")
        if name in ("plan", "deploy", "destroy"):
            _own(parsed, name)
        _common(parsed)
    return parser.parse_args(argv)


def _own(parsed: argparse.ArgumentParser, name: str) -> None:
    """The options of plan, deploy and destroy."""
    command = parsed.add_argument_group(f"{name} options")
    if name == "plan":
        command.add_argument(
            "--out", "-out", type=Path, metavar="FILE",
            help="save the plan to FILE, for `deploy FILE` (or `destroy FILE`)",
        )  # fmt: skip
        command.add_argument(
            "--destroy", action="store_true", help="plan a destroy instead of a deploy"
        )
        command.add_argument(
            "--detailed-exitcode", action="store_true",
            help="exit 0 when there are no changes, 2 when there are, 1 on an error",
        )  # fmt: skip
    else:
        command.add_argument(
            "--auto-approve", action="store_true",
            help="apply without asking (a PLAN is applied without asking anyway)",
        )  # fmt: skip
    _selection(command, name)
    command.add_argument(
        "--json", action="store_true",
        help="print the plan as JSON" if name == "plan" else "print the plan, then the "
        "apply summary, as JSON (one document a line)",
    )  # fmt: skip
    if name != "plan":
        command.add_argument(
            "--summary-out", type=Path, metavar="FILE",
            help="write the apply summary (added / changed / destroyed, each change's "
            "time) as JSON to FILE",
        )  # fmt: skip
    if name == "destroy":
        command.add_argument(
            "--force", dest="allow_destroy_data", action="store_true",
            help="the older name of --allow-destroy-data",
        )  # fmt: skip


def load_environment(args: argparse.Namespace) -> environments.Environment:
    environment = environments.load(args.env)
    overrides = {k: v for k, v in {"project": args.project, "region": args.region}.items() if v}
    if overrides:
        try:  # validated like the file's own values
            gcp = environments.GcpSettings.model_validate(environment.gcp.model_dump() | overrides)
        except ValidationError as error:
            item = error.errors()[0]
            field = str(item["loc"][0])
            raise UsageError(f"--{field} {overrides[field]!r}: {item['msg']}") from None
        environment = environment.model_copy(update={"gcp": gcp})
    return environment


def aws_api_url(args: argparse.Namespace) -> str:
    if args.api_url:
        return args.api_url
    found = handover.read_aws(args.aws_outputs or handover.aws_path(args.env))
    return (found.api_url if found else None) or ""


def _shown(value: Any) -> str:
    """A value whole: on one line when short, else indented JSON on as many as it needs; a
    reference to another resource's output not known yet shows as Terraform shows it."""
    text = json.dumps(value)
    if len(text) > 80:
        text = json.dumps(value, indent=2).replace("\n", "\n        ")
    return REFERENCE.sub("(known after apply)", text)


def print_plan(console: Console, plan: Plan, targets: list[str]) -> None:
    # Text, not markup: keys and values are the user's and Google's ([a-z] stays as it is).
    for change in plan.pending:
        symbol, colour = SYMBOLS[change.action]
        console.print(Text(f"{symbol} {change.key}", style=colour))
        if change.reason:
            console.print(Text(f"      ({change.reason})"))
        if change.destroys_data:
            console.print(Text(f"      destroys data: {change.destroys_data}", style="red"))
        if change.action in ("update", "replace"):
            for field in change.fields:
                text = f"      {field.path}: {_shown(field.before)} → {_shown(field.after)}"
                console.print(Text(text))
    lost = len(plan.destructive)
    data = f" {lost} of them {'destroys' if lost == 1 else 'destroy'} data." if lost else ""
    console.print(Text(f"Plan: {plan.summary()}.{data}"))
    if targets:  # as Terraform warns of -target
        console.print(Text(f"Only {', '.join(targets)} and what they need: the rest of the "
                           "stack may differ from its configuration."))  # fmt: skip


def document(
    plan: Plan, environment: environments.Environment, engine: Engine, args: argparse.Namespace
) -> plans.PlanDocument:
    return plans.PlanDocument.model_validate(
        plan.to_dict()
        | {
            "stack": environment.prefix,
            "env": environment.name,
            "project": engine.ctx.project,
            "region": engine.ctx.region,
            "targets": args.target,
            "replace": args.replace,
            "allow_destroy_data": args.allow_destroy_data,
            "desired_hash": engine.desired_hash(),
            "destroys_data": [change.key for change in plan.destructive],
        }
    )


def saved_plan(saved: plans.PlanDocument) -> Plan:
    changes = [
        Change(
            **change.model_dump(exclude={"fields"}),
            fields=[FieldChange(**field.model_dump()) for field in change.fields],
        )
        for change in saved.changes
    ]
    return Plan(changes, destroy=saved.destroy)


VERBS = {  # Terraform's words: "Creating...", "Creation complete after 3s"
    "create": ("Creating", "Creation"),
    "update": ("Modifying", "Modifications"),
    "replace": ("Replacing", "Replacement"),
    "delete": ("Destroying", "Destruction"),
}


def _duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest}s" if minutes else f"{rest}s"


def summarise(
    applied: list[Applied], plan: Plan, args: argparse.Namespace,
    environment: environments.Environment, seconds: float,
) -> plans.ApplySummary:  # fmt: skip
    done = [a for a in applied if a.status == "done"]
    count = {action: sum(1 for a in done if a.action == action) for action in VERBS}
    failed = sum(1 for a in applied if a.status == "failed")
    status: Literal["applied", "no changes", "failed"] = "applied" if plan.pending else "no changes"
    if failed or len(done) < len(plan.pending):
        status = "failed"
    return plans.ApplySummary(
        stack=environment.prefix,
        env=environment.name,
        project=environment.gcp.project,
        region=environment.gcp.region,
        command=args.command,
        status=status,
        added=count["create"] + count["replace"],
        changed=count["update"],
        destroyed=count["delete"] + count["replace"],
        failed=failed,
        skipped=sum(1 for a in applied if a.status == "skipped"),
        seconds=round(seconds, 3),
        changes=[
            plans.AppliedChange(**vars(a) | {"seconds": round(a.seconds, 3)}) for a in applied
        ],
    )


def error_line(console: Console, message: str) -> None:
    console.print(Text.assemble(("error: ", "red"), message))


def credential_config(ctx: Context, names: Names, aws_region: str) -> dict[str, Any]:
    """The external_account configuration the relay's google-auth reads on EC2."""
    imds = "http://169.254.169.254/latest"
    return {
        "type": "external_account",
        "audience": f"//iam.googleapis.com/projects/{ctx.project_number}/locations/global/"
        f"workloadIdentityPools/{names.pool}/providers/{names.provider}",
        "subject_token_type": "urn:ietf:params:aws:token-type:aws4_request",
        "token_url": "https://sts.googleapis.com/v1/token",
        "credential_source": {
            "environment_id": "aws1",
            "region_url": f"{imds}/meta-data/placement/availability-zone",
            "url": f"{imds}/meta-data/iam/security-credentials",
            "regional_cred_verification_url": "https://sts.{region}.amazonaws.com"
            "?Action=GetCallerIdentity&Version=2011-06-15",
            "imdsv2_session_token_url": f"{imds}/api/token",
        },
        "universe_domain": "googleapis.com",
        "aws_region_hint": aws_region,
    }


def outputs(engine: Engine, environment: environments.Environment) -> handover.GcpOutputs:
    names = Names(environment.prefix, environment.gcp.project)
    ingest = engine.outputs.get(f"function/{names.function('ingest')}", {})
    config = credential_config(engine.ctx, names, environment.aws.region)
    config.pop("aws_region_hint")
    return handover.GcpOutputs(
        project=environment.gcp.project,
        region=environment.gcp.region,
        ingest_url=ingest.get("url") or "",
        credential_config=config,
        service_account=names.email("relay"),
        bucket=names.bucket,
        topic=f"projects/{environment.gcp.project}/topics/{names.topic}",
        dead_letter_topic=f"projects/{environment.gcp.project}/topics/{names.dead_letter}",
        receipts_topic=f"projects/{environment.gcp.project}/topics/{names.receipts}",
        receipts_subscription=(
            f"projects/{environment.gcp.project}/subscriptions/{names.receipts_subscription}"
        ),
    )


def adopt(engine: Engine, key: str, console: Console) -> int:
    """`import KEY`: put the stack label on an existing resource the stack declares."""
    resource = engine.resources.get(key)
    if resource is None:
        raise UsageError(f"{key!r} is not a resource of this stack: `plan` lists their keys")
    live = engine.ctx.live.get(key)
    if live is None:
        raise UsageError(f"{key} does not exist in project {engine.ctx.project}: nothing to import")
    if resource.owned_by(live, engine.ctx):
        console.print(Text(f"{key} is already this stack's"))
        return 0
    resource.update(engine.ctx, [resource.label_field])
    console.print(Text(f"imported {key}: the next plan shows what differs from the stack"))
    return 0


def project_number(api: Api, project: str) -> str:
    projects = api.client("cloudresourcemanager", "v1").projects()
    found = api.call(f"project/{project}", "read", lambda: projects.get(projectId=project))
    return str(found["projectNumber"])


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse(argv)
    except UsageError as error:
        error_line(Console(stderr=True, soft_wrap=True), str(error))
        return 1
    console = Console(stderr=args.json, soft_wrap=True)
    try:
        return run(args, console)
    except KeyboardInterrupt:
        error_line(
            console,
            "interrupted: changes already sent may still complete; run "
            f"`python -m gcp_stack {args.command}` again to finish",
        )
        return 130
    except (UsageError, environments.EnvironmentFileError, GcpStackError) as error:
        error_line(console, str(error))
        return 1


def read_saved(args: argparse.Namespace) -> plans.PlanDocument | None:
    """The plan file of `deploy PLAN` / `destroy PLAN`, checked against the command line."""
    if args.plan is None:
        args.env = args.env or "dev"
        return None
    saved = plans.read_plan(args.plan)
    if args.target or args.replace:
        raise UsageError(
            f"{args.plan} already says what to change: leave out --target and --replace, or "
            "make a new plan with them"
        )
    if args.env and args.env != saved.env:
        raise UsageError(f"{args.plan} is a plan for env {saved.env}, not {args.env}: "
                         f"leave out --env, or make a plan for {args.env}")  # fmt: skip
    if args.command == "destroy" and not saved.destroy:
        raise UsageError(f"{args.plan} is a deploy plan: apply it with `deploy {args.plan}`, "
                         "or make a destroy plan with `plan --destroy --out FILE`")  # fmt: skip
    args.env = saved.env
    args.target, args.replace = saved.targets, saved.replace
    args.allow_destroy_data = args.allow_destroy_data or saved.allow_destroy_data
    return saved


def run(args: argparse.Namespace, console: Console) -> int:
    saved = read_saved(args)
    environment = load_environment(args)
    if saved and (saved.project, saved.region) != (environment.gcp.project, environment.gcp.region):
        raise UsageError(
            f"{args.plan} is a plan for project {saved.project} in {saved.region}, not "
            f"{environment.gcp.project} in {environment.gcp.region}: leave out --project and "
            "--region, or make a new plan"
        )
    artifact = build_artifact(ROOT / "build" / "artifacts")
    if args.command == "synth":
        ctx = Context(api=None, project=environment.gcp.project,  # type: ignore[arg-type]
                      region=environment.gcp.region, artifact=artifact,
                      project_number=stack.NUMBER_PLACEHOLDER)  # fmt: skip
        desired = [
            {
                "key": r.key,
                "kind": r.kind,
                "depends_on": list(r.depends_on),
                "body": r.body(ctx),
            }
            for r in stack.build(environment, api_url=aws_api_url(args))
        ]
        print(json.dumps({"environment": environment.name, "resources": desired}, indent=2))
        return 0
    api = Api(endpoint=args.api_endpoint, poll_initial=args.poll_interval)
    ctx = Context(
        api=api,
        project=environment.gcp.project,
        region=environment.gcp.region,
        artifact=artifact,
        stack=environment.prefix,
    )
    ctx.project_number = project_number(api, ctx.project)
    # The keys hold the number itself (an IAM member of the Pub/Sub agent), not {project_number}.
    resources = stack.build(
        environment, api_url=aws_api_url(args), project_number=ctx.project_number
    )
    args.target = [key.replace(stack.NUMBER_PLACEHOLDER, ctx.project_number) for key in args.target]
    args.replace = [
        key.replace(stack.NUMBER_PLACEHOLDER, ctx.project_number) for key in args.replace
    ]
    lock = StackLock(api, ctx.project, environment.prefix)
    if args.command == "force-unlock":
        removed = lock.force_unlock()
        console.print(Text(f"lock of {environment.prefix} removed" if removed else "no lock held"))
        return 0
    if args.command not in LOCKED:
        return carry_out(args, console, environment, resources, ctx, saved)
    lock.acquire(args.command)
    try:
        return carry_out(args, console, environment, resources, ctx, saved)
    finally:
        lock.release()


def carry_out(
    args: argparse.Namespace,
    console: Console,
    environment: environments.Environment,
    resources: list[Resource],
    ctx: Context,
    saved: plans.PlanDocument | None,
) -> int:
    engine = Engine(resources, ctx, parallelism=args.parallelism)
    if saved is None:
        destroy = args.command == "destroy" or args.destroy
        plan = engine.plan(destroy=destroy, targets=args.target, replace=args.replace)
    else:
        plan = applicable(engine, saved, args.plan)
    if args.command == "import":
        return adopt(engine, args.key, console)
    if args.command == "outputs":
        values = outputs(engine, environment)
        if not values.ingest_url:
            raise UsageError(
                f"nothing of {environment.prefix} is deployed in project {ctx.project}: "
                f"run `python -m gcp_stack deploy --env {environment.name}` first"
            )
        print(values.model_dump_json(indent=2))
        return 0
    made = saved or document(plan, environment, engine, args)
    if args.json:
        print(made.model_dump_json(indent=2 if args.command == "plan" else None))
    else:
        print_plan(console, plan, args.target)
    if plan.conflicts:
        raise UsageError(
            f"{len(plan.conflicts)} resource(s) exist but are not this stack's (marked ! "
            "above): import them with `python -m gcp_stack import KEY`, or remove them"
        )
    if args.command == "plan":
        if args.out:
            plans.write(made, args.out)
            verb = "destroy" if plan.destroy else "deploy"
            console.print(Text(f"Saved the plan to {args.out}: apply exactly it with "
                               f"`python -m gcp_stack {verb} {args.out}`"))  # fmt: skip
        return 2 if args.detailed_exitcode and plan.pending else 0
    if plan.destructive and not args.allow_destroy_data:
        raise DataLoss(plan.destructive)
    if plan.pending and saved is None and not args.auto_approve:
        if not sys.stdin.isatty():
            raise UsageError("refusing to apply without a terminal to ask: pass --auto-approve")
        answer = console.input(Text(f"Apply {plan.summary()}? [y/N] "))
        if answer.strip().lower() not in ("y", "yes"):
            console.print(Text("Apply cancelled: nothing changed."))
            return 1
    started = time.monotonic()
    try:
        if plan.pending:
            apply(console, engine, plan, args.allow_destroy_data)
    finally:
        summary = summarise(engine.applied, plan, args, environment, time.monotonic() - started)
        word = "failed" if summary.status == "failed" else "complete"
        console.print(Text(f"Apply {word}: {summary.added} added, {summary.changed} changed, "
                           f"{summary.destroyed} destroyed."))  # fmt: skip
        if args.summary_out:
            plans.write(summary, args.summary_out)
        if args.json:
            print(summary.model_dump_json())
    if args.command == "deploy" and not plan.destroy:
        engine.read_all()
        path = handover.gcp_path(environment.name, args.outputs_dir)
        handover.write_gcp(outputs(engine, environment), path)
        console.print(Text(f"outputs written to {path}"))
    return 0


def applicable(engine: Engine, saved: plans.PlanDocument, path: Path) -> Plan:
    """The saved plan, if it still applies: same configuration, same live state."""
    if engine.desired_hash() != saved.desired_hash:
        raise UsageError(
            f"the configuration changed since {path} was made (environment file, code or "
            f"--api-url): make a new plan with `python -m gcp_stack plan --out {path}`"
        )
    plan = saved_plan(saved)
    moved = engine.moved(plan)
    if moved:
        raise UsageError(
            f"the live state of {', '.join(moved)} changed since {path} was made: make a new "
            f"plan with `python -m gcp_stack plan --out {path}`"
        )
    return plan


def apply(console: Console, engine: Engine, plan: Plan, allow_destroy_data: bool) -> None:
    with console.status("applying…") as status:

        def progress(event: Applied | Change) -> None:
            if isinstance(event, Change):
                status.update(f"{VERBS[event.action][0]}: {event.key}")
                console.print(Text(f"{event.key}: {VERBS[event.action][0]}..."))
            elif event.status == "done":
                noun = VERBS[event.action][1]
                console.print(Text(f"{event.key}: {noun} complete after "
                                   f"{_duration(event.seconds)}"))  # fmt: skip
            elif event.status == "failed":
                console.print(Text(f"{event.key}: failed after {_duration(event.seconds)}",
                                   style="red"))  # fmt: skip
            else:
                console.print(Text(f"{event.key}: not attempted (a dependency failed)"))

        engine.apply(plan, progress, allow_destroy_data=allow_destroy_data)


if __name__ == "__main__":
    sys.exit(main())
