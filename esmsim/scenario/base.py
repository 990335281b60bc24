"""Shared pieces of the scenario schema: the frozen base model, unit types and AWS-name aliases."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from esmsim.errors import Path, format_path, show_value
from esmsim.scenario.aws_names import aliases, resolve
from esmsim.units import parse_duration, parse_rate, parse_size


class Frozen(BaseModel):
    """Base of every scenario model: immutable, and unknown keys are errors.

    AWS's spellings of the model's keys (``esmsim.scenario.aws_names``) are accepted: flat names as
    aliases of the fields, nested shapes (``ScalingConfig: {MaximumConcurrency: 5}``) turned into
    their snake_case key before validation.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _aws_shapes(cls, data: Any) -> Any:
        return resolve(cls.__name__, data)


def key_error(at: Path, message: str) -> PydanticCustomError:
    """An error of a model-level validator pinned to a key below the model.

    pydantic places a model validator's errors at the model; the messages module moves this one to
    ``at`` so the issue gets that key's line. Its text (``grid.a: give at least one value``) still
    reads well where pydantic prints it.
    """
    return PydanticCustomError(
        "esmsim_at", "{shown}", {"at": at, "message": message, "shown": f"{format_path(at)}: {message}"}
    )


def _whole_seconds(value: Any) -> float:
    seconds = parse_duration(value)
    if not float(seconds).is_integer():
        raise ValueError(f"{seconds:g} s is not a whole number of seconds (AWS takes integer seconds here)")
    return seconds


def _integer(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"{show_value(value)} is not an integer")
    return value


def _number(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"{show_value(value)} is not a number")
    return value


# pydantic's lax mode reads true as 1: `batch_size: true` would run with batches of one. Every
# plain number of the schema is one of these two (numbers with units refuse booleans when parsed).
Int = Annotated[int, BeforeValidator(_integer)]
Number = Annotated[float, BeforeValidator(_number)]
Seconds = Annotated[float, BeforeValidator(parse_duration)]
WholeSeconds = Annotated[float, BeforeValidator(_whole_seconds)]
PerSecond = Annotated[float, BeforeValidator(parse_rate)]
Bytes = Annotated[float, BeforeValidator(parse_size)]


def aws(model: str, name: str, default: Any = ..., **constraints: Any) -> Any:
    """A field of ``model`` that also accepts AWS's flat names for it (``BatchSize`` for ``batch_size``).

    The names come from ``esmsim.scenario.aws_names``; this only hands them to pydantic.
    """
    names = aliases(model, name)
    if not names:
        raise LookupError(f"aws_names has no flat AWS name for {model}.{name}")
    return Field(default, validation_alias=AliasChoices(name, *names), **constraints)
