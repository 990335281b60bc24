"""SQS FIFO queues (docs/model.md §2, "FIFO queues"): order per message group, blocked groups, dedup.

Message groups are drawn per message from the queue's "groups" stream (uniform over
``message_groups`` here), poison draws from its "poison" stream, one per message in sending order:
the tests recompute both to know which message is in which group and which one is poison.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from esmsim import load_scenario, simulate
from esmsim.model.stream_source import zipf_keys
from esmsim.rng import Streams
from esmsim.scenario.pricing import Pricing
from tests.helpers import (
    ONE_POLLER,
    assert_conserved,
    invocations_of,
    peak_concurrency,
    records_of,
    scenario,
    traced,
)
from tests.test_bad_input import check, run_file
from tests.test_bad_input import scenario as bad_input_file

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"

#: A FIFO queue holding 10 messages at time 0 in 2 groups; seed 4 makes message 6 the only poison
#: one (at a 15 % poison rate), in group 1 with messages 7 and 9 after it.
TEN_IN_TWO_GROUPS: dict[str, Any] = {
    "seed": 4,
    "duration": 120,
    "functions": {"f": {"errors": {"poison_record_rate": 0.15}}},
    "sources": {
        "q": {
            "fifo": True,
            "visibility_timeout": 30,
            "traffic": {"rate": 0, "initial_backlog": 10, "message_groups": 2},
        }
    },
}


def groups_of(seed: int, n: int, groups: int) -> np.ndarray:
    """The message groups of a queue's first ``n`` messages (uniform popularity, no duplicates)."""
    return zipf_keys(Streams(seed).get("groups", "q"), n, groups, None)


def states(records: pd.DataFrame) -> np.ndarray:
    return records["state"].astype(str).to_numpy()


def test_the_seed_gives_one_poison_message_in_group_1_with_later_ones() -> None:
    groups = groups_of(4, 10, 2)
    poison = Streams(4).get("poison", "q").random(10) < 0.15
    np.testing.assert_array_equal(groups, [1, 0, 1, 1, 0, 1, 1, 1, 0, 1])
    np.testing.assert_array_equal(np.flatnonzero(poison), [6])


def test_a_poisoned_group_stalls_until_the_dlq_while_the_other_flows() -> None:
    # Batches of 1, one poller, max_receive_count 2. Message 6 (group 1) fails at ~0.7 s; its group is
    # blocked while it is in flight (invisible for 30 s) and again while its second receive is, so
    # 7 and 9 wait; group 0 (1, 4, 8) flows meanwhile. At its second visibility timeout (~60.7 s)
    # message 6 moves to the DLQ and 7 then 9 follow at once.
    s = scenario(
        {
            **TEN_IN_TWO_GROUPS,
            "sources": {"q": {**TEN_IN_TWO_GROUPS["sources"]["q"], "max_receive_count": 2}},
        },
        {"batch_size": 1, "poller_scaling": ONE_POLLER},
    )
    result = traced(s)
    assert_conserved(result)
    rec = records_of(result, "q").sort_values("id").reset_index(drop=True)
    done = rec["done_s"].to_numpy()
    assert list(states(rec)) == ["succeeded"] * 6 + ["dlq"] + ["succeeded"] * 3
    assert (done[[0, 1, 2, 3, 4, 5, 8]] < 2).all()  # group 0, and group 1 before the poison
    assert 60 < done[6] < 62  # two receives 30 s apart, each invisible for 30 s
    assert done[6] < done[7] < done[9] < done[6] + 1  # order kept: the group flows again at once
    inv = invocations_of(result, 0)
    assert list(inv["outcome"].astype(str)).count("error") == 2


def test_with_partial_responses_the_failed_message_and_its_group_s_later_ones_return() -> None:
    # Batch size 10 and one poller: the first receive takes all ten, both groups. The handler fails
    # message 6; with ReportBatchItemFailures the mapping returns it and the later messages of its
    # group in the batch (7, 9): the rest are deleted at 0.11 s. The three come back at 30.01 s (the
    # waiting poller takes them as they become visible) in a batch of their own, fail the same way,
    # come back at 60.01 s, and when their third receive ends (max_receive_count 3, at 90.01 s) all
    # three are dead-lettered together: the unprocessed ones spent their receives alongside.
    s = scenario(
        {
            **TEN_IN_TWO_GROUPS,
            "sources": {"q": {**TEN_IN_TWO_GROUPS["sources"]["q"], "max_receive_count": 3}},
        },
        {"batch_size": 10, "poller_scaling": ONE_POLLER, "report_batch_item_failures": True},
    )
    result = traced(s)
    assert_conserved(result)
    rec = records_of(result, "q").sort_values("id").reset_index(drop=True)
    dlq = states(rec) == "dlq"
    np.testing.assert_array_equal(np.flatnonzero(dlq), [6, 7, 9])
    np.testing.assert_allclose(rec.loc[~dlq, "done_s"], 0.11)
    np.testing.assert_allclose(rec.loc[dlq, "done_s"], 90.01)
    inv = invocations_of(result, 0)
    np.testing.assert_array_equal(inv["records"], [10, 3, 3])
    np.testing.assert_allclose(inv["start_s"], [0.01, 30.01, 60.01], atol=1e-6)


