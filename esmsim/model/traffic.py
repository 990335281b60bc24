"""Producer traffic: arrival times, sizes and poison draws, generated in numpy chunks.

Arrivals follow a piecewise-linear rate r(t) (steps and ramps, optionally repeating). Poisson
arrivals are unit-rate exponential gaps mapped through the inverse of the cumulative rate
Λ(t) = ∫ r; constant arrivals put the k-th record at Λ(t) = k. On a segment where
r(t) = r0 + s·τ the inverse is closed form, so a chunk of 65,536 arrivals costs a few numpy calls.
All draws come from the source's own streams, independent of mappings and functions: sweep points
of one replication see identical traffic.

Live changes of a source's traffic (docs/model.md §14) are known when the run is built: the feed
follows a :data:`Timeline`, each traffic's own r(t) from when it takes effect to the next one, and
ends a block at each change, so no block holds records of two traffics and none is generated under
a traffic that no longer holds when its records are sent.
"""

from __future__ import annotations

import math
from typing import Generic, NamedTuple, TypeVar

import numpy as np

from esmsim.rng import Streams
from esmsim.scenario.scenario import Scenario
from esmsim.scenario.sources import Traffic

CHUNK = 1 << 16

TrafficT = TypeVar("TrafficT", bound=Traffic)
#: A source's traffic through a run: ``(from, traffic)`` pairs in time order, the first from 0.
#: Records sent up to and at a pair's time follow the traffic before it; later ones follow it.
Timeline = tuple[tuple[float, TrafficT], ...]


def traffic_timeline(scenario: Scenario, source: str, kind: type[TrafficT]) -> Timeline[TrafficT]:
    """A source's traffic (of type ``kind``) from 0, and from each live change of it during the run."""
    first = scenario.sources[source].traffic
    assert isinstance(first, kind)
    timeline = [(0.0, first)]
    for effective_at, stage in scenario.stages:
        traffic = stage.sources[source].traffic
        assert isinstance(traffic, kind)  # a source's type never changes
        if effective_at >= scenario.duration or traffic == timeline[-1][1]:
            continue
        if len(timeline) > 1 and effective_at == timeline[-1][0]:
            timeline[-1] = (effective_at, traffic)  # two changes taking effect together: the later wins
        else:
            timeline.append((effective_at, traffic))
    return tuple(timeline)


def as_timeline(traffic: TrafficT | Timeline[TrafficT]) -> Timeline[TrafficT]:
    """A traffic that never changes, as a timeline (a timeline as it is)."""
    return traffic if isinstance(traffic, tuple) else ((0.0, traffic),)


def rate_profile(traffic: Traffic, duration_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Breakpoints ``(times, rates)`` of r(t) on [0, duration]; r is linear between breakpoints."""
    times: list[float] = [0.0]
    rates: list[float] = [traffic.rate]
    period = traffic.period or duration_s
    start = 0.0
    while start < duration_s:
        if start > 0:  # a repeating profile restarts at the base rate
            times.append(start)
            rates.append(traffic.rate)
        current = traffic.rate
        for point in traffic.schedule:
            at = start + point.at
            times.append(at)
            rates.append(current)
            times.append(at + point.ramp)
            rates.append(point.rate)
            current = point.rate
        if traffic.period is None:
            break
        times.append(start + period)
        rates.append(current)
        start += period
    if times[-1] < duration_s:
        times.append(duration_s)
        rates.append(rates[-1])
    return np.asarray(times), np.asarray(rates)


def _rate_at(t: np.ndarray, r: np.ndarray, x: float, *, after: bool) -> float:
    """The rate just after ``x`` (``after``) or just before it: at a step the two differ."""
    seg = int(np.clip(np.searchsorted(t, x, side="right" if after else "left") - 1, 0, len(t) - 2))
    width = t[seg + 1] - t[seg]
    slope = (r[seg + 1] - r[seg]) / width if width > 0 else 0.0
    return float(r[seg] + slope * (x - t[seg]))


def timeline_profile(timeline: Timeline[Traffic], duration_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Breakpoints ``(times, rates)`` of r(t) on [0, duration] for traffic that changes during the run.

    Each traffic contributes its own profile (:func:`rate_profile`) from its start to the next
    one's: a schedule keeps the run's clock (a daily ``period`` keeps its phase), and the rate steps
    at each change as it does at a ``ramp: 0`` point.
    """
    if len(timeline) == 1:
        return rate_profile(timeline[0][1], duration_s)
    times: list[float] = []
    rates: list[float] = []
    for k, (start, traffic) in enumerate(timeline):
        end = timeline[k + 1][0] if k + 1 < len(timeline) else duration_s
        t, r = rate_profile(traffic, duration_s)
        inside = (t > start) & (t < end)
        times += [start, *t[inside].tolist(), end]
        rates += [_rate_at(t, r, start, after=True), *r[inside].tolist(), _rate_at(t, r, end, after=False)]
    return np.asarray(times), np.asarray(rates)


def _cumulative(t: np.ndarray, r: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(np.diff(t) * (r[:-1] + r[1:]) / 2)])


