"""Records as columns of numpy arrays, held only while they are in the system.

A record is never a SimPy process, nor a Python object: it is a row of a few numpy columns (when it
was sent, its size, its poison draw ...). A :class:`RecordFifo` holds a source's records in arrival
order, addressed by a position that counts from the start of the run and never changes. Records
are appended a block at a time as traffic is generated, and dropped from the front once nobody
needs them: memory follows the records in the system (backlog and in flight), not the length of
the run.

Arrays are replaced, never modified in place, when the FIFO grows or compacts, so a view taken of
a range (a batch being invoked) stays a valid snapshot for as long as it is held.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

import numpy as np

#: A batch or part of one: a slice of positions, or an array of positions.
Ids: TypeAlias = slice | np.ndarray


def count(ids: Ids) -> int:
    """Number of rows a batch part addresses."""
    if isinstance(ids, slice):
        start, stop, step = ids.start or 0, ids.stop, ids.step or 1
        return max(0, int((stop - start + step - 1) // step))
    return int(ids.shape[0])


def positions(ids: Ids) -> np.ndarray:
    """The positions a batch part addresses, as an array."""
    if isinstance(ids, slice):
        return np.arange(ids.start or 0, ids.stop, ids.step or 1)
    return ids


class RecordFifo:
    """Columns of records in arrival order; positions ``[low, top)`` are held.

    ``arrays[name][pos - base]`` is column ``name`` of the record at position ``pos``.
    """

    __slots__ = ("_capacity", "arrays", "base", "low", "top")

    def __init__(self, dtypes: Mapping[str, Any]) -> None:
        self.arrays: dict[str, np.ndarray] = {name: np.empty(0, dtype=dt) for name, dt in dtypes.items()}
        self.base = 0  # position of index 0 of the arrays
        self.low = 0  # first position still held
        self.top = 0  # one past the last position
        self._capacity = 0

    def __len__(self) -> int:
        return self.top - self.low

    def append(self, columns: dict[str, np.ndarray]) -> None:
        """Add records at the end (every column, same length)."""
        n = next(iter(columns.values())).shape[0]
        if n == 0:
            return
        live = self.top - self.low
        if self.top - self.base + n > self._capacity:
            # Compact (drop what was released) and grow; amortised O(1) per record.
            capacity = max(2 * (live + n), 1024)
            start = self.low - self.base
            for name, array in self.arrays.items():
                fresh = np.empty(capacity, dtype=array.dtype)
                fresh[:live] = array[start : start + live]
                self.arrays[name] = fresh
            self.base = self.low
            self._capacity = capacity
        at = self.top - self.base
        for name, array in self.arrays.items():
            array[at : at + n] = columns[name]
        self.top += n

    def drop_before(self, position: int) -> None:
        """Release every record before ``position`` (its memory is reclaimed at a later append)."""
        self.low = max(self.low, min(position, self.top))

    def column(self, name: str, start: int, stop: int, step: int = 1) -> np.ndarray:
        """A view of column ``name`` for positions ``[start, stop)`` (every ``step``-th)."""
        base = self.base
        return self.arrays[name][start - base : stop - base : step]

    def at(self, name: str, position: int) -> float:
        """One value of column ``name``."""
        return float(self.arrays[name][position - self.base])

    def gather(self, name: str, ids: Ids) -> np.ndarray:
        """Column ``name`` of a batch part (a view for a slice, a copy for an index array)."""
        if isinstance(ids, slice):
            return self.column(name, ids.start, ids.stop, ids.step or 1)
        return np.asarray(self.arrays[name][ids - self.base])

    def expired_until(self, name: str, start: int, now: float, retention: float) -> int:
        """Position of the first record from ``start`` whose ``name`` plus ``retention`` is after ``now``.

        The sum is compared as it is written (a record expires when sent + retention <= now): a
        search for ``now - retention`` can round to either side of a record exactly due, and a
        record due by the sum but missed by the search would wait forever.
        """
        stop = self.search(name, now - retention, "right", start=start)
        while stop < self.top and self.at(name, stop) + retention <= now:
            stop += 1
        while stop > start and self.at(name, stop - 1) + retention > now:
            stop -= 1
        return stop

    def search(self, name: str, value: float, side: str = "right", start: int | None = None) -> int:
        """Position of the first record from ``start`` (default: ``low``) with ``name`` above ``value``.

        With ``side="left"``: at or above. The column must be sorted over the held range.
        """
        base = self.base
        lo = (self.low if start is None else start) - base
        array = self.arrays[name][lo : self.top - base]
        return base + lo + int(array.searchsorted(value, side=side))  # type: ignore[call-overload]
