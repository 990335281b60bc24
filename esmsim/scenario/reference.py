"""The scenario key reference, generated from the schema so it cannot drift from it.

``python -m esmsim.scenario.reference > scenarios/README.md`` rewrites the reference; a test checks
that the committed file matches.
"""

from __future__ import annotations

import math
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from esmsim.dists import _Dist
from esmsim.scenario.aws_names import names_of
from esmsim.scenario.functions import Account, AsyncConfig, AsyncTarget, Function, FunctionErrors, Incident
from esmsim.scenario.live import LiveChange
from esmsim.scenario.mappings import (
    Destination,
    ErrorBackoff,
    EventFilter,
    KafkaDestination,
    KafkaMapping,
    KafkaProvisionedPollers,
    KafkaScaling,
    MqMapping,
    PollerScaling,
    Polling,
    ProvisionedPollers,
    RetryBackoff,
    SqsMapping,
    StreamMapping,
    ThrottleRetry,
)
from esmsim.scenario.pricing import Pricing
from esmsim.scenario.scenario import Scenario
from esmsim.scenario.sources import (
    DynamoDBSource,
    EventBridgeSource,
    KafkaSource,
    KinesisSource,
    MqSource,
    RatePoint,
    S3Source,
    SnsSource,
    SqsSource,
    SqsTraffic,
    StreamTraffic,
    Traffic,
)
from esmsim.scenario.triggers import Trigger
from esmsim.sweep.spec import Bound, Objective, Sweep, SweepPlot
from esmsim.units import format_duration, format_size

INTRO = """\
# Scenario files

A scenario is a YAML (or TOML) file describing sources, functions, the event source mappings
between them and the triggers of push sources (S3, SNS, EventBridge), and how long to simulate them.
Every key below has a default except where marked *required*.
Durations accept `500ms`, `30s`, `5m`, `2h`, `1d` or a number of seconds; rates `200/s`, `12000/min`
or a number per second; sizes `512B`, `2KB`, `1MB` (binary multiples, as AWS uses) or a number of
bytes. Distributions are `{dist: constant, value: 50ms}`, `{dist: exponential, mean: 1s}`,
`{dist: lognormal, median: 40ms, p99: 250ms}`, `{dist: uniform, low: 1KB, high: 4KB}`,
`{dist: empirical, values: [...]}`, or a bare value for a constant. Where AWS has a name for a key,
that name is accepted too (the AWS name column): flat (`BatchSize`) or nested as in CloudFormation
(`ScalingConfig.MaximumConcurrency` is `ScalingConfig: {MaximumConcurrency: 50}`). One setting
written in two spellings is an error. Ranges are AWS's; values AWS does not document are marked
*assumption* and explained in [docs/model.md](../docs/model.md).

Check a file with `esmsim validate FILE`; override any key on the command line with
`--set path.to.key=VALUE` (list indices allowed: `--set mappings[0].batch_size=100`; AWS spellings
replace the same value). `--set` changes functions and sources that exist; to add one, give it
whole (`--set 'functions.new={memory_mb: 512}'`).

## Sweeps

`esmsim sweep FILE` runs the scenario once per configuration and replication. The `sweep` section
names the keys to vary, as dotted paths with list indices (the same paths `--set` takes):

```yaml
sweep:
  grid:                                   # every combination: 4 x 3 = 12 configurations
    mappings[0].batch_size: [1, 10, 50, 200]
    mappings[0].maximum_concurrency: [5, 15, 50]
  zip:                                    # values that vary together, multiplying the grid
    functions.orders.memory_mb: [512, 1024, 2048]
    functions.orders.duration: [120ms, 60ms, 40ms]
  replications: 3                         # independent runs of each configuration
  objective:                              # the cheapest configuration that meets every constraint
    minimize: cost_per_million_records_usd
    constraints:
      latency_p99_s: {max: 2}
      records_dlq: {max: 0}
  plot: {x: "mappings[0].batch_size", series: "mappings[0].maximum_concurrency"}
```

Keys may use AWS's spellings (`mappings[0].ScalingConfig.MaximumConcurrency`); a grid list may not
repeat a value, nor two keys set one value. `esmsim validate FILE` checks the section and prints how
many configurations and runs it expands to. Every configuration is validated as a whole scenario
before anything runs; a bad one is named (`sweep point 7 (mappings[0].batch_size=20000, ...): ...`).
Replication `r` of every configuration uses the same random streams (common random numbers):
configurations are compared on identical traffic. Constraints and the minimised metric are means
over replications; metric names are the summary's keys (see the README). The outputs
(`runs.parquet`, `aggregate.parquet`, `manifest.json`, `latency.png`, `cost.png`, `pareto.png`) are
described in the README.

This reference is generated from the schema: `python -m esmsim.scenario.reference > scenarios/README.md`.
"""

