"""`python -m local_stack demo`: the whole pipeline, shown working."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from local_stack.stack import LocalStack
from smoke import check, storage


def dead_letter_count(stack: LocalStack) -> int:
    subscriber = stack.subscriber()
    response = subscriber.pull(
        subscription=stack.names.dead_letter_subscription, max_messages=1000, timeout=5
    )
    return len(response.received_messages)


def run(stack: LocalStack, count: int, timeout: float, console: Console) -> check.Report:
    bodies = check.varied_submissions(count)
    columns = (
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        posting = progress.add_task("accepted", total=count)
        storing = progress.add_task("in bucket", total=count)
        confirming = progress.add_task("confirmed", total=count)
        sent = check.post_all(
            stack.url("api"), bodies, progress=lambda n: progress.advance(posting, n)
        )
        report = check.Report(sent=sent)
        progress.update(storing, total=len(report.accepted))
        progress.update(confirming, total=len(report.accepted))
        bucket = stack.bucket()
        check.wait_for_objects(
            lambda: storage.stored_submissions(bucket),
            report,
            timeout,
            progress=lambda n: progress.advance(storing, n),
            healthy=lambda: not stack.dead_children(),
        )
        check.follow_statuses(
            stack.url("api"), report, timeout, progress=lambda n: progress.advance(confirming, n)
        )
    report.dead_lettered = dead_letter_count(stack)
    check.compare(report)
    return report


def summary(report: check.Report, elapsed: float) -> Table:
    table = Table(title="skybridge local demo", show_header=False)
    table.add_row("submissions sent", str(len(report.sent)))
    table.add_row("accepted (202)", str(len(report.accepted)))
    table.add_row("forwarded", str(report.forwarded))
    table.add_row("stored in bucket", str(len(report.stored)))
    table.add_row("confirmed stored by AWS (status)", str(report.confirmed))
    table.add_row("dead-lettered", str(report.dead_lettered))
    for name, value in report.percentiles().items():
        table.add_row(f"end-to-end {name}", f"{value:.0f} ms")
    confirmed = report.confirmed_latencies_ms()
    if confirmed:
        table.add_row("accepted → stored, as AWS records it (max)", f"{confirmed[-1]:.0f} ms")
    table.add_row("mismatches", str(len(report.mismatches)))
    table.add_row("wall time", f"{elapsed:.1f} s")
    return table


def demo(stack: LocalStack, count: int, timeout: float, console: Console) -> int:
    started = time.monotonic()
    report = run(stack, count, timeout, console)
    console.print(summary(report, time.monotonic() - started))
    for line in report.mismatches[:20]:
        console.print(f"[red]✗ {line}")
    if report.ok:
        console.print(
            f"[green]✓ all {len(report.stored)} submissions stored exactly as sent "
            "(content and SHA-256 checked object by object) and confirmed `stored` by the "
            "AWS side's own status"
        )
        return 0
    if dead := stack.dead_children():
        console.print(f"[red]✗ {', '.join(dead)} exited early")
    console.print("[red]✗ the pipeline did not deliver everything intact; logs: " + str(stack.logs))
    return 1
