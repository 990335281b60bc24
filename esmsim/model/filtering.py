"""Event filtering: which records a mapping's filter lets through (AWS FilterCriteria).

A record matches or not for a reason that belongs to the record, not to the moment it is read:
two reads of one record (a retry, a second mapping with the same pattern, a live change back)
agree. So the draws behind a filter are not taken from a random stream in read order; they are a
hash of the record's key (an integer unique within its source), the run's seed and replication,
and a salt naming what is drawn:

- a traffic attribute (``traffic.attributes.NAME``) is drawn per record from its shares, salted by
  the source and the attribute's name, so every mapping on the source sees the same value;
- ``match_rate`` is drawn per record salted by the source and the mapping's index, so two mappings
  with a match rate filter independently.

Records that do not match never reach the function; what the source does with them (SQS deletes
them, streams and Kafka step past them, MQ acknowledges them) is the caller's part (docs/model.md §15).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from esmsim.rng import Streams
from esmsim.scenario.mappings import EventFilter

if TYPE_CHECKING:
    from esmsim.scenario.scenario import Scenario

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_TO_UNIT = 1.0 / float(1 << 53)


def _salt(*parts: object) -> np.uint64:
    return np.uint64(zlib.crc32("\x1f".join(str(p) for p in parts).encode("utf-8")))


def unit_draws(keys: np.ndarray, salt: np.uint64) -> np.ndarray:
    """One uniform draw in [0, 1) per key: splitmix64 of ``key + salt`` (the same key, the same draw)."""
    with np.errstate(over="ignore"):
        z = keys.astype(np.uint64, copy=False) + salt * _GOLDEN + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * _TO_UNIT


class RecordFilter:
    """A mapping's filter on one source: :meth:`matches` says which records it lets through."""

    def __init__(
        self,
        spec: EventFilter,
        attributes: Mapping[str, Mapping[str, float]],
        *,
        source: str,
        mapping: int,
        streams: Streams,
    ) -> None:
        self.spec = spec
        run = (streams.seed, streams.replication, source)
        self._rate: tuple[float, np.uint64] | None = None
        if spec.match_rate is not None:
            self._rate = (spec.match_rate, _salt(*run, "match_rate", mapping))
        # Per pattern, per attribute: the salt and the [low, high) intervals of the unit draw whose
        # value matches. An attribute's salt does not depend on the pattern: a record has one value.
        self._patterns: list[list[tuple[np.uint64, list[tuple[float, float]]]]] = []
        for _, pattern in spec.named_patterns():
            terms = []
            for name, wanted in pattern.items():
                edges, low = [], 0.0
                for value, share in attributes[name].items():
                    if value in wanted:
                        edges.append((low, low + share))
                    low += share
                terms.append((_salt(*run, "attribute", name), edges))
            self._patterns.append(terms)

    def matches(self, keys: np.ndarray) -> np.ndarray:
        """A boolean per record key: True where the record matches the filter."""
        keep = np.ones(len(keys), dtype=bool)
        if self._rate is not None:
            rate, salt = self._rate
            keep &= unit_draws(keys, salt) < rate
        if not self._patterns:
            return keep
        draws: dict[np.uint64, np.ndarray] = {}  # one draw per attribute, shared by the patterns
        any_pattern = np.zeros(len(keys), dtype=bool)
        for terms in self._patterns:
            every_term = np.ones(len(keys), dtype=bool)
            for salt, edges in terms:
                if salt not in draws:
                    draws[salt] = unit_draws(keys, salt)
                u = draws[salt]
                hit = np.zeros(len(keys), dtype=bool)
                for low, high in edges:
                    hit |= (u >= low) & (u < high)
                every_term &= hit
            any_pattern |= every_term
        return keep & any_pattern


def record_filter(
    spec: EventFilter | None,
    attributes: Mapping[str, Mapping[str, float]],
    *,
    source: str,
    mapping: int,
    streams: Streams,
) -> RecordFilter | None:
    """The filter of mapping ``mapping`` on ``source``, or None when it has none (every record matches)."""
    if spec is None:
        return None
    return RecordFilter(spec, attributes, source=source, mapping=mapping, streams=streams)


def attributes_of(scenario: Scenario, source: str) -> Mapping[str, Mapping[str, float]]:
    """The record attributes of ``source`` a pattern matches (its traffic's, as the run starts)."""
    return attributes_of_spec(scenario.sources[source])


def filter_timeline(
    scenario: Scenario, index: int, streams: Streams
) -> list[tuple[float, RecordFilter | None]] | None:
    """Mapping ``index``'s filter over the run: ``(effective_at, filter)``, the first from ``-inf``.

    None when the mapping has no filter at any stage of the run (every record matches throughout).
    """
    mapping = scenario.mappings[index]
    specs = [(-math.inf, mapping.filter)]
    specs += [(t, stage.mappings[index].filter) for t, stage in scenario.stages]
    if all(spec is None for _, spec in specs):
        return None
    attributes = attributes_of(scenario, mapping.source)
    return [
        (t, record_filter(spec, attributes, source=mapping.source, mapping=index, streams=streams))
        for t, spec in specs
    ]


def attributes_of_spec(source: object) -> Mapping[str, Mapping[str, float]]:
    """The record attributes of a source spec's traffic (none when it has no traffic)."""
    traffic = getattr(source, "traffic", None)
    return {} if traffic is None else traffic.attributes
