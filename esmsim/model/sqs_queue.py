"""An SQS standard queue: visible messages, in-flight batches, visibility timeouts, DLQ, retention.

Fresh messages (never received) are rows of a :class:`RecordFifo`, from ``head`` on, visible from
their arrival plus the queue's delivery delay; they are generated a block at a time as the run
advances. A receive takes a slice of them; the batch it forms carries its messages' columns with
it (:class:`Messages`), so the FIFO drops rows as soon as no poller holds them. What becomes of
received messages (deletes, visibility deadlines, the DLQ, retention) is
:class:`esmsim.model.sqs_fates.MessageFates`'s part of the queue. All of it happens lazily, when
somebody next looks at the queue, with timestamps exact to the event: no SimPy event is spent on
a message.

Visible messages are received oldest first: redelivered ones (which were received before any
message still waiting) ahead of fresh ones. Waiting pollers (long polls, batching windows) live in
:mod:`esmsim.model.sqs_receive`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
import simpy

from esmsim.model.alarm import Alarm
from esmsim.model.invoke import fit_payload
from esmsim.model.records import Ids, RecordFifo, positions
from esmsim.model.sqs_fates import FilteredPart, MessageFates
from esmsim.model.sqs_messages import Batch, Messages, Part, chunked_request_units
from esmsim.observe.recorder import Recorder
from esmsim.scenario.sources import SqsSource

#: ApproximateAgeOfOldestMessage skips messages received this many times without a delete (SQS
#: documents three: "After a message is received three times (or more) and not processed, the
#: message is moved to the back of the queue and the ApproximateAgeOfOldestMessage metric points at
#: the second-oldest message that hasn't been received more than three times").
OLDEST_AGE_RECEIVE_LIMIT = 3


class SqsQueue(MessageFates):
    """State of one SQS standard queue."""

    def __init__(
        self,
        env: simpy.Environment,
        name: str,
        consumer: int,
        recorder: Recorder,
        *,
        visibility_timeout_s: float,
        retention_s: float,
        max_receive_count: int | None,
        in_flight_limit: int = 120_000,
        delivery_delay_s: float = 0.0,
        chunk_bytes: float = 65536.0,
        record_overhead: float = 0.0,
        draws: bool = False,
        hold_arrivals: bool = False,
    ) -> None:
        self.env = env
        self.name = name
        self.consumer = consumer
        # SQS deletes a message when its retention ends whether or not anybody reads the queue:
        # a wake-up at the next expiry keeps that (and the backlog level) on time.
        self._expiry = Alarm(env, self.refresh)
        self.recorder = recorder
        self.outcomes = recorder.outcomes
        self.visibility_timeout_s = visibility_timeout_s
        self.retention_s = retention_s
        self.max_receive_count = max_receive_count or 0
        self.delay_s = delivery_delay_s
        self.chunk_bytes = chunk_bytes
        #: Bytes of event metadata per record counted toward the payload cap.
        self.overhead = record_overhead
        columns: dict[str, type] = {"sent_at": float, "visible_at": float, "size": float, "cum": float}
        if draws:
            columns["draw"] = float
        self.fifo = RecordFifo(columns)
        self.draws = draws
        self.head = 0  # first fresh position never received
        self.redelivered: deque[Messages] = deque()  # visible again after a visibility timeout
        self.n_redelivered = 0
        self._deadlines: list[tuple[float, int, Batch]] = []
        self._serial = 0
        self.in_flight: dict[int, Batch] = {}  # batches whose messages are not all done with
        self._cum_total = 0.0
        self._max_payload = 0.0  # largest payload of a generated message (record plus metadata)
        self._retention_watermark = math.inf
        self._arrived = 0  # cache of arrived(): rows visible before _next_visible
        self._next_visible = math.inf
        self._cache_columns()
        self.overrun_batches = 0  # batches whose visibility timeout passed before they finished
        self.in_flight_limit = in_flight_limit
        self.in_flight_n = 0  # messages received and not yet deleted, dead-lettered or visible again
        self.over_limit_receives = 0  # receives the in-flight limit refused or cut short
        self.limit_reached_at = math.nan  # when in-flight messages first reached the limit
        self.visible = recorder.level("visible")
        self.backlog = recorder.level("backlog")
        self.in_flight_level = recorder.level("in_flight")
        self._post_visible = self.visible.post
        self._post_backlog = None if self.backlog is self.visible else self.backlog.post
        self._post_in_flight = self.in_flight_level.post
        # Fresh rows before this one have their arrival posted to the visible (and backlog) levels,
        # or were dealt to a batching window the instant they arrived: +1 and -1 at one instant,
        # which cancel (levels count changes at one instant together), so neither is posted. With
        # ``hold_arrivals`` (a reader has a batching window) the rest are posted when a fold needs
        # them, or when a receive or expiry takes them; without, as they are generated.
        self._posted = 0
        self._hold_arrivals = hold_arrivals
        self.visible.before_fold.append(self.post_arrivals_until)
        if self.backlog is not self.visible:
            self.backlog.before_fold.append(self.post_arrivals_until)
        self.received = recorder.counter("NumberOfMessagesReceived", name)
        self.receive_calls = recorder.counter("receives", name)
        self.empty_receives = recorder.counter("NumberOfEmptyReceives", name)
        self.receive_units = recorder.counter("receive_units", name)
        self.deletes = recorder.counter("NumberOfMessagesDeleted", name)
        self.delete_calls = recorder.counter("delete_calls", name)
        self.sent = recorder.counter("NumberOfMessagesSent", name)
        # Bound appends of the counters written on every receive and delete (the hot path).
        self._post_receive_calls = self.receive_calls.post
        self._post_receive_units = self.receive_units.post
        self._post_received = self.received.post
        self._post_deletes = self.deletes.post
        self._post_delete_calls = self.delete_calls.post
        self.held_by_pollers: Callable[[], list[Part]] = list  # set by the receivers
        #: Messages the mapping's filter rejects (None: it has no filter; docs/model.md §15).
        self.filtered: FilteredPart | None = None

    def use_filter(self, filtered: FilteredPart) -> None:
        """Split arriving messages with ``filtered``: the queue's rows are the matching ones."""
        self.filtered = filtered
        self.visible.before_fold.append(filtered.post_until)
        if self.backlog is not self.visible:
            self.backlog.before_fold.append(filtered.post_until)

    # ----------------------------------------------------------------------------- records
    def extend(self, block: dict[str, np.ndarray], *, split: bool = True) -> None:
        """Append a block of newly generated messages (all sent later than any before them).

        With a filter, only the matching ones (``split`` False: the caller split the block already).
        """
        if split and self.filtered is not None:
            keep = self.filtered.split(block, self.fifo.top)
            if keep is not None:
                block = {name: values[keep] for name, values in block.items()}
        sent = block["sent_at"]
        n = sent.shape[0]
        if n == 0:
            return
        size = block["size"]
        visible_at = sent + self.delay_s if self.delay_s else sent
        cum = self._cum_total + np.cumsum(size + self.overhead)
        self._cum_total = float(cum[-1])
        columns = {"sent_at": sent, "visible_at": visible_at, "size": size, "cum": cum}
        if self.draws:
            columns["draw"] = block["draw"]
        if self.fifo.top == self.head:
            self._retention_watermark = min(self._retention_watermark, float(sent[0]) + self.retention_s)
            self._expiry.request(self._retention_watermark, self.env.now)
        # One row before the oldest still needed stays: its running payload total starts the next.
        self.fifo.drop_before(self._lowest_needed() - 1)
        self.fifo.append(columns)
        self._cache_columns()
        self._max_payload = max(self._max_payload, float(size.max()) + self.overhead)
        if self._arrived < self.fifo.top and self._next_visible == math.inf:
            self._next_visible = float(self._visible_col[self._arrived - self._base])
        self.outcomes.arrived(self.consumer, n)
        self.sent.add_many(sent)
        # Producers' SendMessage requests (reported apart from the mapping's cost).
        self.recorder.add_total("sqs_send_units", chunked_request_units(size, self.chunk_bytes))
        if not self._hold_arrivals:
            self._post_arrivals(self.fifo.top)

    def _cache_columns(self) -> None:
        """The FIFO's arrays (replaced only when it grows): read directly on the hot path."""
        arrays = self.fifo.arrays
        self._base = self.fifo.base
        self._sent_col = arrays["sent_at"]
        self._visible_col = arrays["visible_at"]
        self._size_col = arrays["size"]
        self._cum_col = arrays["cum"]
        self._draw_col = arrays.get("draw")

    def _fresh_detail(self, part: slice) -> dict[str, Any] | None:
        """A traced run's columns of never-received messages (None when not tracing)."""
        if not self.outcomes.tracing:
            return None
        draw = self.fifo.gather("draw", part) if self.draws else None
        return {"receives": 0, "poison_draw": draw}

    def _lowest_needed(self) -> int:
        """Fresh rows before this position are held by nobody: received into batches, or expired."""
        lowest = self.head
        for part in self.held_by_pollers():
            if isinstance(part, slice):
                lowest = min(lowest, part.start)
        return lowest

    # ----------------------------------------------------------------------------- arrivals
    def post_arrivals_until(self, until: float) -> None:
        """Post the arrivals held back (see ``_posted``) of fresh rows visible by ``until``."""
        if self._posted < self.fifo.top and self.fresh_visible_at(self._posted) <= until:
            self._post_arrivals(self.fifo.search("visible_at", until, "right", start=self._posted))

    def post_arrivals_through(self, row: int) -> None:
        """Post the arrivals held back of fresh rows before ``row``: they leave other than by dealing."""
        if self._posted < row:
            self._post_arrivals(row)

    def _post_arrivals(self, upto: int) -> None:
        self._visible(self.column("visible_at", slice(self._posted, upto)), 1.0)
        self._posted = upto

    def dealt_on_arrival(self, upto: int, arrived_at: np.ndarray) -> None:
        """Fresh rows ``[head, upto)`` were received at ``arrived_at`` by pollers collecting a window.

        Rows received the instant they arrived, whose arrival is still held back, never show as
        visible: neither change is posted.
        """
        head = self.head
        skip_from = self._posted  # never before head: whatever moves head posts or skips first
        if skip_from < upto and arrived_at[skip_from - head] != self.fresh_visible_at(skip_from):
            # Received later than they arrived (once the in-flight limit let them be dealt): they
            # were visible in between.
            self._post_arrivals(upto)
            skip_from = upto
        if skip_from > head:
            self._visible(arrived_at[: skip_from - head], -1.0)
        if upto > self._posted:
            self._posted = upto
        self.in_flight_level.add_many(arrived_at, 1.0)
        self.received_into_flight(upto - head, float(arrived_at[-1]))
        self.head = upto
        if self.filtered is not None:  # the pollers took them as they arrived: the filtered ones too
            self.filtered.refresh(float(arrived_at[-1]), upto)

    def _visible(self, at: float | np.ndarray, delta: float) -> None:
        """Messages become visible (+) or stop being visible (-)."""
        if isinstance(at, np.ndarray):
            self.visible.add_many(at, delta)
            if self._post_backlog is not None:
                self.backlog.add_many(at, delta)
        else:
            self._post_visible((at, delta))
            if self._post_backlog is not None:
                self._post_backlog((at, delta))

    def visible_column(self) -> tuple[np.ndarray, int]:
        """The fresh rows' visibility times and the position of their first row (for hot loops)."""
        return self._visible_col, self._base

    def fresh_visible_at(self, position: int) -> float:
        """When the fresh message at ``position`` becomes visible."""
        return float(self._visible_col[position - self._base])

    def column(self, name: str, part: Ids) -> np.ndarray:
        """Column ``name`` of fresh rows (a view for a slice)."""
        if isinstance(part, slice):
            base = self._base
            return self.fifo.arrays[name][part.start - base : part.stop - base : part.step]
        return self.fifo.gather(name, part)

    def payload(self, part: Ids) -> float:
        """Payload bytes (with event metadata) of fresh rows."""
        if isinstance(part, slice) and (part.step or 1) == 1:
            return float(self._cum_col[part.stop - 1 - self._base]) - self._before(part.start)
        if isinstance(part, slice):
            base = self._base
            sizes = self._size_col[part.start - base : part.stop - base : part.step]
        else:
            sizes = self.fifo.gather("size", part)
        return float(sizes.sum()) + float(sizes.shape[0]) * self.overhead

    def _before(self, position: int) -> float:
        """Running payload total before ``position`` (the FIFO keeps the row before the first needed)."""
        return float(self._cum_col[position - 1 - self._base]) if position > 0 else 0.0

    # ----------------------------------------------------------------------------- looking
    def arrived(self, now: float) -> int:
        """Position one past the last fresh message visible by ``now`` (received or not)."""
        head = self.head
        if now < self._next_visible and self._arrived >= head:
            return self._arrived
        top = self.fifo.top
        base = self._base
        visible = self._visible_col
        # Rows before head were received, so they have arrived (pollers dealing a window's messages
        # move head without asking here, and the rows before it may already be dropped).
        i = (self._arrived if self._arrived > head else head) - base
        end = top - base
        # Usually a few arrivals since the last look: stepped over one by one (item() is the
        # cheapest read of one value), searched for beyond eight.
        item = visible.item
        first = i
        while i < end and item(i) <= now:
            i += 1
            if i - first == 8:
                i += int(visible[i:end].searchsorted(now, side="right"))
                break
        self._arrived = arrived = i + base
        self._next_visible = item(i) if i < end else math.inf
        return arrived

    def visible_now(self, now: float) -> int:
        """Messages a receive would find right now (call :meth:`refresh` first)."""
        return self.arrived(now) - self.head + self.n_redelivered

    def next_fresh_at(self) -> float:
        """When the next never-received message becomes visible (``inf`` if none is known yet)."""
        return self.fresh_visible_at(self.head) if self.head < self.fifo.top else math.inf

    def oldest_age(self, now: float) -> float:
        """ApproximateAgeOfOldestMessage: the oldest message not deleted, dead-lettered or expired.

        Following SQS's rule, a message received three or more times without a delete no longer
        counts (the metric "points at the second-oldest message that hasn't been received more than
        three times"), so a poison message does not drive it to its full redrive time. 0 when empty.
        Read-only: what the once-a-minute sample sees.
        """
        limit = OLDEST_AGE_RECEIVE_LIMIT
        oldest = math.inf
        if self.head < self.fifo.top and self.fresh_visible_at(self.head) <= now:
            oldest = self.fifo.at("sent_at", self.head)
        if self.filtered is not None:
            oldest = min(oldest, self.filtered.oldest_sent_at(now))
        for pool in self.redelivered:
            oldest = min(oldest, pool.oldest_sent_at(limit))
        for batch in self.in_flight.values():
            oldest = min(oldest, batch.messages.oldest_sent_at(limit))
        for part in self.held_by_pollers():
            if isinstance(part, Messages):
                oldest = min(oldest, part.oldest_sent_at(limit))
            else:
                sent = self.fifo.gather("sent_at", part)
                oldest = min(oldest, float(sent.min())) if sent.shape[0] else oldest
        return max(0.0, now - oldest) if math.isfinite(oldest) else 0.0

    # ----------------------------------------------------------------------------- receiving
    def take(self, now: float, max_n: int, bytes_left: float) -> tuple[list[Part], int, float, bool]:
        """Receive up to ``max_n`` visible messages fitting in ``bytes_left`` (redeliveries first).

        Returns the parts taken, their count, their payload bytes (records plus per-record event
        metadata) and whether the payload cap stopped the take. :meth:`form_batch` turns parts into
        an in-flight batch.
        """
        # This runs once per receive: conditional expressions rather than min/max calls, and the
        # room under the in-flight limit computed here rather than by room().
        allowed = self.in_flight_limit - self.in_flight_n
        if allowed < max_n:
            if allowed < 0:
                allowed = 0
            if self.visible_now(now) > allowed:
                self.over_limit_receives += 1  # the in-flight limit cuts this receive short
            max_n = allowed
        parts: list[Part] = []
        n = 0
        nbytes = 0.0
        capped = False
        head_before = self.head
        while self.n_redelivered and n < max_n and not capped:
            pool = self.redelivered[0]
            head = pool.size[: max_n - n]
            k, part_bytes, capped = fit_payload(np.cumsum(head + self.overhead), bytes_left - nbytes)
            if k == 0:
                break
            if k == len(pool):
                self.redelivered.popleft()
                parts.append(pool)
            else:
                self.redelivered[0] = pool.select(slice(k, None))
                parts.append(pool.select(slice(0, k)))
            self.n_redelivered -= k
            n += k
            nbytes += part_bytes
        if n < max_n and not capped:
            start = self.head
            arrived = self._arrived
            if now >= self._next_visible or arrived < start:
                arrived = self.arrived(now)
            k = arrived - start
            if k > max_n - n:
                k = max_n - n
            if k > 0:
                room = bytes_left - nbytes
                base = self._base
                cum = self._cum_col
                before = float(cum[start - 1 - base]) if start > 0 else 0.0
                if k * self._max_payload > room:  # the 6 MB cap might bind: find where
                    k, part_bytes, capped = fit_payload(cum[start - base : start + k - base], room, before)
                else:
                    part_bytes = float(cum[start + k - 1 - base]) - before
                if k > 0:
                    parts.append(slice(start, start + k))
                    if self._posted < start + k:
                        self._post_arrivals(start + k)
                    self.head = start + k
                    n += k
                    nbytes += part_bytes
        if n:
            change = (now, -n)
            self._post_visible(change)
            if self._post_backlog is not None:
                self._post_backlog(change)
            self._post_in_flight((now, n))
            self.received_into_flight(n, now)
        if self.filtered is not None and self.head != head_before:
            self.filtered.advance(now, head_before, self.head)  # the receive passed the filtered ones
        return parts, n, nbytes, capped

    def received_into_flight(self, n: int, now: float) -> None:
        """Count ``n`` more messages in flight (the level is posted by the caller)."""
        self.in_flight_n += n
        if self.in_flight_n >= self.in_flight_limit and math.isnan(self.limit_reached_at):
            self.limit_reached_at = now

    def apply(self, spec: SqsSource) -> None:
        """A live change of the queue's attributes (SetQueueAttributes): visibility timeout, redrive.

        A new visibility timeout applies from the next receive; messages in flight keep the deadline
        their receive set (docs/model.md §14). A new ``max_receive_count`` applies when messages
        next return from a receive.
        """
        self.visibility_timeout_s = spec.visibility_timeout
        self.max_receive_count = spec.max_receive_count or 0

    def room(self) -> int:
        """Messages that can still be received before the in-flight limit (0 at it)."""
        return max(0, self.in_flight_limit - self.in_flight_n)

    def messages(self, parts: list[Part]) -> Messages:
        """Received parts as one set of message columns."""
        first = parts[0]
        if len(parts) == 1 and type(first) is slice and first.step is None:
            # The usual case: one run of fresh rows, as views.
            a, b = first.start - self._base, first.stop - self._base
            draw = self._draw_col
            return Messages(
                first, self._sent_col[a:b], self._size_col[a:b], None if draw is None else draw[a:b], None
            )
        fresh = [p for p in parts if not isinstance(p, Messages)]
        if len(fresh) == len(parts):
            # Fresh rows only (a receive's run, the rows a batching window dealt): one take per column.
            return self._fresh(
                positions(fresh[0]) if len(fresh) == 1 else np.concatenate([positions(p) for p in fresh])
            )
        return Messages.join([p if isinstance(p, Messages) else self._fresh(positions(p)) for p in parts])

    def _fresh(self, ids: np.ndarray) -> Messages:
        """Never-received messages at positions ``ids``, their columns taken from the queue's."""
        rows = ids - self._base
        draw = self._draw_col
        return Messages(
            ids, self._sent_col[rows], self._size_col[rows], None if draw is None else draw[rows], None
        )

    def form_batch(
        self, parts: list[Part], nbytes: float, received_at: float, received: np.ndarray | None = None
    ) -> Batch:
        """Turn received parts into an in-flight batch, complete at ``received_at``.

        Each message's visibility timeout runs from its receive: ``received_at`` for all of them, or
        ``received`` (one time per message, in the parts' order) for a batch collected over a
        batching window. The deadlines are not scheduled yet: most batches are deleted before
        them, and a deadline only matters once the poller lets go of a batch with rows undeleted
        (:meth:`release`).
        """
        messages = self.messages(parts)
        vt = self.visibility_timeout_s
        deadlines = None
        if received is not None:
            messages.received(received)
            if received_at - float(received.min()) >= vt:
                messages.remember_first()
                messages, received, nbytes = self._received_again(messages, received, received_at, nbytes)
                messages.last = received
            deadlines = received + vt
        else:
            messages.received(received_at)
        batch = Batch(messages, nbytes, received_at, received_at + vt, deadlines)
        if not batch.n:
            return batch  # every message left while the window collected: nothing to invoke
        serial = self._serial = self._serial + 1
        batch.serial = serial
        self.in_flight[serial] = batch
        self._post_received((received_at, batch.n))
        return batch

    def count_receives(self, now: float, calls: int, nbytes: float, empty: tuple[float, float, int]) -> None:
        """Account ReceiveMessage calls: those that returned messages, and empty long polls.

        ``empty`` is ``(since, wait_s, n)``: ``n`` long polls of ``wait_s`` each ran empty one after
        another from ``since``. Each is booked in the minute it ended, as CloudWatch books it, not
        all at once when the poller next receives.
        """
        if calls:
            self._post_receive_calls((now, calls))
            units = math.ceil(nbytes / self.chunk_bytes)
            self._post_receive_units((now, units if units > calls else calls))
        since, wait_s, n = empty
        if n == 1:
            self.empty_receives.post((since + wait_s, 1))
            self._post_receive_units((since + wait_s, 1))
        elif n > 1:
            ended = since + wait_s * np.arange(1, n + 1)
            self.empty_receives.add_many(ended)
            self.receive_units.add_many(ended)