def cumulative_rate_at(t: np.ndarray, r: np.ndarray, x: float) -> float:
    """Λ(x): expected arrivals in [0, x]."""
    big_lambda = _cumulative(t, r)
    seg = int(np.clip(np.searchsorted(t, x, side="right") - 1, 0, len(t) - 2))
    width = t[seg + 1] - t[seg]
    slope = (r[seg + 1] - r[seg]) / width if width > 0 else 0.0
    tau = x - t[seg]
    return float(big_lambda[seg] + r[seg] * tau + slope * tau * tau / 2)


def invert_cumulative_rate(t: np.ndarray, r: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Times at which Λ reaches each target (targets sorted, within Λ's range)."""
    big_lambda = _cumulative(t, r)
    if np.all(r[:-1] == r[1:]) and r[0] > 0:  # one constant rate: the common case, one division
        return np.asarray(targets / r[0])
    # side="left": a target reached exactly at a breakpoint before a pause (rate 0) is reached at the
    # start of the pause, not at its end.
    seg = np.searchsorted(big_lambda, targets, side="left") - 1
    seg = np.clip(seg, 0, len(t) - 2)
    t0, r0 = t[seg], r[seg]
    width = t[seg + 1] - t0
    slope = np.divide(r[seg + 1] - r0, width, out=np.zeros_like(r0), where=width > 0)
    rest = targets - big_lambda[seg]
    # tau solves r0*tau + slope*tau^2/2 = rest; this form is stable when slope -> 0 and when r0 = 0.
    root = np.sqrt(np.maximum(r0 * r0 + 2.0 * slope * rest, 0.0))
    denom = r0 + root
    tau = np.divide(2.0 * rest, denom, out=np.zeros_like(rest), where=denom > 0)
    return np.asarray(t0 + tau)


class _Run(NamedTuple):
    """Consecutive traffics of one pattern: their marks lie in Λ's stretch ending at ``end``."""

    pattern: str
    end: float
    rng: np.random.Generator


class ArrivalFeed:
    """A source's arrival times in blocks of :data:`CHUNK` unit-rate marks, generated on demand.

    The marks are drawn in fixed chunks from the source's ``arrivals`` stream, whoever asks and
    whenever, so the arrivals are the same however a run consumes them (common random numbers).
    Poisson marks are a unit-rate Poisson process on Λ's scale, so they carry on across a live change
    to another Poisson traffic; where the pattern changes, the new pattern's marks start at Λ of the
    change (constant ones at the next whole number), and each later stretch of Poisson marks draws
    from a stream of its own, spawned from the source's: no draw depends on the chunk size.
    """

    def __init__(
        self, traffic: Traffic | Timeline[Traffic], duration_s: float, rng: np.random.Generator
    ) -> None:
        timeline = as_timeline(traffic)
        self.duration_s = duration_s
        self._t, self._r = timeline_profile(timeline, duration_s)
        self._total = cumulative_rate_at(self._t, self._r, duration_s)
        patterns: list[tuple[str, float]] = []
        for k, (_, later) in enumerate(timeline):
            end = (
                self._total
                if k + 1 == len(timeline)
                else cumulative_rate_at(self._t, self._r, timeline[k + 1][0])
            )
            if patterns and patterns[-1][0] == later.pattern:
                patterns[-1] = (later.pattern, end)
            else:
                patterns.append((later.pattern, end))
        rngs = [rng, *rng.spawn(len(patterns) - 1)] if len(patterns) > 1 else [rng]
        self._runs = [_Run(pattern, end, g) for (pattern, end), g in zip(patterns, rngs, strict=True)]
        self._run = 0
        self._reached = 0.0
        self._k = 0
        self.exhausted = self._total <= 0

    def next_chunk(self) -> np.ndarray:
        """The next sorted arrival times in (0, duration] (empty once the run's arrivals are out)."""
        if self.exhausted:
            return np.empty(0)
        run = self._runs[self._run]
        if run.pattern == "poisson":
            # Summed on from the last mark, in order: the same marks whatever the chunk size.
            gaps = run.rng.exponential(1.0, CHUNK)
            marks = np.cumsum(np.concatenate([[self._reached], gaps]))[1:]
        else:
            marks = np.arange(self._k + 1, self._k + CHUNK + 1, dtype=float)
            self._k += CHUNK
        self._reached = float(marks[-1])
        if self._reached >= run.end:
            if self._run + 1 == len(self._runs):
                self.exhausted = True
            else:  # the next pattern takes over where this one's stretch of Λ ends
                self._run += 1
                self._reached = run.end
                self._k = math.floor(run.end)
        marks = marks[marks <= run.end]
        times = invert_cumulative_rate(self._t, self._r, marks)
        return np.asarray(np.minimum(times, self.duration_s))


def arrival_times(
    traffic: Traffic | Timeline[Traffic], duration_s: float, rng: np.random.Generator
) -> np.ndarray:
    """Every arrival time of a run at once, sorted in (0, duration] (the initial backlog aside)."""
    feed = ArrivalFeed(traffic, duration_s, rng)
    chunks = [feed.next_chunk()]
    while not feed.exhausted:
        chunks.append(feed.next_chunk())
    return np.concatenate(chunks)


def backlog_times(traffic: Traffic) -> np.ndarray:
    """When the initial backlog was sent: evenly over ``backlog_span`` before time 0, the last at 0."""
    n, span = traffic.initial_backlog, traffic.backlog_span
    if not span:
        return np.zeros(n)
    return np.linspace(-span, 0.0, n, endpoint=False) + span / n


class RecordFeed(Generic[TrafficT]):
    """A source's records (send time, size, poison draw), generated block by block.

    The first block holds the initial backlog (sent by time 0) and the first chunk of arrivals;
    each further block holds the next chunk. Sizes and poison draws come from their own streams in
    record order, so block boundaries change nothing. When the traffic changes during the run (a
    :data:`Timeline`), a block ends at the change: its records follow one traffic (:attr:`traffic`),
    and the next block starts with the records after the change.
    """

    def __init__(
        self,
        traffic: TrafficT | Timeline[TrafficT],
        duration_s: float,
        streams: Streams,
        source: str,
        max_size: float,
        *,
        draws: bool,
    ) -> None:
        timeline = as_timeline(traffic)
        self._timeline = timeline
        #: The traffic the last block's records follow (before the first block, the run's first).
        self.traffic = timeline[0][1]
        self._segment = 0  # the timeline's entry the next block's records follow
        self._arrivals = ArrivalFeed(timeline, duration_s, streams.get("arrivals", source))
        self._pending = np.empty(0)  # arrivals generated but not yet in a block (after a change)
        self._sizes = streams.get("sizes", source)
        self._poison = streams.get("poison", source) if draws else None
        self._max_size = max_size
        self._first = True
        self.exhausted = False
        #: Every record sent before this time has been generated (``inf`` once all are).
        self.horizon = -math.inf

    def next_block(self) -> dict[str, np.ndarray]:
        """The next block: ``sent_at`` (sorted), ``size`` and, when drawn, ``draw``."""
        arrivals = self._arrivals
        pending = self._pending
        while pending.shape[0] == 0 and not arrivals.exhausted:
            pending = arrivals.next_chunk()
        segment = self._segment
        traffic = self._timeline[segment][1]
        changes = segment + 1 < len(self._timeline)
        change_at = self._timeline[segment + 1][0] if changes else math.inf
        cut = int(pending.searchsorted(change_at, side="right")) if changes else pending.shape[0]
        sent, self._pending = pending[:cut], pending[cut:]
        if self._first:
            self._first = False
            if traffic.initial_backlog:
                sent = np.concatenate([backlog_times(traffic), sent])
        n = sent.shape[0]
        self.traffic = traffic
        sizes = traffic.record_size.sample(self._sizes, n)
        if traffic.record_size.upper_bound() > self._max_size:
            sizes = np.minimum(sizes, self._max_size)
        block = {"sent_at": sent, "size": np.asarray(sizes, dtype=float)}
        if self._poison is not None:
            block["draw"] = np.asarray(self._poison.random(n))
        self.exhausted = arrivals.exhausted and self._pending.shape[0] == 0
        if self.exhausted:
            self.horizon = math.inf
        elif self._pending.shape[0]:  # a record after the change exists: this traffic's records are out
            self._segment += 1
            self.horizon = change_at
        elif n:  # later records are sent at or after this block's last one (arrivals are sorted)
            self.horizon = float(sent[-1])
        return block
