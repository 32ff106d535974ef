"""`python -m gcp_stack {synth,plan,deploy,destroy,outputs} --env <name>`.

Exit codes as Terraform's: 0 done, 1 an error (one sentence saying what is wrong and how to
fix it), 2 only from `plan --detailed-exitcode` when there are changes; 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

from pydantic import ValidationError
from rich.console import Console
from rich.text import Text

import environments
from deployment.packaging import ROOT, build_artifact
from environments import outputs as handover
from gcp_stack import stack
from gcp_stack.api import Api
from gcp_stack.engine import Engine, Plan
from gcp_stack.errors import GcpStackError
from gcp_stack.lock import StackLock
from gcp_stack.names import Names
from gcp_stack.resources import Bucket, Context, Resource

SYMBOLS = {
    "create": ("+", "green"),
    "update": ("~", "yellow"),
    "replace": ("-/+", "red"),
    "delete": ("-", "red"),
    "conflict": ("!", "red"),
}
COMMANDS = {
    "synth": "print the desired state as JSON (no cloud needed)",
    "plan": "show what deploy would change",
    "deploy": "apply the plan, then write gcp-outputs/<env>.json",
    "destroy": "delete everything the stack owns (APIs stay enabled)",
    "outputs": "print what deploy hands the AWS side",
    "import": "adopt an existing resource the plan shows as a conflict (adds the stack label)",
    "force-unlock": "remove the stack's lock left by a run that died",
}
LOCKED = ("deploy", "destroy", "import")  # the commands that change anything


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


def parse(argv: list[str] | None) -> argparse.Namespace:
    common = _Parser(add_help=False)
    common.add_argument("--env", default="dev", help="environments/<env>.toml (default dev)")
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
    parser = _Parser(prog="python -m gcp_stack", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, summary in COMMANDS.items():
        command = commands.add_parser(
            name, parents=[common], help=summary, description=summary,
            prog=f"python -m gcp_stack {name}",
        )  # fmt: skip
        command.set_defaults(json=False, detailed_exitcode=False, auto_approve=False, force=False)
        if name in ("plan", "deploy", "destroy"):
            command.add_argument("--json", action="store_true", help="print the plan as JSON")
        if name == "plan":
            command.add_argument(
                "--detailed-exitcode", action="store_true", help="exit 2 when there are changes"
            )
        if name in ("deploy", "destroy"):
            command.add_argument("--auto-approve", action="store_true", help="apply, no asking")
        if name == "destroy":
            command.add_argument("--force", action="store_true", help="empty the bucket first")
        if name == "import":
            command.add_argument("key", help="the resource's key, as the plan names it")
    return parser.parse_args(argv)


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
    """A value whole: on one line when short, else indented JSON on as many as it needs."""
    text = json.dumps(value)
    return text if len(text) <= 80 else json.dumps(value, indent=2).replace("\n", "\n        ")


def print_plan(console: Console, plan: Plan) -> None:
    # Text, not markup: keys and values are the user's and Google's ([a-z] stays as it is).
    for change in plan.pending:
        symbol, colour = SYMBOLS[change.action]
        console.print(Text(f"{symbol} {change.key}", style=colour))
        if change.reason:
            console.print(Text(f"      ({change.reason})"))
        if change.action in ("update", "replace"):
            for field in change.fields:
                text = f"      {field.path}: {_shown(field.before)} → {_shown(field.after)}"
                console.print(Text(text))
    console.print(Text(f"Plan: {plan.summary()}."))


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


def run(args: argparse.Namespace, console: Console) -> int:
    environment = load_environment(args)
    artifact = build_artifact(ROOT / "build" / "artifacts")
    resources = stack.build(environment, api_url=aws_api_url(args))
    if args.command == "synth":
        ctx = Context(api=None, project=environment.gcp.project,  # type: ignore[arg-type]
                      region=environment.gcp.region, artifact=artifact,
                      project_number="{project_number}")  # fmt: skip
        desired = [
            {
                "key": r.key,
                "kind": r.kind,
                "depends_on": list(r.depends_on),
                "body": r.body(ctx),
            }
            for r in resources
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
    lock = StackLock(api, ctx.project, environment.prefix)
    if args.command == "force-unlock":
        removed = lock.force_unlock()
        console.print(Text(f"lock of {environment.prefix} removed" if removed else "no lock held"))
        return 0
    if args.command not in LOCKED:
        return carry_out(args, console, environment, resources, ctx)
    lock.acquire(args.command)
    try:
        return carry_out(args, console, environment, resources, ctx)
    finally:
        lock.release()


def carry_out(
    args: argparse.Namespace,
    console: Console,
    environment: environments.Environment,
    resources: list[Resource],
    ctx: Context,
) -> int:
    for resource in resources:
        if isinstance(resource, Bucket):
            resource.force_destroy = args.force
    engine = Engine(resources, ctx, parallelism=args.parallelism)
    plan = engine.plan(destroy=args.command == "destroy")
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
    if args.json:
        print(plan.to_json())
    else:
        print_plan(console, plan)
    if plan.conflicts:
        raise UsageError(
            f"{len(plan.conflicts)} resource(s) exist but are not this stack's (marked ! "
            "above): import them with `python -m gcp_stack import KEY`, or remove them"
        )
    if args.command == "plan":
        return 2 if args.detailed_exitcode and plan.pending else 0
    if plan.pending:
        if not args.auto_approve:
            if not sys.stdin.isatty():
                raise UsageError("refusing to apply without a terminal to ask: pass --auto-approve")
            answer = console.input(Text(f"Apply {plan.summary()}? [y/N] "))
            if answer.strip().lower() not in ("y", "yes"):
                console.print(Text("Apply cancelled: nothing changed."))
                return 1
        with console.status("applying…") as status:

            def progress(key: str, state: str) -> None:
                status.update(f"{state}: {key}")
                if state in ("done", "failed"):
                    console.print(Text(f"  {state:>6} {key}"))

            engine.apply(plan, progress)
    if args.command == "deploy":
        engine.read_all()
        path = handover.gcp_path(environment.name, args.outputs_dir)
        handover.write_gcp(outputs(engine, environment), path)
        console.print(Text(f"outputs written to {path}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
