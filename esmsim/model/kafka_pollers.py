"""Lambda's Kafka pollers: how many consume a topic, which partitions each serves, how they scale.

A partition is consumed only through the poller it is assigned to (partition ``p`` to poller
``p mod pollers``: pollers share the partitions out evenly), and a poller runs at most
``invokes_per_poller`` invocations at once. So a partition may wait for its poller while the
poller's other partitions hold every slot.

Every ``evaluation_interval`` the fleet is evaluated on the offset lag (docs/model.md §16): the
pollers needed are the most of ``ceil(min(partitions, lag / batch_size) / invokes_per_poller)`` (a
concurrent invoke per full batch behind, one per partition) and ``ceil(bytes written over the
interval / interval / bytes_per_poller)`` (AWS: a poller handles up to 5 MB/s or 5 concurrent
invokes). More than the fleet: it grows to them. An evaluation that saw throttles of the
mapping's invokes removes ``scale_down_step`` pollers instead (AWS: fewer pollers when the
function is throttled); one whose need is below the fleet removes ``scale_down_step``. The change
takes effect after a delay drawn uniformly up to ``apply_delay_max`` (AWS: within three minutes);
evaluations stay on their one-minute grid, and none decides while a change is pending.
On-demand: between 1 and the partition count (at most one poller per partition). Provisioned:
between the minimum and the maximum pollers, the maximum capped at the partition count (AWS).
"""

from __future__ import annotations

import math

import numpy as np
import simpy

from esmsim.observe.levels import BinnedLevel
from esmsim.scenario.mappings import KafkaMapping

#: The shortest time a running provisioned poller unit is billed (AWS: per second, one-minute minimum).
MINIMUM_BILLED_S = 60.0


def poller_bounds(spec: KafkaMapping, partitions: int) -> tuple[int, int]:
    """Fewest and most pollers: provisioned mode's bounds, or 1 and the partition count on demand.

    Either way at most one poller per partition (AWS: to keep partitions in order, Lambda caps
    MaximumPollers at the topic's partition count).
    """
    provisioned = spec.provisioned_pollers
    if provisioned is not None:
        high = min(provisioned.maximum, partitions)
        return min(provisioned.minimum, high), high
    return 1, partitions


def pollers_needed(lag: np.ndarray, bytes_per_s: float, spec: KafkaMapping) -> int:
    """Pollers the lag and the throughput call for (before bounds): V26's ceilings.

    The lag asks for one concurrent invoke per full batch behind, each on its own partition: the
    concurrency wanted is ``min(partitions, total lag / batch size)`` (a partition runs one batch
    at a time, so more would sit idle).
    """
    knobs = spec.kafka_scaling
    wanted = min(lag.shape[0], float(lag.sum()) / spec.batch_size)
    by_concurrency = math.ceil(wanted / knobs.invokes_per_poller - 1e-9)
    by_throughput = math.ceil(bytes_per_s / knobs.bytes_per_poller - 1e-9)
    return int(max(by_concurrency, by_throughput))


class KafkaPollers:
    """The pollers of one Kafka mapping: their count, partition assignment, invoke slots and bill."""

    def __init__(
        self, env: simpy.Environment, partitions: int, count: int, levels: tuple[BinnedLevel, ...]
    ) -> None:
        self.env = env
        self.partitions = partitions
        self.count = 0
        self.levels = levels  # the mapping's own and the run's
        #: Whether each partition has a batch in flight (it holds one of its poller's invoke slots).
        self.busy = np.zeros(partitions, dtype=bool)
        #: Succeeds when a slot frees or the fleet changes: partitions waiting for one look again.
        self.freed = env.event()
        self.epu_s = 0.0  # provisioned: EPU-seconds billed for units already stopped
        self._units: list[float] = []  # provisioned: start of each running EPU, oldest first
        self.resize(count, 0.0, 1)

    def poller_of(self, partition: int) -> int:
        """The poller a partition is assigned to."""
        return partition % self.count

    def may_start(self, partition: int, slots: int) -> bool:
        """Whether the partition's poller has an invoke slot free."""
        k = self.count
        if not k:  # a disabled mapping's: none
            return False
        return int(np.count_nonzero(self.busy[partition % k :: k])) < slots

    def take(self, partition: int) -> None:
        """A batch of the partition starts (it holds a slot until :meth:`give`)."""
        self.busy[partition] = True

    def give(self, partition: int) -> None:
        """The partition's batch is over: its slot is free."""
        self.busy[partition] = False
        self._wake()

    def _wake(self) -> None:
        freed, self.freed = self.freed, self.env.event()
        freed.succeed()

    def resize(self, count: int, now: float, pollers_per_epu: int, billed: bool = False) -> None:
        """Run ``count`` pollers from ``now`` (``billed``: provisioned mode, in EPUs)."""
        if count != self.count:
            for level in self.levels:
                level.add(now, count - self.count)
            self.count = count
            self._wake()
        if billed:
            units = math.ceil(count / pollers_per_epu)
            while len(self._units) < units:
                self._units.append(now)
            while len(self._units) > units:
                self.epu_s += max(now - self._units.pop(), MINIMUM_BILLED_S)

    def stop_billing(self, now: float) -> None:
        """Leaving provisioned mode: the running EPUs stop (each billed at least a minute)."""
        while self._units:
            self.epu_s += max(now - self._units.pop(), MINIMUM_BILLED_S)

    def finish(self, end: float) -> float:
        """EPU-seconds billed over the run, the units still running counted to ``end``."""
        return self.epu_s + sum(max(end - start, MINIMUM_BILLED_S) for start in self._units)
