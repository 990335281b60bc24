"""A Kinesis or DynamoDB stream: records hashed to shards, write limits, retention, read limits.

Records are generated a block at a time as the run advances and appended to their shard's log
(:class:`ShardLog`), each shard's records in the order the shard accepted them. A record's
partition key picks its shard (and, for a parallelization factor above 1, its lane inside the
shard) through a per-key hash drawn from the source's own stream, so a key always lands in the same
shard (until a live change of the shard count sends the records sent from then on to the new
shards: :class:`~esmsim.scenario.shard_plan.ShardPlan`). Unlike a queue, a stream is not consumed:
every mapping reading it gets every new block (:meth:`StreamSource.subscribe`) and keeps its own
copy of the records it has yet to finish.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from esmsim.cost import kinesis_put_units
from esmsim.model.records import RecordFifo
from esmsim.model.traffic import RecordFeed, Timeline
from esmsim.observe.recorder import Recorder
from esmsim.rng import Streams
from esmsim.scenario.pricing import Pricing
from esmsim.scenario.shard_plan import ShardPlan
from esmsim.scenario.sources import DynamoDBSource, KafkaSource, KinesisSource, StreamTraffic


def key_cdf(keys: int, skew: float) -> np.ndarray | None:
    """Cumulative popularity of ``keys`` partition keys under Zipf exponent ``skew`` (None: uniform)."""
    if skew == 0:
        return None
    weights = np.arange(1, keys + 1, dtype=float) ** -skew
    return np.cumsum(weights / weights.sum())


def zipf_keys(rng: np.random.Generator, n: int, keys: int, cdf: np.ndarray | None) -> np.ndarray:
    """``n`` partition keys out of ``keys``, drawn from their cumulative popularity (None: uniform).

    Drawn from uniform floats, one per record, so drawing a run's keys in one call or in blocks
    gives the same keys (``Generator.integers`` buffers bits within a call: it would not).
    """
    u = rng.random(n)
    if cdf is None:
        return np.minimum((u * keys).astype(np.int64), keys - 1).astype(np.int32)
    return np.minimum(np.searchsorted(cdf, u, side="right"), keys - 1).astype(np.int32)


class WriteLimiter:
    """When a shard accepts each record, given its write limits (producers retry what it refuses).

    Each limit is a token bucket holding one second's worth, refilled continuously: record ``i`` can
    be accepted once every window ending with it stays within the bucket. For a bucket of ``b``
    tokens filled at ``r`` per second that is
    ``t'_i = max(t_i, max_j t'_j + (tokens of records j..i - b) / r)``, a running maximum that numpy
    computes in one pass per block, carried from block to block; the two limits interact, so the
    pair is iterated to its fixed point. Accepted times never decrease: a shard stores in order.
    """

    __slots__ = (
        "_bytes_before",
        "_count",
        "_max_bytes_term",
        "_max_count_term",
        "bytes_per_s",
        "records_per_s",
    )

    def __init__(self, records_per_s: float | None, bytes_per_s: float | None) -> None:
        self.records_per_s = records_per_s
        self.bytes_per_s = bytes_per_s
        self._count = 0  # records accepted before this block
        self._bytes_before = 0.0
        self._max_count_term = -math.inf  # max_j (t'_j - j / r) so far
        self._max_bytes_term = -math.inf  # max_j (t'_j - bytes before j / b) so far

    def accept(self, sent_at: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        """Acceptance times of the next records (sent in order)."""
        n = sent_at.size
        if n == 0 or (self.records_per_s is None and self.bytes_per_s is None):
            return sent_at.copy()
        index = self._count + np.arange(n, dtype=float)
        bytes_before = self._bytes_before + np.concatenate([[0.0], np.cumsum(sizes)])
        accepted = sent_at.copy()
        for _ in range(20):
            previous = accepted
            bound = sent_at
            if self.records_per_s is not None:
                r = self.records_per_s
                running = np.maximum(self._max_count_term, np.maximum.accumulate(previous - index / r))
                bound = np.maximum(bound, (index + 1 - r) / r + running)
            if self.bytes_per_s is not None:
                b = self.bytes_per_s
                running = np.maximum(
                    self._max_bytes_term, np.maximum.accumulate(previous - bytes_before[:-1] / b)
                )
                bound = np.maximum(bound, (bytes_before[1:] - b) / b + running)
            accepted = np.maximum(previous, bound)
            if np.array_equal(accepted, previous):
                break
        if self.records_per_s is not None:
            self._max_count_term = max(
                self._max_count_term, float((accepted - index / self.records_per_s).max())
            )
        if self.bytes_per_s is not None:
            self._max_bytes_term = max(
                self._max_bytes_term, float((accepted - bytes_before[:-1] / self.bytes_per_s).max())
            )
        self._count += n
        self._bytes_before = float(bytes_before[-1])
        return accepted


class ShardLog:
    """One shard's records, in the order the shard stored them, from the oldest a reader still needs."""

    def __init__(self, index: int, draws: bool) -> None:
        self.index = index
        columns: dict[str, type] = {
            "sent_at": float,
            "accepted_at": float,
            "available_at": float,
            "size": float,
            "cum": float,
            "key": np.int32,
            "initial": bool,
        }
        if draws:
            columns["draw"] = float
        self.fifo = RecordFifo(columns)
        self.cum_total = 0.0

    def bytes_between(self, start: int, stop: int) -> float:
        """Record data bytes of positions ``[start, stop)``."""
        if stop <= start:
            return 0.0
        fifo = self.fifo
        before = fifo.at("cum", start) - fifo.at("size", start)
        return fifo.at("cum", stop - 1) - before

    def accepted_by(self, now: float) -> int:
        """Records the shard stored by ``now`` (those already dropped were read, hence stored)."""
        fifo = self.fifo
        if fifo.top == fifo.low or fifo.at("accepted_at", fifo.top - 1) <= now:
            return fifo.top
        return fifo.search("accepted_at", now, "right")


