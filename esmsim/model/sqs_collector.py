"""A poller waiting in ReceiveMessage: what it holds, when it received it, its empty long polls.

:class:`esmsim.model.sqs_receive.SqsReceivers` deals arriving messages to these collectors; this
module is the state each one carries and the arithmetic read off it.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
import simpy

from esmsim.model.invoke import PAYLOAD_LIMIT_BYTES
from esmsim.model.records import count
from esmsim.model.sqs_messages import Messages, Part
from esmsim.model.sqs_queue import SqsQueue


class ReceiverOwner(Protocol):
    """What a collector needs from the mapping whose poller it is."""

    batch_size: int
    window_s: float
    max_messages: int
    wait_time_s: float
    round_trip_s: float
    idle_collectors: int
    #: A long poll in progress when the batching window ends is not cut short.
    finish_poll_after_window: bool


class Collector:
    """A poller waiting in ReceiveMessage, possibly holding part of a batch."""

    __slots__ = (
        "armed",
        "calls",
        "dealt",
        "event",
        "first_at",
        "held",
        "last_at",
        "nbytes",
        "need",
        "owner",
        "part_at",
        "part_dealt",
        "parts",
        "since",
        "tracks_bytes",
        "window_end",
    )

    def __init__(self, event: simpy.Event, owner: ReceiverOwner, now: float, max_record_bytes: float) -> None:
        self.event = event
        self.armed = False  # a wake-up at the next arrival is scheduled for it
        self.owner = owner
        self.since = now
        self.parts: list[Part] = []
        #: When each part was received; for a part dealt as it arrived (``part_dealt``), each row at
        #: its arrival, but no earlier than this (the in-flight limit's lifting, or -inf).
        self.part_at: list[float] = []
        self.part_dealt: list[bool] = []
        self.dealt: list[slice] = []  # parts dealt from fresh arrivals while waiting
        self.held = 0
        self.need = owner.batch_size
        self.nbytes = 0.0
        self.calls = 0
        self.first_at = math.nan
        self.last_at = math.nan  # when it last received a message: its long poll restarted then
        self.window_end = math.inf
        # The payload cap can only bind if a full batch of the largest records would exceed it.
        self.tracks_bytes = owner.batch_size * max_record_bytes > PAYLOAD_LIMIT_BYTES

    def nbytes_left(self) -> float:
        """Payload room left under the 6 MB cap."""
        return PAYLOAD_LIMIT_BYTES - self.nbytes

    def received_times(self, queue: SqsQueue) -> np.ndarray:
        """When each message of its batch was received, in the order of its parts.

        SQS starts each message's visibility timeout at its own receive: a dealt message was
        received as it arrived (no earlier than its part's ``part_at``), the others when the
        collector's receive took them.
        """
        times = []
        for part, at, dealt in zip(self.parts, self.part_at, self.part_dealt, strict=True):
            if isinstance(part, Messages):
                times.append(np.full(len(part), at))
            elif dealt:
                times.append(np.maximum(queue.column("visible_at", part), at))
            else:
                times.append(np.full(count(part), at))
        return np.concatenate(times)


#: A receive that returned at once: no empty long poll before it.
NO_EMPTY_POLLS = (0.0, 0.0, 0)


def empty_polls(c: Collector, until: float, *, run_end: bool = False) -> tuple[float, float, int]:
    """Long polls that ran their full wait time empty between ``c.since`` and ``until``.

    Returns ``(since, wait_s, n)``: ``n`` polls of ``wait_s`` seconds each, back to back from ``since``.
    A poll ending exactly at ``until`` counts, unless ``until`` is the end of the run (``run_end``):
    that poll lies outside it.
    """
    wait_s = c.owner.wait_time_s
    waited = until - c.since
    if waited <= 0:
        return c.since, wait_s, 0
    n = math.ceil(waited / wait_s) - 1 if run_end else int(waited // wait_s)
    return c.since, wait_s, max(0, n)
