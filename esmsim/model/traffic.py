"""Producer traffic: arrival times, sizes and poison draws, generated in numpy chunks.

Arrivals follow a piecewise-linear rate r(t) (steps and ramps, optionally repeating). Poisson
arrivals are unit-rate exponential gaps mapped through the inverse of the cumulative rate
Λ(t) = ∫ r; constant arrivals put the k-th record at Λ(t) = k. On a segment where
r(t) = r0 + s·τ the inverse is closed form, so a chunk of 65,536 arrivals costs a few numpy calls.
All draws come from the source's own streams, independent of mappings and functions: sweep points
of one replication see identical traffic.
"""

from __future__ import annotations

import math

import numpy as np

from esmsim.rng import Streams
from esmsim.scenario.sources import Traffic

CHUNK = 1 << 16


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


class ArrivalFeed:
    """A source's arrival times in blocks of :data:`CHUNK` unit-rate marks, generated on demand.

    The marks are drawn in fixed chunks from the source's ``arrivals`` stream, whoever asks and
    whenever, so the arrivals are the same however a run consumes them (common random numbers).
    """

    def __init__(self, traffic: Traffic, duration_s: float, rng: np.random.Generator) -> None:
        self.traffic = traffic
        self.duration_s = duration_s
        self._rng = rng
        self._t, self._r = rate_profile(traffic, duration_s)
        self._total = cumulative_rate_at(self._t, self._r, duration_s)
        self._reached = 0.0
        self._k = 0
        self.exhausted = self._total <= 0

    def next_chunk(self) -> np.ndarray:
        """The next sorted arrival times in (0, duration] (empty once the run's arrivals are out)."""
        if self.exhausted:
            return np.empty(0)
        if self.traffic.pattern == "poisson":
            # Summed on from the last mark, in order: the same marks whatever the chunk size.
            gaps = self._rng.exponential(1.0, CHUNK)
            marks = np.cumsum(np.concatenate([[self._reached], gaps]))[1:]
        else:
            marks = np.arange(self._k + 1, self._k + CHUNK + 1, dtype=float)
            self._k += CHUNK
        self._reached = float(marks[-1])
        if self._reached >= self._total:
            self.exhausted = True
        marks = marks[marks <= self._total]
        times = invert_cumulative_rate(self._t, self._r, marks)
        return np.asarray(np.minimum(times, self.duration_s))


def arrival_times(traffic: Traffic, duration_s: float, rng: np.random.Generator) -> np.ndarray:
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


class RecordFeed:
    """A source's records (send time, size, poison draw), generated block by block.

    The first block holds the initial backlog (sent by time 0) and the first chunk of arrivals;
    each further block holds the next chunk. Sizes and poison draws come from their own streams in
    record order, so block boundaries change nothing.
    """

    def __init__(
        self,
        traffic: Traffic,
        duration_s: float,
        streams: Streams,
        source: str,
        max_size: float,
        *,
        draws: bool,
    ) -> None:
        self.traffic = traffic
        self._arrivals = ArrivalFeed(traffic, duration_s, streams.get("arrivals", source))
        self._sizes = streams.get("sizes", source)
        self._poison = streams.get("poison", source) if draws else None
        self._cut = max_size if traffic.record_size.upper_bound() > max_size else None
        self._first = True
        self.exhausted = False
        #: Every record sent before this time has been generated (``inf`` once all are).
        self.horizon = -math.inf

    def next_block(self) -> dict[str, np.ndarray]:
        """The next block: ``sent_at`` (sorted), ``size`` and, when drawn, ``draw``."""
        sent = self._arrivals.next_chunk()
        if self._first:
            self._first = False
            if self.traffic.initial_backlog:
                sent = np.concatenate([backlog_times(self.traffic), sent])
        n = sent.shape[0]
        sizes = self.traffic.record_size.sample(self._sizes, n)
        if self._cut is not None:
            sizes = np.minimum(sizes, self._cut)
        block = {"sent_at": sent, "size": np.asarray(sizes, dtype=float)}
        if self._poison is not None:
            block["draw"] = np.asarray(self._poison.random(n))
        self.exhausted = self._arrivals.exhausted
        # Later records are sent at or after this block's last one (arrivals are sorted).
        self.horizon = math.inf if self.exhausted else (float(sent[-1]) if n else self.horizon)
        return block
