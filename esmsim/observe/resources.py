"""Per function, per mapping, per trigger and per shard: what each did (for scenarios with several)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from esmsim.events import RecordState
from esmsim.observe.levels import LevelStats
from esmsim.observe.recorder import Observed
from esmsim.observe.timeseries import counter_series, shard_samples
from esmsim.scenario.mappings import KafkaMapping, MqMapping, StreamMapping
from esmsim.scenario.scenario import Scenario
from esmsim.scenario.sources import MQ_ENGINES


def _age_max(observed: Observed, mappings: list[int]) -> float:
    ages = observed.mapping_age_max[mappings] if mappings else np.empty(0)
    return float(np.nanmax(ages)) if ages.size and not np.isnan(ages).all() else math.nan


def _filtered(observed: Observed, mapping: int, source: str) -> int:
    """Records mapping ``mapping``'s filter rejected (a queue's: a filter has its queue to itself)."""
    outcomes = observed.outcomes
    return sum(
        int(outcomes.by_state[k][RecordState.FILTERED])
        for k, c in enumerate(outcomes.consumers)
        if c.mapping == mapping or (c.mapping == -1 and c.source == source and c.kind != "unread")
    )


def _highest(limits: list[int | None]) -> int | None:
    """The highest of a cap's values over the run's stages (None, no cap, if any stage had none)."""
    return None if any(v is None for v in limits) else max(v for v in limits if v is not None)


def _stages(scenario: Scenario) -> list[Scenario]:
    """The system as it starts and after each live change."""
    return [scenario, *(stage for _, stage in scenario.stages)]


def _mapping_limit(s: Scenario, i: int) -> int | None:
    """Most concurrent invocations mapping ``i`` of system ``s`` may run (its own cap; None: none)."""
    m = s.mappings[i]
    if isinstance(m, StreamMapping):
        return s.sources[m.source].shards * m.parallelization_factor  # type: ignore[union-attr]
    if isinstance(m, MqMapping):
        return m.consumers or MQ_ENGINES[getattr(s.sources[m.source], "engine", "activemq")]
    if m.provisioned_pollers is not None:  # provisioned mode: the maximum event pollers' invokes
        return m.provisioned_pollers.maximum * m.provisioned_pollers.invokes_per_poller
    return m.maximum_concurrency


def resources(scenario: Scenario, observed: Observed) -> pd.DataFrame:
    """One row per function, mapping, trigger and shard."""
    rows: list[dict[str, Any]] = []
    layout = observed.layout

    def usage(
        kind: str,
        name: str,
        totals: dict[str, np.ndarray],
        i: int,
        limit: int | None,
        conc: LevelStats,
        mappings: list[int],
    ) -> dict[str, Any]:
        return {
            "kind": kind,
            "name": name,
            "invocations": int(totals["invocations"][i]),
            "invocation_errors": int(totals["errors"][i]),
            "throttles": int(totals["throttles"][i]),
            "cold_starts": int(totals["cold_starts"][i]),
            "concurrency_max": conc.maximum,
            "concurrency_mean": conc.mean,
            "limit": limit,
            "iterator_age_max_s": _age_max(observed, mappings) / 1000.0,
        }

    for f, name in enumerate(layout.functions):
        feeding = [i for i, fn in enumerate(layout.mapping_function) if fn == f]
        rows.append(
            usage(
                "function",
                name,
                observed.function_totals,
                f,
                _highest([s.functions[name].reserved_concurrency for s in _stages(scenario)]),
                observed.concurrency_by_function[f],
                feeding,
            )
        )
    nm = len(scenario.mappings)
    by_consumer = {c.mapping: k for k, c in enumerate(observed.outcomes.consumers) if c.kind == "async"}
    for i, label in enumerate(layout.mappings):
        if i >= nm:  # a trigger: invoked asynchronously, its events counted on their own
            row = usage(
                "trigger", label, observed.mapping_totals, i, None, observed.concurrency_by_mapping[i], [i]
            )
            k = by_consumer[i]
            states = observed.outcomes.by_state[k]
            row.update(
                {
                    "records": int(observed.outcomes.arrived[k]),
                    "records_succeeded": int(states[RecordState.SUCCEEDED]),
                    "records_dlq": int(states[RecordState.DLQ]),
                    "records_dropped": int(states[RecordState.DROPPED]),
                }
            )
            rows.append(row)
            continue
        m = scenario.mappings[i]
        # The highest cap the run had: live changes may raise a mapping's (docs/model.md §14).
        limit = _highest([_mapping_limit(s, i) for s in _stages(scenario)])
        if isinstance(m, MqMapping):  # its consumers: the cap whatever the function's concurrency
            consumers = limit
            totals, level = observed.mapping_totals, observed.concurrency_by_mapping[i]
            row = usage("mapping", label, totals, i, consumers, level, [i])
            row["consumers"] = consumers
            row.update(_records(observed, scenario, i, m.source))
            row["records_filtered"] = _filtered(observed, i, m.source)
            rows.append(row)
            continue
        queue = scenario.sources[m.source]
        fifo_groups = None
        if not isinstance(m, StreamMapping) and getattr(queue, "fifo", False):
            # A FIFO queue's mapping runs at most one batch per message group (docs/model.md §2).
            traffics = [queue.traffic, *(stage.sources[m.source].traffic for _, stage in scenario.stages)]
            fifo_groups = max(getattr(t, "message_groups", None) or 1 for t in traffics)
            limit = fifo_groups if limit is None else min(limit, fifo_groups)
        row = usage(
            "mapping", label, observed.mapping_totals, i, limit, observed.concurrency_by_mapping[i], [i]
        )
        if not isinstance(m, StreamMapping) and m.provisioned_pollers is not None:
            row["event_poller_hours"] = observed.totals.get(f"event_poller_s:{i}", 0.0) / 3600.0
        if fifo_groups is not None:
            row["message_groups"] = fifo_groups
        if isinstance(m, KafkaMapping):  # one batch per partition; pollers' EPU-hours (provisioned)
            row["partitions"] = limit
            row["kafka_pollers_max"] = observed.levels[f"kafka_pollers:{i}"].maximum
            row["epu_hours"] = observed.totals.get(f"kafka_epu_s:{i}", 0.0) / 3600.0
        row.update(_records(observed, scenario, i, m.source))
        row["records_filtered"] = _filtered(observed, i, m.source)
        rows.append(row)
    for consumer in observed.outcomes.consumers:
        if consumer.kind != "stream":
            continue
        samples = shard_samples(observed, consumer.label)
        records = observed.tallies.get(f"shard_records:{consumer.mapping}", np.zeros(samples.shape[1]))
        for shard in range(samples.shape[1]):
            backlog = samples[:, shard]
            refused = counter_series(
                observed, "ReadProvisionedThroughputExceeded", f"{consumer.label}#{shard}"
            )
            rows.append(
                {
                    "kind": "shard",
                    "name": f"mappings[{consumer.mapping}] shard {shard}",
                    "records": int(records[shard]),
                    "backlog_max": float(backlog.max()) if backlog.size else 0.0,
                    "backlog_end": float(backlog[-1]) if backlog.size else 0.0,
                    "read_throttles": int(refused.sum()),
                }
            )
    return pd.DataFrame(rows)


def _records(observed: Observed, scenario: Scenario, i: int, source: str) -> dict[str, int]:
    """What became of the records mapping ``i`` consumed.

    A stream mapping keeps its own books; a queue's mapping has its queue's when it is the queue's
    only mapping (several mappings share one queue's messages: then none).
    """
    readers = [k for k, m in enumerate(scenario.mappings) if m.source == source]
    consumers = observed.outcomes.consumers
    k = next((n for n, c in enumerate(consumers) if c.mapping == i and c.kind == "stream"), None)
    if k is None and readers == [i]:
        k = next((n for n, c in enumerate(consumers) if c.source == source and c.kind == "queue"), None)
    if k is None:
        return {}
    states = observed.outcomes.by_state[k]
    return {
        "records": int(observed.outcomes.arrived[k]),
        "records_succeeded": int(states[RecordState.SUCCEEDED]),
        "records_dlq": int(states[RecordState.DLQ]),
        "records_dropped": int(states[RecordState.DROPPED]),
        "records_expired": int(states[RecordState.EXPIRED]),
        "records_in_flight_end": int(states[RecordState.WAITING] + states[RecordState.IN_FLIGHT]),
    }
