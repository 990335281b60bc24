"""A guard against a simulated clock that stops: many events, all at one instant.

Validation refuses the settings known to loop in zero time (esmsim.scenario.rules), so this only
catches what slips through: a model bug, or a scenario built without validation. It costs the run
nothing per event: a daemon thread looks once a second (of wall time) at the simulated time and at
SimPy's event counter, and when more than :data:`SAME_INSTANT_EVENTS` events were scheduled while
the time stood still, it schedules a failing event that ends the run with :class:`Stalled`.
A check inside SimPy's step loop would cost about a quarter of the run time (a Python-level
``step`` override, measured against a plain timeout loop).
"""

from __future__ import annotations

import re
import threading
from types import TracebackType

import simpy

from esmsim.errors import RunError

#: Events scheduled at one simulated instant before the run is stopped. The busiest legitimate
#: instant (every poller of every mapping starting at time 0, an initial backlog dealt out) spends
#: thousands; ten million take several seconds of wall time at one instant.
SAME_INSTANT_EVENTS = 10_000_000

#: How often (wall-clock seconds) the watchdog looks.
CHECK_EVERY_S = 1.0

_COUNTER = re.compile(r"count\((\d+)\)")


class Stalled(RunError):
    """The simulated clock stopped: events kept coming at one instant."""


def events_scheduled(env: simpy.Environment) -> int | None:
    """How many events ``env`` has scheduled so far (None if SimPy does not tell).

    Read from the representation of SimPy's id counter (``count(N)``), which does not advance it.
    """
    match = _COUNTER.fullmatch(repr(getattr(env, "_eid", None)))
    return int(match.group(1)) if match else None


class Watchdog:
    """Stops ``env.run`` with :class:`Stalled` once its clock stands still for too many events.

    Use as a context manager around ``env.run(...)``.
    """

    def __init__(
        self, env: simpy.Environment, limit: int | None = None, every_s: float | None = None
    ) -> None:
        self.env = env
        self.limit = SAME_INSTANT_EVENTS if limit is None else limit
        self.every_s = CHECK_EVERY_S if every_s is None else every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="esmsim-watchdog", daemon=True)

    def __enter__(self) -> Watchdog:
        if events_scheduled(self.env) is not None:  # without a counter, nothing to watch
            self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _watch(self) -> None:
        env = self.env
        last_now, last_count = env.now, events_scheduled(env) or 0
        while not self._stop.wait(self.every_s):
            now, count = env.now, events_scheduled(env) or 0
            if now != last_now:
                last_now, last_count = now, count
            elif count - last_count > self.limit:
                self._stall(now, count - last_count)
                return

    def _stall(self, now: float, events: int) -> None:
        """Make the run's own thread raise: a failed event, due at once, that nobody defuses."""
        # ``fail`` schedules the event at the current instant behind those already due; a loop at
        # one instant only adds events behind it, so the run's thread reaches it next in turn.
        # heappush under the GIL is atomic with the run thread's heappop: the schedule stays a heap.
        simpy.Event(self.env).fail(
            Stalled(
                f"run stopped: the simulated clock stopped at {now:g} s: over {events:,} events at that "
                "instant (a loop that takes no simulated time)"
            )
        )