SECTIONS: list[tuple[str, type[BaseModel]]] = [
    ("Top level", Scenario),
    ("`account`", Account),
    ("`functions.NAME`", Function),
    ("`functions.NAME.errors`", FunctionErrors),
    ("`functions.NAME.incidents[i]`", Incident),
    ("`functions.NAME.async`", AsyncConfig),
    ("`functions.NAME.async.on_success` / `on_failure` / `dead_letter_queue`", AsyncTarget),
    ("`sources.NAME` (`type: sqs`)", SqsSource),
    ("`sources.NAME` (`type: kinesis`)", KinesisSource),
    ("`sources.NAME` (`type: dynamodb`)", DynamoDBSource),
    ("`sources.NAME` (`type: kafka`)", KafkaSource),
    ("`sources.NAME` (`type: mq`)", MqSource),
    ("`sources.NAME` (`type: s3`)", S3Source),
    ("`sources.NAME` (`type: sns`)", SnsSource),
    ("`sources.NAME` (`type: eventbridge`)", EventBridgeSource),
    ("`sources.NAME.traffic`", Traffic),
    ("`sources.NAME.traffic` (streams: also)", StreamTraffic),
    ("`sources.NAME.traffic` (SQS FIFO queues: also)", SqsTraffic),
    ("`sources.NAME.traffic.schedule[i]`", RatePoint),
    ("`mappings[i]` (SQS)", SqsMapping),
    ("`mappings[i].poller_scaling` (SQS)", PollerScaling),
    ("`mappings[i].provisioned_pollers` (SQS provisioned mode)", ProvisionedPollers),
    ("`mappings[i].error_backoff` (SQS)", ErrorBackoff),
    ("`mappings[i].polling` (SQS)", Polling),
    ("`mappings[i]` (Kinesis, DynamoDB)", StreamMapping),
    ("`mappings[i].retry_backoff` (streams)", RetryBackoff),
    ("`mappings[i]` (Kafka)", KafkaMapping),
    ("`mappings[i].provisioned_pollers` (Kafka provisioned mode)", KafkaProvisionedPollers),
    ("`mappings[i].kafka_scaling` (Kafka)", KafkaScaling),
    ("`mappings[i].on_failure` (Kafka)", KafkaDestination),
    ("`mappings[i]` (Amazon MQ)", MqMapping),
    ("`mappings[i].on_failure` (streams)", Destination),
    ("`mappings[i].filter`", EventFilter),
    ("`mappings[i].throttle_retry`", ThrottleRetry),
    ("`triggers[i]`", Trigger),
    ("`changes[i]`", LiveChange),
    ("`sweep`", Sweep),
    ("`sweep.objective`", Objective),
    ("`sweep.objective.constraints.METRIC`", Bound),
    ("`sweep.plot`", SweepPlot),
    ("`pricing`", Pricing),
]

_UNIT_BY_VALIDATOR = {"parse_duration": "s", "_whole_seconds": "s", "parse_rate": "/s", "parse_size": "bytes"}


def _unit(info: FieldInfo) -> str | None:
    """``s``, ``/s`` or ``bytes`` when the field parses human units."""
    metadata = list(info.metadata)
    for member in get_args(info.annotation):  # `Seconds | None`: the units sit on the member
        if get_origin(member) is Annotated:
            metadata += get_args(member)[1:]
    for item in metadata:
        fn = getattr(item, "func", None)
        if fn is not None and fn.__name__ in _UNIT_BY_VALIDATOR:
            return _UNIT_BY_VALIDATOR[fn.__name__]
    return None


