"""Durations: ``"30s"``, ``"5m"``, ``"1h30m"`` or a number of seconds; and moments
given as a duration ago or an ISO 8601 time (:func:`parse_time`)."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone

__all__ = ["Duration", "check_duration", "parse_duration", "parse_time"]

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


_TIME_EXPECTED = (
    "a duration ago such as 90m, 2h, 7d, or an ISO 8601 time such as 2026-12-01T09:30+01:00"
)


def parse_time(value: str | datetime, *, now: float | datetime | None = None) -> datetime:
    """A moment written the way an operator writes one, as an aware UTC datetime.

    ``value`` is a duration ago (``"90m"``, ``"2h"``, ``"7d"``, ``"1h30m"``: that long
    before ``now``), ``"now"``, or an ISO 8601 time (``"2026-12-01T09:30:00+01:00"``,
    ``"2026-12-01T08:30Z"``, ``"2026-12-01"``). A time without a UTC offset is
    read as UTC (the history shows its times in UTC). A ``datetime`` is taken as
    it is (naive: UTC). ``now`` is epoch seconds or a datetime (default: the
    system clock). Anything else, a negative duration included, is a
    ``ValueError`` saying what was expected.
    """
    if isinstance(value, datetime):
        return _utc(value)
    if not isinstance(value, str):
        raise ValueError(f"expected {_TIME_EXPECTED}, got {type(value).__name__}")
    if now is None:
        moment = datetime.now(timezone.utc)
    elif isinstance(now, datetime):
        moment = _utc(now)
    else:
        moment = datetime.fromtimestamp(float(now), timezone.utc)
    text = value.strip()
    if text.lower() == "now":
        return moment
    if text.startswith("-") and _PART.match(text[1:].lower()):
        raise ValueError(f"expected a duration ago >= 0 (such as 2h), got {value!r}")
    if text and _PART.match(text.lower()):
        try:
            seconds = _parse_units(text.lower(), value, _TIME_EXPECTED)
        except ValueError:
            pass
        else:
            return moment - timedelta(seconds=seconds)
    iso = text[:-1] + "+00:00" if text[-1:] in ("Z", "z") else text
    try:
        parsed = datetime.fromisoformat(iso)
    except ValueError:
        raise ValueError(f"expected {_TIME_EXPECTED}, got {value!r}") from None
    return _utc(parsed)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)
