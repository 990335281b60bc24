"""SQS provisioned mode: the event pollers behind a mapping's concurrent batches (docs/model.md §3).

In provisioned mode a mapping runs between ``minimum`` and ``maximum`` event pollers, each
handling up to 10 concurrent invokes and 1 MB of payload a second, billed per event poller hour
(per second, with a one-minute minimum). The poller scaler (:mod:`esmsim.model.scaling`) decides
the concurrent batches as in standard mode, with provisioned mode's floor, ceiling and rates
(:meth:`esmsim.scenario.mappings.ProvisionedPollers.scaling`); here that size becomes event
pollers, their bill, and the pace their read throughput allows.
"""

from __future__ import annotations

import math

from esmsim.observe.levels import BinnedLevel
from esmsim.scenario.mappings import ProvisionedPollers

#: AWS bills an event poller per second with a one-minute minimum.
MINIMUM_BILLED_S = 60.0
#: Read throughput an idle fleet may spend at once: a second's worth (a token bucket of one second).
BURST_S = 1.0


class EventPollers:
    """One provisioned-mode mapping's event pollers: how many run, what they cost, how fast they read."""

    __slots__ = ("_free_at", "_started", "billed_s", "config", "count", "level")

    def __init__(self, config: ProvisionedPollers, level: BinnedLevel) -> None:
        self.config = config
        self.level = level
        self.count = 0
        self._started: list[float] = []  # start of each running event poller, oldest first
        self.billed_s = 0.0  # event poller seconds billed for pollers already stopped
        # Read throughput as a token bucket of BURST_S seconds, kept as a clock: the payload read so
        # far is paid off at ``_free_at``; a receive may start while that is at most BURST_S away.
        self._free_at = 0.0

    def needed(self, concurrency: float, enabled: bool) -> int:
        """Event pollers for ``concurrency`` concurrent batches: within [minimum, maximum], 0 disabled."""
        if not enabled:
            return 0
        config = self.config
        pollers = math.ceil(concurrency / config.invokes_per_poller - 1e-9)
        return min(config.maximum, max(config.minimum, pollers))

    def resize(self, count: int, now: float) -> None:
        """Run ``count`` event pollers from ``now``: new ones start, the newest stop first."""
        delta = count - self.count
        if delta == 0:
            return
        if delta > 0:
            self._started.extend([now] * delta)
        else:
            for _ in range(-delta):
                self.billed_s += max(now - self._started.pop(), MINIMUM_BILLED_S)
        self.count = count
        self.level.add(now, delta)

    def reconfigure(self, config: ProvisionedPollers) -> None:
        """A live change of the minimum, maximum or knobs (the caller resizes after it)."""
        self.config = config

    def read_delay(self, now: float) -> float:
        """How long a poller waits before its next receive for the fleet's read throughput."""
        return max(0.0, self._free_at - BURST_S - now)

    def read(self, nbytes: float, now: float) -> None:
        """A receive returned ``nbytes`` of payload at ``now``."""
        if self.count:
            rate = self.count * self.config.bytes_per_second
            self._free_at = max(self._free_at, now) + nbytes / rate

    def finish(self, end: float) -> float:
        """Event poller seconds billed over the run, the pollers still running counted to ``end``."""
        running = sum(max(end - start, MINIMUM_BILLED_S) for start in self._started)
        return self.billed_s + running
