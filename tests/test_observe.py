"""esmsim.observe and esmsim.histogram against brute force.

Levels are checked against an independent evaluation of the step function: every change time is a
breakpoint, the level on [T_k, T_k+1) is the sum of every delta at times <= T_k, so several changes at
one instant count together: at equal times decreases apply first, and a -1 and a +1 at one instant
never make a momentary spike. Means are exact integrals of that function; maxima are maxima over its
values.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esmsim import histogram
from esmsim.observe import Counter, Level, bin_edges, binned_sum, level_stats
from esmsim.run import simulate
from tests.conftest import ONE_POLLER, scenario

# Times live on a quarter-second grid, so ties between changes, bin edges, start and end are common
# and every sum below is exact in binary floating point.
QUARTER = 0.25
BIN_WIDTHS = (0.5, 1.0, 2.5, 5.0, 7.25, 60.0)


@dataclass
class Built:
    """A level built through the public API, and the same changes as a plain list for brute force."""

    level: Level
    events: list[tuple[float, float]] = field(default_factory=list)


@st.composite
def levels(draw: st.DrawFn) -> Built:
    """A level made of intervals [a, b): +w at a and -w at b, so it never goes negative.

    Each interval goes to one channel: ``add`` (one change at a time), ``add_many`` (vectors, with a
    scalar or a per-time delta), ``add_sorted`` (sorted arrays with sign +1 / -1, w = 1) or a sorted
    +1 closed by a small -1 (a queue's arrivals and receives), so every way the model feeds a level
    is mixed in one step function.
    """
    rows = draw(
        st.lists(
            st.tuples(
                st.integers(0, 200),  # start, in quarters
                st.integers(0, 40),  # length, in quarters (0: a +w and a -w at one instant)
                st.integers(1, 3),  # weight
                st.sampled_from(["add", "many_scalar", "many_vector", "sorted", "arrive_then_take"]),
            ),
            max_size=30,
        )
    )
    built = Built(Level())
    many_scalar: list[float] = []
    many_vector: list[tuple[float, float]] = []
    sorted_up: list[float] = []
    sorted_down: list[float] = []
    for start_q, length_q, weight, channel in rows:
        a, b = start_q * QUARTER, (start_q + length_q) * QUARTER
        if channel == "add":
            built.level.add(a, weight)
            built.level.add(b, -weight)
        elif channel == "many_scalar":
            many_scalar.append(a)
            sorted_down.append(b)  # the matching -1 comes through the sorted channel
            weight = 1
        elif channel == "many_vector":
            many_vector += [(a, weight), (b, -weight)]
        elif channel == "arrive_then_take":
            # As a queue's backlog: a record arrives (sorted +1) and a receive takes it (a small -1).
            sorted_up.append(a)
            built.level.add(b, -1.0)
            weight = 1
        else:
            sorted_up.append(a)
            sorted_down.append(b)
            weight = 1
        built.events += [(a, weight), (b, -weight)]
    if many_scalar:
        built.level.add_many(np.array(many_scalar), 1.0)
    if many_vector:
        t, d = np.array(many_vector).T
        built.level.add_many(t, d)
    # Sorted components may be split into several arrays of the same sign.
    for times, sign in ((sorted_up, +1), (sorted_down, -1)):
        times = sorted(times)
        cut = draw(st.integers(0, len(times)))
        for part in (times[:cut], times[cut:]):
            built.level.add_sorted(np.array(part, dtype=float), sign)
    return built


@st.composite
def windows(draw: st.DrawFn) -> tuple[float, float, float]:
    """``(start, end, bin width)``: end on the quarter grid, start before it."""
    end_q = draw(st.integers(1, 240))
    start_q = draw(st.integers(0, end_q - 1))
    return start_q * QUARTER, end_q * QUARTER, draw(st.sampled_from(BIN_WIDTHS))


def brute_value(events: list[tuple[float, float]], x: float, side: str = "right") -> float:
    """The level at x: after the changes at x (right) or just before them (left)."""
    if side == "right":
        return float(sum(d for t, d in events if t <= x))
    return float(sum(d for t, d in events if t < x))


def brute_integral(events: list[tuple[float, float]], lo: float, hi: float) -> float:
    """Exact integral of the step function over [lo, hi]."""
    points = sorted({lo, hi, *(t for t, _ in events if lo < t < hi)})
    return sum(brute_value(events, a) * (b - a) for a, b in itertools.pairwise(points))


def brute_max(events: list[tuple[float, float]], lo: float, hi: float, *, closed: bool) -> float:
    """Largest value over [lo, hi) (or [lo, hi]): the value at lo or right after a change inside."""
    inside = [t for t, _ in events if lo < t < hi or (closed and t == hi)]
    return max(brute_value(events, x) for x in [lo, *inside])


@settings(max_examples=300, deadline=None)
@given(levels(), windows())
def test_level_stats_match_brute_force(built: Built, window: tuple[float, float, float]) -> None:
    start, end, width = window
    events = [(t, d) for t, d in built.events if t <= end]  # changes after the run never happen
    edges = bin_edges(end, width)
    stats = level_stats(built.level, start, end, edges)

    assert stats.mean == pytest.approx(brute_integral(events, start, end) / (end - start), abs=1e-9)
    expected_bin_mean = [brute_integral(events, a, b) / (b - a) for a, b in itertools.pairwise(edges)]
    np.testing.assert_allclose(stats.bin_mean, expected_bin_mean, atol=1e-9)
    # The level at the end of each bin includes the changes at that instant.
    np.testing.assert_array_equal(stats.bin_end, [brute_value(events, b) for b in edges[1:]])
    # The level starts at 0 and never goes negative, so the run's maximum is the largest value on [0, end].
    assert stats.maximum == brute_max(events, 0.0, end, closed=True)

    last = len(edges) - 2
    exact_bin_max = [
        brute_max(events, edges[i], edges[i + 1], closed=i == last) for i in range(len(edges) - 1)
    ]
    # Exact, including where the level just before a bin edge is higher than anything inside the
    # bin (it belongs to the bin before: test_bin_max_counts_the_level_before_a_bin_edge_in_the_next_bin).
    np.testing.assert_array_equal(stats.bin_max, exact_bin_max)


@settings(max_examples=200, deadline=None)
@given(levels(), st.lists(st.integers(-4, 244), min_size=1, max_size=20))
def test_level_value_matches_brute_force(built: Built, xs_q: list[int]) -> None:
    xs = np.array(xs_q, dtype=float) * QUARTER
    for side in ("right", "left"):
        expected = [brute_value(built.events, x, side) for x in xs]
        np.testing.assert_array_equal(built.level.value(xs, side), expected)  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None)
@given(levels(), levels(), windows())
def test_merged_level_is_the_sum_of_its_parts(a: Built, b: Built, window: tuple[float, float, float]) -> None:
    start, end, width = window
    edges = bin_edges(end, width)
    merged = a.level.merged(b.level)
    xs = np.arange(0, end + QUARTER, QUARTER)
    np.testing.assert_array_equal(merged.value(xs), a.level.value(xs) + b.level.value(xs))
    together = level_stats(merged, start, end, edges)
    parts = [level_stats(x.level, start, end, edges) for x in (a, b)]
    assert together.mean == pytest.approx(parts[0].mean + parts[1].mean, abs=1e-9)
    # A copy is independent of later changes to the original.
    copy = a.level.copy()
    a.level.add(0.0, 1000.0)
    np.testing.assert_array_equal(copy.value(xs) + 1000.0, a.level.value(xs))


def test_bin_max_ignores_a_zero_length_spike() -> None:
    # +1 and -1 at the same instant (an invocation ending as another starts) leave the level at 1.
    level = Level()
    level.add(0.0, 1.0)
    level.add(10.0, -1.0)
    level.add_many(np.array([10.0]), 1.0)
    level.add(20.0, -1.0)
    stats = level_stats(level, 0.0, 30.0, bin_edges(30.0, 30.0))
    assert stats.maximum == 1.0
    assert stats.mean == pytest.approx(20.0 / 30.0)


def test_bin_max_counts_the_level_before_a_bin_edge_in_the_next_bin() -> None:
    # Level 1 on [30, 60), 0 from 60 on: a record arrives at 30 (a sorted +1, as arrivals are) and is
    # taken at exactly 60 (a small -1, as a receive is). The bin [60, 120) never sees anything but 0.
    level = Level()
    level.add_sorted(np.array([30.0]), +1)
    level.add(60.0, -1.0)
    stats = level_stats(level, 0.0, 120.0, bin_edges(120.0, 60.0))
    np.testing.assert_array_equal(stats.bin_mean, [0.5, 0.0])
    np.testing.assert_array_equal(stats.bin_max, [1.0, 0.0])  # (was [1, 1])


def test_backlog_max_of_a_minute_that_starts_with_a_receive_emptying_the_queue() -> None:
    # Two messages wait at t=0; one poller, batch size 1, a 60 s function. The first message is
    # received at 0, the second at exactly 60, when the first invocation ends: from 60 on the queue
    # is empty, so minute 1 (60-120 s) has a mean and a maximum backlog of 0.
    s = scenario(
        {
            "duration": 180,
            "functions": {"f": {"duration": "60s", "timeout": 60}},
            "sources": {"q": {"visibility_timeout": 360, "traffic": {"initial_backlog": 2}}},
        },
        {"batch_size": 1, "poller_scaling": ONE_POLLER},
    )
    ts = simulate(s).timeseries
    assert ts["Invocations"].tolist() == [1.0, 1.0, 0.0]
    assert ts["ApproximateNumberOfMessagesVisible"].tolist() == [1.0, 0.0, 0.0]
    assert ts["BacklogMax"].tolist() == [1.0, 0.0, 0.0]  # actual: [1, 1, 0]


def test_backlog_max_after_every_message_expired_at_a_minute_edge_is_zero() -> None:
    # Five messages wait at t=0, nobody reads them, retention 60 s: they all expire at exactly 60.
    # Minute 1 (60-120 s) has an empty queue throughout, as its mean (0) says; its maximum is 0 too.
    s = scenario(
        {"duration": 180, "sources": {"q": {"retention": 60, "traffic": {"initial_backlog": 5}}}},
        {"enabled": False},
    )
    ts = simulate(s).timeseries
    assert ts["ApproximateNumberOfMessagesVisible"].tolist() == [5.0, 0.0, 0.0]
    assert ts["BacklogMax"].tolist() == [5.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("end", "width", "expected"),
    [
        (120.0, 60.0, [0, 60, 120]),
        (150.0, 60.0, [0, 60, 120, 150]),  # the last bin is shorter
        (30.0, 60.0, [0, 30]),  # a run shorter than one bin has one bin
        (60.0 + 1e-12, 60.0, [0, 60.0 + 1e-12]),  # float noise does not add a sliver bin
    ],
)
def test_bin_edges(end: float, width: float, expected: list[float]) -> None:
    np.testing.assert_allclose(bin_edges(end, width), expected)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(-8, 250), st.integers(-3, 5)), max_size=40),
    st.integers(1, 240),
    st.sampled_from(BIN_WIDTHS),
)
def test_binned_sum_matches_brute_force(rows: list[tuple[int, int]], end_q: int, width: float) -> None:
    end = end_q * QUARTER
    edges = bin_edges(end, width)
    times = np.array([t * QUARTER for t, _ in rows], dtype=float)
    values = np.array([v for _, v in rows], dtype=float)
    expected = np.zeros(len(edges) - 1)
    for t, v in zip(times, values, strict=True):
        if 0 <= t <= end:  # outside the run: ignored; the end itself belongs to the last bin
            i = min(int(np.searchsorted(edges, t, side="right")) - 1, len(edges) - 2)
            expected[i] += v
    np.testing.assert_array_equal(binned_sum(times, values, edges), expected)


def test_counter_totals_and_arrays() -> None:
    counter = Counter()
    counter.add(1.0)
    counter.add(2.0, 3.0)
    counter.add_many(np.array([4.0, 5.0]), 2.0)
    counter.add_many(np.array([6.0]), np.array([0.5]))
    counter.add_many(np.array([]), 100.0)  # nothing to count
    times, values = counter.arrays()
    np.testing.assert_array_equal(times, [1, 2, 4, 5, 6])
    np.testing.assert_array_equal(values, [1, 3, 2, 2, 0.5])
    assert counter.total() == 1 + 3 + 2 + 2 + 0.5


# ---------------------------------------------------------------------------------------------- histogram

#: Half a bucket: a value anywhere in [edge, 1.01 edge) is within a factor sqrt(1.01) of the bucket's
#: geometric middle, i.e. within 0.4988 % of it. 0.5 % leaves room for rounding in log().
HALF_BUCKET = 0.005


def test_bucket_edges_are_one_percent_apart() -> None:
    k = np.arange(0, histogram.BUCKETS - 1, 37)
    lower = histogram.LOW_S * histogram.GROWTH ** k.astype(float)
    # A hair inside each edge lands in the bucket the edge opens (log rounding would make the exact
    # edge ambiguous), a hair below it in the one before.
    np.testing.assert_array_equal(histogram.bucket_of(lower * (1 + 1e-9)), k)
    np.testing.assert_array_equal(histogram.bucket_of(lower * (1 - 1e-9))[1:], k[1:] - 1)
    middle = histogram.bucket_value(k)
    np.testing.assert_allclose(middle / lower, math.sqrt(histogram.GROWTH))
    np.testing.assert_array_equal(histogram.bucket_of(middle), k)


def test_bucket_of_clips_out_of_range_values() -> None:
    # Zero and anything under 1 µs go to the first bucket; anything past the last edge to the last one.
    values = np.array([0.0, 1e-9, histogram.LOW_S, 1e12])
    np.testing.assert_array_equal(histogram.bucket_of(values), [0, 0, 0, histogram.BUCKETS - 1])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("n", [1, 7, 1000, 50_000])
def test_percentiles_are_within_half_a_bucket(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.lognormal(math.log(0.05), 1.5, n)  # latencies from about 1 ms to a few seconds
    qs = [0.0, 1.0, 25.0, 50.0, 90.0, 99.0, 99.9, 100.0]
    got = histogram.percentiles(histogram.histogram(values), qs)
    # The histogram answers with the bucket of the order statistic whose rank first reaches q % of
    # the count (numpy's "inverted_cdf" percentile, whose own rank n * 0.999 rounds up past 999 for
    # n = 1000, hence computed here as the histogram does). That sample is in the bucket, so the
    # answer is within half a bucket of it.
    ordered = np.sort(values)
    rank = np.maximum(np.ceil(n * np.asarray(qs) / 100.0), 1).astype(int)
    np.testing.assert_allclose(got, ordered[rank - 1], rtol=HALF_BUCKET)
    # numpy's default interpolates between that order statistic and its neighbour, so against it the
    # histogram is off by half a bucket plus the gap between neighbouring samples (tiny when n is large).
    linear = np.percentile(values, qs)
    h = (n - 1) * np.asarray(qs) / 100.0
    gap = ordered[np.ceil(h).astype(int)] - ordered[np.floor(h).astype(int)]
    # (At n = 50,000 that gap is about 0.1 % at the 1st percentile: 0.5 % alone would fail there.)
    assert np.all(np.abs(got - linear) <= HALF_BUCKET * linear + gap)


def test_percentiles_of_an_empty_histogram_are_nan() -> None:
    out = histogram.percentiles(np.zeros(histogram.BUCKETS), [50.0, 99.0])
    assert np.isnan(out).all()


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(1e-7, 1e5, allow_nan=False), max_size=50),
    st.lists(st.floats(1e-7, 1e5, allow_nan=False), max_size=50),
)
def test_histograms_merge_by_adding_counts(a: list[float], b: list[float]) -> None:
    xa, xb = np.array(a, dtype=float), np.array(b, dtype=float)
    merged = histogram.histogram(xa) + histogram.histogram(xb)
    np.testing.assert_array_equal(merged, histogram.histogram(np.concatenate([xa, xb])))
    assert merged.sum() == len(a) + len(b)
    qs = [10.0, 50.0, 99.0]
    np.testing.assert_array_equal(
        histogram.percentiles(merged, qs),
        histogram.percentiles(histogram.histogram(np.concatenate([xa, xb])), qs),
    )


def test_per_bin_histograms_are_histograms_of_each_bin() -> None:
    rng = np.random.default_rng(7)
    values = rng.lognormal(0.0, 1.0, 2000)
    bins = rng.integers(0, 5, 2000)
    bins[bins == 3] = 4  # bin 3 stays empty
    stack = histogram.per_bin(values, bins, 5)
    assert stack.shape == (5, histogram.BUCKETS)
    for b in range(5):
        np.testing.assert_array_equal(stack[b], histogram.histogram(values[bins == b]))
    np.testing.assert_array_equal(stack.sum(axis=0), histogram.histogram(values))
    # Percentiles of a stack: one row per bin, NaN where the bin is empty.
    p = histogram.percentiles(stack, [50.0, 99.0])
    assert p.shape == (5, 2)
    assert np.isnan(p[3]).all()
    for b in (0, 1, 2, 4):
        np.testing.assert_array_equal(p[b], histogram.percentiles(stack[b], [50.0, 99.0]))
