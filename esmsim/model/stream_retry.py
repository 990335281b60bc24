"""Pure decisions of a stream mapping's error handling: retry spacing, splits, checkpoints, limits."""

from __future__ import annotations

import numpy as np

from esmsim.model.backoff import backoff
from esmsim.scenario.mappings import RetryBackoff


def retry_delay(attempt: int, params: RetryBackoff, uniform: float = 0.5) -> float:
    """Wait before retry ``attempt`` (1 for the first): ``initial * multiplier**(attempt-1)``, capped.

    ``uniform`` in [0, 1) applies the jitter: 0.5 gives the nominal delay.
    """
    base = backoff(attempt, params.initial, params.multiplier, params.maximum)
    return base * (1.0 + params.jitter * (2.0 * uniform - 1.0))


def retries_exhausted(failures: int, maximum_retry_attempts: int) -> bool:
    """Whether a batch that has failed ``failures`` times is discarded (-1: never, by retries)."""
    return maximum_retry_attempts >= 0 and failures > maximum_retry_attempts


def bisect(start: int, end: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Split the batch ``[start, end)`` into two halves, the first no shorter than the second."""
    middle = start + (end - start + 1) // 2
    return (start, middle), (middle, end)


def checkpoint(failed: np.ndarray) -> int:
    """Where a stream resumes after a partial batch response: the lowest failed record's position.

    Lambda checkpoints at the lowest reported sequence number; the records before it are done and
    everything from it on is retried (records after it that succeeded are processed again).
    """
    hits = np.flatnonzero(failed)
    return int(hits[0]) if hits.size else int(failed.size)
