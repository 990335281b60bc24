"""Producer traffic: arrival times, sizes and poison draws, generated in numpy chunks.

Arrivals follow a piecewise-linear rate r(t) (steps and ramps, optionally repeating). Poisson
arrivals are unit-rate exponential gaps mapped through the inverse of the cumulative rate
Λ(t) = ∫ r; constant arrivals put the k-th record at Λ(t) = k. On a segment where
r(t) = r0 + s·τ the inverse is closed form, so a chunk of 65,536 arrivals costs a few numpy calls.
All draws come from the source's own streams, independent of mappings and functions: sweep points
of one replication see identical traffic.
"""

from __future__ import annotations

import numpy as np

from esmsim.model.records import RecordTable
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


def arrival_times(traffic: Traffic, duration_s: float, rng: np.random.Generator) -> np.ndarray:
    """Sorted arrival times in (0, duration] (the initial backlog is added separately)."""
    t, r = rate_profile(traffic, duration_s)
    total = cumulative_rate_at(t, r, duration_s)
    if total <= 0:
        return np.empty(0)
    chunks: list[np.ndarray] = []
    reached = 0.0
    k = 0
    while reached < total:
        if traffic.pattern == "poisson":
            marks = reached + np.cumsum(rng.exponential(1.0, CHUNK))
        else:
            marks = np.arange(k + 1, k + CHUNK + 1, dtype=float)
            k += CHUNK
        reached = float(marks[-1])
        chunks.append(marks[marks <= total])
    targets = np.concatenate(chunks)
    return np.asarray(np.minimum(invert_cumulative_rate(t, r, targets), duration_s))


def backlog_times(traffic: Traffic) -> np.ndarray:
    """When the initial backlog was sent: evenly over ``backlog_span`` before time 0, the last at 0."""
    n, span = traffic.initial_backlog, traffic.backlog_span
    if not span:
        return np.zeros(n)
    return np.linspace(-span, 0.0, n, endpoint=False) + span / n


def generate_records(
    traffic: Traffic, duration_s: float, streams: Streams, source: str, max_size: float, *, draws: bool
) -> RecordTable:
    """All records a queue receives in a run, initial backlog first (sent by time 0).

    ``draws``: whether to draw each record's poison number (needed only when some function has
    poison records; the draws come from their own stream either way, so they never shift others).
    """
    arrivals = arrival_times(traffic, duration_s, streams.get("arrivals", source))
    if traffic.initial_backlog:
        arrivals = np.concatenate([backlog_times(traffic), arrivals])
    n = arrivals.shape[0]
    sizes = traffic.record_size.sample(streams.get("sizes", source), n)
    if traffic.record_size.upper_bound() > max_size:
        sizes = np.minimum(sizes, max_size)
    poison = np.asarray(streams.get("poison", source).random(n)) if draws else None
    return RecordTable(arrivals, sizes, poison)
