"""esmsim.cost: Lambda and SQS prices, billing granularity, and a run's cost against its invocation log."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from esmsim.cost import (
    CostBreakdown,
    billed_seconds,
    gb_second_rate,
    lambda_compute_usd,
    lambda_requests_usd,
    provisioned_concurrency_usd,
    sqs_requests_usd,
)
from esmsim.model.sqs_queue import chunked_request_units
from esmsim.run import simulate
from esmsim.scenario.pricing import Pricing
from tests.helpers import scenario, traced

PRICES = Pricing()
# us-east-1 list prices, USD per GB-second (docs/pricing.md).
X86 = 0.0000166667  # duration, on demand
ARM = 0.0000133334
X86_ON_PROVISIONED = 0.0000097222  # duration on a provisioned environment
ARM_ON_PROVISIONED = 0.0000077778
X86_PROVISIONED_KEPT = 0.0000041667  # keeping provisioned concurrency configured
ARM_PROVISIONED_KEPT = 0.0000033334


def pricing(**changes: Any) -> Pricing:
    return Pricing.model_validate({**PRICES.model_dump(), **changes})


def compute(
    run_s: list[float],
    init_s: list[float] | None = None,
    provisioned: list[bool] | None = None,
    memory_mb: int = 1024,
    architecture: str = "x86_64",
    prices: Pricing = PRICES,
) -> float:
    n = len(run_s)
    return lambda_compute_usd(
        np.asarray(run_s, dtype=float),
        np.zeros(n) if init_s is None else np.asarray(init_s, dtype=float),
        np.zeros(n, dtype=bool) if provisioned is None else np.asarray(provisioned, dtype=bool),
        memory_mb,
        architecture,
        prices,
    )


def test_default_price_table_is_the_us_east_1_list() -> None:
    assert PRICES.lambda_gb_second_x86_usd == X86
    assert PRICES.lambda_gb_second_arm_usd == ARM
    assert PRICES.lambda_request_per_million_usd == 0.20
    assert PRICES.sqs_request_per_million_usd == 0.40
    assert PRICES.lambda_billing_granularity_ms == 1
    assert PRICES.lambda_init_billed is True


def test_validation_anchor_one_million_invocations_of_628_ms_at_1024_mb() -> None:
    # docs/validation.md §6: 1e6 × (0.628 s × 1 GB × $0.0000166667) + $0.20 = $10.67.
    n = 1_000_000
    duration = lambda_compute_usd(
        np.full(n, 0.628), np.zeros(n), np.zeros(n, dtype=bool), 1024, "x86_64", PRICES
    )
    requests = lambda_requests_usd(n, PRICES)
    assert duration == pytest.approx(n * 0.628 * X86, rel=1e-12)  # 628 ms is billed as 628 ms exactly
    assert requests == pytest.approx(0.20)
    assert round(duration + requests, 2) == 10.67
    # Arm: the same GB-seconds at $0.0000133334.
    arm = lambda_compute_usd(np.full(n, 0.628), np.zeros(n), np.zeros(n, dtype=bool), 1024, "arm64", PRICES)
    assert arm == pytest.approx(n * 0.628 * ARM, rel=1e-12)


@pytest.mark.parametrize(
    ("seconds", "billed_ms"),
    [
        (0.0010001, 2),  # 1.0001 ms rounds up to 2 ms
        (0.001, 1),  # an exact millisecond stays one
        (0.628, 628),  # exact multiples do not round up through float noise (0.628 * 1000 = 627.99...)
        (0.0001, 1),  # anything above zero is at least one unit
        (0.0, 0),
        (1.2345, 1235),
    ],
)
def test_billed_duration_rounds_up_to_the_millisecond(seconds: float, billed_ms: int) -> None:
    assert billed_seconds(np.array([seconds]), 1)[0] == pytest.approx(billed_ms / 1000)


def test_billing_granularity_is_a_price_table_knob() -> None:
    # The pre-2020 100 ms granularity: 101 ms is billed as 200 ms.
    assert billed_seconds(np.array([0.101]), 100)[0] == pytest.approx(0.2)
    coarse = pricing(lambda_billing_granularity_ms=100)
    assert compute([0.101], prices=coarse) == pytest.approx(0.2 * X86)


def test_compute_is_memory_times_billed_duration_independent_of_records() -> None:
    # 512 MB is half a GB: 250 ms + 1.5 ms rounded to 2 ms -> (0.25 + 0.002) × 0.5 GB-s.
    assert compute([0.25, 0.0015], memory_mb=512) == pytest.approx((0.25 + 0.002) * 0.5 * X86)


def test_init_is_billed_only_when_the_price_table_says_so() -> None:
    run, init = [0.1, 0.1], [0.3004, 0.0]  # one cold start of 300.4 ms
    # Since 2025-08-01 the INIT phase is billed with the invoke: 400.4 ms -> 401 ms, plus 100 ms.
    assert compute(run, init) == pytest.approx((0.401 + 0.1) * X86)
    # Before, only the invoke phase.
    assert compute(run, init, prices=pricing(lambda_init_billed=False)) == pytest.approx(0.2 * X86)


def test_provisioned_environments_use_the_provisioned_duration_rate() -> None:
    on_pc = PRICES.lambda_provisioned_duration_gb_second_x86_usd
    assert gb_second_rate(PRICES, "x86_64", provisioned=True) == on_pc == X86_ON_PROVISIONED
    assert gb_second_rate(PRICES, "arm64", provisioned=True) == ARM_ON_PROVISIONED
    assert gb_second_rate(PRICES, "arm64") == ARM
    # 2 GB: one invocation on a provisioned environment, one on demand, 1 s each.
    cost = compute([1.0, 1.0], provisioned=[True, False], memory_mb=2048)
    assert cost == pytest.approx(2 * on_pc + 2 * X86)


def test_keeping_provisioned_concurrency_costs_its_gb_seconds() -> None:
    # 3 environments of 1,536 MB (1.5 GB) for an hour: 3 × 1.5 × 3600 GB-s.
    x86 = provisioned_concurrency_usd(3, 1536, "x86_64", 3600.0, PRICES)
    assert x86 == pytest.approx(3 * 1.5 * 3600 * X86_PROVISIONED_KEPT)
    arm = provisioned_concurrency_usd(3, 1536, "arm64", 3600.0, PRICES)
    assert arm == pytest.approx(3 * 1.5 * 3600 * ARM_PROVISIONED_KEPT)
    assert provisioned_concurrency_usd(0, 1536, "x86_64", 3600.0, PRICES) == 0.0


def test_request_prices() -> None:
    assert lambda_requests_usd(5_000_000, PRICES) == pytest.approx(5 * 0.20)
    assert sqs_requests_usd(2_500_000, PRICES) == pytest.approx(2.5 * 0.40)


def test_sqs_bills_a_request_per_64_kb_of_payload() -> None:
    kb = 1024.0
    # 1 KB and exactly 64 KB: one request each; 64 KB + 1 byte: two; 256 KB: four; empty: still one.
    sizes = np.array([1 * kb, 64 * kb, 64 * kb + 1, 256 * kb, 0.0])
    assert chunked_request_units(sizes, 64 * kb) == 1 + 1 + 2 + 4 + 1
    # None over 64 KB (the quick path): one request each, the empty one too.
    assert chunked_request_units(sizes[[0, 1, 4]], 64 * kb) == 3
    assert chunked_request_units(np.empty(0), 64 * kb) == 0


def test_cost_breakdown_totals_and_scaling() -> None:
    cost = CostBreakdown(
        lambda_requests_usd=0.2,
        lambda_compute_usd=1.3,
        lambda_provisioned_usd=0.5,
        source_usd=0.4,
        producer_usd=9.0,
    )
    # The producers' own SendMessage requests are reported but not part of the mapping's cost.
    assert cost.total_usd == pytest.approx(0.2 + 1.3 + 0.5 + 0.4)
    assert cost.per_million(4_000_000) == pytest.approx(2.4 / 4)
    assert math.isnan(cost.per_million(0))
    # A 1-hour run scaled to a 730-hour billing month.
    assert cost.per_month(3600.0, PRICES) == pytest.approx(2.4 * 730)
    assert cost.per_month(1800.0, pricing(month_hours=720)) == pytest.approx(2.4 * 720 * 2)


def test_run_cost_matches_the_formula_over_its_invocation_log() -> None:
    # Two functions with different memory, architecture and provisioned concurrency; cold starts
    # (billed init), lognormal durations so that billed durations round, and a few errors, which
    # are billed like successes.
    s = scenario(
        {
            "duration": 300,
            "functions": {
                "f": {
                    "memory_mb": 1536,
                    "duration": {"dist": "lognormal", "median": "80ms", "p99": "400ms"},
                    "cold_start": {"dist": "lognormal", "median": "300ms", "p99": "900ms"},
                    "keep_alive": "20s",
                    "provisioned_concurrency": 2,
                    "errors": {"invocation_error_rate": 0.05},
                },
                "g": {
                    "memory_mb": 256,
                    "architecture": "arm64",
                    "timeout": 5,
                    "duration": {"dist": "exponential", "mean": "150ms"},
                    "cold_start": "250ms",
                },
            },
            "sources": {
                "q": {"traffic": {"rate": "20/s", "initial_backlog": 200}},
                "r": {"type": "sqs", "visibility_timeout": 30, "traffic": {"rate": "3/s"}},
            },
            "mappings": [
                {"source": "q", "function": "f", "batch_size": 5},
                {"source": "r", "function": "g", "batch_size": 1},
            ],
        }
    )
    result = traced(s)
    summary = result.summary
    inv = result.invocations
    assert (inv["environment"] == "cold").any()
    assert (inv["environment"] == "provisioned").any()

    # Per invocation: (run + init) rounded up to the millisecond x GB x the rate of the environment.
    expected = 0.0
    rates = {"f": (1536, X86, X86_ON_PROVISIONED), "g": (256, ARM, ARM_ON_PROVISIONED)}
    for fn, run_s, init_s, env in zip(
        inv["function"], inv["run_s"], inv["init_s"], inv["environment"], strict=True
    ):
        memory_mb, on_demand_rate, on_provisioned_rate = rates[str(fn)]
        billed_ms = math.ceil(round((run_s + init_s) * 1000, 6))  # rounded first: float noise
        rate = on_provisioned_rate if str(env).startswith("provisioned") else on_demand_rate
        expected += billed_ms / 1000 * memory_mb / 1024 * rate
    assert summary["cost_lambda_compute_usd"] == pytest.approx(expected, rel=1e-9)
    n = len(inv)
    assert summary["invocations"] == n
    assert summary["cost_lambda_requests_usd"] == pytest.approx(n * 0.2e-6, rel=1e-12)
    # f keeps 2 provisioned environments of 1.5 GB for the 300 s run.
    assert summary["cost_lambda_provisioned_usd"] == pytest.approx(2 * 1.5 * 300 * X86_PROVISIONED_KEPT)
    assert summary["cost_source_usd"] == pytest.approx(summary["sqs_requests"] * 0.4e-6)
    parts = (
        "cost_lambda_requests_usd",
        "cost_lambda_compute_usd",
        "cost_lambda_provisioned_usd",
        "cost_source_usd",
    )
    assert summary["cost_usd"] == pytest.approx(sum(summary[k] for k in parts))
    assert summary["cost_per_million_records_usd"] == pytest.approx(
        summary["cost_usd"] / summary["records_succeeded"] * 1e6
    )
    assert summary["cost_per_month_usd"] == pytest.approx(summary["cost_usd"] * 730 * 3600 / 300)
    # A run that keeps no tables reports the same numbers.
    again = simulate(s, tables=False).summary
    for key in ("cost_usd", "cost_lambda_compute_usd", "cost_lambda_requests_usd"):
        assert again[key] == summary[key]


def test_throttled_attempts_cost_nothing() -> None:
    # Reserved concurrency 1 and two pollers: the second poller's attempts are throttled (429s), which
    # Lambda does not bill; only the invocations that ran are requests.
    s = scenario(
        {
            "duration": 60,
            "functions": {"f": {"reserved_concurrency": 1, "duration": "5s", "timeout": 10}},
            "sources": {"q": {"traffic": {"initial_backlog": 4}}},
        },
        {"batch_size": 1, "poller_scaling": {"initial": 2, "ceiling": 2, "min_pollers": 2}},
    )
    summary = simulate(s).summary
    assert summary["throttles"] > 0
    assert summary["cost_lambda_requests_usd"] == pytest.approx(summary["invocations"] * 0.2e-6)
    # Each invocation is 5 s at 128 MB; cold_start is 0 s in the test scenario.
    assert summary["cost_lambda_compute_usd"] == pytest.approx(summary["invocations"] * 5 * 0.125 * X86)


def test_a_redrive_to_the_dlq_is_not_a_billed_request() -> None:
    # One poison message, received once (maxReceiveCount 1), then moved to the DLQ by SQS itself:
    # the mapping's requests are that one ReceiveMessage and its pollers' empty long polls; there
    # is no delete, and the move is not a request.
    s = scenario(
        {
            "duration": 120,
            "functions": {"f": {"errors": {"poison_record_rate": 1.0}}},
            "sources": {"q": {"max_receive_count": 1, "traffic": {"rate": 0, "initial_backlog": 1}}},
        }
    )
    summary = simulate(s).summary
    assert summary["records_dlq"] == 1
    assert summary["sqs_requests"] == 1 + summary["sqs_empty_receives"]


def test_total_cost_adds_the_producers_writes() -> None:
    # 4 KB messages: one SendMessage request each, reported apart from what the mapping costs.
    s = scenario({"duration": 120, "sources": {"q": {"traffic": {"rate": "10/s", "record_size": "4KB"}}}})
    summary = simulate(s).summary
    assert summary["cost_producer_usd"] == pytest.approx(summary["records_in"] * 0.4e-6, rel=1e-12)
    assert summary["cost_total_usd"] == pytest.approx(summary["cost_usd"] + summary["cost_producer_usd"])
    assert summary["cost_total_usd"] > summary["cost_usd"]