def test_duplicates_are_dropped_and_counted() -> None:
    s = scenario(
        {"duration": 60, "sources": {"q": {"fifo": True, "traffic": {"rate": "20/s", "duplicate_rate": 0.1}}}}
    )
    result = traced(s)
    assert_conserved(result)
    summary = result.summary
    sends = summary["records_in"] + summary["fifo_duplicates_dropped"]
    assert 0.05 * sends < summary["fifo_duplicates_dropped"] < 0.15 * sends
    assert summary["records_in"] == len(records_of(result, "q"))


def test_sends_beyond_300_a_second_are_delayed() -> None:
    # 400 sends a second against a quota of 300: producers' retries push acceptance later and later.
    s = scenario(
        {
            "duration": 20,
            "sources": {"q": {"fifo": True, "traffic": {"rate": "400/s", "pattern": "constant"}}},
        }
    )
    summary = simulate(s).summary
    assert summary["fifo_sends_throttled"] > 0
    # Send i (from 0) goes at (i + 1) / 400 s. A bucket of one second's worth (300), refilled at 300
    # a second, accepts it at (i - 299) / 300 + 1/400 s once that is later: from i = 1,197 on, so
    # 6,803 of the 8,000 sends are throttled. By the end (20 s) sends up to i = 6,298 are in (the
    # last accepted at 19.9992 s, sent at 15.7475 s); later ones are still being retried.
    np.testing.assert_allclose(summary["fifo_send_delay_max_s"], 5999 / 300 + 1 / 400 - 6299 / 400)
    assert summary["records_in"] == 6299
    assert summary["fifo_sends_throttled"] == 6803
    high = scenario(
        {
            "duration": 20,
            "sources": {
                "q": {
                    "fifo": True,
                    "high_throughput": True,
                    "traffic": {"rate": "400/s", "pattern": "constant"},
                }
            },
        }
    )
    assert simulate(high).summary["fifo_sends_throttled"] == 0


