"""`python -m gcp_stack {synth,plan,deploy,destroy,outputs} --env <name>`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

import environments
from deployment.packaging import ROOT, build_artifact
from environments import outputs as handover
from gcp_stack import stack
from gcp_stack.api import Api
from gcp_stack.engine import Engine, Plan
from gcp_stack.errors import GcpStackError
from gcp_stack.names import Names
from gcp_stack.resources import Bucket, Context

SYMBOLS = {"create": "[green]+", "update": "[yellow]~", "replace": "[red]-/+", "delete": "[red]-"}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m gcp_stack", description=__doc__)
    parser.add_argument("command", choices=["synth", "plan", "deploy", "destroy", "outputs"])
    parser.add_argument("--env", default="dev", help="environments/<env>.toml (default dev)")
    parser.add_argument("--project", help="override gcp.project")
    parser.add_argument("--region", help="override gcp.region")
    parser.add_argument("--auto-approve", action="store_true", help="apply without asking")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    parser.add_argument(
        "--detailed-exitcode", action="store_true", help="plan: exit 2 when there are changes"
    )
    parser.add_argument("--force", action="store_true", help="destroy: empty the bucket first")
    parser.add_argument(
        "--parallelism", type=int, default=8, help="reads and changes in flight at once"
    )
    parser.add_argument(
        "--api-endpoint",
        default=os.environ.get("GCP_STACK_API_ENDPOINT"),
        help="send every API call to this server, e.g. the fake control plane "
        "(env GCP_STACK_API_ENDPOINT)",
    )
    parser.add_argument(
        "--api-url",
        help="the AWS API's URL, for the uptime check (default: ApiUrl in --aws-outputs; "
        "no uptime check when unknown)",
    )
    parser.add_argument(
        "--aws-outputs", type=Path, help="cdk deploy's outputs file (cdk-outputs/<env>.json)"
    )
    parser.add_argument(
        "--outputs-dir",
        type=Path,
        default=handover.ROOT / "gcp-outputs",
        help="where deploy writes <env>.json",
    )
    parser.add_argument(
        "--poll-interval", type=float, default=1.0, help="first wait between operation polls (s)"
    )
    return parser.parse_args(argv)


def load_environment(args: argparse.Namespace) -> environments.Environment:
    environment = environments.load(args.env)
    overrides = {k: v for k, v in {"project": args.project, "region": args.region}.items() if v}
    if overrides:
        gcp = environment.gcp.model_copy(update=overrides)
        environment = environment.model_copy(update={"gcp": gcp})
    return environment


def aws_api_url(args: argparse.Namespace) -> str:
    if args.api_url:
        return args.api_url
    found = handover.read_aws(args.aws_outputs or handover.aws_path(args.env))
    return (found.api_url if found else None) or ""


def print_plan(console: Console, plan: Plan) -> None:
    for change in plan.pending:
        console.print(f"{SYMBOLS[change.action]} {change.key}[/]", highlight=False)
        if change.reason:
            console.print(f"      ({change.reason})", highlight=False, markup=False)
        if change.action in ("update", "replace"):
            for field in change.fields:
                before = json.dumps(field.before)[:80]
                after = json.dumps(field.after)[:80]
                console.print(f"      {field.path}: {before} → {after}", highlight=False)
    console.print(f"Plan: {plan.summary()}.")


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
    )


def project_number(api: Api, project: str) -> str:
    projects = api.client("cloudresourcemanager", "v1").projects()
    found = api.call(f"project/{project}", "read", lambda: projects.get(projectId=project))
    return str(found["projectNumber"])


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    console = Console(stderr=args.json, soft_wrap=True)
    try:
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
        for resource in resources:
            if isinstance(resource, Bucket):
                resource.force_destroy = args.force
        engine = Engine(resources, ctx, parallelism=args.parallelism)
        plan = engine.plan(destroy=args.command == "destroy")
        if args.command == "outputs":
            print(outputs(engine, environment).model_dump_json(indent=2))
            return 0
        if args.json:
            print(plan.to_json())
        else:
            print_plan(console, plan)
        if args.command == "plan":
            return 2 if args.detailed_exitcode and plan.pending else 0
        if plan.pending:
            if not args.auto_approve:
                if not sys.stdin.isatty():
                    console.print("[red]refusing to apply without a terminal: pass --auto-approve")
                    return 1
                if console.input(f"Apply {plan.summary()}? [y/N] ").strip().lower() != "y":
                    console.print("nothing changed")
                    return 1
            with console.status("applying…") as status:

                def progress(key: str, state: str) -> None:
                    status.update(f"{state}: {key}")
                    if state in ("done", "failed"):
                        console.print(f"  {state:>6} {key}", highlight=False)

                try:
                    engine.apply(plan, progress)
                except KeyboardInterrupt:
                    console.print(
                        "[red]interrupted:[/] changes already sent may still complete; "
                        f"run `python -m gcp_stack {args.command}` again to finish"
                    )
                    return 130
        if args.command == "deploy":
            engine.read_all()
            path = handover.gcp_path(environment.name, args.outputs_dir)
            handover.write_gcp(outputs(engine, environment), path)
            console.print(f"outputs written to {path}")
        return 0
    except environments.EnvironmentFileError as error:
        console.print(f"[red]error:[/] {error}", highlight=False)
        return 2
    except GcpStackError as error:
        console.print(f"[red]error:[/] {error}", highlight=False)
        return 1


if __name__ == "__main__":
    sys.exit(main())
