"""Exponential back-off: the spacing of retries after throttles and, for streams, after errors."""

from __future__ import annotations

import math


def backoff(attempt: int, initial: float, multiplier: float, maximum: float) -> float:
    """``initial * multiplier**(attempt-1)`` capped at ``maximum``, without overflow for large attempts."""
    if initial <= 0 or maximum <= 0:  # log(0) below; a zero cap means no wait
        return 0.0
    if multiplier <= 1:
        return min(initial, maximum)
    log_delay = math.log(initial) + (attempt - 1) * math.log(multiplier)
    return maximum if log_delay >= math.log(maximum) else math.exp(log_delay)
