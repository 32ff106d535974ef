"""`python -m deployment.preflight --env <name>`: check before touching either cloud.

Both clouds' credentials are present, they point at the account and project named in
`environments/<name>.toml`, the AWS account/region is CDK-bootstrapped, and RDS still
creates the MySQL version the database would get (it retires old minors). Each failure
says how to fix it. Exit code: 0 when every check passes, 1 when any fails, 2 when the
environment file cannot be read.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any

import environments

BOOTSTRAP_PARAMETER = "/cdk-bootstrap/hnb659fds/version"


@dataclass(frozen=True)
class Finding:
    check: str
    ok: bool
    detail: str


def check_aws(env: environments.Environment) -> list[Finding]:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        identity = boto3.client("sts", region_name=env.aws.region).get_caller_identity()
    except NoCredentialsError:
        return [
            Finding(
                "aws credentials",
                False,
                "no AWS credentials: run `aws configure sso` or set AWS_PROFILE",
            )
        ]
    except (BotoCoreError, ClientError) as error:
        return [Finding("aws credentials", False, f"AWS rejected the credentials: {error}")]
    findings = [Finding("aws credentials", True, identity["Arn"])]
    if identity["Account"] != env.aws.account:
        findings.append(
            Finding(
                "aws account",
                False,
                f"credentials are for account {identity['Account']}, but "
                f"environments/{env.name}.toml has aws.account = {env.aws.account}: "
                "switch AWS_PROFILE or fix the file",
            )
        )
        return findings
    findings.append(Finding("aws account", True, env.aws.account))
    try:
        version = boto3.client("ssm", region_name=env.aws.region).get_parameter(
            Name=BOOTSTRAP_PARAMETER
        )["Parameter"]["Value"]
        findings.append(Finding("cdk bootstrap", True, f"version {version}"))
    except ClientError:
        findings.append(
            Finding(
                "cdk bootstrap",
                False,
                f"aws://{env.aws.account}/{env.aws.region} is not bootstrapped: run "
                f"`npx cdk bootstrap aws://{env.aws.account}/{env.aws.region}`",
            )
        )
    return findings


def check_database_version(env: environments.Environment, client: Any = None) -> Finding:
    """The engine version the stack asks for is one RDS creates in the region."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from deployment.database_version import engine_version

    version, region = engine_version(env.aws.db_engine_version), env.aws.region
    client = client or boto3.client("rds", region_name=region)
    try:
        pages = client.get_paginator("describe_db_engine_versions").paginate(Engine="mysql")
        offered = [v["EngineVersion"] for page in pages for v in page["DBEngineVersions"]]
    except (BotoCoreError, ClientError) as error:
        return Finding(
            "database version", False, f"cannot list RDS's MySQL versions in {region}: {error}"
        )
    if version in offered:
        return Finding("database version", True, f"MySQL {version} is offered in {region}")
    newest = sorted(
        (v for v in offered if v.startswith("8.4.")),
        key=lambda v: tuple(int(part) for part in v.split(".")),
    )[-3:]
    return Finding(
        "database version",
        False,
        f"RDS no longer creates MySQL {version} in {region} (it retires old minors): set "
        f"aws.db_engine_version in environments/{env.name}.toml to one it offers "
        f"({', '.join(newest) or 'no 8.4 at all'}), or upgrade aws-cdk-lib for a newer default",
    )


def check_gcp(env: environments.Environment) -> list[Finding]:
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        _, project = google.auth.default()
    except DefaultCredentialsError:
        return [
            Finding(
                "gcp credentials",
                False,
                "no Application Default Credentials: run `gcloud auth application-default login`",
            )
        ]
    findings = [Finding("gcp credentials", True, "application default credentials found")]
    if project and project != env.gcp.project:
        findings.append(
            Finding(
                "gcp project",
                False,
                f"default credentials are for project {project}, but environments/{env.name}.toml "
                f"has gcp.project = {env.gcp.project}: run "
                f"`gcloud auth application-default set-quota-project {env.gcp.project}`",
            )
        )
    else:
        findings.append(Finding("gcp project", True, env.gcp.project))
    return findings


def run(env_name: str) -> list[Finding]:
    env = environments.load(env_name)
    aws = check_aws(env)
    if all(finding.ok for finding in aws):
        aws.append(check_database_version(env))
    return aws + check_gcp(env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deployment.preflight", description=__doc__)
    parser.add_argument("--env", required=True, help="environment name (environments/<env>.toml)")
    args = parser.parse_args(argv)
    try:
        findings = run(args.env)
    except environments.EnvironmentFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for finding in findings:
        print(f"{'✓' if finding.ok else '✗'} {finding.check}: {finding.detail}")
    failed = sum(1 for finding in findings if not finding.ok)
    print("preflight: OK" if not failed else f"preflight: {failed} check(s) failed")
    return min(failed, 1)


if __name__ == "__main__":
    sys.exit(main())