#: A subscriber's view of a new block: ``(shard, first position, one past the last)``.
Subscriber = Callable[[ShardLog, int, int], None]


class StreamSource:
    """Every record of a stream, generated block by block and split into shard logs."""

    def __init__(
        self,
        name: str,
        spec: KinesisSource | DynamoDBSource | KafkaSource,
        duration_s: float,
        streams: Streams,
        recorder: Recorder,
        pricing: Pricing,
        *,
        draws: bool,
        timeline: Timeline[StreamTraffic] | None = None,
        plan: ShardPlan | None = None,
    ) -> None:
        self.name = name
        self.spec = spec
        traffic = spec.traffic
        # Live changes of the traffic (docs/model.md §14): each block's keys follow its own traffic.
        timeline = timeline or ((0.0, traffic),)
        self.feed = RecordFeed(timeline, duration_s, streams, name, math.inf, draws=draws)
        self._keys = streams.get("keys", name)
        self._key_cdfs = {
            (t.partition_keys, t.key_skew): key_cdf(t.partition_keys, t.key_skew) for _, t in timeline
        }
        # The hash of each key has its own stream: a key lands in the same shard and lane whatever
        # the run's duration or record count.
        hashes = streams.get("key_hashes", name)
        keys = max(t.partition_keys for _, t in timeline)
        #: The shards over the run (live changes of the shard count: docs/model.md §14).
        self.plan = plan or ShardPlan(spec.shards)
        #: Each key's shard in each of the plan's epochs, from its hash.
        self.key_shards = self.plan.key_shards(hashes.random(keys))
        #: A uniform number per key: a record's lane is ``floor(draw * parallelization)``.
        self.key_lane_draw = hashes.random(keys)
        self.shards = [ShardLog(s, draws) for s in range(self.plan.total)]
        kinesis = isinstance(spec, KinesisSource)
        self._limiters = [
            WriteLimiter(spec.write_records_per_second, spec.write_bytes_per_second)
            if isinstance(spec, KinesisSource)
            else None
            for _ in range(self.plan.total)
        ]
        self.retention_s = spec.retention
        self.max_size = 0.0  # the largest record generated so far
        self._backlog_left = traffic.initial_backlog
        self._subscribers: list[Subscriber] = []
        self._readers: list[list[Any]] = [[] for _ in range(self.plan.total)]
        self._after_block: list[Callable[[], None]] = []
        self.recorder = recorder
        self._write_throttled = recorder.counter("WriteProvisionedThroughputExceeded", name)
        self._sent = recorder.counter("NumberOfMessagesSent", name)
        self._kinesis = kinesis
        self._pricing = pricing
        self.draws = draws

    def subscribe(self, on_rows: Subscriber, after_block: Callable[[], None] | None = None) -> None:
        """Follow the stream's new records.

        ``on_rows(shard, start, stop)`` is called for every shard's new records of every block, and
        ``after_block()`` once a block is fully delivered.
        """
        self._subscribers.append(on_rows)
        if after_block is not None:
            self._after_block.append(after_block)

    def add_reader(self, shard: int, reader: Any) -> None:
        """A polling reader of ``shard``: the log keeps the records from its ``fetched`` position on."""
        self._readers[shard].append(reader)

    @property
    def horizon(self) -> float:
        """Every record sent before this time has been generated."""
        return self.feed.horizon

    @property
    def exhausted(self) -> bool:
        """Whether every record of the run has been generated."""
        return self.feed.exhausted

    def next_block(self, now: float) -> None:
        """Generate the next block of records, append it to the shard logs and deliver it."""
        for log, readers in zip(self.shards, self._readers, strict=True):
            # Records stored by now that every polling reader has fetched are no longer needed.
            keep = log.accepted_by(now)
            for reader in readers:
                keep = min(keep, reader.fetched)
            log.fifo.drop_before(keep)
        block = self.feed.next_block()
        sent, sizes = block["sent_at"], block["size"]
        n = sent.shape[0]
        if n == 0:
            for after in self._after_block:
                after()
            return
        self._sent.add_many(sent)
        traffic = self.feed.traffic  # the block's: a block never holds records of two traffics
        keys = zipf_keys(
            self._keys, n, traffic.partition_keys, self._key_cdfs[traffic.partition_keys, traffic.key_skew]
        )
        initial = np.zeros(n, dtype=bool)
        k = min(self._backlog_left, n)
        initial[:k] = True  # the initial backlog comes first (sent by time 0)
        self._backlog_left -= k
        shard = self.plan.route(self.key_shards, keys, sent)
        order = np.argsort(shard, kind="stable")  # sent is sorted: each shard's rows stay in time order
        offsets = np.searchsorted(shard[order], np.arange(len(self.shards) + 1))
        self.max_size = max(self.max_size, float(sizes.max()))
        if self._kinesis:
            self.recorder.add_total("kinesis_put_units", kinesis_put_units(sizes, self._pricing))
        for s, log in enumerate(self.shards):
            rows = order[offsets[s] : offsets[s + 1]]
            if rows.size == 0:
                continue
            s_sent, s_size = sent[rows], sizes[rows]
            limiter = self._limiters[s]
            accepted = limiter.accept(s_sent, s_size) if limiter is not None else s_sent
            waited = accepted > s_sent + 1e-9
            if waited.any():
                self._write_throttled.add_many(s_sent[waited])
            cum = log.cum_total + np.cumsum(s_size)
            log.cum_total = float(cum[-1])
            columns = {
                "sent_at": s_sent,
                "accepted_at": accepted,
                "available_at": accepted + self.spec.propagation_delay,
                "size": s_size,
                "cum": cum,
                "key": keys[rows],
                "initial": initial[rows],
            }
            if self.draws:
                columns["draw"] = block["draw"][rows]
            start = log.fifo.top
            log.fifo.append(columns)
            for on_rows in self._subscribers:
                on_rows(log, start, log.fifo.top)
        for after in self._after_block:
            after()


