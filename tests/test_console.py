"""The console summary speaks plainly: durations in units, the right name for failed records, and
a caveat when a month's cost scales a run that is not a steady state."""

from __future__ import annotations

from typing import Any

from esmsim.report import summary_lines
from esmsim.run import simulate
from esmsim.scenario.scenario import Scenario


def scenario(source: dict[str, Any], mapping: dict[str, Any] | None = None, duration: str = "2m") -> Scenario:
    return Scenario.model_validate(
        {
            "duration": duration,
            "functions": {"f": {"duration": "20ms", "cold_start": "0s", "timeout": 10}},
            "sources": {"s": source},
            "mappings": [{"source": "s", "function": "f", **(mapping or {})}],
        }
    )


QUEUE = {"type": "sqs", "max_receive_count": 5, "visibility_timeout": "2m", "traffic": {"rate": "20/s"}}
STREAM = {"type": "kinesis", "shards": 1, "traffic": {"rate": "20/s"}}


def lines_of(s: Scenario) -> list[str]:
    return summary_lines(simulate(s))


def test_the_duration_is_written_in_units() -> None:
    first = lines_of(scenario(QUEUE))[0]
    assert " 2m simulated in " in first


def test_failed_records_are_named_by_where_they_go() -> None:
    assert any(line.startswith("  dead-lettered (DLQ) ") for line in lines_of(scenario(QUEUE)))
    stream = lines_of(scenario(STREAM, {"starting_position": "LATEST"}))
    assert any(line.startswith("  to on-failure dest. ") for line in stream)
    assert not any("dead-lettered" in line for line in stream)


def test_a_steady_run_has_no_monthly_caveat() -> None:
    assert not any("caveat" in line for line in lines_of(scenario(QUEUE)))


def test_a_transient_run_is_caveated() -> None:
    spike = {**QUEUE, "traffic": {"rate": "20/s", "schedule": [{"at": "1m", "rate": "40/s"}]}}
    (caveat,) = [line for line in lines_of(scenario(spike)) if "caveat" in line]
    assert "transient" in caveat


def test_an_overloaded_run_is_caveated() -> None:
    # 200 records/s of 20 ms batches of one record under a cap of 2: about 100/s are served, so about
    # half the records are still queued at the end.
    busy = {**QUEUE, "traffic": {"rate": "200/s"}}
    (caveat,) = [
        line
        for line in lines_of(scenario(busy, {"batch_size": 1, "maximum_concurrency": 2}))
        if "caveat" in line
    ]
    assert "still unprocessed at the end (overloaded)" in caveat


def test_two_mappings_on_a_stream_are_summarised_apart() -> None:
    # One mapping's function throws on a poison record (retried until it expires); the other's does
    # not: the stalled mapping's waiting records show on its own line, not merged into the run's.
    s = Scenario.model_validate(
        {
            "duration": "3m",
            "functions": {
                "stuck": {
                    "duration": "20ms",
                    "cold_start": "0s",
                    "timeout": 10,
                    "errors": {"poison_record_rate": 0.001},
                },
                "fine": {"duration": "20ms", "cold_start": "0s", "timeout": 10},
            },
            "sources": {"s": {"type": "kinesis", "shards": 1, "traffic": {"rate": "50/s"}}},
            "mappings": [
                {"source": "s", "function": "stuck", "starting_position": "LATEST"},
                {"source": "s", "function": "fine", "starting_position": "LATEST"},
            ],
        }
    )
    result = simulate(s)
    lines = summary_lines(result)
    at = lines.index("per mapping")
    assert lines[at + 1] == "  mappings[0]: s -> stuck"
    assert lines[at + 3] == "  mappings[1]: s -> fine"
    rows = result.resources.set_index("name")
    stuck, fine = rows.loc["mappings[0]: s -> stuck"], rows.loc["mappings[1]: s -> fine"]
    assert stuck["records_in_flight_end"] > 1000 > fine["records_in_flight_end"]
    assert f"waiting at end {stuck['records_in_flight_end']:,.0f}" in lines[at + 2]
    # Each mapping's books balance on their own; together they are the run's.
    for row in (stuck, fine):
        parts = (
            "records_succeeded",
            "records_dlq",
            "records_dropped",
            "records_expired",
            "records_in_flight_end",
        )
        assert row["records"] == sum(row[k] for k in parts) + row["records_filtered"]
    assert stuck["records"] + fine["records"] == result.summary["records_in"]


def test_several_functions_get_a_line_each() -> None:
    s = Scenario.model_validate(
        {
            "duration": "2m",
            "functions": {n: {"duration": "20ms", "cold_start": "0s", "timeout": 10} for n in ("a", "b")},
            "sources": {n: {**QUEUE} for n in ("qa", "qb")},
            "mappings": [{"source": "qa", "function": "a"}, {"source": "qb", "function": "b"}],
        }
    )
    lines = lines_of(s)
    at = lines.index("per function")
    assert lines[at + 1].startswith("  a: invocations ")
    assert lines[at + 2].startswith("  b: invocations ")
