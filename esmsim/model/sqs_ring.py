"""The pollers collecting a batching window, and who gets which arriving message: counted in laps.

Arriving messages are dealt round-robin to the pollers collecting a window (the ring's members): the
next message goes to the member at the pointer, which then moves on, wrapping from the end of the
list to its start (one lap). A member joins at the end of the list and may leave from anywhere, so
every member present is visited exactly once per lap. Two consequences make dealing cheap:

* a member's count of dealt messages is a difference of lap counters (:meth:`Ring.visits`), and
* the member whose batch fills first is the one whose last needed visit comes first in
  (lap, list order), and list order is join order: a heap keyed on (target lap, join number) finds
  it without looking at the others (:meth:`Ring.next_fill`).

Dealing ``m`` messages is then a constant amount of Python work plus one numpy write of who got
which row (the owner column), whatever the ring's size. A member's rows are read back from that
column when its batch closes (:meth:`Ring.rows`).

With ``single`` only the oldest member is dealt to (the single-poller closed forms): the others
wait their turn and start counting when they reach the front.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from esmsim.model.sqs_collector import Collector


class Ring:
    """The members of a ring, the dealing pointer, and the owner of every dealt row."""

    def __init__(self, *, single: bool = False) -> None:
        self.single = single
        self.members: list[Collector] = []
        self._seqs: list[int] = []  # the members' join numbers, in list order (sorted)
        self._seq_array: np.ndarray | None = None  # the same twice over, while membership holds
        self.rr = 0  # list index of the member that gets the next row
        self.lap = 0  # completed passes of the pointer over the list
        self._next_seq = 0
        # (lap of the last visit it needs, join number, member): the member that fills first on top.
        self._fill: list[tuple[int, int, Collector]] = []
        # (window end, join number, member) of the members holding messages.
        self._windows: list[tuple[float, int, Collector]] = []
        self._unvisited: deque[Collector] = deque()  # dealt-to members not dealt a row yet, in order
        #: Whether every member that ever joined collects the same window (then the first idle
        #: member's window is the first to end).
        self.window_lengths: set[float] = set()
        self.tracking = 0  # members whose payload cap can bind
        # The join number of the member each row went to (-1: none, a receive took it).
        self._owner = np.full(1024, -1, dtype=np.int64)
        self._obase = 0  # row of _owner[0]
        #: Bumped whenever membership or a member's quota changes: what the ring will deal, and so
        #: when its next batch closes, can only change then (dealing itself follows the plan).
        self.version = 0

    def __len__(self) -> int:
        return len(self.members)

    @property
    def width(self) -> int:
        """Members dealt to per lap."""
        return 1 if self.single else len(self.members)

    # ------------------------------------------------------------------ membership
    def join(self, c: Collector) -> None:
        """Add a collector at the end of the list (holding what its receive took, if anything)."""
        c.seq = self._next_seq
        self._next_seq += 1
        self.version += 1
        c.in_ring = True
        self.members.append(c)
        self._seqs.append(c.seq)
        self._seq_array = None
        self.window_lengths.add(c.owner.window_s)
        self.tracking += c.tracks_bytes
        if not c.idle:
            self.push_window(c)
        if not self.single or len(self.members) == 1:
            self._activate(c)

    def _activate(self, c: Collector) -> None:
        """``c`` starts being dealt to: its first visit comes in the current lap."""
        c.active = True
        c.base = self.lap
        self._push_fill(c)
        self._unvisited.append(c)

    def leave(self, i: int) -> Collector:
        """Remove the member at list index ``i``."""
        c = self.members.pop(i)
        self.version += 1
        self._seqs.pop(i)
        self._seq_array = None
        c.in_ring = False
        self.tracking -= c.tracks_bytes
        n = len(self.members)
        if self.single:
            if i == 0 and n:
                self._activate(self.members[0])
            return c
        if i < self.rr:
            self.rr -= 1
        if self.rr >= n:
            # Every member left was visited in this lap: the pointer starts the next one.
            self.rr = 0
            self.lap += 1
        return c

    def index(self, c: Collector) -> int:
        """List index of member ``c``."""
        return bisect_left(self._seqs, c.seq)

    def offset(self, c: Collector, i: int) -> int:
        """Rows from the pointer to member ``c``'s next visit (``c`` at list index ``i``, dealt to)."""
        return 0 if self.single else (i - self.rr) % len(self.members)

    def visits(self, c: Collector, i: int) -> int:
        """Rows dealt to member ``c`` (at list index ``i``) so far."""
        if not c.active:
            return 0
        return self.lap - c.base + (1 if i < self.rr and not self.single else 0)

    def need(self, c: Collector, i: int) -> int:
        """Messages member ``c`` (at list index ``i``) still takes before its batch is full."""
        return c.quota - self.visits(c, i)

    def took(self, c: Collector, k: int) -> None:
        """Member ``c``'s receive took ``k`` messages itself (redeliveries): it needs fewer dealt."""
        c.quota -= k
        self.version += 1
        if c.active:
            self._push_fill(c)

    def _push_fill(self, c: Collector) -> None:
        heapq.heappush(self._fill, (c.base + c.quota - 1, c.seq, c))

    def push_window(self, c: Collector) -> None:
        """Member ``c`` holds messages: its window (``c.window_end``) is set and can end its batch."""
        heapq.heappush(self._windows, (c.window_end, c.seq, c))

    # ------------------------------------------------------------------ looking ahead
    def next_fill(self, head: int) -> tuple[int, Collector, int] | None:
        """The member whose batch fills first: ``(row that fills it, member, list index)``.

        ``head`` is the next row to deal. None when no member is dealt to.
        """
        fill = self._fill
        while fill:
            target, _, c = fill[0]
            if c.in_ring and c.active and c.base + c.quota - 1 == target:
                break
            heapq.heappop(fill)  # a member gone, or one whose quota changed since
        else:
            return None
        i = self.index(c)
        # Its last visit is in lap ``target`` at list index i; the pointer is at (lap, rr).
        position = 0 if self.single else i - self.rr
        return head + (target - self.lap) * self.width + position, c, i

    def windows_before(self, t: float) -> list[Collector]:
        """Members holding messages whose window ends before ``t``, earliest first."""
        windows = self._windows
        if not windows or windows[0][0] >= t:
            return []
        found: list[tuple[float, int, Collector]] = []
        while windows and windows[0][0] < t:
            entry = heapq.heappop(windows)
            if entry[2].in_ring:
                found.append(entry)
        for entry in found:
            heapq.heappush(windows, entry)
        return [entry[2] for entry in found]

    def unvisited(self) -> Iterator[tuple[Collector, int]]:
        """Dealt-to members not yet dealt a row, in pointer order, with their list index."""
        for c in self._unvisited:
            if c.in_ring and c.first_row < 0:
                yield c, self.index(c)

    # ------------------------------------------------------------------ dealing
    def deal(self, head: int, m: int) -> list[Collector]:
        """Deal rows ``[head, head + m)`` in turn; returns the members dealt their first row.

        Each of those has ``first_row`` set.
        """
        n = self.width
        self._reserve(head, head + m)
        lo = head - self._obase
        owner = self._owner
        if self.single:
            owner[lo : lo + m] = self.members[0].seq
        elif m == 1:
            owner[lo] = self._seqs[self.rr]
        else:
            if self._seq_array is None:
                # The join numbers twice over: any n in a row from the pointer are one slice.
                self._seq_array = np.asarray(self._seqs + self._seqs, dtype=np.int64)
            turn = self._seq_array[self.rr : self.rr + n]
            if m <= n:
                owner[lo : lo + m] = turn[:m]
            else:  # whole laps at once (a broadcast), then the part of the last
                laps = m // n
                owner[lo : lo + laps * n].reshape(laps, n)[:] = turn
                owner[lo + laps * n : lo + m] = turn[: m - laps * n]
        first: list[Collector] = []
        unvisited = self._unvisited
        while unvisited:
            c = unvisited[0]
            if not c.in_ring or c.first_row >= 0:
                unvisited.popleft()
                continue
            o = self.offset(c, self.index(c))
            if o >= m:
                break
            unvisited.popleft()
            c.first_row = head + o
            first.append(c)
        moved = self.rr + m if not self.single else m
        self.lap += moved // n
        self.rr = moved % n if not self.single else 0
        return first

    def rows(self, c: Collector, upto: int) -> np.ndarray:
        """The rows dealt to ``c`` before row ``upto``, in order."""
        start = c.first_row
        if start < 0 or start >= upto:
            return np.empty(0, dtype=np.int64)
        segment = self._owner[start - self._obase : upto - self._obase]
        return np.flatnonzero(segment == c.seq) + start

    def _reserve(self, head: int, top: int) -> None:
        """Room in the owner column for rows ``[head, top)``, dropping rows no member holds any more."""
        if top - self._obase <= self._owner.shape[0]:
            return
        low = min([c.first_row for c in self.members if c.first_row >= 0], default=head)
        keep = self._owner[max(low - self._obase, 0) :]
        capacity = max(2 * (top - low), 1024)
        owner = np.full(capacity, -1, dtype=np.int64)  # rows a receive took are nobody's
        owner[: keep.shape[0]] = keep
        self._owner = owner
        self._obase = low
