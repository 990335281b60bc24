"""A single pending wake-up at the earliest time asked for (one SimPy event, not a process)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import simpy


class Alarm:
    """Calls ``on_wake(now)`` at the earliest time requested since it last rang.

    A request later than the pending one is ignored; an earlier one schedules a new event and the
    superseded one rings as a no-op. Actors that only need waking at computed times use this
    instead of a process of their own, so a wake-up costs one event.
    """

    __slots__ = ("_event", "_on_wake", "at", "env")

    def __init__(self, env: simpy.Environment, on_wake: Callable[[float], None]) -> None:
        self.env = env
        self._on_wake = on_wake
        #: When the pending wake-up rings (``inf``: none pending).
        self.at = math.inf
        self._event: Any = None

    def request(self, t: float, now: float) -> None:
        """Ring at ``t`` (at once if it is past), unless a wake-up is already due by then."""
        if t < self.at:
            self.at = t
            event = self.env.timeout(max(0.0, t - now))
            event.callbacks.append(self._ring)
            self._event = event

    def _ring(self, event: simpy.Event) -> None:
        if event is not self._event:
            return  # superseded by an earlier wake-up
        self.at = math.inf
        self._event = None
        self._on_wake(self.env.now)
