"""Received SQS messages and the batches pollers invoke with.

Messages carry their own columns once received (:class:`Messages`), so the queue's store of fresh
messages can forget them; a :class:`Batch` is what the invoke step invokes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from esmsim.model.records import Ids, positions


class Messages:
    """Received messages as columns.

    Each message's id (its position in the queue), sent time, size, poison draw, and receives that
    ended without a delete. Messages taken in one run of fresh rows keep views of the queue's
    columns and make their ids and receive counts only when asked (on the success path, nobody).

    For the latency's parts, when each was last received (``last``: one time for all, or one each;
    None before the first receive) and first received (``first``: None while that is ``last``, NaN
    for a message not yet received in a set being received now).
    """

    __slots__ = ("_ids", "_retries", "draw", "first", "last", "sent_at", "size")

    def __init__(
        self,
        ids: np.ndarray | slice,
        sent_at: np.ndarray,
        size: np.ndarray,
        draw: np.ndarray | None,
        retries: np.ndarray | None,
    ) -> None:
        self._ids = ids
        self.sent_at = sent_at
        self.size = size
        self.draw = draw
        self._retries = retries
        self.first: np.ndarray | None = None
        self.last: float | np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.sent_at.shape[0])

    @property
    def ids(self) -> np.ndarray:
        """Each message's position in the queue."""
        if isinstance(self._ids, slice):
            self._ids = positions(self._ids)
        return self._ids

    @property
    def retries(self) -> np.ndarray:
        """Receives that ended without a delete, per message."""
        if self._retries is None:
            self._retries = np.zeros(len(self), dtype=np.int32)
        return self._retries

    @retries.setter
    def retries(self, value: np.ndarray) -> None:
        self._retries = value

    def detail(self, extra_receive: int = 0) -> dict[str, Any]:
        """What a traced run's records table shows of these messages: receive counts, poison draws.

        ``extra_receive`` counts a receive still in progress (1 while the messages are held).
        """
        return {"receives": self.retries + extra_receive, "poison_draw": self.draw}

    def oldest_sent_at(self, failed_receives_below: int) -> float:
        """The earliest sent time among messages with fewer failed receives (``inf`` if none)."""
        sent = self.sent_at
        if self._retries is not None:
            sent = sent[self._retries < failed_receives_below]
        return float(sent.min()) if sent.shape[0] else math.inf

    def select(self, which: np.ndarray | slice) -> Messages:
        """The messages at ``which`` (a mask, an index array or a slice)."""
        chosen = Messages(
            self.ids[which],
            self.sent_at[which],
            self.size[which],
            None if self.draw is None else self.draw[which],
            self.retries[which],
        )
        if self.first is not None:
            chosen.first = self.first[which]
        last = self.last
        chosen.last = last[which] if isinstance(last, np.ndarray) else last
        return chosen

    def received(self, at: float | np.ndarray) -> None:
        """Received now, at ``at`` (one time, or one per message)."""
        first = self.first
        if first is not None and np.isnan(first).any():
            self.first = np.where(np.isnan(first), at, first)
        self.last = at

    def remember_first(self) -> None:
        """The messages leave their receive (visible again): keep when they were first received."""
        if self.first is None:
            last = self.last
            assert last is not None, "messages never received"
            self.first = last.copy() if isinstance(last, np.ndarray) else np.full(len(self), last)

    def timing(self, ready: float, start: float, init_s: float) -> tuple[Any, Any, float, float, float]:
        """Where the latency of these messages went, deleted after an invocation (outcomes.Timing)."""
        last = self.last
        assert last is not None, "messages never received"
        return (last if self.first is None else self.first, last, ready, start, init_s)

    @staticmethod
    def join(parts: list[Messages]) -> Messages:
        """Several message sets as one (a single part is returned as it is)."""
        if len(parts) == 1:
            return parts[0]
        draws = [p.draw for p in parts]
        joined = Messages(
            np.concatenate([p.ids for p in parts]),
            np.concatenate([p.sent_at for p in parts]),
            np.concatenate([p.size for p in parts]),
            None if any(d is None for d in draws) else np.concatenate(draws),  # type: ignore[arg-type]
            # Fresh messages have no receive counts yet: they stay implicit (zeros when asked).
            None if all(p._retries is None for p in parts) else np.concatenate([p.retries for p in parts]),
        )
        if any(p.first is not None for p in parts):
            # Never received before: NaN, filled in by the receive they are joined for.
            joined.first = np.concatenate(
                [p.first if p.first is not None else np.full(len(p), math.nan) for p in parts]
            )
        lasts = [p.last for p in parts]
        if all(last is not None for last in lasts):  # redelivered sets joined again (a late delete)
            joined.last = np.concatenate(
                [np.broadcast_to(np.asarray(last), (len(p),)) for p, last in zip(parts, lasts, strict=True)]
            )
        return joined


#: What a receive hands over: fresh rows (a slice of positions) or redelivered messages.
Part = Ids | Messages


class Batch:
    """Messages handed to one poller in one receive, with their visibility deadlines.

    Each message's visibility timeout runs from its own receive: a batch collected over a batching
    window holds messages received at different times. ``deadlines`` holds them, one per message,
    when they differ (None: every message's is ``visible_at``); ``visible_at`` is the earliest.
    Messages whose deadline passed while the invocation ran are visible again in the queue:
    ``returned`` marks them (None: none has). It is what the invoke step invokes
    (:class:`esmsim.model.invoke.Attempt`).
    """

    __slots__ = (
        "deadlines",
        "init_s",
        "messages",
        "n",
        "nbytes",
        "on_overrun",
        "ready_at",
        "received_at",
        "released",
        "returned",
        "serial",
        "start_at",
        "visible_at",
    )

    shard = -1
    lane = -1
    stored_at = math.nan

    def __init__(
        self,
        messages: Messages,
        nbytes: float,
        received_at: float,
        visible_at: float,
        deadlines: np.ndarray | None = None,
    ) -> None:
        self.messages = messages
        self.n = len(messages)
        self.nbytes = nbytes
        self.received_at = received_at
        self.deadlines = deadlines
        self.visible_at = visible_at if deadlines is None or not self.n else float(deadlines.min())
        self.returned: np.ndarray | None = None
        self.released = False  # its visibility deadline is pending: undeleted rows will reappear
        self.serial = 0
        self.on_overrun: Callable[[Batch, float], None] | None = None
        # The latency's parts: when the poller handed the batch to the invoke step, when the
        # invocation that ran it was admitted, and its cold start.
        self.ready_at = self.start_at = received_at
        self.init_s = 0.0

    @property
    def draws(self) -> np.ndarray | None:
        """The messages' poison draws."""
        return self.messages.draw

    def held(self) -> np.ndarray | None:
        """Mask of the messages this batch's receipts still hold (None: all of them)."""
        return None if self.returned is None else ~self.returned

    def prepare(self, now: float) -> bool:
        """A queue's batch does not change while it is retried."""
        return True

    def started(self, start: float, end: float, init_s: float) -> None:
        """If the invocation outlasts a visibility timeout, those messages reappear meanwhile."""
        self.start_at = start
        self.init_s = init_s
        if end >= self.visible_at and self.on_overrun is not None:
            self.on_overrun(self, start)


def chunked_request_units(sizes: np.ndarray, chunk_bytes: float) -> int:
    """Billed requests for sending messages one per call: each 64 KB of payload is a request."""
    if not sizes.shape[0] or float(sizes.max()) <= chunk_bytes:
        return int(sizes.shape[0])  # one request each (the usual case: one pass, not four)
    return int(np.maximum(1, np.ceil(sizes / chunk_bytes)).sum())
