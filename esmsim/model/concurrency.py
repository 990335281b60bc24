"""Account-level limits: the unreserved pool, the scaling-rate buckets and the invoke rate quota.

Limits here change during a run only through their owners (a function's in-use count, a bucket's
tokens), so plain counters serve; no ``simpy.Resource`` is involved. Admission never waits: AWS
answers an invoke that exceeds a limit with a 429 at once, and the caller decides how to retry
(docs/model.md §6).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

from esmsim.scenario.functions import Account


class TokenBucket:
    """Capacity ``capacity``, refilled continuously at ``refill_per_s``, never above capacity.

    Since November 2023 each function may add 1,000 environments per 10 s, refilled continuously
    with no accumulation beyond 1,000 (AWS's scaling-behavior page): capacity 1,000, 100 tokens/s.
    """

    __slots__ = ("_at", "_tokens", "capacity", "refill_per_s")

    def __init__(self, capacity: float, refill_per_s: float) -> None:
        self.capacity = capacity
        self.refill_per_s = refill_per_s
        self._tokens = capacity
        self._at = 0.0

    def take(self, now: float) -> bool:
        """Spend one token if there is one."""
        tokens = min(self.capacity, self._tokens + (now - self._at) * self.refill_per_s)
        self._at = now
        if tokens >= 1.0:
            self._tokens = tokens - 1.0
            return True
        self._tokens = tokens
        return False


class RateWindow:
    """At most ``limit`` admissions in any window of ``window_s`` seconds (a sliding window).

    AWS's invocation quota is a request rate (10 x the account's concurrency per second). A token
    bucket would let twice the rate through in the second after an idle spell; a sliding window
    never does: an admission is refused while the ``limit``-th most recent one lies within the
    last ``window_s``.
    """

    __slots__ = ("_i", "_ring", "window_s")

    def __init__(self, limit: float, window_s: float = 1.0) -> None:
        self._ring = [-math.inf] * max(1, int(limit))  # the last `limit` admission times, oldest at _i
        self._i = 0
        self.window_s = window_s

    def allows(self, now: float) -> bool:
        """Whether an admission at ``now`` stays within the limit (nothing is spent)."""
        return self._ring[self._i] <= now - self.window_s

    def admit(self, now: float) -> None:
        """Count an admission at ``now`` (after :meth:`allows` said yes)."""
        ring = self._ring
        i = self._i
        ring[i] = now
        i += 1
        self._i = 0 if i == len(ring) else i


class AccountPool:
    """What all functions of the account share.

    Unreserved concurrency, the invoke rate quota and (before November 2023) the burst bucket.
    """

    def __init__(self, account: Account, reserved_total: int, provisioned_unreserved: int) -> None:
        self.limit = account.concurrency_limit
        # Provisioned concurrency of functions without a reservation is carved out of the unreserved
        # pool: it is theirs whether busy or not.
        self.reserved_total = reserved_total
        self.provisioned_unreserved = provisioned_unreserved
        self.unreserved_limit = account.concurrency_limit - reserved_total - provisioned_unreserved
        self.unreserved_in_use = 0
        #: Provisioned environments of functions without a reservation, allocated during the run but
        #: waiting for the unreserved concurrency that running on-demand invocations still hold: one
        #: callback each (it frees the environment), oldest first.
        self.waiting: deque[Callable[[], None]] = deque()
        self.legacy_bucket = (
            TokenBucket(account.legacy_burst, account.legacy_refill) if account.scaling == "legacy" else None
        )
        self.rate = RateWindow(account.invocation_rate)
        self.account = account

    def reserve(self, old: int | None, new: int | None, provisioned: int) -> None:
        """A function's reservation changes from ``old`` to ``new`` (None: none) during the run."""
        self.reserved_total += (new or 0) - (old or 0)
        if (old is None) != (new is None):  # its provisioned concurrency moves in or out of the pool
            self.provisioned_unreserved += provisioned if new is None else -provisioned
        self.unreserved_limit = self.limit - self.reserved_total - self.provisioned_unreserved

    def provision(self, delta: int) -> None:
        """Provisioned concurrency of a function without a reservation changes by ``delta`` during the run."""
        self.provisioned_unreserved += delta
        self.unreserved_limit = self.limit - self.reserved_total - self.provisioned_unreserved

    def owe(self, ready: Callable[[], None], count: int) -> int:
        """How many of ``count`` new provisioned environments must wait for concurrency to come free.

        Their concurrency leaves the unreserved pool now, but on-demand invocations running in it may
        still hold it: as many environments as the pool is over its limit wait, each freed by
        ``ready`` once an invocation ends (:meth:`settle`), so the account limit holds throughout.
        """
        owed = min(count, max(0, self.unreserved_in_use - len(self.waiting) - self.unreserved_limit))
        self.waiting.extend([ready] * owed)
        return owed

    def withdraw(self, ready: Callable[[], None], most: int) -> int:
        """Take back up to ``most`` waiting environments of one function (``ready`` is its callback)."""
        kept: deque[Callable[[], None]] = deque()
        taken = 0
        for entry in self.waiting:
            if taken < most and entry == ready:
                taken += 1
            else:
                kept.append(entry)
        self.waiting = kept
        return taken

    def settle(self) -> None:
        """Free waiting provisioned environments, oldest first, as far as the pool has room for them."""
        waiting = self.waiting
        while waiting and self.unreserved_in_use - len(waiting) < self.unreserved_limit:
            waiting.popleft()()

    def function_bucket(self) -> TokenBucket | None:
        """A new per-function scaling bucket (2023 model), or None when the account bucket rules."""
        if self.legacy_bucket is not None:
            return None
        a = self.account
        return TokenBucket(
            a.function_scale_environments, a.function_scale_environments / a.function_scale_period
        )
