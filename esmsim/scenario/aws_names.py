"""AWS's names for scenario keys, in one table: the CloudFormation spellings accepted beside snake_case.

Each :class:`AwsName` says which AWS spelling (a flat name such as ``BatchSize``, or a nested path
such as ``ScalingConfig.MaximumConcurrency``) sets which snake_case key of which model, and how its
value converts. Everything that knows about AWS's spellings reads this table: the models (their
aliases and nested shapes), the loader (an error about ``maximum_concurrency`` points at the line of
``ScalingConfig.MaximumConcurrency``), overrides (setting one spelling replaces the others) and the
messages (``BatchSize repeats batch_size``).

This module imports no scenario model, so every model can read it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from esmsim.errors import Path

T = TypeVar("T")


@dataclass(frozen=True)
class AwsName:
    """One AWS spelling of a snake_case key.

    Attributes:
        spelling: The AWS key path inside the model's mapping: ``("BatchSize",)`` or
            ``("ScalingConfig", "MaximumConcurrency")``.
        key: The snake_case key it sets.
        convert: Turns AWS's value into the snake_case key's value (None: taken as it is). Raises
            ``ValueError`` with a plain sentence for a value AWS would not accept.
        others: Other keys beside a nested spelling's last step: ``"refuse"`` them, or ``"ignore"``
            them (AWS parameters esmsim does not model, such as ``deadLetterTargetArn``).
        required: A nested spelling's container must hold its last step.
    """

    spelling: tuple[str, ...]
    key: str
    convert: Callable[[Any], Any] | None = None
    others: Literal["refuse", "ignore"] = "refuse"
    required: bool = False

    @property
    def text(self) -> str:
        """The spelling as written in messages: ``ScalingConfig.MaximumConcurrency``."""
        return ".".join(self.spelling)

    @property
    def is_alias(self) -> bool:
        """A plain rename (flat, value unchanged): the model takes it as a pydantic validation alias."""
        return len(self.spelling) == 1 and self.convert is None


def _response_types(value: Any) -> bool:
    if value not in ([], ["ReportBatchItemFailures"]):
        raise ValueError("FunctionResponseTypes must be [] or [ReportBatchItemFailures]")
    return bool(value)


def _one_architecture(value: Any) -> Any:
    if not isinstance(value, list) or len(value) != 1:
        raise ValueError("Architectures must be a list of exactly one of x86_64, arm64")
    return value[0]


def _destination(value: Any) -> dict[str, str]:
    # arn:aws:sqs:region:account:name: the service is the third field.
    arn = value if isinstance(value, str) else ""
    service = arn.split(":")[2] if arn.count(":") >= 2 else ""
    if service not in ("sqs", "sns", "s3"):
        raise ValueError("DestinationConfig.OnFailure.Destination must be an SQS, SNS or S3 ARN")
    return {"type": service}


def _kafka_destination(value: Any) -> dict[str, str]:
    """A Kafka mapping's on-failure destination: an SQS, SNS or S3 ARN, or ``kafka://topic``."""
    if isinstance(value, str) and value.startswith("kafka://") and len(value) > len("kafka://"):
        return {"type": "kafka", "name": value[len("kafka://") :]}
    try:
        return _destination(value)
    except ValueError:
        raise ValueError(
            "DestinationConfig.OnFailure.Destination must be an SQS, SNS or S3 ARN or kafka://TOPIC"
        ) from None


def _poller_config(value: Any) -> dict[str, Any]:
    """ProvisionedPollerConfig ``{MinimumPollers, MaximumPollers}`` as ``provisioned_pollers``."""
    if not isinstance(value, dict) or not set(value) <= {"MinimumPollers", "MaximumPollers"}:
        raise ValueError("ProvisionedPollerConfig takes MinimumPollers and MaximumPollers")
    names = {"MinimumPollers": "minimum", "MaximumPollers": "maximum"}
    return {names[k]: v for k, v in value.items()}


_MAPPING_NAMES = (
    AwsName(("Enabled",), "enabled"),
    AwsName(("BatchSize",), "batch_size"),
    AwsName(("MaximumBatchingWindowInSeconds",), "batching_window"),
    AwsName(("FunctionResponseTypes",), "report_batch_item_failures", _response_types),
)

#: AWS's spellings accepted by each model, by model class name.


