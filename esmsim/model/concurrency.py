"""Account-level concurrency: the unreserved pool and the scaling-rate buckets (docs/model.md §6).

Limits here change during a run only through their owners (a function's in-use count, the bucket's
tokens), so plain counters serve; no ``simpy.Resource`` is involved. Acquiring never waits: AWS
answers an invoke that exceeds a limit with a 429 at once, and the caller decides how to retry.
"""

from __future__ import annotations

from esmsim.scenario.functions import Account

# Why an invoke was throttled (a 429), in the order they are checked.
RESERVED_LIMIT = 1  # ReservedFunctionConcurrentInvocationLimitExceeded
ACCOUNT_LIMIT = 2  # ConcurrentInvocationLimitExceeded
SCALING_RATE = 3  # the function (or, legacy, the account) may not add environments this fast
THROTTLE_REASONS = {
    RESERVED_LIMIT: "ReservedFunctionConcurrentInvocationLimitExceeded",
    ACCOUNT_LIMIT: "ConcurrentInvocationLimitExceeded",
    SCALING_RATE: "ScalingRateExceeded",
}


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


class AccountPool:
    """What all functions of the account share: unreserved concurrency, and the legacy burst bucket."""

    def __init__(self, account: Account, reserved_total: int, provisioned_unreserved: int) -> None:
        self.limit = account.concurrency_limit
        # Provisioned concurrency of functions without a reservation is carved out of the unreserved
        # pool: it is theirs whether busy or not.
        self.unreserved_limit = account.concurrency_limit - reserved_total - provisioned_unreserved
        self.unreserved_in_use = 0
        self.legacy_bucket = (
            TokenBucket(account.legacy_burst, account.legacy_refill) if account.scaling == "legacy" else None
        )
        self.account = account

    def function_bucket(self) -> TokenBucket | None:
        """A new per-function scaling bucket (2023 model), or None when the account bucket rules."""
        if self.legacy_bucket is not None:
            return None
        a = self.account
        return TokenBucket(
            a.function_scale_environments, a.function_scale_environments / a.function_scale_period
        )
