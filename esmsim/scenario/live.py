"""Schema of live changes: keys set on a running system at a time (``changes:``, docs/model.md §14).

A change uses the dotted key paths of ``--set`` (``mappings[0].enabled``,
``functions.orders.reserved_concurrency``); the scenario is validated again, as AWS would validate
the update, with every change up to it applied. Which keys may change live is decided here: what
AWS lets an update change and esmsim's runtime can follow.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from esmsim.errors import Path
from esmsim.scenario.aws_names import ENTITIES, setting_of
from esmsim.scenario.base import Frozen, Seconds

#: Mapping keys a change may set (UpdateEventSourceMapping), function keys (UpdateFunction-
#: Configuration, PutFunctionConcurrency, PutProvisionedConcurrencyConfig, PutFunctionEventInvoke-
#: Config; ``memory_mb``, ``duration``, ``per_record``, ``cold_start`` and ``errors`` stand for a
#: deploy) and queue keys (SetQueueAttributes) that esmsim applies to a running mapping, function or
#: queue.
LIVE_MAPPING_KEYS = (
    "enabled",
    "batch_size",
    "batching_window",
    "maximum_concurrency",
    "provisioned_pollers",
    "report_batch_item_failures",
    "maximum_retry_attempts",
    "maximum_record_age",
    "bisect_batch_on_function_error",
    "on_failure",
    "parallelization_factor",
    "filter",
)
LIVE_FUNCTION_KEYS = (
    "reserved_concurrency",
    "provisioned_concurrency",
    "memory_mb",
    "timeout",
    "duration",
    "per_record",
    "cold_start",
    "errors",
    "async",
)
LIVE_SOURCE_KEYS = ("visibility_timeout", "max_receive_count", "traffic", "shards")
#: Traffic keys that hold only at time 0 (the records already in the source): no change sets them.
START_ONLY_TRAFFIC_KEYS = ("initial_backlog", "backlog_span")
#: Keys AWS does not let an update change: a mapping's source and starting position, a source's
#: type, a queue's FIFO-ness.
FIXED_KEYS = {
    ("mappings", "source"),
    ("mappings", "source_type"),
    ("mappings", "starting_position"),
    ("mappings", "starting_position_timestamp"),
    ("sources", "type"),
    ("sources", "fifo"),
}


#: Source keys a service manages itself, by source type: no update sets them.
MANAGED_KEYS = {
    ("dynamodb", "shards"): "DynamoDB manages a stream's shards (they follow the table's partitions): "
    "no update sets them",
}


class LiveChange(Frozen):
    """Keys set at a time during the run: ``{at: 10m, set: {mappings[0].enabled: false}}``."""

    at: Seconds = Field(ge=0, description="When the change is made (it takes effect update_delay later).")
    set: dict[str, Any] = Field(
        min_length=1, description="Dotted key paths, as --set takes them, to their new values."
    )


def live_key_problem(path: Path, value: Any = None) -> str | None:
    """Why ``path`` (set to ``value``) cannot change during a run, or None when it can."""
    if len(path) < 3 or path[0] not in ("mappings", "functions", "sources"):
        return "only a mapping's, function's or source's settings change during a run"
    section, relative = str(path[0]), path[2:]
    key = setting_of(ENTITIES[section], relative) or str(relative[0])
    if key == "async_":
        key = "async"
    if (section, key) in FIXED_KEYS:
        owner = {"mappings": "a mapping's", "sources": "a source's"}[section]
        return f"AWS does not let an update change {owner} {key}"
    allowed = {"mappings": LIVE_MAPPING_KEYS, "functions": LIVE_FUNCTION_KEYS, "sources": LIVE_SOURCE_KEYS}[
        section
    ]
    if key not in allowed:
        supported = ", ".join(f"{section}.{k}" for k in allowed) or "none yet"
        return f"esmsim does not change {section} {key} during a run (supported: {supported})"
    if key == "traffic":
        given = relative[1:2] if len(relative) > 1 else tuple(value) if isinstance(value, dict) else ()
        if "attributes" in given:
            return (
                "traffic.attributes hold for the whole run (a record's attributes are drawn as it is "
                "sent and filters match them): a change during the run cannot set them"
            )
        for start_only in START_ONLY_TRAFFIC_KEYS:
            if start_only in given:
                return (
                    f"traffic.{start_only} describes the records in the source at time 0: a change "
                    "during the run cannot set it"
                )
    return None


def managed_key_problem(source_type: str, path: Path) -> str | None:
    """Why a source of ``source_type`` never takes ``path`` (``sources.NAME.key``) in an update, or None."""
    key = setting_of(ENTITIES["sources"], path[2:]) or str(path[2])
    return MANAGED_KEYS.get((source_type, key))
