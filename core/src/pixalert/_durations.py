"""Durations: ``"30s"``, ``"5m"``, ``"1h30m"`` or a number of seconds."""

from __future__ import annotations

import math
import re

__all__ = ["Duration", "check_duration", "parse_duration"]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|[smhdw])")


class Duration(float):
    """A duration in seconds (a ``float``), as config files write it.

    Config fields typed ``Duration`` accept a number of seconds (``90``,
    ``2.5``) or a string of numbers with units, largest first: ``"500ms"``,
    ``"30s"``, ``"5m"``, ``"4h"``, ``"1d"``, ``"1w"``, ``"1h30m"``. Negative,
    infinite and NaN values are errors.
    """

    __slots__ = ()

    @classmethod
    def parse(cls, value: object, *, zero: bool = True) -> Duration:
        """Read ``value`` as a duration, or raise ``ValueError`` saying what was expected.

        ``zero=False`` rejects ``0`` as well.
        """
        expected = "a duration such as 30s, 5m, 1h30m or a number of seconds"
        if isinstance(value, bool):
            raise ValueError(f"expected {expected}, got {value!r}")
        if isinstance(value, (int, float)):
            seconds = float(value)
        elif isinstance(value, str):
            text = value.strip().lower()
            try:
                seconds = float(text)
            except ValueError:
                seconds = _parse_units(text, value, expected)
        else:
            raise ValueError(f"expected {expected}, got {type(value).__name__}")
        if not math.isfinite(seconds) or seconds < 0 or (not zero and seconds == 0):
            bound = ">= 0" if zero else "> 0"
            raise ValueError(f"expected a finite duration {bound}, got {value!r}")
        return cls(seconds)

    def __repr__(self) -> str:
        return f"Duration({format_duration(self)!r})"


def _parse_units(text: str, original: str, expected: str) -> float:
    pos = 0
    total = 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ValueError(f"expected {expected}, got {original!r}")
    return total


def format_duration(seconds: float) -> str:
    """``seconds`` written the way config files write it: ``90`` is ``"1m30s"``."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms" if seconds else "0s"
    out = []
    rest = float(seconds)
    for unit in ("d", "h", "m"):
        size = _UNITS[unit]
        if rest >= size:
            whole = int(rest // size)
            out.append(f"{whole}{unit}")
            rest -= whole * size
    if rest or not out:
        out.append(f"{rest:g}s")
    return "".join(out)


def check_duration(duration: object, what: str = "duration") -> float:
    """``duration`` in seconds as a float, or ``ValueError`` unless it is a finite number > 0."""
    if isinstance(duration, bool) or not isinstance(duration, (int, float)):
        raise ValueError(
            f"{what}: expected seconds > 0, got {type(duration).__name__} {duration!r}"
        )
    if not math.isfinite(duration) or duration <= 0:
        raise ValueError(f"{what}: expected seconds > 0, got {duration!r}")
    return float(duration)


def parse_duration(text: str) -> float:
    """Seconds from ``90s``, ``30m``, ``2h``, ``1d`` or ``1h30m`` (a unit is required,
    as on a command line, where a bare ``2`` is ambiguous); ``ValueError`` otherwise."""
    expected = "a duration such as 90s, 30m, 2h, 1d or 1h30m"
    return check_duration(_parse_units(text.strip().lower(), text, expected), "duration")
