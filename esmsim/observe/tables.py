"""The public event tables of a traced run: invocations, throttles and records, with names.

Rows are the recorder's typed rows; here ids become names (functions, mappings, outcomes,
environment kinds, AWS's throttle reasons, record states), so notebooks, benchmarks and tests read
what happened without touching the model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from esmsim.events import EnvKind, Outcome, RecordState, ThrottleReason
from esmsim.observe.outcomes import LATENCY_PARTS
from esmsim.observe.recorder import Observed


def _names(codes: np.ndarray, names: list[str]) -> pd.Categorical[str]:
    """Integer codes as a categorical of names."""
    return pd.Categorical.from_codes(codes.astype(np.int64), categories=pd.Index(names))


def _changes_in_effect(times: np.ndarray, effective: Sequence[float]) -> np.ndarray:
    """How many live changes had taken effect at each time (0 before the first, docs/model.md §14)."""
    return np.searchsorted(np.asarray(effective, dtype=float), times, side="right").astype(np.int64)


def invocations(observed: Observed, changes: Sequence[float] = ()) -> pd.DataFrame:
    """One row per invocation, in start order.

    ``changes`` are the times the run's live changes took effect: the ``change`` column counts
    those in effect at each start (the stage of the system it ran in).
    """
    table = observed.invocation_table
    assert table is not None, "invocations are kept only for a traced run (simulate(..., trace=True))"
    layout = observed.layout
    env = table["environment"].astype(np.int64)
    order = np.argsort(table["start_s"], kind="stable")
    frame = pd.DataFrame(
        {
            "start_s": table["start_s"],
            "end_s": table["end_s"],
            "function": _names(table["function"], list(layout.functions)),
            "mapping": _names(table["mapping"], list(layout.mappings)),
            "records": table["records"].astype(np.int64),
            "bytes": table["bytes"],
            "outcome": _names(table["outcome"], [o.name.lower() for o in Outcome]),
            "environment": _names(env, [k.name.lower() for k in EnvKind]),
            "cold_start": np.isin(env, [int(k) for k in EnvKind if k.cold_start]),
            "init_s": table["init_s"],
            "run_s": table["run_s"],
            "memory_mb": table["memory_mb"].astype(np.int64),
            "iterator_age_s": table["iterator_age_s"],
            "shard": table["shard"].astype(np.int64),
            "lane": table["lane"].astype(np.int64),
            "change": _changes_in_effect(table["start_s"], changes),
        }
    )
    return frame.iloc[order].reset_index(drop=True)


def throttles(observed: Observed, changes: Sequence[float] = ()) -> pd.DataFrame:
    """One row per throttled invoke (a 429), with AWS's reason and the live changes in effect."""
    table = observed.throttle_table
    assert table is not None, "throttles are kept only for a traced run (simulate(..., trace=True))"
    layout = observed.layout
    reasons = ["", *(r.aws_name for r in ThrottleReason)]
    order = np.argsort(table["time_s"], kind="stable")
    frame = pd.DataFrame(
        {
            "time_s": table["time_s"],
            "function": _names(table["function"], list(layout.functions)),
            "mapping": _names(table["mapping"], list(layout.mappings)),
            "reason": _names(table["reason"], reasons).remove_unused_categories(),
            "change": _changes_in_effect(table["time_s"], changes),
        }
    )
    return frame.iloc[order].reset_index(drop=True)


def records(observed: Observed) -> pd.DataFrame:
    """One row per record and consumer: when it was sent, when it ended and how (NaN: still there).

    ``id`` is the record's position in its queue (in arrival order, the initial backlog first) or
    in its shard (``shard``); ``key`` is a stream record's partition key and ``stored_s`` when the
    stream stored it; ``receives`` an SQS message's receive count; ``poison_draw`` the record's
    fixed uniform draw (it is a poison record for a function whose ``poison_record_rate`` exceeds
    it; NaN when no function reading its source has poison records). Columns that do not apply
    hold -1 (NaN for times and draws). A succeeded record's latency is split into ``queued_s``,
    ``retry_s``, ``batching_s``, ``throttled_s``, ``init_s`` and ``handler_s``, which sum to
    ``done_s - sent_s`` (docs/model.md §7).
    """
    trace = observed.outcomes.trace
    assert trace is not None, "records are kept only for a traced run (simulate(..., trace=True))"
    consumers = observed.outcomes.consumers
    # Sorted by consumer (in layout order, as the categorical's codes sort), shard and id, with one
    # gather per column: a traced run's table is its largest object, so it is copied only once.
    order = np.lexsort((trace["id"], trace["shard"], trace["consumer"]))
    consumer = trace["consumer"][order].astype(np.int64)
    sources = list(dict.fromkeys(c.source for c in consumers))
    source_of = np.array([sources.index(c.source) for c in consumers], dtype=np.int64)
    return pd.DataFrame(
        {
            "source": _names(source_of[consumer] if consumer.size else consumer, sources),
            "consumer": _names(consumer, [c.label for c in consumers]),
            **{name: trace[name][order] for name in ("id", "sent_s", "done_s", "shard", "key", "stored_s")},
            "poison_draw": trace["poison_draw"][order],
            "state": _names(trace["state"][order], [s.name.lower() for s in RecordState]),
            "receives": trace["receives"][order],
            **{f"{part}_s": trace[f"{part}_s"][order] for part in LATENCY_PARTS},
        },
        copy=False,
    )
