"""Quantities observed while a run goes: step functions (levels), per-minute sums and maxima.

A level (concurrency, pollers, messages visible, stream backlog) is a step function written as
changes ``(time, delta)``. Nothing is kept per change once its minute is done: changes wait in a
small buffer until the recorder declares a time ``W`` before which no more can come, then they are
folded, in time order, into each bin's exact time-weighted mean and maximum. Memory is bounded by
the changes of the last few minutes, not by the length of the run.

Changes may be written ahead of their time (an invocation's end is known when it starts; a
queue's arrivals when they are generated). A change that arrives after its bin was folded (a
lazily noticed expiry, say) is still applied exactly to the means; the maximum of its own bin can
then only be bounded from above, so it is counted in :attr:`BinnedLevel.late` and tests check it
stays zero where the model guarantees timely changes.

Semantics, as CloudWatch-style 1-minute bins need them: the level at ``t`` includes every change
at ``t`` (several changes at one instant count together, so a -1 and a +1 at one instant never
show as a momentary dip or spike); a bin ``[a, b)`` holds the level right after the changes at
``a`` and every value taken inside; the last bin is closed and also holds the changes at the end
of the run. Changes before 0 count at 0 (records already in a source when the run starts);
changes after the end are ignored.

Levels count things (messages, environments, invocations), so every delta is a whole number and
sums of deltas are exact in any order: changes at one instant may be folded in any order, and a
block of changes at one instant may be written as one change of their sum.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


def bin_edges(end: float, bin_s: float) -> np.ndarray:
    """Edges of ``bin_s`` bins covering [0, end] (the last bin may be shorter)."""
    n = max(1, int(np.ceil(end / bin_s - 1e-9)))
    return np.minimum(np.arange(n + 1, dtype=float) * bin_s, end)


def bin_index(times: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The bin of each time (the end of the run belongs to the last bin; outside times are clipped)."""
    width = float(edges[1] - edges[0])
    # A division, not a multiplication by 1/width: 120 * (1/60) is just under 2.
    idx = (np.asarray(times, dtype=float) / width).astype(np.int64)
    return np.clip(idx, 0, len(edges) - 2, out=idx)


def _pairs(flat: array[float]) -> np.ndarray:
    """Pairs ``(time, value)`` written flat into ``flat`` as an (n, 2) array; empties ``flat``.

    Pairs are written with ``array.extend`` rather than kept as tuples in a list: a run writes
    several per invocation, and tuples alive until the next fold, scattered over memory, cost more
    to convert and free than the writes themselves (and keep the garbage collector busy).
    """
    pairs = np.array(flat, dtype=float).reshape(-1, 2)  # a copy through the buffer protocol
    del flat[:]  # in place: ``post`` stays bound to this array
    return pairs


def _expand(deltas: list[float | np.ndarray], sizes: list[int]) -> np.ndarray:
    """Per-change deltas from blocks given as a scalar (one delta for the block) or an array."""
    scalars = [0.0 if isinstance(d, np.ndarray) else float(d) for d in deltas]
    out = np.repeat(np.asarray(scalars), sizes)
    if len(scalars) != sum(1 for d in deltas if not isinstance(d, np.ndarray)):
        ends = np.cumsum(sizes)
        for d, end, n in zip(deltas, ends.tolist(), sizes, strict=True):
            if isinstance(d, np.ndarray):
                out[end - n : end] = d
    return out


def _one_instant(at: np.ndarray) -> bool:
    """Whether a block of many changes all fall at one instant (then one change of their sum)."""
    return at.size > 16 and at[0] == at[-1] and at.min() == at.max()


@dataclass(frozen=True)
class LevelStats:
    """Exact statistics of a step function over a run."""

    mean: float  # time-weighted, over [warmup, end]
    maximum: float  # over the whole run
    bin_mean: np.ndarray  # time-weighted mean per bin
    bin_max: np.ndarray  # maximum per bin
    bin_end: np.ndarray  # level at the end of each bin (after every change before the bin's end)