def _ordered_source_names(destination: Callable[[Any], dict[str, str]]) -> tuple[AwsName, ...]:
    """The keys streams and Kafka share (ordered records: position, age, retries, bisect, destination)."""
    return (
        AwsName(("StartingPosition",), "starting_position"),
        AwsName(("StartingPositionTimestamp",), "starting_position_timestamp"),
        AwsName(("MaximumRecordAgeInSeconds",), "maximum_record_age"),
        AwsName(("MaximumRetryAttempts",), "maximum_retry_attempts"),
        AwsName(("BisectBatchOnFunctionError",), "bisect_batch_on_function_error"),
        AwsName(
            ("DestinationConfig", "OnFailure", "Destination"),
            "on_failure",
            destination,
            others="ignore",
            required=True,
        ),
    )


AWS_NAMES: dict[str, tuple[AwsName, ...]] = {
    "Function": (
        AwsName(("MemorySize",), "memory_mb"),
        AwsName(("Timeout",), "timeout"),
        AwsName(("ReservedConcurrentExecutions",), "reserved_concurrency"),
        AwsName(("ProvisionedConcurrentExecutions",), "provisioned_concurrency"),
        AwsName(("Architectures",), "architecture", _one_architecture),
    ),
    "SqsSource": (
        AwsName(("VisibilityTimeout",), "visibility_timeout"),
        AwsName(("MessageRetentionPeriod",), "retention"),
        AwsName(("DelaySeconds",), "delivery_delay"),
        AwsName(("MaximumMessageSize",), "max_message_size"),
        AwsName(("RedrivePolicy", "maxReceiveCount"), "max_receive_count", others="ignore", required=True),
    ),
    "KinesisSource": (),
    "DynamoDBSource": (),
    "KafkaSource": (),
    "MqSource": (),
    "S3Source": (),
    "SnsSource": (),
    # A rule target's RetryPolicy, written flat on the bus (one target per trigger).
    "EventBridgeSource": (
        AwsName(("MaximumRetryAttempts",), "maximum_retry_attempts"),
        AwsName(("MaximumEventAgeInSeconds",), "maximum_event_age"),
    ),
    # A function's event invoke config (AWS::Lambda::EventInvokeConfig).
    "AsyncConfig": (
        AwsName(("MaximumRetryAttempts",), "maximum_retry_attempts"),
        AwsName(("MaximumEventAgeInSeconds",), "maximum_event_age"),
    ),
    "_MappingBase": _MAPPING_NAMES,  # what SQS and stream mappings share
    "SqsMapping": (
        *_MAPPING_NAMES,
        AwsName(("MaximumConcurrency",), "maximum_concurrency"),
        AwsName(("ScalingConfig", "MaximumConcurrency"), "maximum_concurrency"),
        AwsName(("ProvisionedPollerConfig",), "provisioned_pollers", _poller_config),
    ),
    "StreamMapping": (
        *_MAPPING_NAMES,
        AwsName(("ParallelizationFactor",), "parallelization_factor"),
        *_ordered_source_names(_destination),
    ),
    "KafkaMapping": (
        *_MAPPING_NAMES,
        *_ordered_source_names(_kafka_destination),
        AwsName(("ProvisionedPollerConfig",), "provisioned_pollers", _poller_config),
    ),
    # Amazon MQ mappings take no partial batch responses: FunctionResponseTypes is not theirs.
    "MqMapping": (
        AwsName(("Enabled",), "enabled"),
        AwsName(("BatchSize",), "batch_size"),
        AwsName(("MaximumBatchingWindowInSeconds",), "batching_window"),
    ),
}

#: Sections of a scenario whose entries are entities (a function, a source, a mapping), and the
#: models an entry may be. An entity's AWS spellings are relative to its own mapping.
ENTITIES: dict[str, tuple[str, ...]] = {
    "functions": ("Function",),
    "sources": (
        "SqsSource",
        "KinesisSource",
        "DynamoDBSource",
        "KafkaSource",
        "MqSource",
        "S3Source",
        "SnsSource",
        "EventBridgeSource",
    ),
    "mappings": ("SqsMapping", "StreamMapping", "KafkaMapping", "MqMapping"),
}


def names_of(model: str) -> tuple[AwsName, ...]:
    """AWS's spellings a model accepts (none for models AWS has no parameters for)."""
    return AWS_NAMES.get(model, ())


def aliases(model: str, key: str) -> tuple[str, ...]:
    """The flat AWS names the model's ``key`` field takes as validation aliases."""
    return tuple(name.spelling[0] for name in names_of(model) if name.key == key and name.is_alias)


def shown_name(model: str, key: str) -> str | None:
    """The AWS parameter that sets ``key``, as AWS's docs name it: ``ScalingConfig``, ``BatchSize``."""
    names = [name for name in names_of(model) if name.key == key]
    nested = [name for name in names if len(name.spelling) > 1]
    chosen = nested or names
    return chosen[0].spelling[0] if chosen else None