def _type_name(annotation: Any, unit: str | None = None) -> str:
    if unit is not None:
        name = {"s": "duration", "/s": "rate", "bytes": "size"}[unit]
        return f"{name} or null" if type(None) in get_args(annotation) else name
    origin = get_origin(annotation)
    if origin is Annotated:
        return _type_name(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        if all(isinstance(m, type) and issubclass(m, _Dist) for m in members):
            names = "distribution"
        else:
            names = " or ".join(_type_name(a) for a in members)
        return names + (" or null" if type(None) in get_args(annotation) else "")
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in get_args(annotation))
    if origin in (tuple, list):
        return f"list of {_type_name(get_args(annotation)[0])}"
    if origin is dict:
        values = get_args(annotation)[1]
        return "mapping" if values is Any else f"mapping of {_type_name(values)}"
    if isinstance(annotation, type):
        if issubclass(annotation, _Dist):
            return "distribution"
        if issubclass(annotation, BaseModel):
            return "mapping"
        return {"int": "integer", "float": "number", "str": "text", "bool": "true/false"}.get(
            annotation.__name__, annotation.__name__
        )
    return str(annotation)


def _range(info: FieldInfo, unit: str | None) -> str:
    parts = []
    for item in info.metadata:
        for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            value = getattr(item, attr, None)
            if value is not None and isinstance(item, annotated_types.BaseMetadata):
                shown = str(value) if isinstance(value, int) else _show(float(value), unit)
                parts.append(f"{sign} {shown}")
        if isinstance(item, annotated_types.MinLen) and item.min_length:
            parts.append(f"at least {item.min_length}")
    return ", ".join(parts)


def _show(value: float, unit: str | None) -> str:
    if unit == "s":
        return format_duration(value)
    if unit == "bytes":
        return format_size(value)
    if unit == "/s":
        return f"{value:.6g}/s"
    return f"{value:.10g}"


def _default(info: FieldInfo) -> str:
    if info.default is PydanticUndefined and info.default_factory is None:
        return "*required*"
    value = info.get_default(call_default_factory=True)
    if isinstance(value, _Dist):
        unit = "s" if type(value).__name__.endswith("Duration") else "bytes"
        items = value.model_dump(mode="json", by_alias=True).items()
        shown = (f"{k}: {_show(v, unit) if isinstance(v, float) else v}" for k, v in items)
        return "`{" + ", ".join(shown) + "}`"
    if isinstance(value, BaseModel):
        return "see below"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float):
        return f"`{_show(value, _unit(info))}`" if math.isfinite(value) else f"`{value}`"
    if value in ((), {}, ""):
        return "empty"
    return f"`{value}`"


def _aws_name(model: type[BaseModel], name: str) -> str:
    spellings = [n.text for n in names_of(model.__name__) if n.key == name]
    return ", ".join(f"`{text}`" for text in spellings)


def section(title: str, model: type[BaseModel]) -> str:
    """One model's keys as a markdown table (a subclass lists only the keys it adds)."""
    documented = [m for _, m in SECTIONS if m is not model and issubclass(model, m)]
    inherited = documented[0] if documented else None
    lines = [f"## {title}", ""]
    doc = (model.__doc__ or "").strip().splitlines()
    if doc:
        lines += [doc[0], ""]
    lines += ["| key | type | default | range | AWS name | meaning |", "|---|---|---|---|---|---|"]
    for name, info in model.model_fields.items():
        if name == "source_type" or (inherited is not None and name in inherited.model_fields):
            continue
        key = info.alias or info.serialization_alias or name
        meaning = (info.description or "").replace("|", "\\|").replace("\n", " ")
        row = (
            key,
            _type_name(info.annotation, _unit(info)),
            _default(info),
            _range(info, _unit(info)),
            _aws_name(model, name),
            meaning,
        )
        lines.append(f"| `{row[0]}` | {row[1]} | {row[2]} | {row[3]} | {row[4]} | {row[5]} |")
    return "\n".join(lines) + "\n"


def reference() -> str:
    """The whole reference document."""
    return INTRO + "\n" + "\n".join(section(title, model) for title, model in SECTIONS)


if __name__ == "__main__":
    print(reference(), end="")
