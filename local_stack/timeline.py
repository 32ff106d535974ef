"""The demo's picture: accepted vs stored per second, the outbox backlog, the outage shaded,
and when each alarm fired, drawn from the live view's seconds (matplotlib, headless)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from local_stack.acts import Act
from local_stack.watch import Second, firing_spans


def draw(
    seconds: Sequence[Second], acts: Sequence[Act], path: Path, outage: str = "GCP away"
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not seconds:
        raise ValueError("no signals were recorded: nothing to draw")
    origin = seconds[0].time
    x = [s.time - origin for s in seconds]
    spans = firing_spans(seconds)
    figure, (flow, backlog, alarms) = plt.subplots(
        3, 1, sharex=True, figsize=(11, 7.5),
        gridspec_kw={"height_ratios": [3, 2, max(1, len(spans)) * 0.6 + 0.6]},
    )  # fmt: skip
    flow.plot(x, [s.accepted for s in seconds], label="accepted (202) /s", color="tab:blue")
    flow.plot(
        x, [s.stored for s in seconds], label="stored, confirmed by receipts /s", color="tab:green"
    )
    flow.set_ylabel("submissions / s")
    flow.legend(loc="upper right")
    backlog.plot(x, [s.backlog for s in seconds], label="outbox backlog", color="tab:orange")
    backlog.set_ylabel("backlog (rows)")
    age = backlog.twinx()
    age.plot(x, [s.oldest_age for s in seconds], label="oldest pending (s)", color="tab:red",
             linestyle="--")  # fmt: skip
    age.set_ylabel("oldest age (s)")
    backlog.legend(loc="upper left")
    age.legend(loc="upper right")
    for act in acts:
        if act.name == outage and act.ended:
            for axis in (flow, backlog, alarms):
                axis.axvspan(act.started - origin, act.ended - origin, color="grey", alpha=0.2)
            flow.annotate(outage, (act.started - origin + 0.5, flow.get_ylim()[1] * 0.9))
    names = sorted(spans)
    for row, name in enumerate(names):
        bars = [(start - origin, end - start) for start, end in spans[name]]
        alarms.broken_barh(bars, (row - 0.35, 0.7), color="tab:red")
    alarms.set_yticks(range(max(len(names), 1)), names or ["(none fired)"])
    alarms.set_ylim(-0.6, max(len(names), 1) - 0.4)
    alarms.set_xlabel("seconds since the demo started")
    alarms.set_title("alarms firing (evaluated with time compressed)", fontsize=9)
    flow.set_title("skybridge local demo: failover and recovery, from the clouds' own signals")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
