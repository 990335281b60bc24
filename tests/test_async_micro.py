"""Exact micro-scenarios of push sources and Lambda's asynchronous invocation (docs/model.md §11).

Events come as an initial backlog (all emitted at t=0) with no delivery delay, so every expected
time follows from AWS's documented rules: 3 attempts for a function error, about 1 and 2 minutes
apart; throttles backed off from 1 s doubling to 5 minutes; nothing waits past its maximum age;
reserved concurrency 0 sends every event to the destination without an attempt.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from esmsim.model.async_queue import extra_requests, retry_wait, throttle_wait
from esmsim.model.push import handoff_delay, sns_retry_waits
from esmsim.run import simulate
from esmsim.scenario.functions import AsyncConfig
from esmsim.scenario.scenario import Scenario
from esmsim.scenario.sources import EventBridgeSource, SnsSource
from tests.helpers import assert_conserved, merge, peak_concurrency, traced


def push(extra: dict[str, Any] | None = None, *, events: int = 1, kind: str = "s3") -> Scenario:
    """``events`` events emitted at t=0 by one push source, delivered at once to function ``f``."""
    raw: dict[str, Any] = {
        "duration": 3600,
        "functions": {"f": {"duration": "1s", "cold_start": "0s", "timeout": 900}},
        "sources": {"src": {"type": kind, "delivery_delay": "0s", "traffic": {"initial_backlog": events}}},
        "triggers": [{"source": "src", "function": "f"}],
    }
    return Scenario.model_validate(merge(raw, extra or {}))


def trigger_invocations(result: Any) -> pd.DataFrame:
    table = result.invocations
    mine = table["mapping"].astype(str).str.startswith("triggers[0]:")
    return table[mine].sort_values("start_s").reset_index(drop=True)


def states(result: Any) -> list[str]:
    return sorted(result.records["state"].astype(str))


FAILING = {"functions": {"f": {"errors": {"invocation_error_rate": 1.0}}}}


def test_a_failing_event_is_tried_three_times_a_minute_then_two_apart_then_reaches_the_destination() -> None:
    # Attempt 1 at 0 (runs 1 s, fails), attempt 2 60 s after it ends (61), attempt 3 120 s after
    # that one ends (182); it ends at 183 and the event goes to the on-failure destination then.
    s = push(merge(FAILING, {"functions": {"f": {"async": {"on_failure": {"type": "sqs"}}}}}))
    result = traced(s)
    inv = trigger_invocations(result)
    np.testing.assert_allclose(inv["start_s"], [0, 61, 182])
    assert list(inv["outcome"].astype(str)) == ["error"] * 3
    record = result.records.iloc[0]
    assert str(record["state"]) == "dlq"
    assert record["done_s"] == pytest.approx(183)
    summary = result.summary
    assert summary["async_retries"] == 2
    assert summary["async_events_dropped"] == 1
    assert summary["records_dlq"] == 1
    assert_conserved(result)


def test_with_no_retries_the_event_is_tried_once() -> None:
    s = push(merge(FAILING, {"functions": {"f": {"async": {"MaximumRetryAttempts": 0}}}}))
    result = traced(s)
    assert len(trigger_invocations(result)) == 1
    assert states(result) == ["dropped"]  # no destination: dropped
    assert result.summary["async_retries"] == 0


def test_a_timeout_is_a_function_error_and_is_retried() -> None:
    s = push({"functions": {"f": {"duration": "5s", "timeout": 2}}})
    inv = trigger_invocations(traced(s))
    # Each attempt times out after 2 s: 0, 2 + 60, 64 + 120.
    np.testing.assert_allclose(inv["start_s"], [0, 62, 184])
    assert list(inv["outcome"].astype(str)) == ["timeout"] * 3


def test_reserved_concurrency_zero_sends_every_event_to_the_destination_without_an_attempt() -> None:
    s = push(
        {"functions": {"f": {"reserved_concurrency": 0, "async": {"on_failure": {"type": "sns"}}}}},
        events=25,
    )
    result = traced(s)
    assert result.summary["invocations"] == 0
    assert result.summary["throttles"] == 0
    assert states(result) == ["dlq"] * 25
    np.testing.assert_allclose(result.records["done_s"], 0.0)
    assert_conserved(result)


def test_a_retry_due_after_the_maximum_age_discards_the_event_at_that_age() -> None:
    # The first attempt ends at 1; the retry would be due at 61, after the 60 s maximum age.
    s = push(merge(FAILING, {"functions": {"f": {"async": {"maximum_event_age": "60s"}}}}))
    result = traced(s)
    assert len(trigger_invocations(result)) == 1
    assert states(result) == ["dropped"]
    assert result.records["done_s"].iloc[0] == pytest.approx(60)


def test_throttled_events_back_off_doubling_from_one_second_to_five_minutes() -> None:
    # Reserved concurrency 1, two events at 0, the function busy 800 s: the second event is throttled
    # at 0 and retried 1, 2, 4, ... 256 s later (at 1, 3, 7, ..., 511), then every 300 s: at 811
    # the function is free again and it runs.
    s = push({"functions": {"f": {"duration": "800s", "reserved_concurrency": 1}}}, events=2)
    result = traced(s)
    expected_throttles = [0, 1, 3, 7, 15, 31, 63, 127, 255, 511]
    np.testing.assert_allclose(result.throttles["time_s"], expected_throttles)
    assert set(result.throttles["reason"].astype(str)) == {
        "ReservedFunctionConcurrentInvocationLimitExceeded"
    }
    np.testing.assert_allclose(trigger_invocations(result)["start_s"], [0, 811])
    assert result.summary["async_event_age_max_s"] == pytest.approx(811)


def test_a_throttled_function_drops_events_at_the_maximum_event_age() -> None:
    # One slot busy 100 s; four more events throttled at 0, 1, 3, 7, 15, 31; the next try would be at
    # 63, past the 60 s maximum age: each is discarded at 60 (routed when a destination is set).
    base = {
        "functions": {
            "f": {"duration": "100s", "reserved_concurrency": 1, "async": {"maximum_event_age": 60}}
        }
    }
    result = traced(push(base, events=5))
    assert states(result) == ["dropped"] * 4 + ["succeeded"]
    dropped = result.records[result.records["state"].astype(str) == "dropped"]
    np.testing.assert_allclose(dropped["done_s"], 60.0)
    assert result.summary["throttles"] == 4 * 6
    assert result.summary["async_events_dropped"] == 4
    routed = traced(
        push(merge(base, {"functions": {"f": {"async": {"on_failure": {"type": "eventbridge"}}}}}), events=5)
    )
    assert states(routed) == ["dlq"] * 4 + ["succeeded"]
    assert_conserved(routed)


def test_an_event_over_one_mb_is_refused_and_one_over_256_kb_is_billed_by_64_kb() -> None:
    big = push({"sources": {"src": {"traffic": {"record_size": "1100KB"}}}})
    result = traced(big)
    assert result.summary["invocations"] == 0
    assert states(result) == ["dropped"]
    # 300 KB: 256 KB plus one started 64 KB chunk, two requests for one invocation.
    large = simulate(push({"sources": {"src": {"traffic": {"record_size": "300KB"}}}}))
    price = large.scenario.pricing.lambda_request_per_million_usd / 1e6
    assert large.summary["invocations"] == 1
    assert large.summary["cost_lambda_requests_usd"] == pytest.approx(2 * price)


def test_an_sns_destination_refuses_records_over_256_kb_and_the_dlq_still_takes_them() -> None:
    s = push(
        merge(
            FAILING,
            {
                "functions": {
                    "f": {
                        "async": {
                            "maximum_retry_attempts": 0,
                            "on_failure": {"type": "sns"},
                            "dead_letter_queue": {"type": "sqs"},
                        }
                    }
                },
                "sources": {"src": {"traffic": {"record_size": "300KB"}}},
            },
        )
    )
    result = traced(s)
    assert result.summary["async_destination_delivery_failures"] == 1
    assert result.summary["async_dead_letter_errors"] == 0
    assert states(result) == ["dlq"]
    assert result.timeseries["DestinationDeliveryFailures"].sum() == 1


def test_sns_fans_out_to_two_queues_and_a_function_each_message_processed_three_times() -> None:
    raw = {
        "duration": 180,
        "functions": {
            "audit": {"duration": "50ms"},
            "billing": {"duration": "100ms"},
            "ship": {"duration": "80ms"},
        },
        "sources": {
            "orders": {"type": "sns", "traffic": {"rate": "50/s", "schedule": [{"at": 60, "rate": 0}]}},
            "billing-q": {"type": "sqs"},
            "shipping-q": {"type": "sqs"},
        },
        "triggers": [
            {"source": "orders", "queue": "billing-q"},
            {"source": "orders", "queue": "shipping-q"},
            {"source": "orders", "function": "audit"},
        ],
        "mappings": [
            {"source": "billing-q", "function": "billing"},
            {"source": "shipping-q", "function": "ship"},
        ],
    }
    result = traced(Scenario.model_validate(raw))
    table = result.records
    published = int((table["consumer"] == "billing-q").sum())
    assert published > 2500  # about 50/s for 60 s
    for consumer in ("billing-q", "shipping-q", "triggers[2]: orders -> audit"):
        assert int((table["consumer"] == consumer).sum()) == published
    assert result.summary["records_in"] == 3 * published
    assert result.summary["records_succeeded"] == 3 * published
    assert_conserved(result)
    kinds = set(result.resources["kind"])
    assert {"function", "mapping", "trigger"} <= kinds


def test_a_queue_fed_by_sns_keeps_batches_under_the_6_mb_payload() -> None:
    # 200 KB messages published 100 a second into a queue read in batches of up to 100 over a 5 s
    # window: 100 of them would be 20 MB, but an invocation carries at most 6 MB, so each batch
    # stops at 30 messages (30 x (200 KB + 800 B of metadata) fits in 6 MiB, 31 do not). The cap follows
    # the sizes the topic delivers, not the queue's own (empty) traffic.
    raw = {
        "duration": 60,
        "functions": {"f": {"duration": "100ms", "cold_start": "0s"}},
        "sources": {
            "topic": {"type": "sns", "traffic": {"rate": "100/s", "record_size": "200KB"}},
            "q": {"type": "sqs"},
        },
        "triggers": [{"source": "topic", "queue": "q"}],
        "mappings": [{"source": "q", "function": "f", "batch_size": 100, "batching_window": 5}],
    }
    result = traced(Scenario.model_validate(raw))
    inv = result.invocations
    assert inv["bytes"].max() <= 6 * 1024 * 1024
    assert inv["records"].max() == 30
    assert_conserved(result)


def test_s3_duplicates_deliver_some_events_twice() -> None:
    once = simulate(push(events=400))
    twice = simulate(push({"sources": {"src": {"duplicate_rate": 1.0}}}, events=400))
    assert once.summary["records_in"] == 400
    assert twice.summary["records_in"] == 800
    assert twice.summary["push_duplicates"] == 400
    assert twice.summary["records_succeeded"] == 800


def test_async_metrics_are_reported_per_minute() -> None:
    s = push({"functions": {"f": {"reserved_concurrency": 1, "duration": "10s"}}}, events=3)
    ts = simulate(s).timeseries
    assert ts["AsyncEventsReceived"].sum() == 3
    assert ts["AsyncEventsDropped"].sum() == 0
    assert ts["AsyncEventAgeMax"].max() > 0


# ---------------------------------------------------------------------- pure rules


def test_error_retry_waits_and_throttle_waits_follow_the_config() -> None:
    config = AsyncConfig()
    assert [retry_wait(config, k) for k in (1, 2, 3)] == [60.0, 120.0, None]
    assert retry_wait(AsyncConfig(maximum_retry_attempts=0), 1) is None
    waits = [throttle_wait(config, k) for k in range(1, 12)]
    assert waits == pytest.approx([1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300])


def test_async_request_billing_counts_64_kb_chunks_beyond_256_kb() -> None:
    kb = 1024
    assert [extra_requests(s * kb) for s in (1, 256, 257, 320, 321, 1024)] == [0, 0, 1, 1, 2, 12]


def test_sns_handoff_retry_schedule() -> None:
    waits = sns_retry_waits()
    assert list(waits[:5]) == [0, 0, 0, 1, 1]
    assert waits[5] == 1
    assert waits[-1] == pytest.approx(20)
    sns = SnsSource(type="sns")
    delay, gave_up = handoff_delay(sns, np.array([0, 3, 4, 15, 16, 100_015, 100_016]))
    head = float(np.sum(waits))
    np.testing.assert_allclose(delay[:5], [0, 0, 1, head, head + 20])
    assert list(gave_up) == [False] * 6 + [True]


def test_eventbridge_handoff_doubles_to_its_cap_and_gives_up_after_185_retries() -> None:
    bus = EventBridgeSource(type="eventbridge")
    delay, gave_up = handoff_delay(bus, np.array([1, 2, 9, 10, 185, 186]))
    # Waits 1, 2, 4, ... 256 (sum 511), then 480 s each.
    np.testing.assert_allclose(delay[:4], [1, 3, 511, 991])
    assert delay[4] == pytest.approx(511 + 176 * 480)  # about 23.6 h: 185 retries over a day
    assert list(gave_up) == [False] * 5 + [True]


def test_two_sources_into_one_function_share_its_queue_and_concurrency() -> None:
    # Two buckets, three events each at 0, into one function with reserved concurrency 2 (10 s
    # runs). Both triggers feed the function's one event queue: at 0 two run and four are throttled,
    # retried at 1, 3, 7 and 15; at 15 two run (the slots freed at 10), the last two back off 16 s
    # more and run at 31.
    s = push(
        {
            "functions": {"f": {"duration": "10s", "reserved_concurrency": 2}},
            "sources": {"other": {"type": "s3", "delivery_delay": "0s", "traffic": {"initial_backlog": 3}}},
            "triggers": [{"source": "src", "function": "f"}, {"source": "other", "function": "f"}],
        },
        events=3,
    )
    result = traced(s)
    inv = result.invocations.sort_values("start_s")
    np.testing.assert_allclose(inv["start_s"], [0, 0, 15, 15, 31, 31])
    assert set(inv["mapping"].astype(str)) == {"triggers[0]: src -> f", "triggers[1]: other -> f"}
    assert peak_concurrency(inv) == 2
    assert result.summary["records_succeeded"] == 6
    assert_conserved(result)