def test_fifo_requests_cost_more_than_standard_ones() -> None:
    assert Pricing().sqs_fifo_request_per_million_usd == 0.50
    base = {
        "duration": 60,
        "sources": {"q": {"fifo": True, "traffic": {"rate": "10/s", "pattern": "constant"}}},
    }
    fifo = simulate(scenario(base)).summary
    at_standard_price = simulate(
        scenario({**base, "pricing": {"sqs_fifo_request_per_million_usd": 0.40}})
    ).summary
    # The mapping's receives and deletes, and apart from them producers' sends (one each), all
    # billed at $0.50 per million instead of $0.40.
    extra = fifo["sqs_requests"] * (0.50 - 0.40) / 1e6
    assert abs((fifo["cost_usd"] - at_standard_price["cost_usd"]) - extra) < 1e-12
    sends = fifo["records_in"] * (0.50 - 0.40) / 1e6
    assert abs((fifo["cost_producer_usd"] - at_standard_price["cost_producer_usd"]) - sends) < 1e-12


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    groups=st.integers(1, 8),
    skew=st.sampled_from([0.0, 1.2]),
    rate=st.sampled_from(["5/s", "40/s", "200/s"]),
    batch=st.integers(1, 10),
    cap=st.sampled_from([None, 2, 3]),
    poison=st.sampled_from([0.0, 0.05]),
    partial=st.booleans(),
    seed=st.integers(1, 1000),
    retention=st.sampled_from([None, 60]),
    paused=st.booleans(),
)
def test_fifo_concurrency_order_and_conservation(
    groups: int,
    skew: float,
    rate: str,
    batch: int,
    cap: int | None,
    poison: float,
    partial: bool,
    seed: int,
    retention: int | None,
    paused: bool,
) -> None:
    # retention 60: waiting and redelivered messages expire (the queue rebuilds its groups' lanes);
    # paused: the mapping is disabled from 20 s to 50 s (the groups' waiting messages stay put).
    mapping: dict[str, Any] = {"batch_size": batch, "report_batch_item_failures": partial}
    if cap is not None:
        mapping["maximum_concurrency"] = cap
    s = scenario(
        {
            "seed": seed,
            "duration": 90,
            "functions": {"f": {"duration": "200ms", "errors": {"poison_record_rate": poison}}},
            "sources": {
                "q": {
                    "fifo": True,
                    "visibility_timeout": 10,
                    "max_receive_count": 2,
                    "traffic": {"rate": rate, "message_groups": groups, "group_skew": skew},
                    **({"retention": retention} if retention else {}),
                }
            },
            **(
                {
                    "changes": [
                        {"at": 20, "set": {"mappings[0].enabled": False}},
                        {"at": 50, "set": {"mappings[0].enabled": True}},
                    ]
                }
                if paused
                else {}
            ),
        },
        mapping,
    )
    result = traced(s)
    assert_conserved(result)
    inv = invocations_of(result, 0)
    if len(inv):
        assert peak_concurrency(inv) <= min(groups, cap if cap is not None else groups)
    # Order per group: within a group, messages end (deleted or dead-lettered) in sending order.
    rec = records_of(result, "q").sort_values("id")
    group = groups_of(seed, int(rec["id"].max()) + 1, groups) if skew == 0 else None
    if group is not None:
        ended = rec[rec["state"].astype(str).isin(["succeeded", "dlq"])]
        for g in range(groups):
            done = ended.loc[group[ended["id"].to_numpy()] == g, "done_s"].to_numpy()
            assert (np.diff(done) >= -1e-9).all(), f"group {g} out of order"


def test_fifo_bad_input(tmp_path: Path) -> None:
    fifo = {9: "    type: sqs\n    fifo: true"}
    check(
        tmp_path,
        {**fifo, 16: "    batch_size: 11"},
        "{path}:17: mappings[0].batch_size: 11 is above 10, the most a mapping of FIFO queue 'orders-queue' "
        "takes (allowed: 1-10)",
    )
    check(
        tmp_path,
        {**fifo, 17: "    batching_window: 2s"},
        "{path}:18: mappings[0].batching_window: 2 s: a mapping of FIFO queue 'orders-queue' has no batching "
        "window (allowed: 0)",
    )
    check(
        tmp_path,
        {12: "    traffic: {rate: 200/s, record_size: 2KB, message_groups: 4}"},
        "{path}:12: sources.orders-queue.traffic.message_groups: only FIFO queues have message groups "
        "(set fifo: true)",
    )


def test_fifo_orders_scenario_hot_groups_limit_concurrency() -> None:
    # The bundled FIFO pipeline: 40 groups, a few hot (skew 1.2). However large the fleet may grow,
    # concurrency stays at most the groups with messages, and hot groups queue behind themselves.
    result = traced(load_scenario(SCENARIOS / "sqs-fifo-orders.yaml", ["duration=5m", "warmup=1m"]))
    assert_conserved(result)
    assert result.diagnostics["late_level_changes"] == 0
    s = result.summary
    assert s["records_dlq"] > 0  # the poison order blocks its group until the DLQ
    assert s["fifo_groups_busy_max"] <= 40
    assert s["fifo_duplicates_dropped"] > 0
    assert peak_concurrency(invocations_of(result, 0)) <= 40
    assert s["latency_p99_s"] > 30  # the poisoned group's orders waited out two visibility timeouts


def test_fifo_send_quota_warnings(tmp_path: Path) -> None:
    fifo: dict[int, str | None] = {
        9: "    type: sqs\n    fifo: true",
        12: "    traffic: {rate: 400/s, record_size: 2KB}",
    }
    _, result = run_file(tmp_path, bad_input_file(fifo))
    assert result.exit_code == 0
    assert "400/s is above a FIFO queue's 300 sends a second" in result.output + result.stderr
    hot: dict[int, str | None] = {
        9: "    type: sqs\n    fifo: true\n    high_throughput: true",
        12: "    traffic: {rate: 2000/s, message_groups: 4, group_skew: 1.2}",
    }
    _, result = run_file(tmp_path, bad_input_file(hot))
    assert result.exit_code == 0
    assert "the hottest group gets about" in result.output + result.stderr
