"""Figures of a run, drawn with matplotlib's object-oriented API (no global pyplot state)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

    from esmsim.result import RunResult


def plot_run(result: RunResult) -> Figure:
    """The main time series of a run, one panel per question, minutes on the x axis.

    Panels: records in and out per second; latency p50 and p99; where each minute's mean latency
    went (its parts' shares, docs/model.md §7); concurrency (maximum and mean per minute, the SQS
    poller fleet, throttles); for streams, IteratorAge per mapping; the backlog (SQS messages
    visible and in flight, stream records not yet processed, events waiting in functions'
    asynchronous event queues) and records dead-lettered, dropped or expired.

    Counts start their axes at zero (a steady 200 records/s is a flat line, not Poisson noise
    magnified), the warm-up left out of the summary is shaded, live changes are marked, and
    legends sit beside the panels rather than over the data.
    """
    ts = result.timeseries
    minutes = ts["time_s"] / 60.0
    streams = result.scenario_has("kinesis", "dynamodb", "kafka")
    panels = 6 if streams else 5
    fig = Figure(figsize=(13, 2.3 * panels), layout="constrained")
    axes = fig.subplots(panels, 1, sharex=True)
    title = f"{result.scenario.name} (seed {result.seed}, replication {result.replication})"
    fig.suptitle(title)

    ax = axes[0]
    arrived = ts["NumberOfMessagesSent"] + ts["AsyncEventsReceived"]
    consumers = _consumers_per_record(result)
    ax.plot(minutes, arrived / 60.0, label="records in", color="tab:gray")
    processed = "records processed" + (
        f" (summed over {consumers} mappings reading each record)" if consumers > 1 else ""
    )
    ax.plot(minutes, ts["RecordsSucceeded"] / 60.0, label=processed, color="tab:blue")
    ax.set_ylabel("records/s")
    _from_zero(ax)

    ax = axes[1]
    # Milliseconds while every minute's p99 stays under a second: 40-250 ms reads better than 0.04-0.25 s.
    scale, unit = (
        (1000.0, "ms") if float(np.nanmax(ts["LatencyP99"].to_numpy(), initial=0.0)) < 1 else (1.0, "s")
    )
    ax.plot(minutes, ts["LatencyP50"] * scale, label="p50", color="tab:green")
    ax.plot(minutes, ts["LatencyP99"] * scale, label="p99", color="tab:red", linestyle="--")
    ax.set_ylabel(f"latency ({unit}, log)")
    ax.set_yscale("log")
    plain_log_ticks(ax.yaxis)

    _latency_parts(axes[2], minutes, ts)

    ax = axes[3]
    ax.plot(minutes, ts["ConcurrentExecutions"], label="ConcurrentExecutions (max)", color="tab:purple")
    ax.plot(minutes, ts["ConcurrencyMean"], label="concurrency (mean)", color="tab:purple", alpha=0.5)
    if ts["Pollers"].any():
        ax.plot(minutes, ts["Pollers"], label="pollers", color="tab:orange", linestyle=":")
    ax.set_ylabel("concurrency")
    _from_zero(ax)
    throttles = ts["Throttles"]
    if throttles.sum() > 0:
        twin = ax.twinx()
        bars = twin.bar(
            minutes, throttles, width=0.8, alpha=0.3, color="tab:red", label="Throttles (per min)"
        )
        twin.set_ylabel("throttles/min")
        _from_zero(twin)
        # One legend for both axes: the bars' twin axis would otherwise keep its own, unlabelled.
        handles, labels = ax.get_legend_handles_labels()
        ax.legend([*handles, bars], [*labels, "Throttles (per min)"], **_BESIDE)

    k = 4
    if streams:
        ax = axes[k]
        _iterator_age(ax, result, minutes)
        k += 1

    ax = axes[k]
    if result.scenario_has("sqs"):
        visible = ts["ApproximateNumberOfMessagesVisible"]
        ax.plot(minutes, visible, label="messages visible (mean)", color="tab:brown")
        in_flight = ts["ApproximateNumberOfMessagesNotVisible"]
        ax.plot(minutes, in_flight, label="in flight (mean)", color="tab:cyan")
    if result.scenario_has("kinesis", "dynamodb"):
        ax.plot(minutes, ts["StreamBacklog"], label="stream records not processed (mean)", color="tab:olive")
    if result.scenario_has("s3", "sns", "eventbridge"):
        ax.plot(minutes, ts["AsyncQueued"], label="events in async event queues (mean)", color="tab:pink")
    lost = ts["RecordsDLQ"] + ts["RecordsExpired"] + ts["RecordsDropped"]
    if lost.sum() > 0:
        ax.plot(minutes, lost.cumsum(), label="dead-lettered, dropped or expired (total)", color="tab:red")
    ax.set_ylabel("records")
    ax.set_xlabel("simulated time (min)")
    _from_zero(ax)
    warmup = result.scenario.warmup / 60.0
    for n, ax in enumerate(axes):
        ax.grid(True, alpha=0.3)
        if warmup > 0:
            ax.axvspan(
                0,
                warmup,
                color="0.85",
                alpha=0.5,
                lw=0,
                label="warm-up (not in the summary)" if n == 0 else None,
            )
        for j, change in enumerate(result.changes()):
            if change["effective_s"] < result.scenario.duration:
                label = "live change" if j == 0 and n == 0 else None
                ax.axvline(change["effective_s"] / 60.0, color="tab:gray", linestyle="--", lw=1, label=label)
        if ax.get_legend() is None and ax.get_legend_handles_labels()[0]:
            ax.legend(**_BESIDE)
    return fig


#: Legends to the right of their panel, outside the data.
_BESIDE: dict[str, Any] = {
    "loc": "upper left",
    "bbox_to_anchor": (1.01, 1.0),
    "fontsize": "small",
    "borderaxespad": 0,
}


def plain_log_ticks(axis: Any) -> None:
    """Numbers as numbers on a log axis (0.2, 1, 2), not powers of ten (2 x 10^-1)."""
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    # Between the decades, label the 2s and 5s (their leading digit) and leave the rest bare.
    axis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))


def _from_zero(ax: Axes) -> None:
    """Start a count's axis at zero, so noise on a steady level is not magnified into waves."""
    top = ax.get_ylim()[1]
    ax.set_ylim(0, max(top, 1e-9) * 1.05)


