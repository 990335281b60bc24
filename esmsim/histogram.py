"""Mergeable latency histograms on fixed logarithmic buckets (1 % wide, 1 µs to about 107 days).

Exact percentiles need every sample; a run keeps them (numpy arrays) and reports exact summary
percentiles. To combine runs (sweep replications) or to report a percentile per minute, a
histogram is enough: every histogram shares the same bucket edges, so merging is adding counts,
and a percentile read from it is within half a bucket (0.5 %) of the exact one.
"""

from __future__ import annotations

import math

import numpy as np

#: Relative width of a bucket.
GROWTH = 1.01
#: Smallest latency resolved; anything below counts in bucket 0.
LOW_S = 1e-6
#: Number of buckets: from 1 µs up to LOW_S * GROWTH**BUCKETS (about 9.2e6 s).
BUCKETS = 3000
_LOG_GROWTH = math.log(GROWTH)


def bucket_of(values: np.ndarray) -> np.ndarray:
    """Bucket index of each value (clipped to the first and last bucket)."""
    # In place on one scratch array: this runs over every record of a run.
    x = np.maximum(values, LOW_S)  # also maps NaN-free negatives and zeros to bucket 0
    np.log(x, out=x)
    x -= math.log(LOW_S)
    x *= 1.0 / _LOG_GROWTH
    idx: np.ndarray = x.astype(np.int64)  # x >= 0, so truncation is floor
    np.minimum(idx, BUCKETS - 1, out=idx)
    return idx


def bucket_value(idx: np.ndarray) -> np.ndarray:
    """The value a bucket stands for: its geometric middle."""
    return np.asarray(LOW_S * GROWTH ** (np.asarray(idx, dtype=float) + 0.5))


def histogram(values: np.ndarray) -> np.ndarray:
    """Counts per bucket of ``values``."""
    return np.bincount(bucket_of(values), minlength=BUCKETS)


def percentiles(counts: np.ndarray, qs: list[float]) -> np.ndarray:
    """Percentiles (0-100) of a histogram along its last axis (NaN where it is empty).

    Works on one histogram or on a stack of them (one row per minute, say).
    """
    counts = np.asarray(counts, dtype=float)
    cum = np.cumsum(counts, axis=-1)
    total = cum[..., -1:]
    out = []
    for q in qs:
        # The first bucket whose cumulative count reaches the rank q% of the total.
        rank = np.maximum(total * q / 100.0, 1e-12)
        idx = (cum < rank).sum(axis=-1)
        value = bucket_value(np.minimum(idx, BUCKETS - 1))
        out.append(np.where(total[..., 0] > 0, value, np.nan))
    return np.stack(out, axis=-1)


def per_bin(values: np.ndarray, bins: np.ndarray, nbins: int) -> np.ndarray:
    """One histogram per bin: ``result[b]`` counts the values whose bin is ``b``."""
    key = bins.astype(np.int64) * BUCKETS + bucket_of(values)
    return np.bincount(key, minlength=nbins * BUCKETS).reshape(nbins, BUCKETS)
