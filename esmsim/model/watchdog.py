"""A guard against a simulated clock that stops: wall time passes, simulated time does not.

Validation refuses the settings known to loop in zero time (esmsim.scenario.rules), so this only
catches what slips through: a model bug, or a scenario built without validation. It costs the run
nothing per event: a daemon thread looks once a second (of wall time) at the simulated time, and
when it has not moved for :data:`STALL_AFTER_S` seconds it schedules a failing event that ends the
run with :class:`Stalled`. Counting events per instant would need SimPy's private counter, and a
check inside SimPy's step loop would cost about a quarter of the run time (a Python-level ``step``
override, measured against a plain timeout loop).
"""

from __future__ import annotations

import threading
import time
from types import TracebackType

import simpy

from esmsim.errors import RunError

#: Wall-clock seconds the simulated clock may stand still before the run is stopped. The busiest
#: legitimate instant (every poller of every mapping starting at time 0, an initial backlog within
#: the memory estimate's limit dealt out) takes a few seconds.
STALL_AFTER_S = 120.0

#: How often (wall-clock seconds) the watchdog looks.
CHECK_EVERY_S = 1.0


class Stalled(RunError):
    """The simulated clock stopped: the run spent wall time without simulated time passing."""


class Watchdog:
    """Stops ``env.run`` with :class:`Stalled` once its clock stands still for too long.

    Use as a context manager around ``env.run(...)``.
    """

    def __init__(
        self, env: simpy.Environment, stall_after_s: float | None = None, every_s: float | None = None
    ) -> None:
        self.env = env
        self.stall_after_s = STALL_AFTER_S if stall_after_s is None else stall_after_s
        self.every_s = CHECK_EVERY_S if every_s is None else every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="esmsim-watchdog", daemon=True)

    def __enter__(self) -> Watchdog:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        env = self.env
        last_now, since = env.now, time.monotonic()
        while not self._stop.wait(self.every_s):
            now, wall = env.now, time.monotonic()
            if now != last_now:
                last_now, since = now, wall
            elif wall - since > self.stall_after_s:
                self._stall(now, wall - since)
                return

    def _stall(self, now: float, waited_s: float) -> None:
        """Make the run's own thread raise: a failed event, due at once, that nobody defuses."""
        # ``fail`` schedules the event at the current instant behind those already due; a loop at
        # one instant only adds events behind it, so the run's thread reaches it next in turn.
        # heappush under the GIL is atomic with the run thread's heappop: the schedule stays a heap.
        simpy.Event(self.env).fail(
            Stalled(
                f"run stopped: the simulated clock stopped at {now:g} s: it has not moved in "
                f"{waited_s:.0f} s of wall time (a loop that takes no simulated time)"
            )
        )
