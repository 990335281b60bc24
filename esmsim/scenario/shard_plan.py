"""A Kinesis stream's shards over a run: live changes of its shard count (UpdateShardCount).

UpdateShardCount scales uniformly: the open shards split the hash key range into equal parts.
esmsim gives each partition key a uniform hash in [0, 1) (drawn from its own random stream), so
with ``n`` open shards a key lands in the ``floor(hash * n)``-th of them. A change to ``m`` shards
closes the ``n`` open shards (the parents) and opens ``m`` new ones (the children), numbered after
every earlier shard as Kinesis numbers them: child ``j`` takes the keys whose hash lies in
``[j/m, (j+1)/m)``, and its parents are the shards whose ranges overlap it (one each for a
doubling, two each for a halving). Records sent from the change's effective time go to the
children; the parents keep what they hold, and a reader takes a child only after its parents
(docs/model.md §4, §14).

Kinesis reaches a count other than a doubling or a halving through short-lived intermediate
shards; esmsim goes straight to the final ones (an assumption).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from esmsim.scenario.sources import KinesisSource
from esmsim.scenario.system import System

#: UpdateShardCount's default limits (Kinesis API reference, UpdateShardCount): at most this many
#: scalings of a stream in a rolling 24 hours, each to at most double and at least half its shards.
SCALINGS_PER_DAY = 10
DAY_S = 86_400.0


@dataclass(frozen=True)
class Epoch:
    """The shards open from ``start`` until the next resharding: ``count`` of them from ``first``."""

    start: float
    count: int
    first: int


class ShardPlan:
    """Which shards a stream has when, and the lineage between them.

    Shards are numbered from 0 across the whole run: the initial ones, then each resharding's
    children after every earlier shard.
    """

    def __init__(self, initial: int, changes: Sequence[tuple[float, int]] = ()) -> None:
        epochs = [Epoch(-math.inf, initial, 0)]
        for at, count in changes:
            last = epochs[-1]
            if count != last.count:
                epochs.append(Epoch(at, count, last.first + last.count))
        self.epochs = tuple(epochs)
        last = epochs[-1]
        #: How many shards the run ever has.
        self.total = last.first + last.count
        self._starts = np.array([e.start for e in epochs])
        #: The shards each shard's records follow (empty for the initial shards).
        self.parents: list[tuple[int, ...]] = [() for _ in range(self.total)]
        #: When each shard stops receiving records (``inf``: never).
        self.closes_at = [math.inf] * self.total
        for before, after in itertools.pairwise(epochs):
            n, m = before.count, after.count
            for j in range(m):
                # Parent i's hash range [i/n, (i+1)/n) overlaps child j's [j/m, (j+1)/m).
                self.parents[after.first + j] = tuple(
                    before.first + i for i in range(n) if i * m < (j + 1) * n and j * n < (i + 1) * m
                )
            for i in range(n):
                self.closes_at[before.first + i] = after.start

    @classmethod
    def of(
        cls, name: str, initial: System, stages: Sequence[tuple[float, System]], duration: float
    ) -> ShardPlan:
        """The plan of source ``name``: its shards in ``initial``, then in each stage from its time.

        A stage from ``duration`` on never takes effect: it opens no shard.
        """
        shards = getattr(initial.sources[name], "shards", 1)
        changes = [(at, getattr(stage.sources[name], "shards", 1)) for at, stage in stages if at < duration]
        return cls(shards, changes)

    @property
    def children(self) -> list[list[int]]:
        """The shards each shard's records go on to (empty for the shards open at the end)."""
        found: list[list[int]] = [[] for _ in range(self.total)]
        for child, parents in enumerate(self.parents):
            for parent in parents:
                found[parent].append(child)
        return found

    def key_shards(self, key_hash: np.ndarray) -> np.ndarray:
        """Each key's shard in each epoch, as (epochs, keys).

        A child is linked to the parent each of its keys had, so a float rounding at a range's edge
        can never take a key to a child read before the parent holding its earlier records.
        """
        rows = []
        for epoch in self.epochs:
            n = epoch.count
            rows.append(epoch.first + np.minimum((key_hash * n).astype(np.int64), n - 1))
        shards = np.array(rows)
        for e in range(1, len(self.epochs)):
            for parent, child in set(zip(shards[e - 1].tolist(), shards[e].tolist(), strict=True)):
                if parent not in self.parents[child]:
                    self.parents[child] = (*self.parents[child], parent)
        return shards

    def route(self, key_shards: np.ndarray, keys: np.ndarray, sent_at: np.ndarray) -> np.ndarray:
        """The shard of each record: its key's shard in the epoch it was sent in."""
        if len(self.epochs) == 1:
            return np.asarray(key_shards[0][keys])
        epoch = np.searchsorted(self._starts, sent_at, side="right") - 1
        return np.asarray(key_shards[epoch, keys])

    def shard_seconds(self, duration: float) -> float:
        """Open shards times seconds within ``[0, duration]`` (what shard-hours bill)."""
        total = 0.0
        for k, epoch in enumerate(self.epochs):
            start = max(0.0, epoch.start)
            end = min(duration, self.epochs[k + 1].start) if k + 1 < len(self.epochs) else duration
            total += epoch.count * max(0.0, end - start)
        return total


class ShardCountUpdates:
    """UpdateShardCount's limits, checked change after change as Kinesis checks each call."""

    def __init__(self) -> None:
        self._made: dict[str, list[float]] = {}

    def check(self, at: float, before: System, after: System) -> list[str]:
        """Why the shard counts ``after`` (set at ``at``) could not follow ``before``; records the calls."""
        problems = []
        for name, source in after.sources.items():
            old = before.sources[name]
            if not isinstance(source, KinesisSource) or not isinstance(old, KinesisSource):
                continue
            n, m = old.shards, source.shards
            if m == n:
                continue
            where = f"sources.{name}.shards"
            if m > 2 * n:
                problems.append(
                    f"{where}: {n} -> {m}: UpdateShardCount scales a stream up to at most double its "
                    f"open shards ({2 * n})"
                )
            elif 2 * m < n:
                problems.append(
                    f"{where}: {n} -> {m}: UpdateShardCount scales a stream down to at least half its "
                    f"open shards ({math.ceil(n / 2)})"
                )
            made = self._made.setdefault(name, [])
            made.append(at)
            if sum(1 for t in made if t > at - DAY_S) > SCALINGS_PER_DAY:
                problems.append(
                    f"{where}: UpdateShardCount scales a stream at most {SCALINGS_PER_DAY} times in a "
                    "rolling 24 hours"
                )
        return problems
