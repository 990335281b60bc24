"""Shared pieces of the scenario schema: the frozen base model, unit types and AWS-name aliases."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field

from esmsim.units import parse_duration, parse_rate, parse_size


class Frozen(BaseModel):
    """Base of every scenario model: immutable, and unknown keys are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


def _whole_seconds(value: Any) -> float:
    seconds = parse_duration(value)
    if not float(seconds).is_integer():
        raise ValueError(f"{seconds:g} s is not a whole number of seconds (AWS takes integer seconds here)")
    return seconds


Seconds = Annotated[float, BeforeValidator(parse_duration)]
WholeSeconds = Annotated[float, BeforeValidator(_whole_seconds)]
PerSecond = Annotated[float, BeforeValidator(parse_rate)]
Bytes = Annotated[float, BeforeValidator(parse_size)]


#: AWS CamelCase names accepted for each snake_case key, for messages and line look-ups. Filled by
#: :func:`aws` as the models are defined (importing ``esmsim.scenario`` defines them all).
AWS_NAMES: dict[str, str] = {}


def aws(name: str, aws_name: str, default: Any = ..., **constraints: Any) -> Any:
    """A field that also accepts AWS's CamelCase parameter name (``BatchSize`` for ``batch_size``)."""
    AWS_NAMES.setdefault(name, aws_name)
    return Field(default, validation_alias=AliasChoices(name, aws_name), **constraints)
