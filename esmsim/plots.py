"""Figures of a run, drawn with matplotlib's object-oriented API (no global pyplot state)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

    from esmsim.result import RunResult


def plot_run(result: RunResult) -> Figure:
    """The main time series of a run, one panel per question, minutes on the x axis.

    Panels: records in and out per second; latency p50 and p99; where each minute's mean latency
    went (its parts' shares, docs/model.md §7); concurrency (maximum and mean per minute, the SQS
    poller fleet, throttles); the backlog (SQS messages visible and in flight, stream records not
    yet processed, events waiting in functions' asynchronous event queues) and records
    dead-lettered, dropped or expired.
    """
    ts = result.timeseries
    minutes = ts["time_s"] / 60.0
    fig = Figure(figsize=(11, 11), layout="constrained")
    axes = fig.subplots(5, 1, sharex=True)
    title = f"{result.scenario.name} (seed {result.seed}, replication {result.replication})"
    fig.suptitle(title)

    ax = axes[0]
    arrived = ts["NumberOfMessagesSent"] + ts["AsyncEventsReceived"]
    ax.plot(minutes, arrived / 60.0, label="records in", color="tab:gray")
    ax.plot(minutes, ts["RecordsSucceeded"] / 60.0, label="records processed", color="tab:blue")
    ax.set_ylabel("records/s")
    ax.legend(loc="upper left")

    ax = axes[1]
    ax.plot(minutes, ts["LatencyP50"], label="p50", color="tab:green")
    ax.plot(minutes, ts["LatencyP99"], label="p99", color="tab:red", linestyle="--")
    ax.set_ylabel("latency (s)")
    ax.set_yscale("log")
    ax.legend(loc="upper left")

    _latency_parts(axes[2], minutes, ts)

    ax = axes[3]
    ax.plot(minutes, ts["ConcurrentExecutions"], label="ConcurrentExecutions (max)", color="tab:purple")
    ax.plot(minutes, ts["ConcurrencyMean"], label="concurrency (mean)", color="tab:purple", alpha=0.5)
    if ts["Pollers"].any():
        ax.plot(minutes, ts["Pollers"], label="pollers", color="tab:orange", linestyle=":")
    throttles = ts["Throttles"]
    if throttles.sum() > 0:
        twin = ax.twinx()
        twin.bar(minutes, throttles, width=0.8, alpha=0.3, color="tab:red", label="Throttles")
        twin.set_ylabel("throttles/min")
    ax.set_ylabel("concurrency")
    ax.legend(loc="upper left")

    ax = axes[4]
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
    ax.legend(loc="upper left")
    for ax in axes:
        ax.grid(True, alpha=0.3)
        for k, change in enumerate(result.changes()):
            if change["effective_s"] < result.scenario.duration:
                label = "live change" if k == 0 and ax is axes[0] else None
                ax.axvline(change["effective_s"] / 60.0, color="tab:gray", linestyle="--", lw=1, label=label)
    if result.changes():
        axes[0].legend(loc="upper left")
    return fig


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
    ax.legend(loc="upper left", ncols=6, fontsize="small")
