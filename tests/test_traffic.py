"""esmsim.model.traffic: the rate profile r(t), its integral Λ(t), arrivals, sizes and poison draws.

Every Λ below is an area under r(t) computed by hand: rectangles for steps, triangles for ramps.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from esmsim.model.traffic import (
    RecordFeed,
    arrival_times,
    cumulative_rate_at,
    invert_cumulative_rate,
    rate_profile,
)
from esmsim.rng import Streams
from esmsim.scenario.sources import Traffic
from tests.helpers import scenario, traced


def generate_records(
    t: Traffic, duration_s: float, streams: Streams, source: str, max_size: float, *, draws: bool
) -> dict[str, np.ndarray]:
    """Every record of a run, its blocks joined (sent_at, size and, when drawn, draw)."""
    feed = RecordFeed(t, duration_s, streams, source, max_size, draws=draws)
    blocks = [feed.next_block()]
    while not feed.exhausted:
        blocks.append(feed.next_block())
    return {name: np.concatenate([b[name] for b in blocks]) for name in blocks[0]}


def traffic(**fields: Any) -> Traffic:
    return Traffic.model_validate(fields)


def big_lambda(t: Traffic, duration: float, x: float) -> float:
    times, rates = rate_profile(t, duration)
    return cumulative_rate_at(times, rates, x)


# Each case: (traffic, duration, [(x, Λ(x) by hand), ...]).
PROFILES: dict[str, tuple[Traffic, float, list[tuple[float, float]]]] = {
    "constant rate": (traffic(rate=10), 100.0, [(0, 0), (50, 500), (100, 1000)]),
    # 10/s for 20 s (200), then 30/s.
    "step": (
        traffic(rate=10, schedule=[{"at": 20, "rate": 30}]),
        100.0,
        [(20, 200), (50, 200 + 30 * 30), (100, 200 + 80 * 30)],
    ),
    # 0 until 10, then up to 20/s over 10 s (slope 2/s²): Λ(10 + τ) = τ² for τ <= 10, then 20/s.
    "ramp up": (
        traffic(rate=0, schedule=[{"at": 10, "rate": 20, "ramp": 10}]),
        40.0,
        [(10, 0), (15, 25), (20, 100), (40, 100 + 20 * 20)],
    ),
    # From 20/s down to 0 over 20 s: Λ(τ) = 20τ - τ²/2 (slope -1/s²), a 200-record triangle.
    "ramp down to zero": (
        traffic(rate=20, schedule=[{"at": 0, "rate": 0, "ramp": 20}]),
        30.0,
        [(10, 200 - 50), (20, 200), (30, 200)],
    ),
    # Each minute: 30 s at 5/s (150) and 30 s at 15/s (450), 600 a period.
    "periodic steps": (
        traffic(rate=5, period=60, schedule=[{"at": 30, "rate": 15}]),
        150.0,
        [(30, 150), (45, 150 + 15 * 15), (60, 600), (100, 600 + 150 + 10 * 15), (150, 1200 + 150)],
    ),
    # A triangle every 100 s: up to 10/s over 50 s and back down (500 a period, slope 0.2/s²).
    "periodic ramps": (
        traffic(
            rate=0,
            period=100,
            schedule=[{"at": 0, "rate": 10, "ramp": 50}, {"at": 50, "rate": 0, "ramp": 50}],
        ),
        250.0,
        [(25, 0.1 * 25**2), (50, 250), (100, 500), (125, 500 + 0.1 * 25**2), (250, 1250)],
    ),
    # A schedule point after the end of the run changes nothing within it.
    "change after the run": (
        traffic(rate=4, schedule=[{"at": 500, "rate": 40}]),
        100.0,
        [(100, 400)],
    ),
}


@pytest.mark.parametrize("case", list(PROFILES))
def test_cumulative_rate_at_known_points(case: str) -> None:
    t, duration, points = PROFILES[case]
    for x, expected in points:
        assert big_lambda(t, duration, x) == pytest.approx(expected, abs=1e-9), x


def test_rate_profile_breakpoints_of_a_step_and_a_period() -> None:
    times, rates = rate_profile(traffic(rate=10, schedule=[{"at": 20, "rate": 30}]), 100.0)
    # A step is a zero-width segment: (20, 10) then (20, 30).
    np.testing.assert_array_equal(times, [0, 20, 20, 100])
    np.testing.assert_array_equal(rates, [10, 10, 30, 30])
    times, rates = rate_profile(traffic(rate=5, period=60, schedule=[{"at": 30, "rate": 15}]), 90.0)
    # A repeating profile restarts at the base rate at each period.
    np.testing.assert_array_equal(times, [0, 30, 30, 60, 60, 90, 90, 120])
    np.testing.assert_array_equal(rates, [5, 5, 15, 15, 5, 5, 15, 15])


@pytest.mark.parametrize("case", list(PROFILES))
def test_invert_cumulative_rate_is_an_inverse(case: str) -> None:
    t, duration, _ = PROFILES[case]
    times, rates = rate_profile(t, duration)
    total = cumulative_rate_at(times, rates, duration)
    targets = np.linspace(0.0, total, 997)[1:]
    at = invert_cumulative_rate(times, rates, targets)
    assert np.all(np.diff(at) >= 0)
    back = np.array([cumulative_rate_at(times, rates, x) for x in at])
    np.testing.assert_allclose(back, targets, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("case", list(PROFILES))
def test_constant_pattern_puts_the_kth_record_where_big_lambda_is_k(case: str) -> None:
    t, duration, _ = PROFILES[case]
    t = t.model_copy(update={"pattern": "constant"})
    times, rates = rate_profile(t, duration)
    arrivals = arrival_times(t, duration, np.random.default_rng(0))
    total = cumulative_rate_at(times, rates, duration)
    assert arrivals.size == int(np.floor(total))
    reached = np.array([cumulative_rate_at(times, rates, x) for x in arrivals])
    np.testing.assert_allclose(reached, np.arange(1, arrivals.size + 1), rtol=1e-9)


def test_constant_rate_arrivals_are_evenly_spaced() -> None:
    arrivals = arrival_times(traffic(rate=4, pattern="constant"), 10.0, np.random.default_rng(0))
    # Λ(t) = 4t: the k-th record at k/4 s, the 40th exactly at the end of the run.
    np.testing.assert_allclose(arrivals, np.arange(1, 41) / 4)


def test_constant_pattern_record_due_at_a_pause_arrives_before_it() -> None:
    # 1/s for 10 s, nothing from 10 to 100, then 1/s again: records at 1, 2, ..., 10 (Λ(10) = 10),
    # then 101, 102, ... The 10th record is due at t = 10, the first time Λ reaches 10.
    t = traffic(rate=1, pattern="constant", schedule=[{"at": 10, "rate": 0}, {"at": 100, "rate": 1}])
    arrivals = arrival_times(t, 120.0, np.random.default_rng(0))
    np.testing.assert_allclose(arrivals, [*range(1, 11), *range(101, 121)])


def test_no_traffic_means_no_arrivals() -> None:
    assert arrival_times(traffic(rate=0), 100.0, np.random.default_rng(0)).size == 0


# Seeds are fixed, so each statistical check below either always passes or always fails; the
# thresholds are what a correct generator would fail with probability 0.001 for a fresh seed.
SEEDS = range(20)
P_MIN = 1e-3


def test_poisson_counts_per_window_match_big_lambda() -> None:
    # Periodic steps (5/s and 15/s) and a ramp: counts in 10 s windows are independent Poisson
    # variables with means ΔΛ (50 to 150 each, large enough for Pearson's chi-square).
    cases = [
        (traffic(rate=5, period=60, schedule=[{"at": 30, "rate": 15}]), 300.0),
        (traffic(rate=5, schedule=[{"at": 60, "rate": 15, "ramp": 120}]), 300.0),
    ]
    for t, duration in cases:
        times, rates = rate_profile(t, duration)
        edges = np.arange(0.0, duration + 10.0, 10.0)
        expected = np.diff([cumulative_rate_at(times, rates, x) for x in edges])
        statistic, df = 0.0, 0
        for seed in SEEDS:
            arrivals = arrival_times(t, duration, Streams(seed).get("arrivals", "q"))
            assert np.all(np.diff(arrivals) >= 0)
            assert arrivals[0] > 0
            assert arrivals[-1] <= duration
            counts, _ = np.histogram(arrivals, edges)
            statistic += float(((counts - expected) ** 2 / expected).sum())
            df += expected.size
            # The run's total: a z-test at 4 standard deviations (a 6e-5 two-sided chance).
            total = expected.sum()
            assert abs(arrivals.size - total) <= 4 * np.sqrt(total)
        assert stats.chi2.sf(statistic, df) > P_MIN


def test_poisson_arrivals_are_unit_exponential_gaps_in_big_lambda() -> None:
    # Mapped through Λ, a non-homogeneous Poisson process becomes a unit-rate one: the gaps of
    # Λ(arrival) are Exp(1) (Kolmogorov-Smirnov test over all seeds).
    t = traffic(rate=2, schedule=[{"at": 50, "rate": 20, "ramp": 50}, {"at": 150, "rate": 0}])
    times, rates = rate_profile(t, 200.0)
    gaps = []
    for seed in SEEDS:
        arrivals = arrival_times(t, 200.0, Streams(seed).get("arrivals", "q"))
        marks = np.array([cumulative_rate_at(times, rates, x) for x in arrivals])
        gaps.append(np.diff(np.concatenate([[0.0], marks])))
    assert stats.kstest(np.concatenate(gaps), "expon").pvalue > P_MIN


@settings(max_examples=50, deadline=None)
@given(
    st.floats(0, 50),
    st.lists(st.tuples(st.floats(0, 30), st.floats(0, 50), st.floats(0, 20)), max_size=4),
    st.sampled_from(["poisson", "constant"]),
    st.integers(0, 1000),
)
def test_arrivals_are_sorted_and_inside_the_run(
    rate: float, points: list[tuple[float, float, float]], pattern: str, seed: int
) -> None:
    # Schedule points laid end to end (each starts after the previous ramp ends).
    schedule, at = [], 0.0
    for gap, r, ramp in points:
        at += gap
        schedule.append({"at": at, "rate": r, "ramp": ramp})
        at += ramp
    t = traffic(rate=rate, pattern=pattern, schedule=schedule)
    arrivals = arrival_times(t, 120.0, np.random.default_rng(seed))
    assert np.all(np.diff(arrivals) >= 0)
    if arrivals.size:
        assert arrivals[0] > 0
        assert arrivals[-1] <= 120.0
    if pattern == "constant":
        # Records at Λ = 1, 2, ... up to Λ(end), with no slack: a rate of 1.999999999999993/s makes
        # Λ(120) = 239.99999999999915, so 239 records.
        assert arrivals.size == int(np.floor(big_lambda(t, 120.0, 120.0)))


# ---------------------------------------------------------------------------------------------- records


def test_initial_backlog_arrives_at_time_zero_before_the_traffic() -> None:
    t = traffic(rate=2, initial_backlog=7)
    rec = generate_records(t, 60.0, Streams(3), "q", 1024 * 1024, draws=False)
    np.testing.assert_array_equal(rec["sent_at"][:7], 0.0)
    assert np.all(rec["sent_at"][7:] > 0)
    # The traffic after the backlog is exactly what the arrivals stream gives without a backlog.
    np.testing.assert_array_equal(rec["sent_at"][7:], arrival_times(t, 60.0, Streams(3).get("arrivals", "q")))
    assert rec["sent_at"].size == rec["size"].size


def test_record_sizes_are_clipped_at_the_maximum_message_size() -> None:
    # A lognormal with p99 of 200 KB and a 4 KB limit: the tail is cut to the limit, the rest untouched.
    t = traffic(rate=20, record_size={"dist": "lognormal", "median": "2KB", "p99": "200KB"})
    rec = generate_records(t, 100.0, Streams(5), "q", 4096.0, draws=False)
    raw = t.record_size.sample(Streams(5).get("sizes", "q"), rec["size"].size)
    np.testing.assert_array_equal(rec["size"], np.minimum(raw, 4096.0))
    assert (rec["size"] == 4096.0).any()
    assert (rec["size"] < 4096.0).any()


def test_bounded_sizes_under_the_limit_are_not_touched() -> None:
    t = traffic(rate=20, record_size={"dist": "uniform", "low": "1KB", "high": "4KB"})
    rec = generate_records(t, 100.0, Streams(5), "q", 1024 * 1024, draws=False)
    sizes = t.record_size.sample(Streams(5).get("sizes", "q"), rec["size"].size)
    np.testing.assert_array_equal(rec["size"], sizes)


def test_the_queue_clips_sizes_at_its_max_message_size() -> None:
    # The scenario's max_message_size reaches the records. Batches of one message without event
    # metadata: each invocation's payload is its message's size.
    s = scenario(
        {
            "sources": {
                "q": {
                    "max_message_size": "2KB",
                    "traffic": {
                        "rate": "20/s",
                        "record_size": {"dist": "lognormal", "median": "1KB", "p99": "8KB"},
                    },
                }
            }
        },
        {"batch_size": 1},
    )
    sizes = traced(s).invocations["bytes"]
    assert sizes.max() == 2048.0
    assert sizes.min() < 2048.0


def test_poison_draws_decide_poison_records_only_where_a_function_has_them() -> None:
    # A record is poison for a function whose poison rate exceeds the record's draw: with rate 1 every
    # record of a queue the poisoned function reads fails, with rate 0 none does. The clean function
    # reading the shared queue sees none of them as poison.
    s = scenario(
        {
            "duration": 30,
            "functions": {
                "f": {"errors": {"poison_record_rate": 1.0}},
                "clean": {"timeout": 10, "duration": "100ms", "cold_start": "0s"},
            },
            "sources": {
                "q": {"traffic": {"rate": "5/s"}},
                "other": {"type": "sqs", "visibility_timeout": 30, "traffic": {"rate": "5/s"}},
            },
            "mappings": [
                {"source": "q", "function": "f"},
                {"source": "other", "function": "clean"},
            ],
        }
    )
    inv = traced(s).invocations
    by_function = {
        str(name): set(group["outcome"].astype(str))
        for name, group in inv.groupby(inv["function"].astype(str), observed=True)
    }
    assert by_function["f"] == {"error"}
    assert by_function["clean"] == {"success"}


def test_poison_draws_do_not_shift_arrivals_or_sizes() -> None:
    t = traffic(rate=10, initial_backlog=3, record_size={"dist": "exponential", "mean": "2KB"})
    with_draws = generate_records(t, 60.0, Streams(9), "q", 1024 * 1024, draws=True)
    without = generate_records(t, 60.0, Streams(9), "q", 1024 * 1024, draws=False)
    assert "draw" not in without
    draw = with_draws["draw"]
    assert draw.min() >= 0
    assert draw.max() < 1
    np.testing.assert_array_equal(draw, Streams(9).get("poison", "q").random(draw.size))
    np.testing.assert_array_equal(with_draws["sent_at"], without["sent_at"])
    np.testing.assert_array_equal(with_draws["size"], without["size"])


@pytest.mark.parametrize("chunk", [1, 7, 1000])
def test_blocks_join_to_the_same_records_whatever_their_size(
    chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Records are generated a block at a time as a run advances; the block size must not change a
    # single record (arrival marks are summed on in order, sizes and draws drawn in record order).
    t = traffic(rate=25, initial_backlog=11, record_size={"dist": "lognormal", "median": "1KB", "p99": "8KB"})
    whole = generate_records(t, 80.0, Streams(4), "q", 1024 * 1024, draws=True)
    monkeypatch.setattr("esmsim.model.traffic.CHUNK", chunk)
    blocks = generate_records(t, 80.0, Streams(4), "q", 1024 * 1024, draws=True)
    for name in whole:
        np.testing.assert_array_equal(blocks[name], whole[name])
