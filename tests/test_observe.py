"""esmsim.observe.levels and esmsim.histogram against brute force.

Levels are checked against an independent evaluation of the step function: every change time is a
breakpoint, the level on [T_k, T_k+1) is the sum of every delta at times <= T_k, so several changes at
one instant count together and a -1 and a +1 at one instant never make a momentary spike. Means are
exact integrals of that function; maxima are maxima over its values. Levels are folded as a run
goes (the recorder folds once a minute); folding in steps must change nothing.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esmsim import histogram
from esmsim.observe.levels import BinnedLevel, BinnedMax, BinnedSum, bin_edges
from esmsim.run import simulate
from tests.helpers import ONE_POLLER, scenario

# Times live on a quarter-second grid, so ties between changes, bin edges, start and end are common
# and every sum below is exact in binary floating point.
QUARTER = 0.25
BIN_WIDTHS = (0.5, 1.0, 2.5, 5.0, 7.25, 60.0)
CHANNELS = ("add", "post", "many_scalar", "many_vector")


@dataclass
class Changes:
    """Changes of a level as a plain list (for brute force), each with the channel that writes it."""

    events: list[tuple[float, float]] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)


@st.composite
def changes(draw: st.DrawFn) -> Changes:
    """Intervals [a, b): +w at a and -w at b, so the level never goes negative.

    Each change goes to one way of writing a level (``add``, ``post``, ``add_many`` with a scalar or
    a per-time delta), so every way the model feeds a level is mixed in one step function.
    """
    rows = draw(
        st.lists(
            st.tuples(
                st.integers(0, 200),  # start, in quarters
                st.integers(0, 40),  # length, in quarters (0: a +w and a -w at one instant)
                st.integers(1, 3),  # weight
                st.sampled_from(CHANNELS),
                st.sampled_from(CHANNELS),
            ),
            max_size=30,
        )
    )
    out = Changes()
    for start_q, length_q, weight, up, down in rows:
        a, b = start_q * QUARTER, (start_q + length_q) * QUARTER
        out.events += [(a, float(weight)), (b, -float(weight))]
        out.channels += [up, down]
    return out


@st.composite
def windows(draw: st.DrawFn) -> tuple[float, float, float]:
    """``(warm-up, end, bin width)``: end on the quarter grid, warm-up before it."""
    end_q = draw(st.integers(1, 240))
    start_q = draw(st.integers(0, end_q - 1))
    return start_q * QUARTER, end_q * QUARTER, draw(st.sampled_from(BIN_WIDTHS))


def write(level: BinnedLevel, events: list[tuple[float, float]], channels: list[str]) -> None:
    """Write changes through their channels (vector channels get one array per call)."""
    vector_t, vector_d, scalar_t = [], [], []
    for (t, d), channel in zip(events, channels, strict=True):
        if channel == "add":
            level.add(t, d)
        elif channel == "post":
            level.post((t, d))
        elif channel == "many_vector":
            vector_t.append(t)
            vector_d.append(d)
        else:
            level.add_many(np.array([t]), d)
            scalar_t.append(t)
    if vector_t:
        level.add_many(np.array(vector_t), np.array(vector_d))


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


def check_exact(
    level: BinnedLevel, events: list[tuple[float, float]], warmup: float, edges: np.ndarray
) -> None:
    end = float(edges[-1])
    events = [(t, d) for t, d in events if t <= end]  # changes after the run never happen
    stats = level.stats()
    assert stats.mean == pytest.approx(brute_integral(events, warmup, end) / (end - warmup), abs=1e-9)
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
    # Exact, including where the level just before a bin edge is higher than anything inside the bin
    # (it belongs to the bin before: test_bin_max_counts_the_level_before_a_bin_edge_in_the_next_bin).
    np.testing.assert_array_equal(stats.bin_max, exact_bin_max)
    assert level.late == 0


@settings(max_examples=300, deadline=None)
@given(changes(), windows())
def test_level_written_at_once_matches_brute_force(c: Changes, window: tuple[float, float, float]) -> None:
    warmup, end, width = window
    edges = bin_edges(end, width)
    level = BinnedLevel(edges, warmup)
    write(level, c.events, c.channels)
    check_exact(level, c.events, warmup, edges)


@settings(max_examples=300, deadline=None)
@given(changes(), windows(), st.data())
def test_level_folded_as_the_run_goes_matches_brute_force(
    c: Changes, window: tuple[float, float, float], data: st.DataObject
) -> None:
    # The recorder folds once a minute: a change may be written any time before its own time is
    # folded (ahead of time, as an invocation's end is), never after. Folding in steps changes nothing.
    warmup, end, width = window
    edges = bin_edges(end, width)
    folds = sorted(data.draw(st.lists(st.integers(0, 244), max_size=8)))
    level = BinnedLevel(edges, warmup)
    pending = list(range(len(c.events)))
    for fold_q in [*folds, None]:
        until = math.inf if fold_q is None else fold_q * QUARTER
        due = [i for i in pending if c.events[i][0] < until]
        early = [i for i in pending if i not in due and data.draw(st.booleans())]  # written ahead
        now = due + early
        write(level, [c.events[i] for i in now], [c.channels[i] for i in now])
        pending = [i for i in pending if i not in now]
        if fold_q is not None:
            level.fold(until)
    check_exact(level, c.events, warmup, edges)


@settings(max_examples=200, deadline=None)
@given(changes(), windows(), st.integers(0, 244))
def test_late_changes_keep_means_exact_and_bound_maxima(
    c: Changes, window: tuple[float, float, float], fold_q: int
) -> None:
    # Changes written after their time was folded (a lazily noticed expiry): the means stay exact;
    # the maxima can only be bounded from above, and every late change is counted.
    warmup, end, width = window
    edges = bin_edges(end, width)
    until = fold_q * QUARTER
    level = BinnedLevel(edges, warmup)
    early = [i for i, (t, _) in enumerate(c.events) if t >= until or i % 2 == 0]
    late = [i for i in range(len(c.events)) if i not in early]
    write(level, [c.events[i] for i in early], [c.channels[i] for i in early])
    level.fold(until)
    write(level, [c.events[i] for i in late], [c.channels[i] for i in late])
    events = [(t, d) for t, d in c.events if t <= end]
    stats = level.stats()
    assert stats.mean == pytest.approx(brute_integral(events, warmup, end) / (end - warmup), abs=1e-9)
    expected_bin_mean = [brute_integral(events, a, b) / (b - a) for a, b in itertools.pairwise(edges)]
    np.testing.assert_allclose(stats.bin_mean, expected_bin_mean, atol=1e-9)
    last = len(edges) - 2
    exact_bin_max = [
        brute_max(events, edges[i], edges[i + 1], closed=i == last) for i in range(len(edges) - 1)
    ]
    assert (stats.bin_max >= np.array(exact_bin_max) - 1e-9).all()
    assert level.late == sum(1 for i in late if c.events[i][0] < min(until, end))


def test_bin_max_ignores_a_zero_length_spike() -> None:
    # +1 and -1 at the same instant (an invocation ending as another starts) leave the level at 1.
    level = BinnedLevel(bin_edges(30.0, 30.0))
    level.add(0.0, 1.0)
    level.add(10.0, -1.0)
    level.add_many(np.array([10.0]), 1.0)
    level.add(20.0, -1.0)
    stats = level.stats()
    assert stats.maximum == 1.0
    assert stats.mean == pytest.approx(20.0 / 30.0)


def test_bin_max_counts_the_level_before_a_bin_edge_in_the_next_bin() -> None:
    # Level 1 on [30, 60), 0 from 60 on: a record arrives at 30 (an array of +1, as arrivals are) and
    # is taken at exactly 60 (a -1, as a receive is). The bin [60, 120) never sees anything but 0.
    level = BinnedLevel(bin_edges(120.0, 60.0))
    level.add_many(np.array([30.0]), 1.0)
    level.add(60.0, -1.0)
    stats = level.stats()
    np.testing.assert_array_equal(stats.bin_mean, [0.5, 0.0])
    np.testing.assert_array_equal(stats.bin_max, [1.0, 0.0])


def test_changes_before_zero_count_at_zero_and_after_the_end_are_ignored() -> None:
    # Records already in a source at the start were sent before 0; an invocation still running at
    # the end ends after it.
    level = BinnedLevel(bin_edges(60.0, 60.0))
    level.add_many(np.array([-30.0, -1.0]), 1.0)
    level.add(30.0, -1.0)
    level.add(90.0, -1.0)
    stats = level.stats()
    assert stats.bin_mean.tolist() == [1.5]
    assert stats.bin_end.tolist() == [1.0]
    assert stats.maximum == 2.0


def test_backlog_max_of_a_minute_that_starts_with_a_receive_emptying_the_queue() -> None:
    # Two messages wait at t=0; one poller, batch size 1, a 60 s function. The first message is
    # received at 0, the second at exactly 60, when the first invocation ends: from 60 on the queue
    # is empty, so minute 1 (60-120 s) has a mean and a maximum backlog of 0. (The receive round
    # trip is pinned to 0 so that the second receive falls exactly on the minute's edge.)
    s = scenario(
        {
            "duration": 180,
            "functions": {"f": {"duration": "60s", "timeout": 60}},
            "sources": {"q": {"visibility_timeout": 360, "traffic": {"initial_backlog": 2}}},
        },
        {"batch_size": 1, "poller_scaling": ONE_POLLER, "polling": {"round_trip": 0}},
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
    st.lists(
        st.tuples(st.integers(0, 250), st.integers(-3, 5), st.sampled_from(["add", "post", "many"])),
        max_size=40,
    ),
    st.integers(1, 240),
    st.sampled_from(BIN_WIDTHS),
)
def test_binned_sum_matches_brute_force(rows: list[tuple[int, int, str]], end_q: int, width: float) -> None:
    # Counts by time: anything at or after the end of the run lands in the last bin (events at the
    # end itself belong to it; later ones cannot happen in a run).
    end = end_q * QUARTER
    edges = bin_edges(end, width)
    counter = BinnedSum(edges)
    expected = np.zeros(len(edges) - 1)
    for t_q, v, channel in rows:
        t = t_q * QUARTER
        if channel == "add":
            counter.add(t, v)
        elif channel == "post":
            counter.post((t, float(v)))
        else:
            counter.add_many(np.array([t]), float(v))
        i = min(int(np.searchsorted(edges, t, side="right")) - 1, len(edges) - 2)
        expected[i] += v
    np.testing.assert_array_equal(counter.array(), expected)
    assert counter.total == sum(v for _, v, _ in rows)


def test_binned_max_keeps_each_bins_largest_value() -> None:
    maxima = BinnedMax(bin_edges(180.0, 60.0))
    maxima.add(10.0, 3.0)
    maxima.add(50.0, 7.0)
    maxima.add_many(np.array([61.0, 119.0]), np.array([2.0, 5.0]))
    np.testing.assert_array_equal(maxima.array()[:2], [7.0, 5.0])
    assert np.isnan(maxima.array()[2])  # nothing in the last minute


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


def test_a_block_at_one_instant_folds_like_its_changes_one_by_one() -> None:
    # A start-up backlog writes millions of +1 at one instant: the level and the counter keep such
    # a block as one change of its sum; the statistics are those of the changes written singly.
    edges = bin_edges(180.0, 60.0)
    block, single = BinnedLevel(edges, 30.0), BinnedLevel(edges, 30.0)
    sums_block, sums_single = BinnedSum(edges), BinnedSum(edges)
    at = np.full(1000, 70.0)
    block.add_many(at, 1.0)
    sums_block.add_many(at)
    for t in at.tolist():
        single.add_many(np.array([t]), 1.0)
        sums_single.add(t)
    for level in (block, single):
        level.add_many(np.arange(100.0, 150.0), -1.0)
        level.fold(120.0)
    a, b = block.stats(), single.stats()
    assert (a.mean, a.maximum) == (b.mean, b.maximum)
    for name in ("bin_mean", "bin_max", "bin_end"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(sums_block.array(), sums_single.array())
    assert sums_block.total == sums_single.total == 1000.0


def test_a_writer_holding_changes_back_posts_them_when_a_fold_asks() -> None:
    # A writer may hold changes back (the SQS queue holds arrivals it may yet cancel against a
    # receive at the same instant) if it posts, when a fold asks, every change up to the fold's
    # time: the statistics are those of the changes written at once.
    edges = bin_edges(180.0, 60.0)
    held, direct = BinnedLevel(edges), BinnedLevel(edges)
    pending = [10.0, 70.0, 120.0, 150.0]
    asked: list[float] = []

    def post_until(until: float) -> None:
        asked.append(until)
        while pending and pending[0] <= until:
            held.add(pending.pop(0), 1.0)

    held.before_fold.append(post_until)
    for t in (10.0, 70.0, 120.0, 150.0):
        direct.add(t, 1.0)
    for level in (held, direct):
        level.fold(100.0)
        level.fold(120.0)
    a, b = held.stats(), direct.stats()
    assert asked == [100.0, 120.0, 180.0]  # each fold asked first, the last one up to the end
    assert held.late == 0  # the change at exactly 120 was posted before the fold at 120
    assert (a.mean, a.maximum) == (b.mean, b.maximum)
    for name in ("bin_mean", "bin_max", "bin_end"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


@pytest.mark.parametrize(
    ("in_flight_limit", "visible_mean", "visible_max"), [(None, 0.0, 0.0), (5, 1345 / 60, 49.0)]
)
def test_messages_dealt_to_a_window_as_they_arrive_are_never_visible(
    in_flight_limit: int | None, visible_mean: float, visible_max: float
) -> None:
    # One message a second (t = 1, 2, ...), one poller collecting a 30 s window into batches of 100.
    # Unlimited, every message goes to the collecting poller the instant it arrives: the queue
    # never shows one visible. With an in-flight limit of 5 the poller holds 1..5 and closes at 31;
    # messages 6 on wait visible until the next receive takes 5 at 32 (deleted at 32, room again),
    # so minute 0's level is k - 5 over [k, k+1) for k = 6..31, k - 10 for k = 32..59: a mean of
    # (1 + ... + 26 + 22 + ... + 49) / 60 = 1345 / 60 and a maximum of 49. (The receive round trip
    # is pinned to 0: with it, the message arriving as the poller loops at 32 waits 10 ms visible.)
    source: dict[str, object] = {"traffic": {"rate": "1/s", "pattern": "constant"}}
    if in_flight_limit is not None:
        source["in_flight_limit"] = in_flight_limit
    s = scenario(
        {"duration": 120, "functions": {"f": {"duration": "1s"}}, "sources": {"q": source}},
        {
            "batch_size": 100,
            "batching_window": 30,
            "poller_scaling": ONE_POLLER,
            "polling": {"round_trip": 0},
        },
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the limit's warning: not what this test is about
        ts = simulate(s).timeseries
    assert ts["ApproximateNumberOfMessagesVisible"].iloc[0] == pytest.approx(visible_mean, rel=1e-12)
    assert ts["BacklogMax"].iloc[0] == visible_max
