"""`python -m smoke`: check a running skybridge end to end.

    python -m smoke --env dev                     # the deployed environment (make smoke ENV=dev)
    python -m smoke --api-url URL --bucket NAME [--storage-endpoint URL]   # any stack

It posts submissions, waits until each is an object in the bucket, follows each one's
status through the API and compares every object with what was sent; it prints a summary
and exits non-zero on any mismatch.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from urllib.parse import urlsplit

from environments import outputs as handover
from smoke import check, storage


def targets_from_outputs(env: str) -> tuple[str, str]:
    """(API URL, bucket) from the files `cdk deploy` and `gcp_stack deploy` wrote."""
    aws_file, gcp_file = handover.aws_path(env), handover.gcp_path(env)
    try:
        aws, gcp = handover.read_aws(aws_file), handover.read_gcp(gcp_file)
    except handover.OutputsFileError as error:
        raise SystemExit(f"error: {error}") from None
    for path, found in ((aws_file, aws), (gcp_file, gcp)):
        if found is None:
            raise SystemExit(f"error: {path} is missing — deploy first (make deploy ENV={env})")
    assert aws is not None and gcp is not None
    if not aws.api_url:
        raise SystemExit(f"error: no ApiUrl output in {aws_file}; was the AWS stack deployed?")
    return aws.api_url.rstrip("/"), gcp.bucket


def http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an http(s) URL with a host, such as https://api.example.com"
        )
    return value.rstrip("/")


def interrupted(*_: object) -> None:
    # At once, from the handler: the posting threads would otherwise be waited for.
    sys.stderr.write("\nsmoke: interrupted; what the API accepted is delivered as usual\n")
    sys.stderr.flush()
    os._exit(130)


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGINT, interrupted)
    parser = argparse.ArgumentParser(prog="python -m smoke", description=__doc__.split("\n")[0])
    parser.add_argument("--env", help="environment name: read targets from the deploy outputs")
    parser.add_argument("--api-url", type=http_url, help="base URL of the API")
    parser.add_argument("--bucket", help="the bucket `store` writes to")
    parser.add_argument(
        "--storage-endpoint", type=http_url, help="a Cloud Storage emulator (local stacks)"
    )
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args(argv)
    if args.env:
        api_url, bucket_name = targets_from_outputs(args.env)
    elif args.api_url and args.bucket:
        api_url, bucket_name = args.api_url, args.bucket
    else:
        parser.error("give --env, or both --api-url and --bucket")

    try:
        check.probe("the API", f"{api_url}/livez")
        if args.storage_endpoint:
            check.probe("the storage emulator", args.storage_endpoint)
    except check.Unreachable as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    bucket = storage.bucket(bucket_name, endpoint=args.storage_endpoint)
    report = check.Report(sent=check.post_all(api_url, check.varied_submissions(args.count)))
    check.wait_for_objects(
        lambda: storage.stored_submissions(bucket), report, args.timeout, progress=lambda _: None
    )
    check.follow_statuses(api_url, report, timeout=args.timeout)
    check.compare(report)
    latency = ", ".join(f"{k} {v:.0f} ms" for k, v in report.percentiles().items())
    print(
        f"sent {len(report.sent)}, accepted {len(report.accepted)}, forwarded {report.forwarded}, "
        f"stored {len(report.stored)}, confirmed stored by AWS {report.confirmed}, "
        f"mismatches {len(report.mismatches)}; end-to-end {latency}"
    )
    for line in report.mismatches:
        print(f"  ✗ {line}")
    print("smoke: OK" if report.ok else "smoke: FAILED")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