class ShardReadLimits:
    """A shard's read throughput, shared by its standard (polling) consumers.

    GetRecords calls and bytes are token buckets of one second's worth. A call may return more
    bytes than the bucket holds (up to ``max_bytes_per_call``); the balance then goes negative and
    further calls are refused until it recovers (Kinesis: a 10 MiB call throttles the next 5 s).
    """

    __slots__ = ("_at", "_bytes", "_calls", "bytes_per_s", "calls_per_s")

    def __init__(self, calls_per_s: float | None, bytes_per_s: float | None) -> None:
        self.calls_per_s = calls_per_s
        self.bytes_per_s = bytes_per_s
        self._calls = calls_per_s or 0.0
        self._bytes = bytes_per_s or 0.0
        self._at = 0.0

    def _refill(self, now: float) -> None:
        dt = now - self._at
        self._at = now
        if self.calls_per_s is not None:
            self._calls = min(self.calls_per_s, self._calls + dt * self.calls_per_s)
        if self.bytes_per_s is not None:
            self._bytes = min(self.bytes_per_s, self._bytes + dt * self.bytes_per_s)

    def ready_at(self, now: float) -> float:
        """When the next call can be served (``now`` if at once)."""
        self._refill(now)
        wait = 0.0
        if self.calls_per_s is not None and self._calls < 1.0:
            wait = (1.0 - self._calls) / self.calls_per_s
        if self.bytes_per_s is not None and self._bytes <= 0.0:
            wait = max(wait, (-self._bytes + 1e-9) / self.bytes_per_s)
        return now + wait

    def spend(self, now: float, nbytes: float) -> None:
        """Account a served call that returned ``nbytes``."""
        self._refill(now)
        if self.calls_per_s is not None:
            self._calls -= 1.0
        if self.bytes_per_s is not None:
            self._bytes -= nbytes

    def bytes_available(self, now: float) -> float:
        """Bytes a call could take now without exceeding what is left (``inf`` without a limit)."""
        self._refill(now)
        return max(self._bytes, 0.0) if self.bytes_per_s is not None else math.inf
