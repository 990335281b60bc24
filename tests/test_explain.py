"""What limited a run: the binding limit per mapping and trigger, its share of minutes, and advice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from click.testing import CliRunner

from esmsim.cli import main
from esmsim.run import simulate
from esmsim.scenario.scenario import Scenario


def sqs(
    mapping: dict[str, Any] | None = None, function: dict[str, Any] | None = None, rate: str = "300/s"
) -> Scenario:
    return Scenario.model_validate(
        {
            "duration": "5m",
            "functions": {"f": {"duration": "1s", "cold_start": "0s", "timeout": 10, **(function or {})}},
            "sources": {"q": {"type": "sqs", "max_receive_count": 5, "traffic": {"rate": rate}}},
            "mappings": [{"source": "q", "function": "f", **(mapping or {})}],
        }
    )


def limits_of(s: Scenario) -> dict[str, Any]:
    (found,) = [
        v for k, v in simulate(s).limits.items() if k.startswith("mappings[0]") or k.startswith("triggers[0]")
    ]
    return found


def test_a_run_bound_by_reserved_concurrency_says_so() -> None:
    # 300 messages/s of 1 s work against 10 reserved environments: throttled from the first minute.
    found = limits_of(sqs(function={"reserved_concurrency": 10}))
    assert max(found["binding"], key=found["binding"].get) == "reserved concurrency"
    assert found["binding"]["reserved concurrency"] >= 0.8
    assert "functions.f.reserved_concurrency (now 10)" in found["advice"]


def test_a_run_bound_by_maximum_concurrency_says_so() -> None:
    found = limits_of(sqs(mapping={"maximum_concurrency": 5}))
    assert max(found["binding"], key=found["binding"].get) == "maximum_concurrency"
    assert found["binding"]["maximum_concurrency"] >= 0.8
    assert "mappings[0].maximum_concurrency (now 5)" in found["advice"]


def test_a_mapping_that_keeps_up_is_limited_by_nothing() -> None:
    found = limits_of(sqs(rate="5/s"))
    assert found["binding"] == {"none (keeps up)": 1.0}
    assert found["advice"] == "keeps up: nothing limited it"


def test_a_disabled_mapping_says_so() -> None:
    found = limits_of(sqs(mapping={"enabled": False}))
    assert found["binding"] == {"disabled mapping": 1.0}


def fifo(groups: int, function: dict[str, Any] | None = None, rate: str = "300/s") -> Scenario:
    """A FIFO queue with ``groups`` message groups feeding 1 s handlers."""
    return Scenario.model_validate(
        {
            "duration": "5m",
            "functions": {"f": {"duration": "1s", "cold_start": "0s", "timeout": 10, **(function or {})}},
            "sources": {
                "q": {
                    "type": "sqs",
                    "fifo": True,
                    "max_receive_count": 5,
                    "traffic": {"rate": rate, "message_groups": groups},
                }
            },
            "mappings": [{"source": "q", "function": "f"}],
        }
    )


def test_a_fifo_queue_bound_by_its_message_groups_says_so() -> None:
    # 300 messages/s of 1 s batches (at most 10 messages) over 4 groups: at most 4 batches run, about
    # 40 messages/s, so work waits and concurrency sits at the 4 groups.
    found = limits_of(fifo(4))
    assert max(found["binding"], key=found["binding"].get) == "message groups (one batch per group at a time)"
    assert found["binding"]["message groups (one batch per group at a time)"] >= 0.8
    assert "more message groups" in found["advice"]


def test_a_fifo_queue_held_by_a_failing_message_says_so() -> None:
    # Every batch fails: each group's head message is retried until dead-lettered, holding its group.
    found = limits_of(fifo(50, function={"errors": {"invocation_error_rate": 1.0}}, rate="20/s"))
    binding = max(found["binding"], key=found["binding"].get)
    assert binding == "a blocked message group (retrying a failing message)"
    assert "max_receive_count" in found["advice"]


def test_provisioned_mode_at_its_maximum_pollers_says_so() -> None:
    # Two event pollers of 10 invokes each hold at most 20 one-second invocations: 300/s waits.
    s = sqs(mapping={"provisioned_pollers": {"minimum": 2, "maximum": 2}})
    found = limits_of(s)
    assert max(found["binding"], key=found["binding"].get) == "event pollers (provisioned mode)"
    assert "provisioned_pollers" in found["advice"]


def test_a_stream_bound_by_its_lanes_says_so() -> None:
    s = Scenario.model_validate(
        {
            "duration": "5m",
            "functions": {
                "f": {"duration": "200ms", "per_record": "20ms", "cold_start": "0s", "timeout": 60}
            },
            "sources": {"s": {"type": "kinesis", "shards": 1, "traffic": {"rate": "100/s"}}},
            "mappings": [
                {
                    "source": "s",
                    "function": "f",
                    "starting_position": "LATEST",
                    "maximum_retry_attempts": 1,
                    "on_failure": {"type": "sqs"},
                }
            ],
        }
    )
    found = limits_of(s)
    assert max(found["binding"], key=found["binding"].get) == "shards x parallelization factor"
    assert "parallelization_factor (now 1)" in found["advice"]


def test_a_throttled_trigger_says_so() -> None:
    s = Scenario.model_validate(
        {
            "duration": "5m",
            "functions": {
                "f": {"duration": "1s", "reserved_concurrency": 5, "async": {"on_failure": {"type": "sqs"}}}
            },
            "sources": {"b": {"type": "s3", "delivery_delay": "0s", "traffic": {"rate": "50/s"}}},
            "triggers": [{"source": "b", "function": "f"}],
        }
    )
    found = limits_of(s)
    assert max(found["binding"], key=found["binding"].get) == "reserved concurrency"


def test_esmsim_explain_reads_a_finished_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    path = tmp_path / "s.yaml"
    path.write_text(
        "duration: 3m\nfunctions: {f: {duration: 1s, reserved_concurrency: 5, timeout: 10}}\n"
        "sources: {q: {type: sqs, max_receive_count: 5, traffic: {rate: 100/s}}}\n"
        "mappings: [{source: q, function: f}]\n",
        encoding="utf-8",
    )
    ran = CliRunner().invoke(main, ["run", str(path), "--out", str(out), "--no-plot"])
    assert ran.exit_code == 0, ran.output
    assert "what limited the run (share of minutes)" in ran.stdout
    result = CliRunner().invoke(main, ["explain", str(out)])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "what limited the run (share of minutes)"
    assert lines[1].startswith("  mappings[0]: q -> f: reserved concurrency")
    assert "raise functions.f.reserved_concurrency (now 5)" in lines[2]
    # Where the latency went: 5 environments serve 5 messages a second of 100, so messages wait in
    # the queue; the run's summary line and explain agree, and the slowest minute is the last.
    assert lines[3].startswith("where the mean latency went (mean ")
    assert lines[4].startswith("  queued ")
    summary_line = next(line for line in ran.stdout.splitlines() if line.startswith("  of the mean: "))
    assert summary_line.removeprefix("  of the mean: ") == lines[4].strip()
    assert lines[5] == "slowest minutes (mean latency of the records processed in each)"
    assert lines[6].startswith("  minute 2: mean ")
    assert len(lines) == 9
    bad = CliRunner().invoke(main, ["explain", str(tmp_path)])
    assert bad.exit_code == 2
    assert bad.stderr.splitlines() == [
        f"{tmp_path / 'summary.json'}: not a summary.json written by esmsim run (it has no limits)"
    ]


def test_a_kafka_mapping_names_its_partitions_or_its_pollers() -> None:
    def kafka(partitions: int, initial: int) -> Scenario:
        return Scenario.model_validate(
            {
                "duration": "5m",
                "functions": {"f": {"duration": "1s", "cold_start": "0s", "timeout": 10}},
                "sources": {"t": {"type": "kafka", "partitions": partitions, "traffic": {"rate": "2000/s"}}},
                "mappings": [
                    {
                        "source": "t",
                        "function": "f",
                        "starting_position": "LATEST",
                        "kafka_scaling": {"initial_pollers": initial},
                    }
                ],
            }
        )

    # Two partitions of one-second batches of 100 cannot take 2,000/s: both partitions run all along.
    found = limits_of(kafka(2, 1))
    assert max(found["binding"], key=found["binding"].get) == "partitions (one batch per partition)"
    # Twenty partitions, one poller of 5 invokes until the fleet grows (its first evaluation is a
    # minute in): the pollers bind at first, the partitions once the fleet covers them.
    found = limits_of(kafka(20, 1))
    assert found["binding"]["Kafka pollers (5 invokes each, scaled on OffsetLag)"] > 0
    assert found["binding"]["partitions (one batch per partition)"] > 0
