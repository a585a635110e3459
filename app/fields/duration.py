"""Durations as SREs write them: `300s`, `10m`, `1h30m`, `2d`, or a number of seconds."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
PATTERN = r"^\s*((\d+(\.\d+)?)(ms|s|m|h|d))+\s*$"


def parse_duration(value: Any) -> float:
    """Seconds in `value`; a ValueError names what was wrong."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or text like 30s, 10m, 1h")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and re.fullmatch(PATTERN, value):
        seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(value.replace(" ", "")))
    else:
        raise ValueError(f"{value!r} is not a duration (use a number of seconds, 30s, 10m, 1h)")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {"anyOf": [{"type": "number", "minimum": 0}, {"type": "string", "pattern": PATTERN}]}
    ),
]
