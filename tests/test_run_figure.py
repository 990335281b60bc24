"""timeseries.png's content (not its pixels): the panels a planner reads, in readable form."""

from __future__ import annotations

from typing import Any

from esmsim.plots import plot_run
from esmsim.run import simulate
from esmsim.scenario.scenario import Scenario


def scenario(source: dict[str, Any], mappings: int = 1, function: dict[str, Any] | None = None) -> Scenario:
    extra = {"starting_position": "LATEST"} if source["type"] == "kinesis" else {}
    return Scenario.model_validate(
        {
            "duration": "4m",
            "warmup": "1m",
            "functions": {
                f"f{i}": {"duration": "50ms", "cold_start": "0s", "timeout": 10, **(function or {})}
                for i in range(mappings)
            },
            "sources": {"s": source},
            "mappings": [{"source": "s", "function": f"f{i}", **extra} for i in range(mappings)],
        }
    )


STREAM = {"type": "kinesis", "shards": 2, "traffic": {"rate": "200/s"}}
QUEUE = {"type": "sqs", "max_receive_count": 5, "visibility_timeout": "2m", "traffic": {"rate": "200/s"}}


def legend_texts(ax: Any) -> list[str]:
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend is not None else []


def test_a_stream_run_has_an_iterator_age_panel_per_mapping() -> None:
    fig = plot_run(simulate(scenario(STREAM, mappings=2)))
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert "IteratorAge (s)" in labels
    ages = fig.axes[labels.index("IteratorAge (s)")]
    assert [t for t in legend_texts(ages) if t.startswith("IteratorAge")] == [
        "IteratorAge: mappings[0]: s -> f0",
        "IteratorAge: mappings[1]: s -> f1",
    ]
    # Two mappings each process every record: the processed line says it is summed over them.
    assert "records processed (summed over 2 mappings reading each record)" in legend_texts(fig.axes[0])


def test_a_queue_run_has_no_stream_panel_and_counts_start_at_zero() -> None:
    fig = plot_run(simulate(scenario(QUEUE)))
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert "IteratorAge (s)" not in labels
    for name in ("records/s", "concurrency", "records"):
        assert fig.axes[labels.index(name)].get_ylim()[0] == 0  # steady 200/s is flat, not magnified noise
    # The warm-up is shaded and named once.
    assert "warm-up (not in the summary)" in legend_texts(fig.axes[0])


def test_throttles_are_in_the_concurrency_legend() -> None:
    fig = plot_run(simulate(scenario(QUEUE, function={"reserved_concurrency": 1, "duration": "200ms"})))
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert "Throttles (per min)" in legend_texts(fig.axes[labels.index("concurrency")])


def test_latency_is_in_milliseconds_while_it_stays_under_a_second() -> None:
    fast = plot_run(simulate(scenario(QUEUE)))
    labels = [ax.get_ylabel() for ax in fast.axes]
    assert "latency (ms, log)" in labels
    ax = fast.axes[labels.index("latency (ms, log)")]
    p99 = next(line for line in ax.get_lines() if line.get_label() == "p99")
    assert max(p99.get_ydata()) < 1000
