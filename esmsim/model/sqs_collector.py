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
from esmsim.model.sqs_messages import Part


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
    #: Pollers it may run now (0: disabled).
    allowed: int

    def poller_gone(self, now: float) -> None:
        """One of its pollers stopped at ``now`` ahead of its process (a detached long poll)."""


class Detached:
    """What a long poll let go while it waited wakes to: its poller ends, already counted out."""


DETACHED = Detached()


class Collector:
    """A poller waiting in ReceiveMessage, possibly holding part of a batch.

    What its own receives took is in ``parts`` (with their receive times in ``part_at``). With a
    batching window it is a member of the queue's :class:`esmsim.model.sqs_ring.Ring`, which also
    deals it arriving messages: those are the ring's to list (:meth:`Ring.rows`), not kept here.
    """

    __slots__ = (
        "active",
        "armed",
        "base",
        "calls",
        "detached",
        "event",
        "first_at",
        "first_row",
        "idle",
        "in_ring",
        "nbytes",
        "owner",
        "part_at",
        "parts",
        "quota",
        "seq",
        "since",
        "taken_at",
        "tracks_bytes",
        "window_end",
    )

    def __init__(self, event: simpy.Event, owner: ReceiverOwner, now: float, max_record_bytes: float) -> None:
        self.event = event
        self.armed = False  # a wake-up at the next arrival is scheduled for it
        self.detached = False  # stopped while armed: its poller ends quietly when the wake-up fires
        self.owner = owner
        self.since = now
        self.parts: list[Part] = []  # what its own receives took (not what the ring dealt it)
        self.part_at: list[float] = []  # when each of those was received
        self.idle = True  # holds no message yet
        self.quota = owner.batch_size  # messages its batch still takes, less what the ring deals it
        self.nbytes = 0.0  # payload of ``parts``
        self.calls = 0
        self.first_at = math.nan  # when it first held a message: its window opened then
        self.taken_at = -math.inf  # when its own receive last took messages
        self.window_end = math.inf
        # Ring membership (esmsim.model.sqs_ring): join number, lap it started being dealt to, and
        # the first row dealt to it (-1: none yet).
        self.seq = -1
        self.base = 0
        self.first_row = -1
        self.in_ring = False
        self.active = False
        # The payload cap can only bind if a full batch of the largest records would exceed it.
        self.tracks_bytes = owner.batch_size * max_record_bytes > PAYLOAD_LIMIT_BYTES

    def took(self, parts: list[Part], n: int, nbytes: float, now: float) -> None:
        """Its own receive took ``n`` messages (``parts``, ``nbytes`` of payload) at ``now``."""
        self.parts += parts
        self.part_at += [now] * len(parts)
        self.nbytes += nbytes
        self.calls += math.ceil(n / self.owner.max_messages)
        self.taken_at = now

    def hold(self, at: float) -> None:
        """It holds its first message, received at ``at``: its window opens."""
        self.idle = False
        self.first_at = at
        self.window_end = at + self.owner.window_s
        self.owner.idle_collectors -= 1


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


def long_poll_end(window_end: float, last_at: float, wait_s: float, next_at: float) -> float:
    """When the long poll running as the batching window ends returns: the batch closes then.

    The poll began with the collector's last message at ``last_at`` (polls of ``wait_s`` run back
    to back after it); it returns when its wait runs out, or at ``next_at`` when the collector's
    next message arrives first (``inf``: none known). A receive that returned after the window
    ended (``last_at >= window_end``) closes the batch at once.
    """
    if window_end <= last_at:
        return min(last_at, next_at)
    return min(last_at + wait_s * math.ceil((window_end - last_at) / wait_s), next_at)


def dealt_receive_calls(arrived_at: np.ndarray, round_trip_s: float, max_messages: int) -> int:
    """ReceiveMessage calls that brought messages dealt to a waiting collector as they arrived.

    Messages closer together than a round trip come back in one call, which returns at most
    ``max_messages``.
    """
    if not arrived_at.shape[0]:
        return 0
    bursts = 1 + int(np.count_nonzero(arrived_at[1:] - arrived_at[:-1] > round_trip_s))
    return max(bursts, math.ceil(int(arrived_at.shape[0]) / max_messages))
