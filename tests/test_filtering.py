"""Event filtering (a mapping's ``filter``) on SQS queues and Kinesis/DynamoDB streams (docs/model.md §15).

Which record matches is a hash of its key (esmsim.model.filtering): the micro-scenarios ask the
filter itself which of their records match, then check that exactly those reach the function.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from esmsim.cli import main
from esmsim.model.filtering import RecordFilter
from esmsim.model.stream_filtering import filter_keys
from esmsim.rng import Streams
from esmsim.scenario.mappings import EventFilter
from esmsim.scenario.scenario import Scenario
from tests.helpers import ONE_POLLER, assert_conserved, invocations_of, merge, records_of, scenario, traced

KIND = {"kind": {"a": 0.3, "b": 0.7}}
PATTERN_A = {"pattern": {"kind": ["a"]}}


def state(records: pd.DataFrame) -> np.ndarray:
    return records["state"].astype(str).to_numpy()


def matching(keys: np.ndarray, spec: dict[str, Any], source: str, seed: int = 1) -> np.ndarray:
    """Which keys mapping 0's filter ``spec`` lets through (the model's own decision)."""
    flt = RecordFilter(
        EventFilter.model_validate(spec), KIND, source=source, mapping=0, streams=Streams(seed)
    )
    return flt.matches(keys)


def sqs(extra: dict[str, Any] | None = None, mapping: dict[str, Any] | None = None) -> Scenario:
    """Ten messages, one a second (t = 1..10), with a ``kind`` attribute, one poller."""
    traffic = {"rate": "1/s", "pattern": "constant", "attributes": KIND}
    base = {"duration": 10.5, "sources": {"q": {"traffic": traffic}}}
    return scenario(merge(base, extra or {}), {"poller_scaling": ONE_POLLER, **(mapping or {})})


STREAM: dict[str, Any] = {
    "name": "stream-micro",
    "duration": 60,
    "seed": 1,
    "functions": {"f": {"timeout": 10, "duration": "100ms", "cold_start": "0s"}},
    "sources": {
        "s": {
            "type": "kinesis",
            "shards": 1,
            "traffic": {"rate": 0, "initial_backlog": 10, "attributes": KIND},
        }
    },
    "mappings": [{"source": "s", "function": "f", "starting_position": "TRIM_HORIZON", "batch_size": 2}],
}


def stream(extra: dict[str, Any] | None = None, mapping: dict[str, Any] | None = None) -> Scenario:
    raw = merge(STREAM, extra or {})
    raw["mappings"] = [merge(raw["mappings"][0], mapping or {})]
    return Scenario.model_validate(raw)


# ---------------------------------------------------------------------------------------------- SQS
def test_sqs_only_matching_messages_reach_the_function() -> None:
    # Messages are keyed 0..9 in sending order (sent at t = 1..10); the pattern lets 3 of them
    # through with this seed. Each is received as it arrives (one poller, no window): the 3
    # matching ones are invoked, one each, the 7 others are received and deleted without an invoke.
    hit = matching(np.arange(10), PATTERN_A, "q")
    assert hit.sum() == 3  # the seed's draw: the test's premise
    result = traced(sqs(mapping={"filter": PATTERN_A}))
    rec = records_of(result, "q")
    assert len(rec) == 10
    done = rec[state(rec) == "succeeded"]
    filtered = rec[state(rec) == "filtered"]
    np.testing.assert_allclose(np.sort(done["sent_s"]), 1.0 + np.flatnonzero(hit))
    np.testing.assert_allclose(np.sort(filtered["sent_s"]), 1.0 + np.flatnonzero(~hit))
    inv = invocations_of(result, 0)
    assert list(inv["records"]) == [1, 1, 1]
    np.testing.assert_allclose(inv["start_s"], 1.0 + np.flatnonzero(hit) + 0.01, atol=1e-9)  # + round trip
    # Received and deleted by Lambda on arrival (the poller was waiting).
    np.testing.assert_allclose(np.sort(filtered["done_s"]), 1.0 + np.flatnonzero(~hit))
    ts = result.timeseries
    assert ts["NumberOfMessagesReceived"].sum() == 10
    assert ts["NumberOfMessagesDeleted"].sum() == 10
    assert ts["FilteredOutEventCount"].sum() == 7
    assert result.summary["records_filtered"] == 7
    assert_conserved(result)


def test_sqs_batch_fills_with_matching_messages_only() -> None:
    # A backlog of the same ten messages at t=0 and batch size 3: the poller receives on, deleting
    # the 7 that do not match, until it holds 3 matching ones: one invocation of 3 (unfiltered:
    # 3 + 3 + 3 + 1). The filtered ones before the last matching message leave with that receive.
    backlog = {"sources": {"q": {"traffic": {"rate": 0, "initial_backlog": 10}}}}
    result = traced(sqs(backlog, {"batch_size": 3, "filter": PATTERN_A}))
    assert list(invocations_of(result, 0)["records"]) == [3]
    unfiltered = traced(sqs(backlog, {"batch_size": 3}))
    assert list(invocations_of(unfiltered, 0)["records"]) == [3, 3, 3, 1]
    rec = records_of(result, "q")
    assert (state(rec) == "filtered").sum() == 7
    assert_conserved(result)


def test_sqs_fifo_filters_too() -> None:
    extra = {"sources": {"q": {"fifo": True, "traffic": {"message_groups": 2}}}}
    result = traced(sqs(extra, {"filter": PATTERN_A}))
    rec = records_of(result, "q")
    hit = matching(np.arange(10), PATTERN_A, "q")
    np.testing.assert_allclose(np.sort(rec[state(rec) == "succeeded"]["sent_s"]), 1.0 + np.flatnonzero(hit))
    assert invocations_of(result, 0)["records"].sum() == 3
    assert_conserved(result)


# ------------------------------------------------------------------------------------------ streams
def test_stream_skips_filtered_records_in_order() -> None:
    # Ten records in one shard at t=0, sequence numbers 0..9; batch size 2. Matching records are
    # invoked in shard order, two to a batch; rejected ones never count toward the batch size and
    # end when the checkpoint passes them: those inside a batch's range with its invocation's end,
    # those ahead of the first matching record (or after the last) as the lane reaches them.
    keys = filter_keys(0, np.arange(10))
    hit = matching(keys, PATTERN_A, "s")
    assert hit.sum() == 3
    result = traced(stream(mapping={"filter": PATTERN_A}))
    inv = invocations_of(result, 0)
    assert list(inv["records"]) == [2, 1]
    rec = records_of(result, "mappings[0]: s -> f")
    assert len(rec) == 10
    ids = rec["id"].to_numpy()
    done = rec[state(rec) == "succeeded"].sort_values("done_s", kind="stable")
    np.testing.assert_array_equal(np.sort(done["id"]), ids[hit])
    assert (np.diff(done["id"].to_numpy()) > 0).all()  # order kept
    np.testing.assert_array_equal(state(rec)[~hit], ["filtered"] * 7)
    matched = np.flatnonzero(hit)
    ends = rec["done_s"].to_numpy()
    # Rejected records between the first and second matching ones lie in the first batch.
    inside = np.arange(matched[0], matched[1])
    np.testing.assert_allclose(ends[inside], float(inv["end_s"][0]))
    # Every rejected record ends no later than the next matching record after it.
    for i in np.flatnonzero(~hit):
        later = matched[matched > i]
        if later.size:
            assert ends[i] <= ends[later[0]] + 1e-9
    assert_conserved(result)


def test_stream_reads_are_unchanged_by_a_filter() -> None:
    # The poller reads every record whatever the filter: GetRecords calls, the bytes read and the
    # iterator age of the reads are the same (a fast function: the lanes never hold the reader up).
    raw: dict[str, Any] = {
        "duration": 300,
        "functions": {"f": {"duration": "1ms"}},
        "sources": {"s": {"shards": 2, "traffic": {"rate": "40/s", "initial_backlog": 0}}},
    }
    plain = traced(stream(raw, {"batch_size": 1000}))
    filtered = traced(stream(raw, {"batch_size": 1000, "filter": {"match_rate": 0.3}}))
    a, b = plain.summary, filtered.summary
    assert a["getrecords_calls"] == b["getrecords_calls"]
    assert a["iterator_age_max_s"] == b["iterator_age_max_s"]
    ta, tb = plain.timeseries, filtered.timeseries
    np.testing.assert_array_equal(
        ta["GetRecords.IteratorAgeMilliseconds"], tb["GetRecords.IteratorAgeMilliseconds"]
    )
    assert b["records_succeeded"] + b["records_filtered"] == a["records_succeeded"]
    assert b["cost_source_usd"] == a["cost_source_usd"]
    assert_conserved(filtered)


# --------------------------------------------------------------------------- the done-when check
@pytest.mark.parametrize("kind", ["sqs", "kinesis"])
def test_match_rate_cuts_invocations_in_proportion(kind: str) -> None:
    # Batch size 1: each matching record is one invocation, so invocations are Binomial(N, 0.3)
    # given N records (each record's match an independent uniform draw). Over N ~ 12,000 the share
    # has a standard deviation sqrt(0.21 / N) ~ 0.0042: 4 of them (0.017) is the tolerance.
    rate = 0.3
    fast = {"duration": 600, "functions": {"f": {"duration": "5ms"}}}
    if kind == "sqs":
        s = scenario(merge(fast, {"sources": {"q": {"traffic": {"rate": "20/s"}}}}), {"batch_size": 1})
    else:
        traffic = {"rate": "20/s", "initial_backlog": 0}
        s = stream(merge(fast, {"sources": {"s": {"traffic": traffic}}}), {"batch_size": 1})
    plain = traced(s)
    raw = s.model_dump(mode="json", exclude_unset=True, by_alias=False)
    raw["mappings"][0]["filter"] = {"match_rate": rate}
    result = traced(Scenario.model_validate(raw))
    assert_conserved(result)
    n = result.summary["records_in"]
    assert plain.summary["records_in"] == n
    # Unfiltered, one invocation per record (but for those of the run's last second).
    assert plain.summary["invocations"] >= n - 40
    s_ = result.summary
    decided = s_["records_filtered"] + s_["records_succeeded"]
    share = result.summary["invocations"] / decided
    assert abs(share - rate) < 4 * math.sqrt(rate * (1 - rate) / decided)
    assert s_["records_filtered"] + s_["records_succeeded"] + s_["records_in_flight_end"] == n
    # Filtered records are never billed as invocations: Lambda's request cost follows invocations.
    assert s_["cost_lambda_requests_usd"] < plain.summary["cost_lambda_requests_usd"] * (rate + 0.05)
    if kind == "sqs":
        # Every message is still received and deleted: the SQS requests do not fall with it.
        assert s_["sqs_requests"] >= 2 * n / 10


# --------------------------------------------------------------------------------- property
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["sqs", "kinesis", "dynamodb"]),
    rate=st.sampled_from(["5/s", "30/s", "100/s"]),
    match_rate=st.floats(0.0, 1.0),
    batch_size=st.integers(1, 50),
    window=st.sampled_from([0, 0, 1, 3]),
    reserved=st.sampled_from([None, 1, 3]),
    seed=st.integers(0, 1000),
    paused=st.booleans(),
)
# An invocation ending at exactly the run's end (found by CI): its record is still in flight.
@example(
    kind="kinesis",
    rate="5/s",
    match_rate=0.734375,
    batch_size=1,
    window=0,
    reserved=None,
    seed=1,
    paused=False,
)
def test_property_conservation_and_filtered_never_invoked(
    kind: str,
    rate: str,
    match_rate: float,
    batch_size: int,
    window: int,
    reserved: int | None,
    seed: int,
    paused: bool,
) -> None:
    raw: dict[str, Any] = {
        "name": "prop",
        "duration": 120,
        "seed": seed,
        "functions": {
            "f": {"timeout": 10, "duration": "100ms", "cold_start": "0s", "reserved_concurrency": reserved}
        },
        "mappings": [{"source": "s", "function": "f", "filter": {"match_rate": match_rate}}],
    }
    if kind == "sqs":
        raw["sources"] = {"s": {"type": "sqs", "visibility_timeout": 60, "traffic": {"rate": rate}}}
        raw["mappings"][0] |= {"batch_size": min(batch_size, 10) if window == 0 else batch_size}
    else:
        raw["sources"] = {"s": {"type": kind, "shards": 2, "traffic": {"rate": rate}}}
        raw["mappings"][0] |= {"batch_size": batch_size, "starting_position": "TRIM_HORIZON"}
    raw["mappings"][0]["batching_window"] = window
    if paused:  # disabled from 30 s to 70 s: nothing is received, filtered or invoked meanwhile
        raw["changes"] = [{"at": 30, "set": {"mappings[0].enabled": False}}]
        raw["changes"].append({"at": 70, "set": {"mappings[0].enabled": True}})
    s = Scenario.model_validate(raw)
    result = traced(s)
    assert_conserved(result)
    if paused:
        off, on = s.stages[0][0], s.stages[1][0]
        rec = result.records
        inside = (rec["done_s"] > off) & (rec["done_s"] < on)
        # Nothing is received or read while it is disabled: what ends then was taken before, in a
        # batch in hand that finishes (throttled retries and all). A filtered stream record ends
        # with the batch it lies in: at an invocation's end (SQS deletes its own when disabled).
        done = rec[inside & (state(rec) == "succeeded")]
        assert (done["sent_s"] + done["queued_s"] <= off + 1e-9).all()
        ends = np.round(result.invocations["end_s"].to_numpy(), 9)
        skipped = rec.loc[inside & (state(rec) == "filtered"), "done_s"].to_numpy()
        assert np.isin(np.round(skipped, 9), ends).all()
    # Functions never fail here, so a record sent to the function is in one invocation and ends
    # SUCCEEDED (or is still in flight in one running at the end): a FILTERED record in an
    # invocation would make the invocations hold more records than that.
    inv = result.invocations
    rec = result.records
    succeeded = int((state(rec) == "succeeded").sum())
    # The run's end is exclusive: an invocation ending at exactly `duration` has not ended.
    running = int(inv.loc[inv["end_s"] >= result.scenario.duration, "records"].sum())
    assert int(inv["records"].sum()) - running == succeeded
    assert (inv["records"] >= 1).all()
    assert (inv["records"] <= raw["mappings"][0]["batch_size"]).all()


# ------------------------------------------------------------------------------- live changes
def test_live_filter_change() -> None:
    # SQS: a filter set at t=300 judges the messages arriving after it; streams: a filter lifted at
    # t=300 is not applied to the batches formed after it.
    s = scenario(
        {
            "duration": 600,
            "update_delay": 0,
            "sources": {"q": {"traffic": {"rate": "10/s", "pattern": "constant"}}},
            "changes": [{"at": 300, "set": {"mappings[0].filter": {"match_rate": 0.2}}}],
        },
        {"batch_size": 1},
    )
    result = traced(s)
    assert_conserved(result)
    rec = result.records
    filtered = rec[state(rec) == "filtered"]
    assert filtered["sent_s"].min() >= 300
    after = int((rec["sent_s"] > 300).sum())
    assert abs(len(filtered) / after - 0.8) < 4 * math.sqrt(0.16 / after)
    k = stream(
        {
            "duration": 600,
            "update_delay": 0,
            "sources": {"s": {"traffic": {"rate": "10/s", "initial_backlog": 0}}},
            "changes": [{"at": 300, "set": {"mappings[0].filter": None}}],
        },
        {"batch_size": 1, "filter": {"match_rate": 0.2}},
    )
    result = traced(k)
    assert_conserved(result)
    rec = result.records
    assert rec.loc[state(rec) == "filtered", "sent_s"].max() < 300
    assert (state(rec[rec["sent_s"] > 301]) != "filtered").all()


# --------------------------------------------------------------------------------- bad input
BAD_BASE = """\
functions:
  f: {timeout: 10}
