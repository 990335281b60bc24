"""A batch a stream lane works on (:class:`Pending`): its records' range, failures and retry time.

It is what the invoke step invokes for a Kinesis, DynamoDB or Kafka mapping
(:class:`esmsim.model.invoke.Attempt`); the lane and the mapping's records stay with the mapping
(:class:`esmsim.model.stream_mapping.StreamMappingRuntime`), which the batch asks before each
attempt what is left to send.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np

from esmsim.model.stream_lanes import Lane


class BatchOwner(Protocol):
    """What a batch asks of its mapping (:class:`~esmsim.model.stream_mapping.StreamMappingRuntime`)."""

    lanes: dict[int, Lane[Pending]]
    draws: bool
    filtering: bool
    expansion: float
    overhead: float

    def trim(self, lane: Lane[Pending], start: int, end: int, now: float) -> int:
        """Expire or discard what may no longer be sent from the front of ``[start, end)``."""

    def finish_filtered(self, lane: Lane[Pending], batch: Pending) -> None:
        """A batch of filtered records only: it ends without an invocation."""


class Pending:
    """A batch a lane is working on: lane positions ``[start, end)``, failures so far, earliest retry.

    It is what the invoke step invokes (:class:`esmsim.model.invoke.Attempt`): before each attempt
    it drops records that expired or aged out meanwhile.
    """

    __slots__ = (
        "draws",
        "end",
        "failures",
        "first_ready",
        "init_s",
        "lane",
        "mapping",
        "n",
        "nbytes",
        "not_before",
        "ready_at",
        "shard",
        "start",
        "start_at",
        "stored_at",
    )

    def __init__(
        self, mapping: BatchOwner, lane: Lane[Pending], start: int, end: int, failures: int = 0
    ) -> None:
        self.mapping = mapping
        self.lane = lane.index
        self.shard = lane.shard
        self.start = start
        self.end = end
        self.failures = failures
        self.not_before = 0.0
        self.n = 0
        self.nbytes = 0.0
        self.draws: np.ndarray | None = None
        self.stored_at = math.nan
        # The latency's parts: when the batch was first handed to the invoke step, when this
        # attempt was, when it was admitted and its cold start.
        self.first_ready = self.ready_at = self.start_at = math.nan
        self.init_s = 0.0

    def ready(self, now: float) -> None:
        """The lane hands the batch to the invoke step at ``now``."""
        if math.isnan(self.first_ready):
            self.first_ready = now
        self.ready_at = now

    def timing(self, fetched: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float, float]:
        """Where the latency of the batch's records went, fetched at ``fetched`` (outcomes.Timing).

        A stream batch is retried in place, so its records wait for it once: the time lost to
        failed attempts is counted after their fetch.
        """
        lost = self.ready_at - self.first_ready
        return (fetched, fetched + lost if lost else fetched, self.ready_at, self.start_at, self.init_s)

    def prepare(self, now: float) -> bool:
        """Trim what may no longer be sent; describe what is left (False: nothing)."""
        m = self.mapping
        lane = m.lanes[self.lane]
        self.start = m.trim(lane, self.start, self.end, now)
        if self.start >= self.end:
            lane.pending.popleft()
            lane.release_finished()
            return False
        fifo = lane.fifo
        self.n = self.end - self.start
        sizes = fifo.column("size", self.start, self.end)
        draws = fifo.column("draw", self.start, self.end) if m.draws else None
        if m.filtering:
            # Records the filter rejected ride in the batch's range (the checkpoint passes them with
            # it) but are not sent: they count neither toward its records nor its payload.
            match = fifo.column("match", self.start, self.end)
            if not match.all():
                self.n = int(np.count_nonzero(match))
                if not self.n:
                    m.finish_filtered(lane, self)
                    return False
                sizes = sizes[match]
                draws = None if draws is None else draws[match]
        self.nbytes = float(sizes.sum()) * m.expansion + self.n * m.overhead
        self.draws = draws
        self.stored_at = fifo.at("accepted_at", self.end - 1)  # IteratorAge: the batch's last record
        return True

    def started(self, start: float, end: float, init_s: float) -> None:
        """A stream's records stay in the lane until the invocation ends: only the times are kept."""
        self.start_at = start
        self.init_s = init_s
