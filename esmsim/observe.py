"""Observation: append-only event logs during a run, exact statistics after it.

During a run the model only appends: one tuple per invocation, one ``(time, delta)`` per change of a
level (concurrency, environments, pollers, backlog), or a whole numpy vector at once. Nothing is
binned or averaged while the simulation runs. Afterwards the logs become exact step functions:
time-weighted means (levels are averaged over time, not over samples), maxima, and 1-minute bins
under CloudWatch's metric names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

import numpy as np

Side: TypeAlias = Literal["left", "right"]


class Level:
    """A quantity that changes by steps: the log of its changes.

    Small changes (per batch, per invocation) are appended one by one or as short vectors. Changes
    of one per record are given as a whole sorted array with a sign (:meth:`add_sorted`): a source's
    arrivals, say. While they only rise they are never merged with the rest, which keeps a run with
    tens of millions of records cheap to observe; once some fall, one stable merge of the presorted
    runs is cheaper (see :func:`level_stats`).
    """

    __slots__ = ("_d", "_sorted", "_t", "_vd", "_vt")

    def __init__(self) -> None:
        self._t: list[float] = []
        self._d: list[float] = []
        self._vt: list[np.ndarray] = []
        self._vd: list[np.ndarray] = []
        self._sorted: list[tuple[np.ndarray, int]] = []

    def add(self, at: float, delta: float) -> None:
        """The level changes by ``delta`` at time ``at``."""
        self._t.append(at)
        self._d.append(delta)

    def add_many(self, at: np.ndarray, delta: float | np.ndarray) -> None:
        """Several changes at once (a scalar delta applies to every time)."""
        if at.size:
            self._vt.append(np.asarray(at, dtype=float))
            self._vd.append(np.broadcast_to(np.asarray(delta, dtype=float), at.shape))

    def add_sorted(self, at: np.ndarray, sign: int) -> None:
        """A change of ``sign`` (+1 or -1) at every time of the sorted array ``at``."""
        if at.size:
            self._sorted.append((np.asarray(at, dtype=float), sign))

    def copy(self) -> Level:
        """An independent copy of the log."""
        return Level().merged(self)

    def merged(self, *others: Level) -> Level:
        """The sum of this level and others."""
        total = Level()
        for part in (self, *others):
            total._t += part._t
            total._d += part._d
            total._vt += part._vt
            total._vd += part._vd
            total._sorted += part._sorted
        return total

    @property
    def sorted_parts(self) -> list[tuple[np.ndarray, int]]:
        """The per-record components: ``(sorted times, sign)``."""
        return self._sorted

    def small_steps(self) -> tuple[np.ndarray, np.ndarray]:
        """Times (sorted) of the small changes, and the running sum of them just after each."""
        times = np.concatenate([np.asarray(self._t, dtype=float), *self._vt])
        deltas = np.concatenate([np.asarray(self._d, dtype=float), *self._vd])
        # At equal times decreases come first: an invocation ending and another starting at the same
        # instant never show as a momentary peak.
        order = np.lexsort((deltas, times))
        return times[order], np.cumsum(deltas[order])

    def value(self, x: np.ndarray, side: Side = "right") -> np.ndarray:
        """The level at times ``x``: after the changes at ``x`` (``right``) or before them (``left``)."""
        times, after = self.small_steps()
        return _step_value(times, after, self._sorted, x, side)


def _folded(level: Level) -> tuple[np.ndarray, np.ndarray]:
    """Every change, per-record ones included, as one sorted step function.

    Used when records also leave by sorted components: then maxima can fall anywhere, and one
    merge (a stable sort of a few presorted runs, near linear) beats searching every candidate.
    """
    times, deltas = level.small_steps()
    steps = np.diff(np.concatenate([[0.0], deltas]))  # back from running sums to changes
    negative = steps < 0
    parts_t = [times[negative]] + [at for at, sign in level.sorted_parts if sign < 0]
    parts_t += [times[~negative]] + [at for at, sign in level.sorted_parts if sign > 0]
    parts_d = [steps[negative]] + [np.full(at.size, -1.0) for at, sign in level.sorted_parts if sign < 0]
    parts_d += [steps[~negative]] + [np.full(at.size, 1.0) for at, sign in level.sorted_parts if sign > 0]
    all_t = np.concatenate(parts_t)
    order = np.argsort(all_t, kind="stable")  # decreases were put first: they stay first at ties
    return all_t[order], np.cumsum(np.concatenate(parts_d)[order])


def _step_value(
    times: np.ndarray, after: np.ndarray, big: list[tuple[np.ndarray, int]], x: np.ndarray, side: Side
) -> np.ndarray:
    i = np.searchsorted(times, x, side=side) - 1
    out = np.where(i >= 0, after[np.maximum(i, 0)], 0.0) if after.size else np.zeros(np.shape(x))
    for at, sign in big:
        out = out + sign * np.searchsorted(at, x, side=side)
    return np.asarray(out, dtype=float)


class Counter:
    """Increments of a count over time."""

    __slots__ = ("_t", "_v", "_vt", "_vv")

    def __init__(self) -> None:
        self._t: list[float] = []
        self._v: list[float] = []
        self._vt: list[np.ndarray] = []
        self._vv: list[np.ndarray] = []

    def add(self, at: float, value: float = 1.0) -> None:
        """Count ``value`` at time ``at``."""
        self._t.append(at)
        self._v.append(value)

    def add_many(self, at: np.ndarray, value: float | np.ndarray = 1.0) -> None:
        """Count at several times at once."""
        if at.size:
            self._vt.append(np.asarray(at, dtype=float))
            self._vv.append(np.broadcast_to(np.asarray(value, dtype=float), at.shape))

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """All increments as ``(times, values)``."""
        times = np.concatenate([np.asarray(self._t, dtype=float), *self._vt])
        values = np.concatenate([np.asarray(self._v, dtype=float), *self._vv])
        return times, values

    def total(self) -> float:
        """Sum of all increments."""
        return float(sum(self._v) + sum(float(v.sum()) for v in self._vv))


@dataclass(frozen=True)
class LevelStats:
    """Exact statistics of a step function over a run."""

    mean: float  # time-weighted, over [start, end]
    maximum: float  # over the whole run
    bin_mean: np.ndarray  # time-weighted mean per bin
    bin_max: np.ndarray  # maximum per bin
    bin_end: np.ndarray  # level at the end of each bin


def bin_edges(end: float, bin_s: float) -> np.ndarray:
    """Edges of ``bin_s`` bins covering [0, end] (the last bin may be shorter)."""
    n = max(1, int(np.ceil(end / bin_s - 1e-9)))
    return np.minimum(np.arange(n + 1, dtype=float) * bin_s, end)


def level_stats(level: Level, start: float, end: float, edges: np.ndarray) -> LevelStats:
    """Time-weighted mean over [start, end], maximum, and per-bin mean and maximum of a level.

    Exact for a step function. When every per-record component rises, they are evaluated with
    binary searches and prefix sums instead of being merged: between two small changes the level
    then only rises, so its maxima lie just before or just after a small change, or just before a
    bin's end. When some fall (records leaving), everything is merged once (:func:`_folded`).
    """
    if any(sign < 0 for _, sign in level.sorted_parts):
        times, after = _folded(level)
        big: list[tuple[np.ndarray, int]] = []
    else:
        times, after = level.small_steps()
        big = [(at[: np.searchsorted(at, end, side="right")], sign) for at, sign in level.sorted_parts]
    keep = times <= end
    times, after = times[keep], after[keep]
    prefix = [np.concatenate([[0.0], np.cumsum(at)]) for at, _ in big]
    small_area = np.concatenate([[0.0], np.cumsum(after[:-1] * np.diff(times))]) if times.size else times

    def area(x: np.ndarray) -> np.ndarray:
        """Integral of the level from 0 to each x."""
        total = np.zeros(x.shape)
        if times.size:
            i = np.searchsorted(times, x, side="right") - 1
            j = np.maximum(i, 0)
            total = np.where(i >= 0, small_area[j] + after[j] * (x - times[j]), 0.0)
        for (at, sign), sums in zip(big, prefix, strict=True):
            k = np.searchsorted(at, x, side="right")
            total = total + sign * (k * x - sums[k])
        return total

    def big_count(x: np.ndarray, side: Side) -> np.ndarray:
        total = np.zeros(x.shape)
        for at, sign in big:
            total = total + sign * np.searchsorted(at, x, side=side)
        return total

    width = end - start
    a_start, a_end = area(np.array([start, end], dtype=float))
    mean = float((a_end - a_start) / width) if width > 0 else 0.0
    widths = np.diff(edges)
    bin_mean = np.divide(np.diff(area(edges)), widths, out=np.zeros_like(widths), where=widths > 0)

    # Candidate maxima. Small changes at one instant count together (the level after all of them).
    last_at_time = np.append(times[1:] != times[:-1], True) if times.size else times.astype(bool)
    at_times = times[last_at_time]
    right = after[last_at_time] + big_count(at_times, "right")
    # Each candidate is (times, level there, side): a level just after changes at t belongs to the
    # bin holding t; one just before them (a left limit) to the bin holding the instant before t.
    candidates: list[tuple[np.ndarray, np.ndarray, Side]] = [(at_times, right, "right")]
    if big:  # rising components (only those stay unmerged): the level just before each change too
        before = np.concatenate([[0.0], after[last_at_time][:-1]]) + big_count(at_times, "left")
        candidates.append((at_times, before, "left"))
    candidates.append((edges[:-1], _step_value(times, after, big, edges[:-1], "right"), "right"))
    nb = len(edges) - 1
    best = np.full(nb, -np.inf)
    for x, values, side in candidates:
        if x.size:
            bins = np.clip(np.searchsorted(edges, x, side=side) - 1, 0, nb - 1)
            np.maximum.at(best, bins, values)
    best = np.maximum(best, _step_value(times, after, big, edges[1:], "left"))
    at_end = _step_value(times, after, big, edges[1:], "right")
    best[-1] = max(best[-1], float(at_end[-1]))
    return LevelStats(mean, max(0.0, float(best.max())), bin_mean, best, at_end)


def binned_sum(times: np.ndarray, values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Sum of values per bin (times outside [0, end] are ignored; the end belongs to the last bin).

    Bins are equal but for the last, which may be shorter, so a division finds each time's bin.
    """
    nb = len(edges) - 1
    width = float(edges[1] - edges[0])
    idx = np.minimum(np.floor(times / width), nb - 1)
    ok = (times >= 0) & (times <= edges[-1])
    return np.bincount(idx[ok].astype(np.int64), weights=values[ok], minlength=nb)[:nb].astype(float)
