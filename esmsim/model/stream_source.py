"""A Kinesis or DynamoDB stream: records hashed to shards, write limits, retention, read limits.

Records are generated once per run, in shard-major order: the rows of shard ``s`` are
``[offsets[s], offsets[s+1])``, each shard's rows in the order the shard accepted them. A record's
partition key picks its shard (and, for a parallelization factor above 1, its lane inside the shard)
through a per-key hash drawn from the source's own stream, so a key always lands in the same shard.
Unlike a queue, a stream is not consumed: every mapping reading it keeps its own position and its
own outcome for every record.
"""

from __future__ import annotations

import math

import numpy as np

from esmsim.model.records import RecordTable
from esmsim.model.traffic import arrival_times, backlog_times
from esmsim.rng import Streams
from esmsim.scenario.sources import DynamoDBSource, KinesisSource, StreamSource


def zipf_keys(rng: np.random.Generator, n: int, keys: int, skew: float) -> np.ndarray:
    """``n`` partition keys out of ``keys``, key ``k`` with probability proportional to (k+1)^-skew."""
    if skew == 0:
        return rng.integers(0, keys, n).astype(np.int32)
    weights = np.arange(1, keys + 1, dtype=float) ** -skew
    cumulative = np.cumsum(weights / weights.sum())
    return np.minimum(np.searchsorted(cumulative, rng.random(n), side="right"), keys - 1).astype(np.int32)


def write_limited(
    sent_at: np.ndarray,
    sizes: np.ndarray,
    records_per_s: float | None,
    bytes_per_s: float | None,
) -> np.ndarray:
    """When a shard accepts each record, given its write limits (producers retry what it refuses).

    Each limit is a token bucket holding one second's worth, refilled continuously: record ``i`` can
    be accepted once every window ending with it stays within the bucket. For a bucket of ``b``
    tokens filled at ``r`` per second that is
    ``t'_i = max(t_i, max_j t'_j + (tokens of records j..i - b) / r)``, a running maximum that numpy
    computes in one pass; the two limits interact, so the pair is iterated to its fixed point.
    """
    accepted = sent_at.copy()
    if sent_at.size == 0 or (records_per_s is None and bytes_per_s is None):
        return accepted
    index = np.arange(sent_at.size, dtype=float)
    bytes_before = np.concatenate([[0.0], np.cumsum(sizes)])
    for _ in range(20):
        previous = accepted
        bound = sent_at
        if records_per_s is not None:
            r = records_per_s
            bound = np.maximum(bound, (index + 1 - r) / r + np.maximum.accumulate(previous - index / r))
        if bytes_per_s is not None:
            b = bytes_per_s
            floor = np.maximum.accumulate(previous - bytes_before[:-1] / b)
            bound = np.maximum(bound, (bytes_before[1:] - b) / b + floor)
        accepted = np.maximum(previous, bound)
        if np.array_equal(accepted, previous):
            break
    return accepted


class StreamRecords:
    """Every record of a stream for one run, shard-major, with per-record stream columns."""

    def __init__(
        self,
        name: str,
        spec: StreamSource,
        table: RecordTable,
        accepted_at: np.ndarray,
        shard: np.ndarray,
        key_lane_draw: np.ndarray,
        initial: np.ndarray,
    ) -> None:
        self.name = name
        self.spec = spec
        self.table = table
        #: When the stream stored each record (ApproximateArrivalTimestamp): retention and iterator
        #: age count from here; latency counts from ``table.arrival_at`` (when the producer sent it).
        self.accepted_at = accepted_at
        self.available_at = accepted_at + spec.propagation_delay
        self.shard = shard
        #: A uniform number per record fixed by its key: its lane is ``floor(draw * parallelization)``.
        self.key_lane_draw = key_lane_draw
        #: Records already in the stream before time 0 (the initial backlog): LATEST skips them.
        self.initial = initial
        self.shards = spec.shards
        self.offsets = np.searchsorted(shard, np.arange(spec.shards + 1))
        self.retention_s = spec.retention
        self.cum_size = np.cumsum(table.size)
        self.max_size = float(table.size.max()) if len(table) else 0.0

    def __len__(self) -> int:
        return len(self.table)

    def bytes_between(self, start: int, stop: int) -> float:
        """Record data bytes of rows ``[start, stop)``."""
        if stop <= start:
            return 0.0
        return float(self.cum_size[stop - 1] - (self.cum_size[start - 1] if start else 0.0))

    def write_throttled(self) -> np.ndarray:
        """Send times of the records a shard made wait (WriteProvisionedThroughputExceeded)."""
        waited = self.accepted_at > self.table.arrival_at + 1e-9
        return self.table.arrival_at[waited]


def generate_stream_records(
    spec: KinesisSource | DynamoDBSource, duration_s: float, streams: Streams, name: str, *, draws: bool
) -> StreamRecords:
    """All records written to a stream in a run (initial backlog first), hashed to shards."""
    traffic = spec.traffic
    sent = arrival_times(traffic, duration_s, streams.get("arrivals", name))
    backlog = traffic.initial_backlog
    if backlog:
        sent = np.concatenate([backlog_times(traffic), sent])
    n = sent.size
    sizes = traffic.record_size.sample(streams.get("sizes", name), n)
    poison = np.asarray(streams.get("poison", name).random(n)) if draws else None
    keys = zipf_keys(streams.get("keys", name), n, traffic.partition_keys, traffic.key_skew)
    # The hash of each key has its own stream: a key lands in the same shard and lane whatever the
    # run's duration or record count. int16 shard ids let the stable sort below use radix sort.
    hashes = streams.get("key_hashes", name)
    key_shard = np.minimum(
        (hashes.random(traffic.partition_keys) * spec.shards).astype(np.int16), spec.shards - 1
    )
    key_lane = hashes.random(traffic.partition_keys)
    shard = key_shard[keys]
    order = np.argsort(shard, kind="stable")  # sent is sorted: each shard's rows stay in time order
    sent, sizes, shard, keys = sent[order], sizes[order], shard[order], keys[order]
    poison = poison[order] if poison is not None else None
    initial = order < backlog
    offsets = np.searchsorted(shard, np.arange(spec.shards + 1))
    accepted = sent.copy()
    if isinstance(spec, KinesisSource):
        for s in range(spec.shards):
            lo, hi = offsets[s], offsets[s + 1]
            accepted[lo:hi] = write_limited(
                sent[lo:hi], sizes[lo:hi], spec.write_records_per_second, spec.write_bytes_per_second
            )
    table = RecordTable(sent, sizes, poison)
    return StreamRecords(name, spec, table, accepted, shard, key_lane[keys], initial)


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


def efo_delivery(available_at: np.ndarray, sizes: np.ndarray, bytes_per_s: float) -> np.ndarray:
    """Delivery times to an enhanced fan-out consumer: pushed as available, at most its own 2 MiB/s."""
    return write_limited(available_at, sizes, None, bytes_per_s)
