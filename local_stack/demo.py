"""`python -m local_stack demo`: the whole story in acts, watched live from the clouds' signals.

Act 1 normal traffic, act 2 GCP away (ingest unreachable) while submissions keep arriving,
act 3 GCP back and the backlog drains, act 4 every submission verified stored (content and
SHA-256) and confirmed on the AWS side. The live view (local_stack.watch) runs throughout;
at the end the demo writes a PNG timeline and prints its path.
"""

from __future__ import annotations

import threading
import time

from rich.console import Console
from rich.live import Live
from rich.table import Table

from local_stack import definitions, timeline
from local_stack.acts import Act, Traffic, demo_acts, run_acts
from local_stack.signals import Signals
from local_stack.stack import LocalStack
from local_stack.watch import Monitor, plain, render
from smoke import check, storage

SCALE = 120.0  # alarms evaluated with one minute as half a second, so they fire in the demo


def monitor_for(stack: LocalStack, aws: bool = True, env: str = "dev") -> Monitor:
    """A live monitor with every GCP alert policy now and, once the CDK app has synthesized
    in the background (~20 s), every CloudWatch alarm."""
    defs = definitions.for_local(stack.names.prefix, env)
    monitor = Monitor(
        Signals(stack.logs, service_prefix=stack.names.prefix),
        rules=defs.gcp_rules(),
        log_metrics=defs.log_metrics(),
        dead_letter_subscription=stack.names.dead_letter_subscription.rsplit("/", 1)[1],
        scale=SCALE,
    )
    if aws:

        def add_cloudwatch() -> None:
            monitor.pending.set()
            try:
                template = definitions.synthesize(env, stack.options.workdir / "cdk.out")
            except Exception as error:  # noqa: BLE001 — the demo goes on with GCP's alerts
                monitor.notes.append(f"CloudWatch alarms unavailable: the synth failed ({error})")
                return
            monitor.add_rules(definitions.Definitions(template).aws_rules())
            monitor.pending.clear()

        threading.Thread(target=add_cloudwatch, daemon=True, name="synth").start()
    return monitor


class View:
    """rich Live on a terminal; one plain line a second otherwise (CI logs)."""

    def __init__(self, console: Console, monitor: Monitor) -> None:
        self.console, self.monitor = console, monitor
        self.live = Live(render(monitor), console=console, refresh_per_second=4, transient=False)
        self._last_plain = 0.0

    def __enter__(self) -> View:
        if self.console.is_terminal:
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.console.is_terminal:
            self.update()
            self.live.__exit__(None, None, None)

    def say(self, text: str) -> None:
        self.console.print(text)

    def update(self, *_: object) -> None:
        if self.console.is_terminal:
            self.live.update(render(self.monitor, self.title()))
        elif time.monotonic() - self._last_plain >= 1.0:
            self._last_plain = time.monotonic()
            self.console.print(plain(self.monitor.latest()), soft_wrap=True)

    def title(self) -> str:
        return f"skybridge live view · alarms at {self.monitor.scale:.0f}:1 time"


def verify(stack: LocalStack, sent: list[check.Sent], timeout: float, view: View) -> check.Report:
    """Act 4: wait until each accepted submission is an object, compare content and hash,
    and until the AWS side reports each `stored` (GCP's receipt, its hash checked)."""
    report = check.Report(sent=sent)
    check.wait_for_objects(
        lambda: storage.stored_submissions(stack.bucket()),
        report,
        timeout,
        progress=view.update,
        healthy=lambda: not stack.dead_children(),
    )
    check.follow_statuses(stack.public_url, report, timeout, progress=view.update)
    check.compare(report)
    return report


def summary(report: check.Report, monitor: Monitor, elapsed: float) -> Table:
    table = Table(title="skybridge local demo", show_header=False)
    totals = monitor.totals()
    table.add_row("submissions sent", str(len(report.sent)))
    table.add_row("accepted (202)", str(len(report.accepted)))
    table.add_row("stored in bucket, verified", str(len(report.stored)))
    table.add_row("confirmed stored on the AWS side (receipts)", str(report.confirmed))
    table.add_row("signals: accepted / forwarded / stored",
                  f"{totals['accepted']} / {totals['forwarded']} / {totals['stored']}")  # fmt: skip
    for name, value in report.percentiles().items():
        table.add_row(f"end to end {name}", f"{value:.0f} ms")
    if confirmed := report.confirmed_latencies_ms():
        table.add_row("accepted → stored, as AWS records it (max)", f"{confirmed[-1]:.0f} ms")
    table.add_row("mismatches", str(len(report.mismatches)))
    table.add_row("wall time", f"{elapsed:.1f} s")
    return table


def demo(
    stack: LocalStack,
    console: Console,
    *,
    rate: float = 20.0,
    outage: float = 15.0,
    timeout: float = 120.0,
    aws_alarms: bool = True,
) -> int:
    started = time.monotonic()
    monitor = monitor_for(stack, aws_alarms).start()
    traffic = Traffic(stack.public_url, rate=rate)
    acts = demo_acts(outage)
    final = Act("verified", "every submission is in the bucket exactly as sent (content and "
                "SHA-256) and confirmed on the AWS side")  # fmt: skip
    view = View(console, monitor)
    with view:
        traffic.start()
        for number, act in enumerate(acts, 1):
            view.say(f"[bold]Act {number} — {act.name}:[/] {act.shows}")
            run_acts(stack, [act], during=view.update)
        sent = traffic.stop()
        view.say(f"[bold]Act {len(acts) + 1} — {final.name}:[/] {final.shows}")
        final.started = time.time()
        report = verify(stack, sent, timeout, view)
        final.ended = time.time()
        time.sleep(1.1)  # one more whole second of signals for the view and the picture
        monitor.step()
        view.update()
    monitor.stop()
    if monitor.pending.is_set():
        with console.status("waiting for the CDK synth, to judge the CloudWatch alarms too…"):
            deadline = time.monotonic() + 120
            while monitor.pending.is_set() and time.monotonic() < deadline:
                time.sleep(0.5)
    for note in monitor.notes:
        console.print(f"[yellow]{note}")
    picture = timeline.draw(monitor.seconds, [*acts, final], stack.options.workdir / "timeline.png")
    console.print(summary(report, monitor, time.monotonic() - started))
    console.print(f"timeline: {picture}")
    for line in report.mismatches[:20]:
        console.print(f"[red]✗ {line}")
    if report.ok:
        console.print(
            f"[green]✓ all {len(report.stored)} submissions stored exactly as sent and confirmed "
            "— through a GCP outage"
        )
        return 0
    if dead := stack.dead_children():
        console.print(f"[red]✗ {', '.join(dead)} exited early")
    console.print("[red]✗ the pipeline did not deliver everything intact; logs: " + str(stack.logs))
    return 1


def watch(
    stack: LocalStack, console: Console, stopping: threading.Event, aws_alarms: bool = True
) -> int:
    """`up --watch`: the live view until Ctrl-C."""
    monitor = monitor_for(stack, aws_alarms).start()
    view = View(console, monitor)
    with view:
        while not stopping.wait(0.25):
            view.update()
            if dead := stack.dead_children():
                view.say(f"[red]{', '.join(dead)} exited; stopping (logs: {stack.logs})")
                return 1
    monitor.stop()
    return 0
