"""Live changes of a source's traffic (``sources.NAME.traffic`` under ``changes:``, docs/model.md §14).

Records sent up to a change's effective time are those of the run without it; later ones follow
the new traffic. Constant patterns make the arrival times exact: the k-th record is sent where the
cumulative rate Λ reaches k, and Λ follows each traffic's rate from when it takes effect.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import assume, given
from hypothesis import strategies as st

from esmsim.cli import main
from esmsim.errors import ScenarioError
from esmsim.run import simulate
from esmsim.scenario.scenario import Scenario
from tests.helpers import assert_conserved, traced
from tests.test_bad_input import assert_bad
from tests.test_blocks import same
from tests.test_properties import sqs_scenarios
from tests.test_properties_live import LIVE_SETTINGS

#: The default update_delay: a change made at ``at`` takes effect 5 s later.
DELAY = 5.0


def sent(result: Any, source: str | None = None) -> np.ndarray:
    """When each record of the run was sent, sorted (one consumer per source in these scenarios)."""
    table = result.records
    if source is not None:
        table = table[table["source"] == source]
    return np.sort(table["sent_s"].to_numpy())


def queue(traffic: dict[str, Any], changes: list[dict[str, Any]], **extra: Any) -> Scenario:
    """One queue read by one fast function: nothing but the traffic matters."""
    raw: dict[str, Any] = {
        "duration": "3m",
        "seed": 7,
        "functions": {"f": {"duration": "100ms", "cold_start": "0s"}},
        "sources": {"q": {"type": "sqs", "traffic": traffic}},
        "mappings": [{"source": "q", "function": "f", "record_overhead": 0}],
        "changes": changes,
        **extra,
    }
    return Scenario.model_validate(raw)


def test_a_constant_stream_of_1_per_second_doubles_at_the_change() -> None:
    # Changed at 60 s, in effect at 65 s: Λ(t) = t up to 65, then 65 + 2 (t - 65). The k-th record
    # is sent where Λ = k: at 1, 2, ..., 65 s, then every half second, 65.5 ... 180 (Λ(180) = 295).
    s = queue({"rate": "1/s", "pattern": "constant"}, [{"at": 60, "set": {"sources.q.traffic.rate": "2/s"}}])
    result = traced(s)
    expected = np.concatenate([np.arange(1.0, 66.0), 65.0 + 0.5 * np.arange(1, 231)])
    np.testing.assert_array_equal(sent(result), expected)
    assert result.summary["records_in"] == 295
    assert result.timeseries["NumberOfMessagesSent"].sum() == 295
    assert_conserved(result)
    assert [c["effective_s"] for c in result.changes()] == [65.0]


def push_or_stream(kind: str, traffic: dict[str, Any]) -> dict[str, Any]:
    """A source of ``kind`` with ``traffic`` and what reads it (a mapping, or a trigger)."""
    raw: dict[str, Any] = {
        "duration": "2m",
        "seed": 3,
        "functions": {"f": {"duration": "20ms", "cold_start": "0s"}},
    }
    if kind == "sqs":
        raw["sources"] = {"src": {"type": "sqs", "traffic": traffic}}
        raw["mappings"] = [{"source": "src", "function": "f"}]
    elif kind in ("kinesis", "dynamodb"):
        raw["sources"] = {"src": {"type": kind, "shards": 2, "traffic": traffic}}
        raw["mappings"] = [{"source": "src", "function": "f", "starting_position": "TRIM_HORIZON"}]
    else:
        raw["sources"] = {"src": {"type": kind, "delivery_delay": "0s", "traffic": traffic}}
        raw["triggers"] = [{"source": "src", "function": "f"}]
    return raw


@pytest.mark.parametrize("kind", ["sqs", "kinesis", "dynamodb", "s3", "sns", "eventbridge"])
def test_every_source_type_follows_a_rate_change(kind: str) -> None:
    # 10/s until the change takes effect at 60 s (600 records, at k/10 s), then 30/s: 1,800 more at
    # 60 + k/30 s up to the end at 120 s. Each record is counted once: one mapping or trigger reads it.
    raw = push_or_stream(kind, {"rate": "10/s", "pattern": "constant"})
    raw["changes"] = [{"at": 55, "set": {"sources.src.traffic.rate": "30/s"}}]
    result = traced(Scenario.model_validate(raw))
    expected = np.concatenate([np.arange(1, 601) / 10, 60.0 + np.arange(1, 1801) / 30])
    np.testing.assert_allclose(sent(result), expected, rtol=0, atol=1e-9)
    assert result.summary["records_in"] == 2400
    assert_conserved(result)


def test_poisson_arrivals_before_the_change_are_the_unchanged_runs_and_carry_on_after_it() -> None:
    # A Poisson source's unit-rate marks are drawn whatever the rate: the run with the change sends
    # the same records up to 60 s, and after it the same marks at three times the rate, so its
    # record sent at 60 + u/3 is the unchanged run's record sent at 60 + u.
    changed = queue({"rate": "20/s"}, [{"at": 55, "set": {"sources.q.traffic.rate": "60/s"}}], duration="2m")
    plain = changed.model_copy(update={"changes": []})
    a, b = sent(traced(changed)), sent(traced(plain))
    np.testing.assert_array_equal(a[a <= 60], b[b <= 60])
    later = b[(b > 60) & (b <= 118)]
    np.testing.assert_allclose(a[a > 60][: later.size], 60 + (later - 60) / 3, rtol=1e-12)
    assert 3200 < (a > 60).sum() < 4000  # 60/s for 60 s


def test_record_sizes_follow_the_change() -> None:
    # 2 records a second, each invoked alone (100 ms of work, no window): a record sent up to 60 s
    # is 1 KB, one sent after it 4 KB, and an invocation's bytes say which (no record overhead).
    s = queue(
        {"rate": "2/s", "pattern": "constant", "record_size": "1KB"},
        [{"at": 55, "set": {"sources.q.traffic.record_size": "4KB"}}],
        duration="2m",
    )
    small, large = (
        s.sources["q"].traffic.record_size.mean(),
        s.stages[0][1].sources["q"].traffic.record_size.mean(),
    )
    inv = traced(s).invocations
    per_record = (inv["bytes"] / inv["records"]).to_numpy()
    early = inv["start_s"].to_numpy() < 60.25  # the record sent at 60 s is still a small one
    assert (per_record[early] == small).all()
    assert (per_record[~early] == large).all()
    assert large == 4 * small
    assert inv["records"].sum() == 239  # of 240: the one sent at 120 s, the run's end, still waits


def test_a_whole_new_traffic_block_for_a_stream_sends_its_keys_and_keeps_the_initial_backlog() -> None:
    # 100 records wait at time 0; then 20/s over 1,000 keys until 60 s (1,200), then the new block:
    # 40/s with one partition key (2,400), all to that key's shard. The new block has no
    # initial_backlog: the backlog is what the stream held at time 0, not a setting that changes.
    raw = push_or_stream("kinesis", {"rate": "20/s", "pattern": "constant", "initial_backlog": 100})
    raw["changes"] = [
        {
            "at": 55,
            "set": {"sources.src.traffic": {"rate": "40/s", "pattern": "constant", "partition_keys": 1}},
        }
    ]
    result = traced(Scenario.model_validate(raw))
    table = result.records
    after = table[table["sent_s"] > 60]
    assert (table["sent_s"] <= 0).sum() == 100
    assert len(after) == 2400
    assert set(after["key"]) == {0}
    assert after["shard"].nunique() == 1
    before = table[(table["sent_s"] > 0) & (table["sent_s"] <= 60)]
    assert len(before) == 1200
    assert before["key"].nunique() > 500
    assert before["shard"].nunique() == 2
    assert result.summary["records_in"] == 3700
    assert_conserved(result)


def test_a_schedule_keeps_the_runs_clock() -> None:
    # A profile repeating every minute: 10/s, then 20/s from 30 s into each minute. A new base rate of
    # 40/s takes effect at 75 s, in the second minute's first half: 40/s until 90 s, then the schedule's
    # 20/s (the new traffic's schedule counts from the run's start, not from the change).
    traffic = {
        "rate": "10/s",
        "pattern": "constant",
        "period": "1m",
        "schedule": [{"at": "30s", "rate": "20/s"}],
    }
    s = queue(traffic, [{"at": 70, "set": {"sources.q.traffic.rate": "40/s"}}], duration="2m")
    times = sent(traced(s))
    counts = np.histogram(times, bins=[0, 30, 60, 75, 90, 120])[0]
    # Bins are closed on the left: the record sent at 30 s (Λ = 300) is the last of the first 30 s.
    np.testing.assert_array_equal(counts, [299, 600, 150, 600, 601])


def test_a_pattern_change_spaces_the_records_evenly_and_back() -> None:
    # Poisson at 20/s, evenly spaced at 20/s from 60 s (in effect 5 s after 55 s), Poisson again from 90 s.
    s = queue(
        {"rate": "20/s"},
        [
            {"at": 55, "set": {"sources.q.traffic.pattern": "constant"}},
            {"at": 85, "set": {"sources.q.traffic.pattern": "poisson"}},
        ],
        duration="2m",
    )
    result = traced(s)
    times = sent(result)
    plain = sent(traced(s.model_copy(update={"changes": []})))
    np.testing.assert_array_equal(times[times <= 60], plain[plain <= 60])
    even = times[(times > 60) & (times <= 90)]
    np.testing.assert_allclose(np.diff(even), 0.05, rtol=1e-9)
    # The marks go on from Λ(60 s), a fraction: the first whole number after it comes within 0.05 s.
    assert even.size == 600
    assert 60 < even[0] <= 60.05
    assert 89.95 < even[-1] <= 90
    gaps = np.diff(times[times > 90])
    assert gaps.std() > 0.02  # random again, about 20/s
    assert 450 < gaps.size < 750
    assert_conserved(result)


CHANGED = {
    "sqs": queue(
        {"rate": "50/s", "record_size": {"dist": "lognormal", "median": "1KB", "p99": "8KB"}},
        [
            {"at": 40, "set": {"sources.q.traffic.pattern": "constant"}},
            {"at": 70, "set": {"sources.q.traffic": {"rate": "120/s", "record_size": "2KB"}}},
            {"at": 100, "set": {"sources.q.traffic.rate": 0}},
        ],
        duration="2m",
    ),
    "stream": Scenario.model_validate(
        push_or_stream("kinesis", {"rate": "80/s", "partition_keys": 40, "key_skew": 1.1})
        | {
            "changes": [
                {"at": 30, "set": {"sources.src.traffic.partition_keys": 400}},
                {"at": 60, "set": {"sources.src.traffic.pattern": "constant"}},
                {
                    "at": 90,
                    "set": {"sources.src.traffic.pattern": "poisson", "sources.src.traffic.rate": 150},
                },
            ]
        }
    ),
}


@pytest.mark.parametrize("name", list(CHANGED))
def test_traffic_changes_are_deterministic_and_do_not_depend_on_the_block_size(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = CHANGED[name]
    first = simulate(s, tables=False).summary
    assert same(first, simulate(s, tables=False).summary) == []
    assert same(first, simulate(s, seed=s.seed + 1, tables=False).summary) != []
    monkeypatch.setattr("esmsim.model.traffic.CHUNK", 64)
    assert same(first, simulate(s, tables=False).summary) == []


BASE = [
    "duration: 30m",  # 1
    "functions: {f: {duration: 100ms}}",  # 2
    "sources: {q: {type: sqs, traffic: {rate: 5/s, initial_backlog: 10}}}",  # 3
    "mappings: [{source: q, function: f}]",  # 4
    "changes:",  # 5
    "  - at: 10m",  # 6
    "    set:",  # 7
]
AT_ZERO = "describes the records in the source at time 0: a change during the run cannot set it"
TRAFFIC = "{path}:8: changes[0].set.sources.q.traffic"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "      sources.q.traffic.initial_backlog: 100",
            f"{TRAFFIC}.initial_backlog: traffic.initial_backlog {AT_ZERO}",
        ),
        (
            "      sources.q.traffic.backlog_span: 1m",
            f"{TRAFFIC}.backlog_span: traffic.backlog_span {AT_ZERO}",
        ),
        (
            "      sources.q.traffic: {rate: 10/s, initial_backlog: 100}",
            f"{TRAFFIC}: traffic.initial_backlog {AT_ZERO}",
        ),
        (
            "      sources.q.type: kinesis",
            "{path}:8: changes[0].set.sources.q.type: AWS does not let an update change a source's type",
        ),
        (
            "      sources.q.fifo: true",
            "{path}:8: changes[0].set.sources.q.fifo: AWS does not let an update change a source's fifo",
        ),
        (
            "      sources.q.traffic.partition_keys: 50",
            "{path}:7: changes[0].set: at 600 s: sources.q.traffic.partition_keys: only for Kinesis and "
            "DynamoDB streams: an SQS queue's traffic has no partition keys",
        ),
    ],
    ids=["initial-backlog", "backlog-span", "block-with-backlog", "type", "fifo", "stream-key-on-a-queue"],
)
def test_bad_traffic_changes_get_one_line(tmp_path: Path, line: str, expected: str) -> None:
    path = tmp_path / "live.yaml"
    path.write_text("\n".join([*BASE, line]) + "\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert_bad(result, expected.format(path=path))


@st.composite
def traffic_changes(draw: st.DrawFn) -> tuple[Scenario, float]:
    """A small SQS scenario whose queues' traffic changes once or twice; and the first effective time."""
    base = draw(sqs_scenarios())
    changes: list[dict[str, Any]] = []
    at = 0.0
    for _ in range(draw(st.integers(1, 2))):
        at += draw(st.floats(1.0, base.duration / 2))
        name = draw(st.sampled_from(list(base.sources)))
        kind = draw(st.sampled_from(["rate", "pattern", "block", "stop"]))
        key = f"sources.{name}.traffic"
        if kind == "rate":
            sets: dict[str, Any] = {f"{key}.rate": draw(st.sampled_from([1, 5, 20]))}
        elif kind == "pattern":
            sets = {f"{key}.pattern": draw(st.sampled_from(["poisson", "constant"]))}
        elif kind == "block":
            sets = {key: {"rate": draw(st.sampled_from([2, 10])), "record_size": "3KB"}}
        else:
            sets = {key: {"rate": 0}}
        changes.append({"at": at, "set": sets})
    raw = base.data()
    raw["changes"] = changes
    raw["update_delay"] = draw(st.sampled_from([0, 1, 5]))
    try:
        s = Scenario.model_validate(raw)
    except ScenarioError:
        assume(False)
        raise
    return s, changes[0]["at"] + s.update_delay


@LIVE_SETTINGS
@given(traffic_changes())
def test_traffic_changes_conserve_records_and_keep_what_came_before(case: tuple[Scenario, float]) -> None:
    s, first = case
    result = traced(s)
    assert_conserved(result)
    plain = traced(s.model_copy(update={"changes": []}))
    for name in s.sources:
        a, b = sent(result, name), sent(plain, name)
        np.testing.assert_array_equal(a[a <= first], b[b <= first])
        # A queue whose traffic stops (rate 0, no schedule) sends nothing once the stop takes effect.
        timeline = [(0.0, s.sources[name].traffic)]
        for effective_at, stage in s.stages:
            if stage.sources[name].traffic != timeline[-1][1]:
                timeline.append((effective_at, stage.sources[name].traffic))
        stop_at, final = timeline[-1]
        if stop_at > 0 and final.rate == 0 and not final.schedule:
            assert (a > stop_at).sum() == 0