def _consumers_per_record(result: RunResult) -> int:
    """How many mappings read each record of the busiest source (streams: every mapping on it)."""
    counts: dict[str, int] = {}
    for m in result.scenario.mappings:
        counts[m.source] = counts.get(m.source, 0) + 1
    streams = [n for n, s in result.scenario.sources.items() if s.type in ("kinesis", "dynamodb", "kafka")]
    return max((counts.get(n, 0) for n in streams), default=1) or 1


def _iterator_age(ax: Axes, result: RunResult, minutes: pd.Series) -> None:
    """IteratorAge (the maximum per minute) of every stream mapping, in seconds."""
    per = result.mapping_timeseries
    if not per.empty and "IteratorAge" in per:
        for i, (label, rows) in enumerate(per.groupby("mapping", sort=False)):
            ages = rows["IteratorAge"].to_numpy(dtype=float) / 1000.0
            if np.isnan(ages).all():
                continue
            ax.plot(rows["time_s"] / 60.0, ages, label=f"IteratorAge: {label}", color=f"C{i}")
    else:
        ax.plot(
            minutes, result.timeseries["IteratorAge"] / 1000.0, label="IteratorAge (max)", color="tab:olive"
        )
    ax.set_ylabel("IteratorAge (s)")
    ax.set_ylim(bottom=0)


#: The latency's parts as the time series holds them, with their colours.
PART_COLOURS = {
    "LatencyQueued": "tab:brown",
    "LatencyRetry": "tab:red",
    "LatencyBatching": "tab:orange",
    "LatencyThrottled": "tab:purple",
    "LatencyInit": "tab:cyan",
    "LatencyHandler": "tab:green",
}


def _latency_parts(ax: Axes, minutes: pd.Series, ts: pd.DataFrame) -> None:
    """Each minute's mean latency split into its parts, as shares stacked to 100 %.

    Shares rather than seconds: a drained backlog's minutes of queueing and a quiet minute's
    100 ms sit on one axis, and the seconds are in the latency panel above.
    """
    parts = ts[list(PART_COLOURS)].fillna(0.0)
    total = parts.sum(axis=1)
    shares = parts.div(total.where(total > 0), axis=0).fillna(0.0) * 100.0
    bottom = np.zeros(len(shares))
    for column, colour in PART_COLOURS.items():
        values = shares[column].to_numpy()
        label = column.removeprefix("Latency").lower()
        ax.bar(minutes, values, width=0.9, bottom=bottom, color=colour, label=label, alpha=0.85)
        bottom += values
    ax.set_ylim(0, 100)
    ax.set_ylabel("mean latency (%)")
    ax.legend(**_BESIDE)
