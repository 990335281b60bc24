"""Random streams: one per run, purpose and entity, derived from the scenario seed.

Every random draw in a run comes from a stream named by its purpose (``arrivals``, ``sizes``,
``duration`` ...) and the entity it belongs to (a source or function name). A stream's state depends
only on ``(seed, replication, purpose, entity)``, never on the order in which the model asks for
streams or on other parameters. That is what gives common random numbers across sweep points: two
configurations of one replication see the same traffic, record for record, and differ only where
their configuration makes them differ. Nothing here touches numpy's or Python's global state.
"""

from __future__ import annotations

import zlib

import numpy as np


def _key(text: str) -> int:
    # crc32 is stable across processes and Python versions, unlike hash().
    return zlib.crc32(text.encode("utf-8"))


class Streams:
    """Factory of named, independent ``numpy.random.Generator`` streams for one run."""

    def __init__(self, seed: int, replication: int = 0) -> None:
        if seed < 0 or replication < 0:
            raise ValueError("seed and replication must be non-negative integers")
        self.seed = seed
        self.replication = replication

    def get(self, purpose: str, entity: str = "") -> np.random.Generator:
        """Return the generator for ``purpose`` of ``entity`` (a fresh one at the stream's start)."""
        entropy = [self.seed, self.replication, _key(purpose), _key(entity)]
        return np.random.default_rng(np.random.SeedSequence(entropy))
