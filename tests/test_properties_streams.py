"""Properties of stream mappings over small random scenarios (hypothesis).

Conservation (every record of every consumer ends in exactly one outcome or is still in flight),
concurrency never above shards x parallelization factor, records of one partition key processed in
order, and determinism.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from esmsim.metrics import observe
from esmsim.model.records import DLQ, DROPPED, EXPIRED, SUCCEEDED
from esmsim.run import simulate
from esmsim.scenario.scenario import Scenario
from tests.conftest import assert_conserved, invocations, run_recording, run_world

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def stream_scenarios(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["kinesis", "dynamodb"]))
    shards = draw(st.integers(1, 4))
    n_mappings = draw(st.integers(1, 2))
    functions: dict[str, Any] = {}
    mappings = []
    for i in range(n_mappings):
        name = f"f{i}" if draw(st.booleans()) or i == 0 else "f0"  # fan-in: two mappings, one function
        functions.setdefault(
            name,
            {
                "timeout": 30,
                "duration": {"dist": "exponential", "mean": draw(st.sampled_from(["20ms", "200ms", "1s"]))},
                "per_record": draw(st.sampled_from(["0s", "5ms"])),
                "cold_start": draw(st.sampled_from(["0s", "300ms"])),
                "reserved_concurrency": draw(st.sampled_from([None, None, 1, 3, 20])),
                "errors": {
                    "invocation_error_rate": draw(st.sampled_from([0.0, 0.0, 0.05, 0.5])),
                    "poison_record_rate": draw(st.sampled_from([0.0, 0.0, 0.01])),
                    "record_error_rate": draw(st.sampled_from([0.0, 0.02])),
                },
            },
        )
        mapping: dict[str, Any] = {
            "source": "s",
            "function": name,
            "starting_position": draw(st.sampled_from(["LATEST", "TRIM_HORIZON"])),
            "batch_size": draw(st.integers(1, 50)),
            "batching_window": draw(st.sampled_from([0, 0, 1, 2])),
            "parallelization_factor": draw(st.integers(1, 4)),
            "maximum_retry_attempts": draw(st.sampled_from([-1, 0, 1, 3])),
            "maximum_record_age": draw(st.sampled_from([-1, -1, 60])),
            "bisect_batch_on_function_error": draw(st.booleans()),
            "report_batch_item_failures": draw(st.booleans()),
            "on_failure": draw(st.sampled_from([None, {"type": "sqs"}])),
            "retry_backoff": {"initial": draw(st.sampled_from(["0s", "1s"])), "maximum": "10s"},
        }
        if kind == "kinesis" and draw(st.booleans()):
            mapping["enhanced_fan_out"] = True
        mappings.append(mapping)
    # Two mappings to one function from one source would be a duplicate: AWS refuses it.
    if n_mappings == 2 and mappings[0]["function"] == mappings[1]["function"]:
        mappings[1]["function"] = "f1"
        functions.setdefault("f1", dict(functions["f0"]))
    source: dict[str, Any] = {
        "type": kind,
        "shards": shards,
        "traffic": {
            "rate": draw(st.sampled_from([0, 5, 20, 60])),
            "initial_backlog": draw(st.sampled_from([0, 10, 200])),
            # A backlog sent up to 24 h before time 0 starts expiring (24 h retention) during the run.
            "backlog_span": draw(st.sampled_from([0, 120, 86_400 - 30])),
            "partition_keys": draw(st.sampled_from([1, 5, 100])),
            "key_skew": draw(st.sampled_from([0.0, 1.0])),
            "record_size": draw(st.sampled_from(["200B", "64KB"])),
        },
    }
    if kind == "kinesis":
        source["write_records_per_second"] = draw(st.sampled_from([1000, 20]))
    return {
        "name": "stream-property",
        "duration": draw(st.sampled_from([60, 200])),
        "seed": draw(st.integers(0, 10_000)),
        "functions": functions,
        "sources": {"s": source},
        "mappings": mappings,
    }


@SETTINGS
@given(stream_scenarios())
def test_conservation_caps_and_key_order(raw: dict[str, Any]) -> None:
    scenario = Scenario.model_validate(raw)
    world, log = run_recording(scenario)
    stream = world.streams["s"]
    for m in world.stream_mappings:
        scope = m.in_scope
        states = m.state[scope]
        finished = np.isin(states, [SUCCEEDED, DLQ, DROPPED, EXPIRED])
        # Every record in the mapping's scope is finished or still unprocessed; nothing else exists.
        assert np.isin(states, [0, 1, SUCCEEDED, DLQ, DROPPED, EXPIRED]).all()
        # Records outside the scope (before the starting position) are never touched.
        assert (m.state[~scope] == 0).all()
        # A finished record was finished after it was written.
        done = m.done_at[scope][finished]
        assert (done >= stream.accepted_at[scope][finished] - 1e-9).all()
        # Expired records left exactly when their retention ended.
        expired = scope & (m.state == EXPIRED)
        np.testing.assert_allclose(m.done_at[expired], stream.accepted_at[expired] + stream.retention_s)
        # Records without a destination are dropped, with one they go to it: never both kinds.
        if m.spec.on_failure is None:
            assert not (m.state[scope] == DLQ).any()
        else:
            assert not (m.state[scope] == DROPPED).any()
    # Concurrency of each mapping never exceeds shards x parallelization factor.
    inv = invocations(world)
    for m in world.stream_mappings:
        mine = inv["mapping"] == m.index
        times = np.concatenate([inv["start_at"][mine], inv["end_at"][mine]])
        deltas = np.concatenate([np.ones(mine.sum()), -np.ones(mine.sum())])
        order = np.lexsort((deltas, times))
        peak = np.cumsum(deltas[order]).max() if times.size else 0
        assert peak <= stream.shards * m.spec.parallelization_factor
        assert inv["records"][mine].max(initial=0) <= m.spec.batch_size
    # Records of one key, within one mapping, succeed in the order they were written.
    if len(world.stream_mappings) == 1:
        m = world.stream_mappings[0]
        ok = np.flatnonzero(m.in_scope & (m.state == SUCCEEDED))
        key = stream.key_lane_draw[ok]  # equal draws <=> same partition key
        frame = pd.DataFrame({"key": key, "row": ok, "done": m.done_at[ok]}).sort_values(["key", "row"])
        assert (frame.groupby("key")["done"].diff().dropna() >= -1e-9).all()
    # Each batch holds records of one shard only.
    for _, _, rows, _ in log:
        if rows.size:
            assert len(set(stream.shard[rows].tolist())) == 1


@SETTINGS
@given(stream_scenarios())
def test_summary_conserves_records_and_is_deterministic(raw: dict[str, Any]) -> None:
    scenario = Scenario.model_validate(raw)
    first = simulate(scenario)
    second = simulate(scenario)
    s = first.summary
    world = run_world(scenario)
    assert_conserved(world, observe(world).summary, first.timeseries)
    assert s["records_in"] == (
        s["records_succeeded"]
        + s["records_dlq"]
        + s["records_dropped"]
        + s["records_expired"]
        + s["records_in_flight_end"]
    )

    def same(a: Any, b: Any) -> bool:
        return (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)) or a == b

    assert all(same(first.summary[k], second.summary[k]) for k in s)
    pd.testing.assert_frame_equal(first.timeseries, second.timeseries)
