"""A stream mapping's lanes: each shard's ordered sub-streams, and how they are rebuilt.

A shard is split into ``parallelization_factor`` lanes by partition key (one lane when the factor
is 1). A lane keeps its own copy of the records it has yet to finish, as numpy columns, processes
them strictly in order and one batch at a time: records of one key are never processed
concurrently or out of order.

When a live change sets a new factor, a shard's lanes are rebuilt (:class:`ShardLanes`): the old
lanes form no new batch, the shard waits until none of them holds a batch (in flight or waiting to
be retried), and then the records they had not yet taken into a batch move, in shard order, into
the new lanes by key. Every record a lane took into a batch is finished before any later record of
its key is taken again, so per key the order holds across the change.

With ``checkpoint: shard`` (the default) a lane that holds a failed batch holds the shard's other
lanes back: they finish the batches they hold but start no new one until it is resolved (succeeded
or discarded), so the shard's checkpoint, the oldest unfinished record of all its lanes, never
passes the failing record by more than what was already in flight. ``checkpoint: key`` lets the
other lanes go on.

A shard also has a place in its stream's lineage (docs/model.md §4): a child shard of a resharding
is read only once every parent shard is drained, and a parent stops receiving records when the
resharding takes effect.
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import numpy as np
import simpy

from esmsim.model.records import RecordFifo

if TYPE_CHECKING:
    from esmsim.model.stream_reader import ShardReader


class LaneBatch(Protocol):
    """What a lane needs of a batch it works on (stream_batch.Pending): where its records start."""

    start: int


#: The batches a lane works on (stream_batch.Pending; lanes do not import the mapping).
BatchT = TypeVar("BatchT", bound=LaneBatch)


def lane_columns(draws: bool) -> dict[str, Any]:
    """The columns a lane keeps of each record."""
    columns: dict[str, Any] = {
        "seq": np.int64,
        "sent_at": float,
        "accepted_at": float,
        "size": float,
        "key": np.int32,
        "fetched_at": float,  # set when the record is taken into a batch (the latency's parts)
        # Whether the record matches the mapping's filter: True until it is taken into a batch,
        # then the filter's decision (a batch keeps it while retried; docs/model.md §15).
        "match": bool,
    }
    if draws:
        columns["draw"] = float
    return columns


class Lane(Generic[BatchT]):
    """One ordered sub-stream of a shard (all of it when the parallelization factor is 1).

    Its records are positions of its own FIFO, counted from its first record; ``seq`` is each
    record's position in the shard log, which the reader's progress is measured in. ``index`` is
    the lane's number within the mapping (the invocations table's ``lane``).
    """

    __slots__ = (
        "closed",
        "failing",
        "fifo",
        "index",
        "pending",
        "pos",
        "reader",
        "shard",
        "trim_after",
        "window_start",
    )

    def __init__(self, shard: int, index: int, reader: ShardReader, draws: bool) -> None:
        self.shard = shard
        self.index = index
        self.reader = reader
        self.fifo = RecordFifo(lane_columns(draws))
        self.pos = 0  # lane positions below this are in a batch already (or finished)
        self.pending: deque[BatchT] = deque()
        self.window_start = 0.0
        self.trim_after = -math.inf  # no record of the lane expires or ages out before this time
        self.closed = False  # rebuilt into new lanes, or its shard is drained: its process ends
        #: A batch of the lane failed and the lane still holds it (or its bisected parts).
        self.failing = False

    @property
    def top(self) -> int:
        """One past the lane's last record generated so far."""
        return self.fifo.top

    def row(self, position: int) -> int:
        """The shard log position of a lane position."""
        return int(self.fifo.arrays["seq"][position - self.fifo.base])

    def fetched(self, fetched_row: int) -> int:
        """The first lane position whose record lies at or after shard position ``fetched_row``."""
        fifo = self.fifo
        if fifo.top == fifo.low or self.row(fifo.top - 1) < fetched_row:
            return fifo.top
        return fifo.search("seq", fetched_row, "left")

    def release_finished(self) -> None:
        """Forget the records before the lane's oldest unfinished one."""
        oldest = self.pending[0].start if self.pending else self.pos
        self.fifo.drop_before(min(oldest, self.pos))

    @property
    def idle(self) -> bool:
        """No batch in flight or waiting to be retried."""
        return not self.pending

    def take_unbatched(self) -> dict[str, np.ndarray]:
        """Hand over the records not yet taken into a batch (the lane is idle) and close the lane."""
        fifo = self.fifo
        columns = {name: fifo.column(name, self.pos, fifo.top).copy() for name in fifo.arrays}
        self.pos = fifo.top
        fifo.drop_before(fifo.top)
        self.closed = True
        return columns


def split_by_key(
    columns: dict[str, np.ndarray], factor: int, key_lane_draw: np.ndarray
) -> list[dict[str, np.ndarray]]:
    """Records (in shard order) split into ``factor`` lanes: a key's lane is ``floor(draw * factor)``."""
    if factor == 1:
        return [columns]
    draws = key_lane_draw[columns["key"]]
    lane_of = np.minimum((draws * factor).astype(np.int64), factor - 1)
    return [{name: values[lane_of == k] for name, values in columns.items()} for k in range(factor)]


class ShardLanes:
    """One shard's lanes for one mapping, and where the shard stands in its lineage.

    ``active``: lanes run (an initial shard from the start; a child shard once its parents are
    drained). ``closing``: a factor change is waiting for the lanes' batches before they are
    rebuilt into ``next_ids``. ``closes_at``: when a resharding stops the shard receiving records
    (``inf``: never); once that has passed and every record is finished the shard is ``drained``.
    """

    __slots__ = (
        "active",
        "children",
        "closes_at",
        "closing",
        "drained",
        "index",
        "lanes",
        "next_ids",
        "parents",
        "resolved",
    )

    def __init__(
        self, index: int, lanes: list[Lane[Any]], parents: tuple[int, ...], closes_at: float
    ) -> None:
        self.index = index
        self.lanes = lanes
        self.parents = parents
        self.children: list[int] = []
        self.closes_at = closes_at
        self.active = not parents
        self.closing = False
        self.next_ids = 0  # the first of the lane numbers a rebuild gives the new lanes
        self.drained = False
        #: ``checkpoint: shard``: lanes held back by a failing lane wait for this.
        self.resolved: simpy.Event | None = None

    @property
    def factor(self) -> int:
        """How many lanes the shard has now (the factor its records are split by)."""
        return len(self.lanes)

    def idle(self) -> bool:
        """No lane holds a batch."""
        return all(lane.idle for lane in self.lanes)

    def failing(self) -> bool:
        """A lane holds a batch that failed (``checkpoint: shard`` holds the other lanes back)."""
        return any(lane.failing for lane in self.lanes)

    def unbatched(self) -> dict[str, np.ndarray]:
        """Every record the (idle) lanes have not taken into a batch, in shard order; closes them."""
        parts = [lane.take_unbatched() for lane in self.lanes]
        if len(parts) == 1:
            return parts[0]
        merged = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
        order = np.argsort(merged["seq"], kind="stable")
        return {name: values[order] for name, values in merged.items()}
