"""A function's execution environments and its share of concurrency (docs/model.md §5, §6).

An invocation is admitted, or throttled with a reason, in the order AWS's limits are checked
here: a free provisioned environment needs only the invoke rate quota; otherwise the function's
reserved concurrency (or the account's unreserved pool), then the rate quota, then an environment:
the most recently used idle one, else a new one, which the scaling-rate bucket must allow (a cold
start). Idle environments live ``keep_alive``. A timed-out invocation resets its environment
(AWS: the runtime is restarted), so the next invocation in it runs Init again.

Provisioned concurrency may change during a run (:meth:`Environments.provision`,
:meth:`Environments.deprovision`): new environments join once allocated, free ones leave at once and
busy ones as they finish. Neither the function's reservation nor the account limit is ever exceeded:
concurrency that a leaving environment still uses counts as on-demand until it ends, and a new one
whose concurrency running on-demand invocations still hold waits for them to end.

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
        "pc_retiring",
        "pc_waiting",
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
        #: Busy provisioned environments beyond the provisioned concurrency (it was lowered while they
        #: ran): each leaves when its invocation ends, counted as on demand until then.
        self.pc_retiring = 0
        #: Provisioned environments allocated but waiting for concurrency of the reservation that
        #: on-demand invocations still hold (without a reservation the account pool keeps the count).
        self.pc_waiting = 0
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
        waiting = self._unwait(self.pc)  # decided again below, against the new cap
        self.pool.reserve(old, new, self.pc)
        if old is None:
            self.pool.unreserved_in_use -= self.on_demand_in_use
        elif new is None:
            self.pool.unreserved_in_use += self.on_demand_in_use
        self.on_demand_cap = None if new is None else new - self.pc
        self._join(waiting)
        self.pool.settle()  # on-demand invocations may have left the unreserved pool

    def provision(self, more: int, now: float) -> None:
        """``more`` provisioned environments are allocated (PutProvisionedConcurrencyConfig raised it).

        They are initialised and count in the environments alive from ``now``. Their concurrency
        leaves the reservation's on-demand share (or the account's unreserved pool); where running
        on-demand invocations still hold it, as many of them wait until those end.
        """
        self.pc += more
        self.post((now, float(more)))
        if self.on_demand_cap is None:
            self.pool.provision(more)
        else:
            self.on_demand_cap -= more
        self._join(more)

    def deprovision(self, fewer: int, now: float) -> None:
        """Provisioned concurrency lowered by ``fewer``: free environments go now, busy ones later.

        Environments still waiting for concurrency go first, then free ones reset by a timeout, then
        free initialised ones; the rest are busy and each leaves when its invocation ends, holding
        on-demand concurrency until then (the reservation's share, or the unreserved pool's).
        """
        self.pc -= fewer
        pool = self.pool
        if self.on_demand_cap is None:
            pool.provision(-fewer)
        else:
            self.on_demand_cap += fewer
        left = fewer - self._unwait(fewer)
        reset = min(left, self.pc_reset)
        self.pc_reset -= reset
        ready = min(left - reset, self.pc_ready)
        self.pc_ready -= ready
        left -= reset + ready
        if fewer - left:
            self.post((now, -float(fewer - left)))
        if left:
            self.pc_retiring += left
            self.on_demand_in_use += left
            if self.on_demand_cap is None:
                pool.unreserved_in_use += left
        if self.on_demand_cap is None:
            pool.settle()
        else:
            self._settle()

    def _join(self, count: int) -> None:
        """``count`` allocated provisioned environments become free, except those that must wait."""
        if self.on_demand_cap is None:
            owed = self.pool.owe(self._one_ready, count)
        else:
            owed = min(count, max(0, self.on_demand_in_use - self.pc_waiting - self.on_demand_cap))
            self.pc_waiting += owed
        self.pc_ready += count - owed

    def _unwait(self, most: int) -> int:
        """Take back up to ``most`` provisioned environments waiting for concurrency: how many."""
        taken = self.pool.withdraw(self._one_ready, most)
        own = min(most - taken, self.pc_waiting)
        self.pc_waiting -= own
        return taken + own

    def _one_ready(self) -> None:
        """A provisioned environment that waited in the account pool is free."""
        self.pc_ready += 1

    def _settle(self) -> None:
        """Free provisioned environments waiting for the reservation, as far as it has room for them."""
        cap = self.on_demand_cap
        assert cap is not None
        while self.pc_waiting and self.on_demand_in_use - self.pc_waiting < cap:
            self.pc_waiting -= 1
            self.pc_ready += 1

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
        self.stale_busy = self.on_demand_in_use - self.pc_retiring

    def release(self, now: float, kind: int, timed_out: bool) -> None:
        """End an invocation: its environment goes idle (reset, if it timed out)."""
        reset = timed_out and self.reset_on_timeout
        if kind in (_PC, _PC_REINIT):
            if self.pc_retiring:
                # Provisioned concurrency was lowered while it ran (environments are interchangeable).
                self.pc_retiring -= 1
                self.post((now, -1.0))
                self.on_demand_in_use -= 1
                if self.on_demand_cap is None:
                    self.pool.unreserved_in_use -= 1
                    self.pool.settle()
                else:
                    self._settle()
            elif reset:
                self.pc_reset += 1
            else:
                self.pc_ready += 1
            return
        self.on_demand_in_use -= 1
        if self.on_demand_cap is None:
            pool = self.pool
            pool.unreserved_in_use -= 1
            if pool.waiting:
                pool.settle()
        elif self.pc_waiting:
            self._settle()
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