def top_keys(model: str) -> dict[str, AwsName]:
    """Keys of the model's mapping that are AWS spellings needing conversion, not pydantic aliases."""
    return {name.spelling[0]: name for name in names_of(model) if not name.is_alias}


_MISSING = object()


def resolve(model: str, data: Any) -> Any:
    """Turn AWS's nested and converted spellings in one model's raw mapping into snake_case keys.

    Flat renames (``BatchSize``) are left to pydantic's aliases. A spelling whose key is already given
    in another spelling is left in place, so pydantic reports it as a repeat (``X repeats Y``)
    instead of one value silently winning.

    Args:
        model: The model's class name.
        data: The raw mapping (not modified).

    Returns:
        A copy with the AWS spellings replaced, or ``data`` itself when there is nothing to do.

    Raises:
        ValueError: An AWS shape that does not parse (``ScalingConfig takes only MaximumConcurrency``).
    """
    converted = [name for name in names_of(model) if not name.is_alias]
    if not isinstance(data, dict) or not any(name.spelling[0] in data for name in converted):
        return data
    out = dict(data)
    for name in converted:
        top = name.spelling[0]
        if top not in out:
            continue
        given = [name.key, *aliases(model, name.key)]
        if any(spelling in out for spelling in given):
            continue  # a repeat: pydantic names it, with the model's other errors
        value = _dig(out[top], name)
        del out[top]
        if value is not _MISSING:
            out[name.key] = name.convert(value) if name.convert else value
    return out


def _dig(node: Any, name: AwsName) -> Any:
    """The value at a nested spelling's last step, checking the containers on the way."""
    for depth, step in enumerate(name.spelling[1:], start=1):
        parent = ".".join(name.spelling[:depth])
        if not isinstance(node, dict) or (name.others == "refuse" and set(node) - {step}):
            if name.required:
                raise ValueError(f"{parent} needs {step}")
            raise ValueError(f"{parent} takes only {step}")
        if step not in node:
            if name.required:
                raise ValueError(f"{parent} needs {step}")
            return _MISSING
        node = node[step]
    return node


# --------------------------------------------------------------------------------------------------
# Spellings inside a whole scenario (for overrides and line look-ups)


def entity_of(path: Path) -> tuple[Path, Path, tuple[str, ...]] | None:
    """Split a key path at its entity: ``(("mappings", 0), ("BatchSize",), models)``, or None."""
    if len(path) < 2 or not isinstance(path[0], str) or path[0] not in ENTITIES:
        return None
    return path[:2], path[2:], ENTITIES[path[0]]


def _names_in(models: Iterable[str]) -> list[AwsName]:
    return [name for model in models for name in names_of(model)]


def setting_of(models: Iterable[str], relative: Path) -> str | None:
    """The snake_case key that ``relative`` (a path inside an entity) sets in any of its spellings.

    ``("ScalingConfig",)``, ``("ScalingConfig", "MaximumConcurrency")``, ``("MaximumConcurrency",)``
    and ``("maximum_concurrency",)`` all set ``maximum_concurrency``. None for keys AWS has no name for.
    """
    if not relative:
        return None
    for name in _names_in(models):
        depth = min(len(name.spelling), len(relative))
        if relative[0] == name.key or relative[:depth] == name.spelling[:depth]:
            return name.key
    return None


def spellings(models: Iterable[str], key: str) -> list[Path]:
    """Every spelling of ``key`` inside an entity, the snake_case key first."""
    found: list[Path] = [(key,)]
    for name in _names_in(models):
        if name.key == key and name.spelling not in found:
            found.append(name.spelling)
    return found


def with_settings(places: Mapping[Path, T]) -> dict[Path, T]:
    """Also give each snake_case key the place of the AWS spelling it was written as.

    A place is a line or a ``--set`` label: an issue about ``mappings[0].maximum_concurrency`` finds
    the line of ``ScalingConfig.MaximumConcurrency``.

    Args:
        places: Values by key path (line numbers, or labels of overridden keys).

    Returns:
        A copy with the snake_case paths added where only an AWS spelling has a place; a place of the
        snake_case key itself is kept.
    """
    entities = {path[:2]: ENTITIES[str(path[0])] for path in places if entity_of(path)}
    extra: dict[Path, T] = {}
    for entity, models in entities.items():
        for name in _names_in(models):
            target = (*entity, name.key)
            if target in places or target in extra:
                continue
            for depth in range(len(name.spelling), 0, -1):  # the deepest written step is the most exact
                place = (*entity, *name.spelling[:depth])
                if place in places:
                    extra[target] = places[place]
                    break
    return {**extra, **places}
