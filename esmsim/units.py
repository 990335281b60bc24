"""Human units in scenario files: durations, rates and sizes.

Simulation time is float seconds, sizes are bytes, rates are events per second. Scenario files may
write ``500ms``, ``5m``, ``2h``, ``200/s``, ``12000/min``, ``2KB`` or ``1MiB``; a bare number is taken
in the base unit (seconds, per second, bytes). Sizes follow AWS's binary convention: ``KB`` = ``KiB``
= 1,024 bytes, so ``1MB`` is SQS's 1,048,576-byte message limit and ``6MB`` is Lambda's
6,291,456-byte payload.
"""

from __future__ import annotations

import math
import re

_NUMBER = r"([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)"

DURATION_UNITS: dict[str, float] = {
    "us": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}

SIZE_UNITS: dict[str, int] = {
    "b": 1,
    "kb": 1024,
    "kib": 1024,
    "mb": 1024**2,
    "mib": 1024**2,
    "gb": 1024**3,
    "gib": 1024**3,
}

#: A number with an optional unit (``500ms``, ``2KB``, ``30``).
_QUANTITY_RE = re.compile(rf"^\s*{_NUMBER}\s*([a-zA-Z]*)\s*$")
_RATE_RE = re.compile(rf"^\s*{_NUMBER}\s*/\s*([a-zA-Z]+)\s*$")


def _finite(number: float, value: object, what: str) -> float:
    if not math.isfinite(number):
        raise ValueError(f"expected a finite {what}, got {value!r}")
    return number


def _quantity(value: object, what: str, units: dict[str, float], base: str, examples: str) -> float:
    """A number in the base unit, or a string of a number and one of ``units`` (none: ``base``)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a {what}, got a boolean")
    if isinstance(value, int | float):
        return _finite(float(value), value, what)
    if isinstance(value, str):
        match = _QUANTITY_RE.match(value)
        if match:
            number, unit = match.groups()
            scale = units.get(unit.lower() if unit else base)
            if scale is not None:
                return _finite(float(number) * scale, value, what)
    raise ValueError(f"{value!r} is not a {what} (write e.g. {examples})")


def parse_duration(value: object) -> float:
    """Return a duration in seconds from ``30``, ``30s``, ``500ms``, ``5m``, ``2h`` or ``1d``."""
    return _quantity(value, "duration", DURATION_UNITS, "s", "500ms, 30s, 5m, 2h, 1d, or a number of seconds")


def parse_rate(value: object) -> float:
    """Return a rate in events per second from ``200``, ``200/s``, ``12000/min`` or ``1e6/h``."""
    if isinstance(value, str):
        match = _RATE_RE.match(value)
        if match:
            number, unit = match.groups()
            scale = DURATION_UNITS.get(unit.lower())
            if scale is not None:
                return _finite(float(number) / scale, value, "rate")
    # Only a bare number is a rate without "/unit" (``200`` per second; ``200s`` is not a rate).
    return _quantity(value, "rate", {"": 1.0}, "", "200/s, 12000/min, 1e6/h, or a number per second")


def parse_size(value: object) -> float:
    """Return a size in bytes from ``512``, ``512B``, ``2KB``, ``1MiB`` (binary multiples, as AWS uses)."""
    units = {unit: float(scale) for unit, scale in SIZE_UNITS.items()}
    return _quantity(value, "size", units, "b", "512B, 2KB, 256KB, 1MB, or a number of bytes")


def format_duration(seconds: float) -> str:
    """Render seconds the way a scenario file would write them (``250ms``, ``30s``, ``5m``, ``2h``)."""
    if seconds == 0:
        return "0s"
    for unit, scale in (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0), ("ms", 1e-3)):
        if abs(seconds) >= scale and float(seconds / scale).is_integer():
            return f"{int(seconds / scale)}{unit}"
    if abs(seconds) < 1:
        return f"{seconds * 1000:.15g}ms"
    return f"{seconds:.15g}s"


def format_size(nbytes: float) -> str:
    """Render bytes with a binary multiple (``2KB``, ``6MB``) when it is exact."""
    for unit, scale in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if nbytes >= scale and float(nbytes / scale).is_integer():
            return f"{int(nbytes / scale)}{unit}"
    return f"{nbytes:.15g}B"