sources:
  q:
    type: sqs
    traffic:
      rate: 1/s
      attributes:
        kind: {a: 0.3, b: 0.7}
EXTRA
"""


@pytest.mark.parametrize(
    ("extra", "line", "message"),
    [
        (
            "mappings:\n  - {source: q, function: f, filter: {pattern: {kinds: [a]}}}",
            11,
            "mappings[0].filter.pattern.kinds: 'kinds' is not an attribute of the traffic of source 'q' "
            "(allowed: its traffic.attributes: kind) (did you mean 'kind'?)",
        ),
        (
            "mappings:\n  - {source: q, function: f, filter: {pattern: {kind: [c]}}}",
            11,
            "mappings[0].filter.pattern.kind: 'c' is not a value of attribute 'kind' of source 'q' "
            "(allowed: 'a', 'b')",
        ),
        (
            "mappings:\n  - {source: q, function: f, filter: {match_rate: 1.5}}",
            11,
            "mappings[0].filter.match_rate",
        ),
        (
            "mappings:\n  - {source: q, function: f}\nchanges:\n"
            "  - {at: 60, set: {sources.q.traffic.attributes: {kind: {a: 1}}}}",
            None,
            "traffic.attributes hold for the whole run",
        ),
    ],
)
def test_bad_filter_input(tmp_path: Path, extra: str, line: int | None, message: str) -> None:
    text = BAD_BASE.replace("EXTRA", extra)
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert "Traceback" not in result.output
    assert result.exit_code == 2, result.output
    first = result.stderr.strip().splitlines()[0]
    if line is not None:
        assert first.startswith(f"{path}:{line}: ")
    assert message in first


def test_a_filter_needs_its_queue_to_itself(tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    two = "mappings:\n  - {source: q, function: f, filter: {match_rate: 0.5}}\n  - {source: q, function: g}"
    text = BAD_BASE.replace("EXTRA", two).replace(
        "  f: {timeout: 10}\n", "  f: {timeout: 10}\n  g: {timeout: 10}\n"
    )
    path.write_text(text)
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2
    first = result.stderr.strip().splitlines()[0]
    assert first.startswith(f"{path}:12: mappings[0].filter: queue 'q' is also read by mappings[1]")


def test_a_trigger_takes_no_filter(tmp_path: Path) -> None:
    # SNS subscription filter policies and EventBridge rules are not event source mapping filters.
    path = tmp_path / "sns.yaml"
    path.write_text(
        "functions:\n  f: {timeout: 10}\nsources:\n  t: {type: sns, traffic: {rate: 1/s}}\n"
        "triggers:\n  - {source: t, function: f, filter: {match_rate: 0.5}}\n"
    )
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2
    assert "triggers[0].filter: unknown key here" in result.stderr


# ------------------------------------------------------------------------ results and the story
def test_resources_and_explain_name_the_filter() -> None:
    s = scenario(
        {
            "duration": 300,
            "functions": {"f": {"duration": "1s"}},
            "sources": {"q": {"traffic": {"rate": "100/s", "attributes": {"k": {"a": 0.4, "b": 0.6}}}}},
        },
        {"maximum_concurrency": 2, "filter": {"pattern": {"k": ["a"]}}},
    )
    result = traced(s)
    row = result.resources.set_index("name").loc["mappings[0]: q -> f"]
    assert row["records_filtered"] == result.summary["records_filtered"] > 0
    advice = result.limits["mappings[0]: q -> f"]["advice"]
    assert advice.startswith("maximum_concurrency")
    assert "its filter passes about 40% of records" in advice


def test_filtered_events_scenario_tells_its_story() -> None:
    # A quarter of the events match: invocations and Lambda's bill fall to well under half of the
    # unfiltered run's, every message is still received and deleted (SQS requests do not fall), and
    # the filtered share of records is the pattern's share (0.75, within 4 standard deviations).
    from esmsim import load_scenario, simulate

    path = Path(__file__).resolve().parent.parent / "scenarios" / "sqs-filtered-events.yaml"
    filtered = simulate(load_scenario(path, ["duration=6m", "warmup=1m"])).summary
    plain = simulate(load_scenario(path, ["duration=6m", "warmup=1m", "mappings[0].filter=null"])).summary
    n = filtered["records_in"]
    assert abs(filtered["records_filtered"] / n - 0.75) < 4 * math.sqrt(0.75 * 0.25 / n)
    assert filtered["invocations"] < 0.5 * plain["invocations"]
    lambda_cost = ("cost_lambda_requests_usd", "cost_lambda_compute_usd")
    assert sum(filtered[k] for k in lambda_cost) < 0.5 * sum(plain[k] for k in lambda_cost)
    assert filtered["sqs_requests"] >= plain["sqs_requests"] * 0.9


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["sqs", "kinesis"]),
    match_rate=st.floats(0.0, 1.0),
    batch_size=st.integers(1, 10),
    error_rate=st.sampled_from([0.05, 0.3]),
    poison=st.sampled_from([0.0, 0.01]),
    item_failures=st.booleans(),
    bisect=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_property_conservation_with_failures(
    kind: str,
    match_rate: float,
    batch_size: int,
    error_rate: float,
    poison: float,
    item_failures: bool,
    bisect: bool,
    seed: int,
) -> None:
    # Failing batches are retried, split, partly checkpointed and discarded: filtered records still
    # end exactly once, FILTERED, and the books balance.
    errors = {
        "invocation_error_rate": error_rate,
        "record_error_rate": error_rate / 10,
        "poison_record_rate": poison,
    }
    mapping: dict[str, Any] = {
        "source": "s",
        "function": "f",
        "batch_size": batch_size,
        "report_batch_item_failures": item_failures,
        "filter": {"match_rate": match_rate},
    }
    if kind == "sqs":
        source: dict[str, Any] = {"type": "sqs", "visibility_timeout": 20, "max_receive_count": 3}
    else:
        source = {"type": "kinesis", "shards": 2}
        mapping |= {
            "starting_position": "TRIM_HORIZON",
            "bisect_batch_on_function_error": bisect,
            "maximum_retry_attempts": 2,
            "parallelization_factor": 2,
        }
    raw = {
        "name": "prop-failures",
        "duration": 180,
        "seed": seed,
        "functions": {"f": {"timeout": 3, "duration": "50ms", "cold_start": "0s", "errors": errors}},
        "sources": {"s": source | {"traffic": {"rate": "20/s"}}},
        "mappings": [mapping],
    }
    result = traced(Scenario.model_validate(raw))
    assert_conserved(result)
    inv = result.invocations
    assert (inv["records"] >= 1).all()
    assert (inv["records"] <= batch_size).all()
