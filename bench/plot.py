"""bench/latency.png, drawn from the series the benchmarks hand back."""

from __future__ import annotations

from pathlib import Path

from bench.e2e import quantile
from bench.harness import Outcome

COLOURS = ("#3b7dd8", "#e8a33d")


def plot(path: Path, outcomes: list[Outcome]) -> None:
    """Left: the latency histograms (e2e), the first with its p50 and p99 marked.
    Right: p50 and p99 bars per labelled run (decoupling), on a log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    histograms = {k: v for outcome in outcomes for k, v in outcome.histograms.items() if v}
    bars = {k: v for outcome in outcomes for k, v in outcome.bars.items()}
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    if histograms:
        everything = [value for values in histograms.values() for value in values]
        bins = 50 if len(histograms) == 1 else [i * max(everything) / 50 for i in range(51)]
        for index, (label, values) in enumerate(histograms.items()):
            alpha = 1.0 if index == 0 else 0.8
            colour = COLOURS[index % len(COLOURS)]
            left.hist(values, bins=bins, color=colour, alpha=alpha, label=label)
        if len(histograms) > 1:
            left.legend()
        first_label, first = next(iter(histograms.items()))
        for name, q in (("p50", 0.5), ("p99", 0.99)):
            value = quantile(first, q)
            left.axvline(value, color="#d83b3b", linestyle="--")
            left.annotate(f"{first_label} {name} {value:.0f} ms", (value, 0), xytext=(4, 40),
                          textcoords="offset points", rotation=90)  # fmt: skip
        left.set_title("end to end: accepted → object in storage")
        left.set_xlabel("ms")
        left.set_ylabel("submissions")
    if bars:
        labels = list(bars)
        positions = range(len(labels))
        right.bar(
            [p - 0.2 for p in positions], [bars[k][0] for k in labels], width=0.4, label="p50"
        )
        right.bar(
            [p + 0.2 for p in positions], [bars[k][1] for k in labels], width=0.4, label="p99"
        )
        right.set_xticks(list(positions), [label.replace(", ", ",\n") for label in labels])
        right.set_yscale("log")
        right.set_ylabel("accept latency, ms (log scale)")
        right.set_title("API accept latency, 32 connections: our API vs the naive one")
        right.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