class BinnedLevel:
    """A level folded into per-bin statistics as the run goes (see the module docstring)."""

    __slots__ = (
        "_area",
        "_changes",
        "_later",
        "_max",
        "_run_area",
        "_start_value",
        "_vd",
        "_vt",
        "before_fold",
        "done_until",
        "edges",
        "end",
        "late",
        "level",
        "post",
        "warmup",
    )

    def __init__(self, edges: np.ndarray, warmup: float = 0.0) -> None:
        self.edges = edges
        self.end = float(edges[-1])
        self.warmup = warmup
        nb = len(edges) - 1
        self._area = np.zeros(nb)
        self._max = np.full(nb, -np.inf)
        self._start_value = np.zeros(nb)  # the level at each bin's start, once folded
        self._run_area = 0.0
        self._changes: array[float] = array("d")  # time, delta, time, delta ...
        #: ``post((time, delta))``: the cheapest way to write one change (a bound array extend).
        self.post = self._changes.extend
        # Arrays written since the last fold, and the blocks of changes a fold found not yet due
        # (times, deltas, earliest time): a block is looked at again only once it has a due change.
        self._vt: list[np.ndarray] = []
        self._vd: list[float | np.ndarray] = []
        self._later: list[tuple[np.ndarray, np.ndarray, float]] = []
        #: Every change before this time has been folded.
        self.done_until = 0.0
        #: The level right after every folded change.
        self.level = 0.0
        #: Changes that came after their time was folded (see the module docstring).
        self.late = 0
        #: Each called with ``until`` before each fold: writers that post some changes only when a
        #: fold needs them (see :meth:`fold`) register here (several queues share one level).
        self.before_fold: list[Callable[[float], None]] = []

    # ------------------------------------------------------------------ writing
    def add(self, at: float, delta: float) -> None:
        """The level changes by ``delta`` at time ``at``."""
        self._changes.extend((at, delta))

    def add_many(self, at: np.ndarray, delta: float | np.ndarray) -> None:
        """Several changes at once (a scalar delta applies to every time)."""
        n = at.size
        if not n:
            return
        if not isinstance(delta, float | int):
            self._vt.append(at)
            self._vd.append(np.asarray(delta, dtype=float))
            return
        if _one_instant(at) and max(at[0], 0.0) >= self.done_until:
            # A block at one instant (a backlog present at the start: millions of records at 0) is
            # one change of their sum (exact: deltas are whole numbers), not n to sort at the fold.
            self._changes.extend((float(at[0]), float(delta * n)))
            return
        self._vt.append(at)
        # A scalar stays a scalar until folding, where all of them expand in one np.repeat.
        self._vd.append(delta)

    # ------------------------------------------------------------------ folding
    def fold(self, until: float) -> None:
        """Fold every change before ``until`` (no change before it may come later).

        Each ``before_fold`` hook runs first with ``until``: a writer may hold back changes it may
        yet cancel (a message's arrival and its receipt at the same instant), as long as it posts,
        when asked, every change up to and including ``until`` it still holds.
        """
        until = min(until, self.end)
        for post_until in self.before_fold:
            post_until(until)
        if until <= self.done_until and not self._changes and not self._vt:
            return  # blocks waiting in ``_later`` all lie at or after ``done_until``
        times, deltas = self._take(until)
        late = times < self.done_until
        if late.any():
            self._apply_late(times[late], deltas[late])
            times, deltas = times[~late], deltas[~late]
        if until > self.done_until:
            self._fold_window(times, deltas, until)

    def _take(self, until: float) -> tuple[np.ndarray, np.ndarray]:
        """Remove and return the pending changes before ``until`` (times before 0 count at 0)."""
        if self._changes:
            # Posted changes become arrays once, here: whatever is not yet due waits as arrays.
            pairs = _pairs(self._changes)
            self._vt.append(pairs[:, 0])
            self._vd.append(pairs[:, 1])
        due_t: list[np.ndarray] = []
        due_d: list[np.ndarray] = []
        if self._vt:
            vt = self._vt
            # One block of everything written since the last fold (hundreds of small arrays).
            t = (vt[0] if len(vt) == 1 else np.concatenate(vt)).astype(float, copy=False)
            d = _expand(self._vd, [v.size for v in vt])
            self._vt, self._vd = [], []
            self._split(t, d, until, due_t, due_d)
        if self._later:
            blocks, self._later = self._later, []
            for t, d, earliest in blocks:
                if earliest >= until:
                    self._later.append((t, d, earliest))
                else:
                    self._split(t, d, until, due_t, due_d)
        if not due_t:
            return np.empty(0), np.empty(0)
        times = due_t[0] if len(due_t) == 1 else np.concatenate(due_t)
        return np.maximum(times, 0.0), due_d[0] if len(due_d) == 1 else np.concatenate(due_d)

    def _split(
        self, t: np.ndarray, d: np.ndarray, until: float, due_t: list[np.ndarray], due_d: list[np.ndarray]
    ) -> None:
        """Changes ``(t, d)`` before ``until`` go to ``due_t``/``due_d``, the others wait in a block."""
        earliest = float(t.min())
        if earliest >= until:
            self._later.append((t, d, earliest))
            return
        keep = t >= until
        if not keep.any():
            due_t.append(t)
            due_d.append(d)
            return
        done = ~keep
        due_t.append(t[done])
        due_d.append(d[done])
        later = t[keep]
        self._later.append((later, d[keep], float(later.min())))

    def _fold_window(self, times: np.ndarray, deltas: np.ndarray, until: float) -> None:
        """Fold changes in [done_until, until), in time order, into the bins they fall in."""
        edges = self.edges
        start = self.done_until
        if times.size == 0:
            self._fold_constant(start, until)
            return
        # Markers (zero changes) at the window's start, every bin edge inside it and the warm-up,
        # so no interval between consecutive points crosses a bin edge or the warm-up.
        inner = edges[(edges > start) & (edges < until)]
        warm = [self.warmup] if start < self.warmup < until else []
        markers = np.concatenate([[start], inner, warm])
        all_t = np.concatenate([times, markers])
        # Stable: blocks arrive mostly in time order, which a merge sort runs through fastest.
        order = np.argsort(all_t, kind="stable")
        t = all_t.take(order)
        running = np.concatenate([deltas, np.zeros(markers.size)]).take(order).cumsum()
        # Only the value after every change at an instant counts (changes at one time count together).
        last = np.empty(t.size, dtype=bool)
        np.not_equal(t[1:], t[:-1], out=last[:-1])
        last[-1] = True
        t = t[last]
        value = self.level + running[last]
        # The level at every edge marker, right after the changes at it: where each bin starts.
        for at in markers[np.isin(markers, edges)].tolist():
            b = int(bin_index(np.array([at]), edges)[0])
            if at == edges[b]:
                self._start_value[b] = value[int(t.searchsorted(at))]
        b_first, b_last = bin_index(t[[0, -1]], edges).tolist()
        if b_first == b_last:  # the usual window, inside one bin (t is sorted, so bins are too)
            first = np.zeros(1, dtype=np.int64)
            present = np.array([b_first])
        else:
            bins = bin_index(t, edges)
            first = np.flatnonzero(np.append(True, bins[1:] != bins[:-1]))
            present = bins[first]
        self._max[present] = np.maximum(self._max[present], np.maximum.reduceat(value, first))
        areas = value * np.diff(np.append(t, until))
        self._area[present] += np.add.reduceat(areas, first)
        self._run_area += float((areas if t[0] >= self.warmup else areas[t >= self.warmup]).sum())
        self.level = float(value[-1])
        self.done_until = until

    def _fold_constant(self, start: float, until: float) -> None:
        """Fold [start, until) over which the level did not change (the usual case in a quiet run)."""
        edges = self.edges
        level = self.level
        width = float(edges[1] - edges[0])
        b = min(int(start / width), len(edges) - 2)
        while b < len(edges) - 1 and edges[b] < until:
            lo, hi = max(float(edges[b]), start), min(float(edges[b + 1]), until)
            self._area[b] += level * (hi - lo)
            if level > self._max[b]:
                self._max[b] = level
            if edges[b] >= start:
                self._start_value[b] = level
            b += 1
        self._run_area += level * max(0.0, until - max(start, self.warmup))
        self.done_until = until

    def _apply_late(self, times: np.ndarray, deltas: np.ndarray) -> None:
        """Changes whose time was already folded: exact for means, an upper bound for maxima."""
        edges = self.edges
        done = self.done_until
        nb = len(edges) - 1
        for t, d in zip(times.tolist(), deltas.tolist(), strict=True):
            self.late += 1
            b0 = int(bin_index(np.array([t]), edges)[0])
            overlap = np.maximum(np.minimum(edges[1:], done) - np.maximum(edges[:-1], t), 0.0)
            self._area += d * overlap
            self._run_area += d * max(0.0, done - max(t, self.warmup))
            starts = edges[:-1]
            self._max[(np.arange(nb) > b0) & (starts < done)] += d
            self._start_value[(starts >= t) & (starts < done)] += d
            if d > 0 and math.isfinite(self._max[b0]):
                self._max[b0] += d
            self.level += d

    # ------------------------------------------------------------------ reading
    def stats(self) -> LevelStats:
        """Fold everything up to the end of the run and return its statistics."""
        self.fold(self.end)
        # What is still pending lies at or after the end: changes exactly at the end count in the
        # closed last bin (as the level's final value), later ones are outside the run.
        times, deltas = self._take(math.inf)
        final = self.level + float(deltas[times <= self.end].sum())
        widths = np.diff(self.edges)
        bin_max = np.where(np.isfinite(self._max), self._max, self._start_value)
        bin_max[-1] = max(bin_max[-1], final)
        bin_end = np.append(self._start_value[1:], final)
        bin_mean = np.divide(self._area, widths, out=np.zeros_like(widths), where=widths > 0)
        span = self.end - self.warmup
        mean = self._run_area / span if span > 0 else 0.0
        return LevelStats(mean, max(0.0, float(bin_max.max())), bin_mean, bin_max, bin_end)


