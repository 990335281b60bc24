"""An SQS FIFO queue: order kept per message group, a group blocked while a message of it is in flight.

A :class:`FifoQueue` is an :class:`esmsim.model.sqs_queue.SqsQueue` with its own receive: the
fates of received messages (visibility deadlines, the DLQ after ``max_receive_count`` receives,
retention, late deletes) and the pollers' machinery are the standard queue's. What differs
(docs/model.md §2, "FIFO queues"):

* Each message carries a message group (drawn per message, Zipf-skewed like a stream's partition
  keys). A receive takes, oldest first, up to the batch size of the visible messages whose group has
  nothing in flight: a group with a message received and not yet deleted, dead-lettered or visible
  again gives nothing (SQS: "Inflight messages block delivery of available messages within the same
  message group"). A message visible again after a failure is its group's oldest, so it is received
  before any later message of its group: retries keep the order.
* A message whose group is blocked stays visible (``visible`` counts it, as
  ApproximateNumberOfMessagesVisible does); only what a receive could take makes the fleet grow.
* Producers' retries within the 5-minute deduplication interval (``duplicate_rate``) are accepted
  and dropped: counted, billed as sends, never delivered.
* Sends beyond the queue's send quota (300 a second; high throughput mode: 70,000 in us-east-1) are
  throttled; producers retry, so a send is accepted at the earliest time the quota allows (a token
  bucket of one second's worth). Latency counts from acceptance (SQS's SentTimestamp); the delay is
  reported apart.

Messages become visible as rows of the standard queue's store and move, when first looked at, into
the waiting messages by group (:class:`esmsim.model.sqs_fifo_groups.MessageGroups`), which also
hold the messages visible again: what the standard queue keeps in ``redelivered``. The standard
queue's own paths over ``redelivered`` (expiry, late deletes, the census) see the groups' messages
through a property. The standard queue's hot path is untouched.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from esmsim.model.invoke import fit_payload
from esmsim.model.sqs_fifo_groups import MessageGroups
from esmsim.model.sqs_messages import Batch, Messages, Part, chunked_request_units
from esmsim.model.sqs_queue import SqsQueue
from esmsim.model.stream_source import WriteLimiter, key_cdf, zipf_keys
from esmsim.scenario.sources import SqsTraffic

#: SendMessage calls a FIFO queue accepts per second without high throughput (AWS: "FIFO queues
#: support 300 transactions per second, per API action"; producers here send one message a call).
FIFO_SEND_TPS = 300.0
#: The same quota with high throughput mode in us-east-1 (AWS SQS message quotas, non-batched calls).
HIGH_THROUGHPUT_SEND_TPS = 70_000.0


class FifoQueue(SqsQueue):
    """State of one SQS FIFO queue."""

    def __init__(
        self,
        *args: Any,
        groups_rng: np.random.Generator,
        duplicates_rng: np.random.Generator,
        max_groups: int,
        high_throughput: bool = False,
        end_s: float = math.inf,
        **kwargs: Any,
    ) -> None:
        #: Waiting messages by group, and messages in flight per group (before the standard
        #: queue's __init__, which empties ``redelivered``).
        self._groups = MessageGroups(max_groups)
        #: Each message's group, by position (messages are positions 0, 1, ... in sending order).
        self._group_of = np.empty(0, dtype=np.int32)
        super().__init__(*args, **kwargs)
        self._groups_rng = groups_rng
        self._duplicates_rng = duplicates_rng
        self._cdfs: dict[tuple[int, float], np.ndarray | None] = {}
        #: The traffic the next block's messages follow (set by the builder: the record feed's).
        self.traffic_now: Callable[[], SqsTraffic] = SqsTraffic
        self._end_s = end_s
        self._limiter = WriteLimiter(HIGH_THROUGHPUT_SEND_TPS if high_throughput else FIFO_SEND_TPS, None)
        #: Called when a delete unblocks groups (set by the builder: wakes waiting pollers).
        self.on_unblock: Callable[[float], None] = lambda now: None
        self.duplicates = 0
        self.sends_throttled = 0
        self.send_delay_max = 0.0
        self.groups_busy_max = 0
        self.recorder.add_total(f"fifo_queue:{self.name}", 1.0)

    # ----------------------------------------------------------------------------- sending
    def extend(self, block: dict[str, np.ndarray], *, split: bool = True) -> None:
        """Draw groups and duplicates, apply the send quota, then append what SQS accepted."""
        sent = block["sent_at"]
        n = sent.shape[0]
        if n == 0:
            super().extend(block)
            return
        traffic = self.traffic_now()
        groups_n = traffic.message_groups or 1
        cdf_key = (groups_n, traffic.group_skew)
        if cdf_key not in self._cdfs:
            self._cdfs[cdf_key] = key_cdf(groups_n, traffic.group_skew)
        groups = zipf_keys(self._groups_rng, n, groups_n, self._cdfs[cdf_key])
        # One draw per send, in order, whatever the rate: block sizes change nothing.
        duplicate: np.ndarray = np.less(self._duplicates_rng.random(n), traffic.duplicate_rate)
        size = block["size"]
        accepted = self._limiter.accept(sent, size)
        self.sends_throttled += int(np.count_nonzero(accepted > sent))
        # Sends still being retried when the run ends never reach the queue (nor are they billed).
        late = accepted > self._end_s
        if late.any():
            keep = ~late
            block = {k: v[keep] for k, v in block.items()}
            accepted, groups, duplicate, size = accepted[keep], groups[keep], duplicate[keep], size[keep]
        if accepted.shape[0]:
            self.send_delay_max = max(self.send_delay_max, float((accepted - block["sent_at"]).max()))
        self.recorder.add_total("sqs_fifo_send_units", chunked_request_units(size, self.chunk_bytes))
        if duplicate.any():
            self.duplicates += int(np.count_nonzero(duplicate))
            # Billed sends that SQS accepts and drops (the queue's extend bills the others).
            self.recorder.add_total(
                "sqs_send_units", chunked_request_units(size[duplicate], self.chunk_bytes)
            )
            keep = ~duplicate
            block = {k: v[keep] for k, v in block.items()}
            accepted, groups = accepted[keep], groups[keep]
        if self.filtered is not None:  # filtered messages count as sent; the rest join the groups
            match = self.filtered.split({**block, "sent_at": accepted}, self.fifo.top)
            if match is not None:
                block = {k: v[match] for k, v in block.items()}
                accepted, groups = accepted[match], groups[match]
        self._group_of = np.concatenate([self._group_of, groups])
        if groups.shape[0]:
            self._groups.grow(int(groups.max()) + 1)
        super().extend({**block, "sent_at": accepted}, split=False)

    # ----------------------------------------------------------------------------- waiting messages
    @property
    def redelivered(self) -> deque[Messages]:
        """The waiting messages, group by group (the standard queue's view of them)."""
        return deque(self._groups.chunks())

    @redelivered.setter
    def redelivered(self, pools: deque[Messages]) -> None:
        self._groups.reset(list(pools), self._group_of)

    def _wait_again(self, messages: Messages) -> None:
        self._groups.add(messages, self._group_of[messages.ids])
        self.n_redelivered += len(messages)

    def _absorb(self, now: float) -> None:
        """Fresh messages visible by ``now`` join their groups' waiting messages."""
        arrived = self.arrived(now)
        head = self.head
        if arrived <= head:
            return
        m = self._fresh(np.arange(head, arrived))
        m.last = np.full(len(m), math.nan)  # never received (joins with redeliveries keep their times)
        self._groups.add(m, self._group_of[head:arrived])
        self.n_redelivered += arrived - head
        self.head = arrived
        if self.filtered is not None:
            self.filtered.refresh(now, arrived)

    def visible_now(self, now: float) -> int:
        """Messages a receive could take now: visible, in a group with nothing in flight."""
        self._absorb(now)
        return self._groups.visible()

    def take(self, now: float, max_n: int, bytes_left: float) -> tuple[list[Part], int, float, bool]:
        """Receive up to ``max_n`` messages of unblocked groups, oldest first, fitting ``bytes_left``."""
        self._absorb(now)
        if not self.n_redelivered:
            return [], 0, 0.0, False
        allowed = self.in_flight_limit - self.in_flight_n
        if allowed < max_n:
            max_n = max(0, allowed)
            self.over_limit_receives += 1
        found = self._groups.oldest(max_n) if max_n else None
        if found is None:
            return [], 0, 0.0, False
        k, nbytes, capped = fit_payload(np.cumsum(found.size + self.overhead), bytes_left)
        if k == 0:
            return [], 0, 0.0, capped
        taken = found if k == len(found) else found.select(slice(0, k))
        groups = self._group_of[taken.ids]
        self._groups.remove(groups)
        self.n_redelivered -= k
        busy = self._groups.hold(groups)
        if busy > self.groups_busy_max:
            self.groups_busy_max = busy
        self._visible(now, -float(k))
        self._post_in_flight((now, k))
        self.received_into_flight(k, now)
        return [taken], k, nbytes, capped

    def messages(self, parts: list[Part]) -> Messages:
        """Received parts as one set (a FIFO receive hands one set of messages)."""
        if len(parts) == 1 and isinstance(parts[0], Messages):
            return parts[0]
        return super().messages(parts)

    # ----------------------------------------------------------------------------- leaving flight
    def complete(self, batch: Batch, now: float, failed: np.ndarray | None) -> None:
        """Delete a processed batch; with partial failures, a failed message holds back its group.

        AWS's guidance for FIFO partial batch responses is to stop at the first failure and return
        the failed message and every unprocessed one: esmsim returns each failed message and every
        later message of its group in the batch.
        """
        if failed is not None and failed.any():
            failed = self._with_later_of_group(batch.messages, failed)
        super().complete(batch, now, failed)
        self.on_unblock(now)

    def _with_later_of_group(self, messages: Messages, failed: np.ndarray) -> np.ndarray:
        groups = self._group_of[messages.ids]
        _, inverse = np.unique(groups, return_inverse=True)
        first = np.full(int(inverse.max()) + 1, np.iinfo(np.int64).max)
        np.minimum.at(first, inverse[failed], np.flatnonzero(failed))
        return np.arange(groups.shape[0]) >= first[inverse]

    def _delete(self, done: Messages, now: float, n: int, batch: Batch, held: int = 1) -> None:
        if held and n:
            self._groups.release(self._group_of[done.ids])
        super()._delete(done, now, n, batch, held)

    def _reappear(self, messages: Messages, at: float | np.ndarray) -> None:
        if len(messages):
            self._groups.release(self._group_of[messages.ids])
        super()._reappear(messages, at)

    def finish(self, end: float) -> None:
        """Close the books; the FIFO totals go to the summary."""
        super().finish(end)
        add = self.recorder.add_total
        add("fifo_duplicates_dropped", self.duplicates)
        add("fifo_sends_throttled", self.sends_throttled)
        add("fifo_send_delay_max_s", self.send_delay_max)  # one FIFO queue's max: summed only if several
        add("fifo_groups_busy_max", self.groups_busy_max)
