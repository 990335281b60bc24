"""Probability distributions used in scenario files, and a buffered sampler for the hot path.

A scenario writes ``{dist: lognormal, median: 40ms, p99: 250ms}``, ``{dist: exponential, mean: 1s}``,
``{dist: uniform, low: 1KB, high: 4KB}``, ``{dist: empirical, values: [...]}``, or a bare value meaning
a constant. Each distribution exists in two unit families (durations in seconds, sizes in bytes) so a
size written where a duration belongs is an error, not a silent reinterpretation.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from esmsim.units import parse_duration, parse_size

#: Standard normal quantile at 0.99, used to turn (median, p99) into a lognormal sigma.
Z99 = 2.3263478740408408

DurationS = Annotated[float, BeforeValidator(parse_duration)]
SizeB = Annotated[float, BeforeValidator(parse_size)]


class _Dist(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Draw ``n`` values."""
        raise NotImplementedError

    def mean(self) -> float:
        """Expected value."""
        raise NotImplementedError

    def upper_bound(self) -> float:
        """Largest value the distribution can produce (``inf`` when unbounded)."""
        raise NotImplementedError


class _Constant(_Dist):
    dist: Literal["constant"] = "constant"
    value: float = Field(ge=0)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, self.value)

    def mean(self) -> float:
        return self.value

    def upper_bound(self) -> float:
        return self.value


class _Exponential(_Dist):
    dist: Literal["exponential"]
    mean_: float = Field(alias="mean", gt=0)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.exponential(self.mean_, n)

    def mean(self) -> float:
        return self.mean_

    def upper_bound(self) -> float:
        return math.inf


class _Lognormal(_Dist):
    dist: Literal["lognormal"]
    median: float = Field(gt=0)
    p99: float = Field(gt=0)

    @model_validator(mode="after")
    def _p99_above_median(self) -> _Lognormal:
        if self.p99 < self.median:
            raise ValueError(f"p99 ({self.p99:g}) must not be below the median ({self.median:g})")
        return self

    @property
    def sigma(self) -> float:
        """Log-space standard deviation implied by the median and the 99th percentile."""
        return math.log(self.p99 / self.median) / Z99

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.lognormal(math.log(self.median), self.sigma, n)

    def mean(self) -> float:
        return self.median * math.exp(self.sigma**2 / 2)

    def upper_bound(self) -> float:
        return self.median if self.sigma == 0 else math.inf


class _Uniform(_Dist):
    dist: Literal["uniform"]
    low: float = Field(ge=0)
    high: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> _Uniform:
        if self.high < self.low:
            raise ValueError(f"high ({self.high:g}) must not be below low ({self.low:g})")
        return self

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.uniform(self.low, self.high, n)

    def mean(self) -> float:
        return (self.low + self.high) / 2

    def upper_bound(self) -> float:
        return self.high


class _Empirical(_Dist):
    dist: Literal["empirical"]
    values: tuple[float, ...] = Field(min_length=1)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.choice(np.asarray(self.values, dtype=float), n)

    def mean(self) -> float:
        return float(np.mean(self.values))

    def upper_bound(self) -> float:
        return max(self.values)


# Unit families. Field overrides only change how the scalar fields are parsed.
class ConstantDuration(_Constant):
    """A fixed duration."""

    value: DurationS = Field(ge=0)


class ExponentialDuration(_Exponential):
    """Exponentially distributed duration, given by its mean."""

    mean_: DurationS = Field(alias="mean", gt=0)


class LognormalDuration(_Lognormal):
    """Lognormal duration given by its median and 99th percentile."""

    median: DurationS = Field(gt=0)
    p99: DurationS = Field(gt=0)


class UniformDuration(_Uniform):
    """Uniform duration between ``low`` and ``high``."""

    low: DurationS = Field(ge=0)
    high: DurationS = Field(ge=0)


class EmpiricalDuration(_Empirical):
    """Duration resampled from measured values."""

    # Negative values would be handed to the simulation as negative timeouts.
    values: tuple[Annotated[DurationS, Field(ge=0)], ...] = Field(min_length=1)


class ConstantSize(_Constant):
    """A fixed size."""

    value: SizeB = Field(ge=0)


class ExponentialSize(_Exponential):
    """Exponentially distributed size, given by its mean."""

    mean_: SizeB = Field(alias="mean", gt=0)


class LognormalSize(_Lognormal):
    """Lognormal size given by its median and 99th percentile."""

    median: SizeB = Field(gt=0)
    p99: SizeB = Field(gt=0)


class UniformSize(_Uniform):
    """Uniform size between ``low`` and ``high``."""

    low: SizeB = Field(ge=0)
    high: SizeB = Field(ge=0)


class EmpiricalSize(_Empirical):
    """Size resampled from measured values."""

    # Negative sizes would count against byte limits as credit (switching Kinesis write limits off).
    values: tuple[Annotated[SizeB, Field(ge=0)], ...] = Field(min_length=1)


def _scalar_is_constant(value: Any) -> Any:
    """A bare value (``50ms``, ``2KB``, ``0.2``) means a constant distribution."""
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return {"dist": "constant", "value": value}
    if isinstance(value, dict) and "dist" not in value and set(value) == {"value"}:
        return {"dist": "constant", **value}
    return value


DurationDist = Annotated[
    ConstantDuration | ExponentialDuration | LognormalDuration | UniformDuration | EmpiricalDuration,
    Field(discriminator="dist"),
    BeforeValidator(_scalar_is_constant),
]
SizeDist = Annotated[
    ConstantSize | ExponentialSize | LognormalSize | UniformSize | EmpiricalSize,
    Field(discriminator="dist"),
    BeforeValidator(_scalar_is_constant),
]
AnyDist = _Dist


class Sampler:
    """Draws one value at a time from a distribution, generating blocks with numpy.

    Calling ``rng.lognormal()`` once per invocation costs about as much as a SimPy event; drawing
    blocks of a few thousand and handing them out from a Python list costs a tenth of that.
    """

    __slots__ = ("_block", "_buffer", "_dist", "_i", "_rng", "constant")

    def __init__(self, dist: _Dist, rng: np.random.Generator, block: int = 4096) -> None:
        self._dist = dist
        self._rng = rng
        self._block = block
        self._buffer: list[float] = []
        self._i = 0
        # A constant needs no random numbers at all, which keeps other streams' draws independent.
        self.constant: float | None = dist.value if isinstance(dist, _Constant) else None

    @property
    def rng(self) -> np.random.Generator:
        """The stream it draws from (a live change of the distribution keeps drawing from it)."""
        return self._rng

    def next(self) -> float:
        """Return the next draw."""
        if self.constant is not None:
            return self.constant
        if self._i >= len(self._buffer):
            self._buffer = self._dist.sample(self._rng, self._block).tolist()
            self._i = 0
        value = self._buffer[self._i]
        self._i += 1
        return value


class UniformSource:
    """Uniform(0, 1) draws one at a time, generated in blocks (see :class:`Sampler`)."""

    __slots__ = ("_block", "_buffer", "_i", "_rng")

    def __init__(self, rng: np.random.Generator, block: int = 4096) -> None:
        self._rng = rng
        self._block = block
        self._buffer: list[float] = []
        self._i = 0

    def next(self) -> float:
        """Return the next uniform draw."""
        if self._i >= len(self._buffer):
            self._buffer = self._rng.random(self._block).tolist()
            self._i = 0
        value = self._buffer[self._i]
        self._i += 1
        return value
