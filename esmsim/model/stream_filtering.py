"""Event filtering on a stream mapping's lanes: which records of a batch's range are sent.

A stream mapping reads every record (GetRecords, read throughput and IteratorAge do not change);
records its filter rejects are skipped: they never count toward ``batch_size`` or the payload, and
they end FILTERED when the checkpoint passes them, with the batch whose range they lie in or, ahead
of any matching record, as soon as the lane reaches them (docs/model.md §15). These are the pure
parts of that: the records' keys and positions counted in matching records.
"""

from __future__ import annotations

import numpy as np

#: A record's key for the filter: its shard in the high bits, its sequence number (shard log
#: position) in the low ones, so it is unique within the source and the same on every read.
_SEQ_BITS = 40


def filter_keys(shard: int, seq: np.ndarray) -> np.ndarray:
    """The filter keys of records ``seq`` of ``shard``."""
    return (np.int64(shard) << np.int64(_SEQ_BITS)) + seq.astype(np.int64, copy=False)


def matching_offset(match: np.ndarray, k: int) -> int:
    """The offset just past the ``k``-th matching record (``len(match)`` if fewer match; 0 for k=0)."""
    if k <= 0:
        return 0
    hits = np.flatnonzero(match)
    return int(hits[k - 1]) + 1 if hits.shape[0] >= k else int(match.shape[0])


def first_failed_offset(match: np.ndarray, done: int) -> int:
    """Where a partial batch response resumes: the offset of matching record number ``done``.

    ``done`` counts the leading matching records that succeeded (the checkpoint of the records
    sent); every record before the first failed one, filtered or not, is passed.
    """
    hits = np.flatnonzero(match)
    return int(hits[done]) if done < hits.shape[0] else int(match.shape[0])


def bisect_matching(start: int, match: np.ndarray) -> tuple[tuple[int, int], tuple[int, int]]:
    """Split a batch at ``start`` with records ``match`` in two halves of its matching records.

    The first half has the more of them when their number is odd, as an unfiltered split has.
    """
    hits = np.flatnonzero(match)
    n = hits.shape[0]
    middle = start + int(hits[(n + 1) // 2 - 1]) + 1
    return (start, middle), (middle, start + int(match.shape[0]))
