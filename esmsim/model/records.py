"""Records as columns of numpy arrays: what a source holds, never SimPy processes.

A record is a row index into a :class:`RecordTable`. Batches are ``slice`` objects (contiguous or
strided runs of rows, which index numpy arrays as views) or integer index arrays. Per-record outcome
columns (``state``, ``done_at``) are written with one vectorised assignment per
batch, so a batch of 10,000 records costs about what a batch of one costs.
"""

from __future__ import annotations

from typing import TypeAlias

import numpy as np

#: A batch or part of one: a slice of rows, or an array of row indices.
Ids: TypeAlias = slice | np.ndarray

# Record states. A record ends in exactly one of SUCCEEDED, DLQ, DROPPED, EXPIRED, or is still
# WAITING / IN_FLIGHT when the run ends: that is the conservation law every run checks.
WAITING = 0
IN_FLIGHT = 1
SUCCEEDED = 2
DLQ = 3
DROPPED = 4
EXPIRED = 5

STATE_NAMES = ("waiting", "in_flight", "succeeded", "dlq", "dropped", "expired")


def count(ids: Ids) -> int:
    """Number of rows a batch part addresses."""
    if isinstance(ids, slice):
        start, stop, step = ids.start or 0, ids.stop, ids.step or 1
        return max(0, int((stop - start + step - 1) // step))
    return int(ids.shape[0])


def as_array(parts: list[Ids]) -> Ids:
    """Merge batch parts into one index (a single part is returned unchanged)."""
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(
        [np.arange(p.start, p.stop, p.step or 1) if isinstance(p, slice) else p for p in parts]
    )


class RecordTable:
    """Columns for every record a source receives during a run.

    ``arrival_at`` is when a producer sent the record (sorted), ``size`` its payload in bytes and
    ``draw`` a uniform number fixed at arrival that decides whether it is a poison record for a given
    function (a record is poison for a function whose poison rate exceeds its draw), so every sweep
    point sees the same poison records; it is None when no function has poison records.
    ``done_at`` holds when a record reached its final state and is meaningful only for finished rows
    (``state >= SUCCEEDED``); unfinished rows hold 0.
    """

    __slots__ = ("arrival_at", "dealt", "done_at", "draw", "retries", "size", "state")

    def __init__(self, arrival_at: np.ndarray, size: np.ndarray, draw: np.ndarray | None) -> None:
        n = arrival_at.shape[0]
        self.arrival_at = arrival_at
        self.size = size
        self.draw = draw
        self.state = np.zeros(n, dtype=np.int8)
        #: Receives that ended without a delete (the message's ApproximateReceiveCount is one more
        #: while it is in flight). Only touched when a batch fails, never on the success path.
        self.retries = np.zeros(n, dtype=np.int32)
        self.done_at = np.zeros(n)  # zeroed pages cost nothing until written
        #: Received the moment it arrived, by a poller that was waiting for it (never visible).
        self.dealt = np.zeros(n, dtype=bool)

    def __len__(self) -> int:
        return int(self.arrival_at.shape[0])

    def state_counts(self) -> dict[str, int]:
        """How many records are in each state."""
        counts = np.bincount(self.state, minlength=len(STATE_NAMES))
        return {name: int(counts[i]) for i, name in enumerate(STATE_NAMES)}
