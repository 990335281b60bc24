"""A function's execution environments and its share of concurrency (docs/model.md §5, §6).

An invocation is admitted, or throttled with a reason, in the order AWS's limits are checked
here: a free provisioned environment needs only the invoke rate quota; otherwise the function's
reserved concurrency (or the account's unreserved pool), then the rate quota, then an environment:
the most recently used idle one, else a new one, which the scaling-rate bucket must allow (a cold
start). Idle environments live ``keep_alive``. A timed-out invocation resets its environment
(AWS: the runtime is restarted), so the next invocation in it runs Init again.

An idle environment's end is written to the alive-environment level when it is noticed: at the
next admission, or at the latest by the once-a-minute :meth:`Environments.reap`, which a small
process of the function runs (dropping expired environments changes nothing else: an admission
would drop them before looking).
"""

from __future__ import annotations

from collections import deque

from esmsim.events import EnvKind, ThrottleReason
from esmsim.model.concurrency import AccountPool
from esmsim.observe.levels import BinnedLevel
from esmsim.scenario.functions import Function

_WARM, _COLD, _PC, _REINIT, _PC_REINIT = (
    int(EnvKind.WARM),
    int(EnvKind.COLD),
    int(EnvKind.PROVISIONED),
    int(EnvKind.REINIT),
    int(EnvKind.PROVISIONED_REINIT),
)
_RESERVED = -int(ThrottleReason.RESERVED_CONCURRENCY)
_ACCOUNT = -int(ThrottleReason.ACCOUNT_CONCURRENCY)
_RATE = -int(ThrottleReason.INVOCATION_RATE)
_SCALING = -int(ThrottleReason.SCALING_RATE)


class Environments:
    """Execution environments of one function, and the concurrency it holds."""

    __slots__ = (
        "bucket",
        "idle",
        "keep_alive_s",
        "level",
        "on_demand_cap",
        "on_demand_in_use",
        "pc",
        "pc_ready",
        "pc_reset",
        "pool",
        "post",
        "reset_on_timeout",
        "stale_busy",
    )

    def __init__(self, spec: Function, pool: AccountPool, level: BinnedLevel) -> None:
        self.pool = pool
        pc = spec.provisioned_concurrency
        self.pc = pc
        self.pc_ready = pc  # free provisioned environments, initialised
        self.pc_reset = 0  # free provisioned environments reset by a timeout
        reserved = spec.reserved_concurrency
        # On-demand environments may not use the slots provisioned concurrency holds.
        self.on_demand_cap = None if reserved is None else reserved - pc
        self.on_demand_in_use = 0
        #: Busy on-demand environments set up before the last deploy: retired as they finish.
        self.stale_busy = 0
        #: Idle on-demand environments: (idle since, needs Init), oldest first.
        self.idle: deque[tuple[float, bool]] = deque()
        self.bucket = pool.function_bucket() or pool.legacy_bucket
        self.keep_alive_s = spec.keep_alive
        self.reset_on_timeout = spec.reset_on_timeout
        self.level = level
        self.post = level.post
        if pc:
            level.add(0.0, pc)

    def acquire(self, now: float) -> int:
        """Admit an invocation: the :class:`EnvKind` it runs in (>= 0), or minus a ThrottleReason."""
        pool = self.pool
        rate = pool.rate
        if self.pc_ready or self.pc_reset:
            if not rate.allows(now):
                return _RATE
            rate.admit(now)
            if self.pc_ready:
                self.pc_ready -= 1
                return _PC
            self.pc_reset -= 1
            return _PC_REINIT
        cap = self.on_demand_cap
        if cap is not None:
            if self.on_demand_in_use >= cap:
                return _RESERVED
        elif pool.unreserved_in_use >= pool.unreserved_limit:
            return _ACCOUNT
        if not rate.allows(now):
            return _RATE
        idle = self.idle
        keep = self.keep_alive_s
        if idle and idle[0][0] + keep <= now:
            self.reap(now)
        if idle:
            kind = _REINIT if idle.pop()[1] else _WARM
        else:
            bucket = self.bucket
            if bucket is not None and not bucket.take(now):
                return _SCALING
            self.post((now, 1.0))
            kind = _COLD
        rate.admit(now)
        self.on_demand_in_use += 1
        if cap is None:
            pool.unreserved_in_use += 1
        return kind

    def reserve(self, spec: Function) -> None:
        """A live change of the function's reserved concurrency (PutFunctionConcurrency).

        Invocations running on demand move between the unreserved pool and the reservation with
        it; the new cap applies to the next admissions (running ones are not stopped).
        """
        old = None if self.on_demand_cap is None else self.on_demand_cap + self.pc
        new = spec.reserved_concurrency
        if old == new:
            return
        self.pool.reserve(old, new, self.pc)
        if old is None:
            self.pool.unreserved_in_use -= self.on_demand_in_use
        elif new is None:
            self.pool.unreserved_in_use += self.on_demand_in_use
        self.on_demand_cap = None if new is None else new - self.pc

    def redeploy(self, now: float) -> None:
        """A deploy (new code or configuration): no on-demand environment set up before it is reused.

        Lambda creates an environment with the function's code and configuration, so after an
        update the idle environments are retired now and the busy ones as they finish; the next
        invocations start cold. Provisioned environments are left as they are (docs/model.md §14).
        """
        idle = self.idle
        while idle:
            idle.popleft()
            self.post((now, -1.0))
        self.stale_busy = self.on_demand_in_use

    def release(self, now: float, kind: int, timed_out: bool) -> None:
        """End an invocation: its environment goes idle (reset, if it timed out)."""
        reset = timed_out and self.reset_on_timeout
        if kind in (_PC, _PC_REINIT):
            if reset:
                self.pc_reset += 1
            else:
                self.pc_ready += 1
            return
        self.on_demand_in_use -= 1
        if self.on_demand_cap is None:
            self.pool.unreserved_in_use -= 1
        if self.stale_busy:
            # Environments are interchangeable: one that ends now stands for one set up before.
            self.stale_busy -= 1
            self.post((now, -1.0))
            return
        self.idle.append((now, reset))

    def reap(self, now: float) -> None:
        """Retire the idle environments whose lifetime ended by ``now`` (the oldest idle first)."""
        idle = self.idle
        keep = self.keep_alive_s
        while idle and idle[0][0] + keep <= now:
            self.post((idle.popleft()[0] + keep, -1.0))
