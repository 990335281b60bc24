"""The waiting messages of a FIFO queue, one lane per message group, and which groups are blocked.

A receive takes, oldest first, the waiting messages of groups with nothing in flight. Kept as one
pool, every receive would scan the whole backlog, and a blocked hot group's backlog is most of it:
the run's cost grew with the square of its length. Here each group's waiting messages are a lane in
sending order, and a heap holds the oldest message of each unblocked group with messages waiting,
so a receive costs its batch size, whatever waits behind blocked groups.
"""

from __future__ import annotations

import heapq
from collections import deque

import numpy as np

from esmsim.model.sqs_messages import Messages


class MessageGroups:
    """Waiting messages by group (each lane in sending order) and messages in flight per group."""

    def __init__(self, groups: int) -> None:
        #: Messages in flight per group: a group with any is blocked.
        self.busy = np.zeros(max(1, groups), dtype=np.int64)
        #: Waiting messages per group.
        self.waiting = np.zeros(max(1, groups), dtype=np.int64)
        self._lanes: dict[int, deque[Messages]] = {}
        self._offset: dict[int, int] = {}  # rows of a lane's first chunk already taken
        #: ``(oldest waiting id, group)`` of unblocked groups; stale entries are skipped when popped.
        self._ready: list[tuple[int, int]] = []

    def grow(self, groups: int) -> None:
        """Make room for groups numbered below ``groups``."""
        more = groups - self.busy.shape[0]
        if more > 0:
            self.busy = np.concatenate([self.busy, np.zeros(more, np.int64)])
            self.waiting = np.concatenate([self.waiting, np.zeros(more, np.int64)])

    # ------------------------------------------------------------------------------ waiting
    def add(self, messages: Messages, groups: np.ndarray) -> None:
        """Messages start waiting (``groups``: each one's group).

        Fresh messages join the back of their lanes. Messages visible again were received before
        any message still waiting in their group, so they join the front: order is kept.
        """
        if not len(messages):
            return
        if groups.shape[0] == 1 or bool((groups[1:] == groups[0]).all()):
            self._add_to(int(groups[0]), messages)
            return
        order = np.argsort(groups, kind="stable")
        sorted_groups = groups[order]
        cuts = np.flatnonzero(sorted_groups[1:] != sorted_groups[:-1]) + 1
        for rows in np.split(order, cuts):
            self._add_to(int(groups[rows[0]]), messages.select(rows))

    def _add_to(self, group: int, messages: Messages) -> None:
        lane = self._lanes.get(group)
        if lane is None:
            lane = self._lanes[group] = deque()
            self._offset[group] = 0
        first_id = int(messages.ids[0])
        if not lane or first_id > self._head(group):
            if lane and first_id < int(lane[-1].ids[-1]):  # older than the lane's newest: merge
                self._merge(group, messages)
            else:
                lane.append(messages)
        elif int(messages.ids[-1]) < self._head(group):
            self._trim(group)
            lane.appendleft(messages)
        else:  # interleaved with the waiting ones: merge (never on the paths a run takes today)
            self._merge(group, messages)
        self.waiting[group] += len(messages)
        if not self.busy[group]:
            heapq.heappush(self._ready, (self._head(group), group))

    def _head(self, group: int) -> int:
        """Id of the oldest waiting message of a group with messages waiting."""
        return int(self._lanes[group][0].ids[self._offset[group]])

    def _trim(self, group: int) -> None:
        """Drop the taken rows of a lane's first chunk (before something joins in front of it)."""
        offset = self._offset[group]
        if offset:
            lane = self._lanes[group]
            lane[0] = lane[0].select(slice(offset, None))
            self._offset[group] = 0

    def _merge(self, group: int, messages: Messages) -> None:
        self._trim(group)
        lane = self._lanes[group]
        joined = Messages.join([*lane, messages])
        joined = joined.select(np.argsort(joined.ids, kind="stable"))
        lane.clear()
        lane.append(joined)

    def visible(self) -> int:
        """Waiting messages a receive could take: those of unblocked groups."""
        return int(self.waiting[self.busy == 0].sum())

    # ------------------------------------------------------------------------------ receiving
    def oldest(self, n: int) -> Messages | None:
        """Up to ``n`` of the oldest waiting messages of unblocked groups, in sending order.

        Nothing leaves its lane: :meth:`remove` takes the ones a receive keeps.
        """
        if len(self._ready) > 2 * len(self._lanes) + 64:  # mostly stale entries: rebuild
            self._ready = [(self._head(g), g) for g in self._lanes if not self.busy[g]]
            heapq.heapify(self._ready)
        ready = self._ready
        planned: dict[int, int] = {}  # group -> rows planned from its lane
        taken = 0
        while ready and taken < n:
            head, group = heapq.heappop(ready)
            at = planned.get(group, 0)
            if self.busy[group] or self.waiting[group] <= at or self._row_id(group, at) != head:
                continue  # blocked, drained or moved on since the entry was pushed
            planned[group] = at + 1
            taken += 1
            if self.waiting[group] > at + 1:
                heapq.heappush(ready, (self._row_id(group, at + 1), group))
        for group in planned:  # back on the heap until remove() takes them
            heapq.heappush(ready, (self._head(group), group))
        if not planned:
            return None
        found = Messages.join([self._rows(group, count) for group, count in planned.items()])
        return found if len(planned) == 1 else found.select(np.argsort(found.ids, kind="stable"))

    def _row_id(self, group: int, row: int) -> int:
        """Id of the ``row``-th waiting message of a group (0: its oldest)."""
        row += self._offset[group]
        for chunk in self._lanes[group]:
            if row < len(chunk):
                return int(chunk.ids[row])
            row -= len(chunk)
        raise IndexError(row)

    def _rows(self, group: int, count: int) -> Messages:
        """The ``count`` oldest waiting messages of a group (left in its lane)."""
        offset = self._offset[group]
        parts = []
        for chunk in self._lanes[group]:
            part = chunk.select(slice(offset, offset + count))
            parts.append(part)
            count -= len(part)
            offset = 0
            if not count:
                break
        return Messages.join(parts)

    def remove(self, groups: np.ndarray) -> None:
        """The oldest waiting message of each of ``groups`` (one entry a message) is received."""
        counts = np.bincount(groups)
        for group in np.flatnonzero(counts):
            self._drop(int(group), int(counts[group]))
        self.waiting[: counts.shape[0]] -= counts

    def _drop(self, group: int, count: int) -> None:
        lane = self._lanes[group]
        offset = self._offset[group] + count
        while lane and offset >= len(lane[0]):
            offset -= len(lane.popleft())
        self._offset[group] = offset
        if not lane:
            del self._lanes[group], self._offset[group]

    # ------------------------------------------------------------------------------ in flight
    def hold(self, groups: np.ndarray) -> int:
        """Messages of ``groups`` (one entry a message) go in flight; returns the groups now blocked."""
        np.add.at(self.busy, groups, 1)
        return int(np.count_nonzero(self.busy))

    def release(self, groups: np.ndarray) -> None:
        """Messages of ``groups`` leave flight; a group with none left in flight is unblocked."""
        np.subtract.at(self.busy, groups, 1)
        for group in np.unique(groups):
            g = int(group)
            if not self.busy[g] and self.waiting[g]:
                heapq.heappush(self._ready, (self._head(g), g))

    # ------------------------------------------------------------------------------ as one store
    def chunks(self) -> list[Messages]:
        """Every waiting message, lane by lane (for the queue's census, expiry and late deletes)."""
        out = []
        for group, lane in self._lanes.items():
            offset = self._offset[group]
            for i, chunk in enumerate(lane):
                out.append(chunk.select(slice(offset, None)) if i == 0 and offset else chunk)
        return out

    def reset(self, pools: list[Messages], group_of: np.ndarray) -> None:
        """Replace the waiting messages by ``pools`` (after expiry or late deletes removed some)."""
        self._lanes.clear()
        self._offset.clear()
        self._ready.clear()
        self.waiting[:] = 0
        pools = [p for p in pools if len(p)]
        if pools:
            joined = Messages.join(pools)
            joined = joined.select(np.argsort(joined.ids, kind="stable"))
            self.add(joined, group_of[joined.ids])