class BinnedSum:
    """A count or sum per bin, written one value (or one array) at a time."""

    __slots__ = ("_rows", "_sums", "_total", "_vt", "_vv", "edges", "post")

    def __init__(self, edges: np.ndarray) -> None:
        self.edges = edges
        self._sums = np.zeros(len(edges) - 1)
        self._total = 0.0
        self._rows: array[float] = array("d")  # time, value, time, value ...
        #: ``post((time, value))``: the cheapest way to add one value (a bound array extend).
        self.post = self._rows.extend
        self._vt: list[np.ndarray] = []
        self._vv: list[float | np.ndarray] = []

    def add(self, at: float, value: float = 1.0) -> None:
        """Add ``value`` in the bin of time ``at``."""
        self._rows.extend((at, value))

    def add_many(self, at: np.ndarray, values: float | np.ndarray = 1.0) -> None:
        """Add values at several times."""
        n = at.size
        if not n:
            return
        if not isinstance(values, float | int):
            self._vt.append(at)
            self._vv.append(np.asarray(values, dtype=float))
        elif _one_instant(at):
            # Many at one instant (a start-up backlog's sends): one row of their sum (sums count
            # things, so it is exact).
            self._rows.extend((float(at[0]), float(values * n)))
        else:
            self._vt.append(at)
            self._vv.append(values)

    def fold(self) -> None:
        """Bin what was written since the last fold (the order of writes does not matter)."""
        times: list[np.ndarray] = self._vt
        values: list[float | np.ndarray] = self._vv
        if self._rows:
            pairs = _pairs(self._rows)
            times = [*times, pairs[:, 0]]
            values = [*values, pairs[:, 1]]
        if not times:
            return
        self._vt, self._vv = [], []
        nb = len(self._sums)
        # Values are counts, so sums are exact in any grouping: blocks sharing one scalar value
        # (usually 1) are counted without weights, which bincount does several times faster.
        by_value: dict[float, list[np.ndarray]] = {}
        weighted_t: list[np.ndarray] = []
        weighted_v: list[np.ndarray] = []
        for t, v in zip(times, values, strict=True):
            if isinstance(v, np.ndarray):
                weighted_t.append(t)
                weighted_v.append(v)
            else:
                by_value.setdefault(float(v), []).append(t)
        for value, parts in by_value.items():
            t = parts[0] if len(parts) == 1 else np.concatenate(parts)
            self._sums += np.bincount(bin_index(t, self.edges), minlength=nb) * value
            self._total += value * t.size
        if weighted_t:
            t = np.concatenate(weighted_t)
            v = np.concatenate(weighted_v)
            self._sums += np.bincount(bin_index(t, self.edges), weights=v, minlength=nb)
            self._total += float(v.sum())

    @property
    def total(self) -> float:
        """The sum over the run."""
        self.fold()
        return self._total

    def array(self) -> np.ndarray:
        """The sum per bin."""
        self.fold()
        return self._sums.copy()


class BinnedMax:
    """The largest value seen per bin (NaN where none)."""

    __slots__ = ("_width", "edges", "maxima")

    def __init__(self, edges: np.ndarray) -> None:
        self.edges = edges
        self._width = float(edges[1] - edges[0])
        self.maxima = [-math.inf] * (len(edges) - 1)

    def add(self, at: float, value: float) -> None:
        """Note ``value`` at time ``at``."""
        b = min(max(int(at / self._width), 0), len(self.maxima) - 1)
        if value > self.maxima[b]:
            self.maxima[b] = value

    def add_many(self, at: np.ndarray, values: np.ndarray) -> None:
        """Note several values."""
        if at.size:
            out = np.full(len(self.maxima), -np.inf)
            np.maximum.at(out, bin_index(at, self.edges), values)
            for b in np.flatnonzero(np.isfinite(out)).tolist():
                self.maxima[b] = max(self.maxima[b], float(out[b]))

    def array(self) -> np.ndarray:
        """The maximum per bin, NaN for bins without values."""
        values = np.asarray(self.maxima, dtype=float)
        return np.where(np.isfinite(values), values, np.nan)
