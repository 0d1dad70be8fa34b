"""Time intervals (``[time_intervals.NAME]``), with Alertmanager's fields and semantics.

A named time interval is one table or an array of tables; an instant is in
it when it is in any of them. A table holds an instant when every field it
sets holds (a field left out holds always), read on the wall clock of its
``location``:

- ``times``: ``[{start_time = "09:00", end_time = "17:00"}]``, ``HH:MM``,
  the start included, the end not (``24:00`` is the end of the day);
- ``weekdays``: ``"monday"``, ``"monday:friday"`` (ranges include both ends);
- ``days_of_month``: ``1``, ``"1:5"``, ``-1`` (the last day), ``"-3:-1"``;
- ``months``: ``"january"``, ``"1:3"``, ``"june:august"``;
- ``years``: ``2026``, ``"2026:2028"``;
- ``location``: an IANA time zone (``"Europe/Berlin"``; ``"Local"`` is the
  system's own zone), UTC when left out.

:func:`next_change` finds when muting by some intervals starts or ends, so a
held delivery is due the moment its interval ends, daylight saving time
transitions included.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

__all__ = [
    "TimeInterval",
    "TimeIntervalSet",
    "muted",
    "next_change",
    "parse_time_intervals",
]

WEEKDAYS = {
    "sunday": 0,
    "monday": 1,
    "tuesday": 2,
    "wednesday": 3,
    "thursday": 4,
    "friday": 5,
    "saturday": 6,
}
MONTHS = {
    name: i
    for i, name in enumerate(
        (
            "january",
            "february",
            "march",
            "april",
            "may",
            "june",
            "july",
            "august",
            "september",
            "october",
            "november",
            "december",
        ),
        start=1,
    )
}
_KEYS = ("times", "weekdays", "days_of_month", "months", "years", "location")
_TIME = re.compile(r"^(?:([01][0-9]|2[0-3]):([0-5][0-9])|(24):(00))$")
#: How far ahead :func:`next_change` looks (days) before giving up on a change.
HORIZON_DAYS = 800


@attrs.frozen
class TimeInterval:
    """One table of a named time interval: minutes of the day, day ranges, a zone."""

    times: tuple[tuple[int, int], ...] = ()
    weekdays: tuple[tuple[int, int], ...] = ()
    days_of_month: tuple[tuple[int, int], ...] = ()
    months: tuple[tuple[int, int], ...] = ()
    years: tuple[tuple[int, int], ...] = ()
    location: str = "UTC"
    zone: dt.tzinfo = attrs.field(default=dt.timezone.utc, eq=False, repr=False)

    def day_matches(self, day: dt.date) -> bool:
        """True if ``day`` (a local date) passes the weekday, day, month and year fields."""
        if self.years and not _within(day.year, self.years):
            return False
        if self.months and not _within(day.month, self.months):
            return False
        if self.weekdays and not _within((day.weekday() + 1) % 7, self.weekdays):
            return False
        return not self.days_of_month or _day_of_month(day, self.days_of_month)

    def contains(self, ts: float) -> bool:
        """True if the instant ``ts`` (epoch seconds) is in this interval."""
        local = dt.datetime.fromtimestamp(ts, self.zone)
        if not self.day_matches(local.date()):
            return False
        if not self.times:
            return True
        minute = local.hour * 60 + local.minute
        return any(start <= minute < end for start, end in self.times)

    def boundaries(self, day: dt.date) -> list[float]:
        """Instants on local ``day`` where membership may change (range starts and ends,
        midnights, daylight saving jumps)."""
        out: list[float] = []
        following = day + dt.timedelta(days=1)
        matches = self.day_matches(day)
        if matches != self.day_matches(following):  # the date fields flip at midnight
            out += _instants(self.zone, following, 0)
        if matches and self.times:
            midnight = _instants(self.zone, day, 0)
            nxt = _instants(self.zone, following, 0)
            out += midnight + nxt + _transitions(self.zone, min(midnight), max(nxt))
            for start, end in self.times:
                out += _instants(self.zone, day, start) + _instants(self.zone, day, end)
        return out

    @property
    def always(self) -> bool:
        """True if this table sets no field but maybe ``location``: every instant is in it."""
        return not (self.times or self.weekdays or self.days_of_month or self.months or self.years)


def _within(value: int, ranges: Iterable[tuple[int, int]]) -> bool:
    return any(lo <= value <= hi for lo, hi in ranges)


def _days_in_month(day: dt.date) -> int:
    following = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return (following - dt.timedelta(days=1)).day


def _day_of_month(day: dt.date, ranges: Iterable[tuple[int, int]]) -> bool:
    """Alertmanager's rule: negative days count from the month's end; ranges are clamped."""
    days = _days_in_month(day)
    for lo, hi in ranges:
        begin = days + lo + 1 if lo < 0 else lo
        end = days + hi + 1 if hi < 0 else hi
        if begin > days:
            continue
        begin = max(-days, min(begin, days))
        end = max(-days, min(end, days))
        if begin <= day.day <= end:
            return True
    return False


def _instants(zone: dt.tzinfo, day: dt.date, minute: int) -> list[float]:
    """The instants at which the wall clock of ``zone`` reads ``minute`` on ``day`` (both
    readings of an hour that repeats; for a time that is skipped, the two guesses,
    the jump itself being among the transitions)."""
    if minute >= 24 * 60:
        day, minute = day + dt.timedelta(days=1), minute - 24 * 60
    naive = dt.datetime(day.year, day.month, day.day, minute // 60, minute % 60)
    return sorted({naive.replace(tzinfo=zone, fold=f).timestamp() for f in (0, 1)})


def _transitions(zone: dt.tzinfo, start: float, end: float) -> list[float]:
    """The instants in ``[start, end]`` where ``zone``'s offset changes (to the second)."""
    if zone is dt.timezone.utc:
        return []

    def offset(ts: float) -> dt.timedelta | None:
        return dt.datetime.fromtimestamp(ts, zone).utcoffset()

    if offset(start) == offset(end):
        return []
    lo, hi = start, end  # offset(lo) != offset(hi): find the first second with hi's offset
    target = offset(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if offset(mid) == target:
            hi = mid
        else:
            lo = mid
    return [float(hi)]


@attrs.frozen
class TimeIntervalSet:
    """A named time interval: the instants in any of its tables."""

    name: str
    intervals: tuple[TimeInterval, ...]

    def contains(self, ts: float) -> bool:
        """True if ``ts`` is in this named interval."""
        return any(interval.contains(ts) for interval in self.intervals)


def muted(ts: float, mute: Sequence[TimeIntervalSet], active: Sequence[TimeIntervalSet]) -> bool:
    """True if notifications are held at ``ts``: inside any ``mute`` interval, or
    outside every ``active`` interval (when there are any)."""
    if any(m.contains(ts) for m in mute):
        return True
    return bool(active) and not any(a.contains(ts) for a in active)


def next_change(
    ts: float, mute: Sequence[TimeIntervalSet], active: Sequence[TimeIntervalSet]
) -> float | None:
    """The first instant after ``ts`` at which :func:`muted` differs from its value at
    ``ts`` (None when none comes within :data:`HORIZON_DAYS`)."""
    state = muted(ts, mute, active)
    intervals = [i for s in (*mute, *active) for i in s.intervals]
    if not intervals or any(i.always for s in mute for i in s.intervals):
        return None  # nothing to change, or muted at every instant
    zones = {id(i.zone): i.zone for i in intervals}
    days = {
        key: dt.datetime.fromtimestamp(ts, zone).date() - dt.timedelta(days=1)
        for key, zone in zones.items()
    }
    candidates: set[float] = set()
    for step in range(HORIZON_DAYS):
        # Each zone's day is read in its own step; an instant is looked at once every
        # zone's days up to it have given their boundaries.
        safe = float("inf")
        for interval in intervals:
            day = days[id(interval.zone)] + dt.timedelta(days=step)
            candidates.update(interval.boundaries(day))
            safe = min(safe, min(_instants(interval.zone, day + dt.timedelta(days=1), 0)))
        for when in sorted(c for c in candidates if ts < c <= safe):
            if muted(when, mute, active) != state:
                return when
        candidates = {c for c in candidates if c > safe}
    return None


# ---------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------


def parse_time_intervals(data: Any) -> dict[str, TimeIntervalSet]:
    """Read the ``[time_intervals]`` table; ``ValueError`` naming the key path
    (``nights.times[0].start_time: expected HH:MM ...``)."""
    if not isinstance(data, Mapping):
        raise ValueError(f"expected a table of named time intervals, got {_kind(data)}")
    out = {}
    for name, value in data.items():
        if isinstance(value, TimeIntervalSet):
            out[str(name)] = value
            continue
        if isinstance(value, Mapping):
            tables: list[Any] = [value]
            paths = [str(name)]
        elif isinstance(value, (list, tuple)) and value:
            tables = list(value)
            paths = [f"{name}[{i}]" for i in range(len(tables))]
        else:
            raise ValueError(
                f"{name}: expected a table or an array of tables (times, weekdays, "
                f"days_of_month, months, years, location), got {_kind(value)}"
            )
        out[str(name)] = TimeIntervalSet(
            str(name), tuple(_interval(t, p) for t, p in zip(tables, paths, strict=True))
        )
    return out


def _kind(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "an empty array" if not value else "an array"
    if isinstance(value, Mapping):
        return "a table"
    return type(value).__name__


def _interval(data: Any, path: str) -> TimeInterval:
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected a table, got {_kind(data)}")
    unknown = [k for k in data if k not in _KEYS]
    if unknown:
        raise ValueError(f"{path}.{unknown[0]}: expected one of {', '.join(_KEYS)} (unknown key)")
    location = data.get("location", "UTC")
    zone = _zone(location, f"{path}.location")
    return TimeInterval(
        times=tuple(_times(data.get("times", []), f"{path}.times")),
        weekdays=tuple(_ranges(data.get("weekdays", []), f"{path}.weekdays", _weekday)),
        days_of_month=tuple(
            _ranges(data.get("days_of_month", []), f"{path}.days_of_month", _day, dom=True)
        ),
        months=tuple(_ranges(data.get("months", []), f"{path}.months", _month)),
        years=tuple(_ranges(data.get("years", []), f"{path}.years", _year)),
        location=str(location),
        zone=zone,
    )


def _zone(name: Any, path: str) -> dt.tzinfo:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{path}: expected an IANA time zone such as Europe/Berlin")
    if name in ("UTC", "utc"):
        return dt.timezone.utc
    import zoneinfo

    if name == "Local":
        return _local_zone()
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{path}: unknown time zone {name!r} (expected an IANA name such as "
            "Europe/Berlin, UTC or Local)"
        ) from None


def _local_zone() -> dt.tzinfo:
    """The system's zone: ``$TZ``, else ``/etc/localtime``, else today's fixed offset."""
    import os
    import zoneinfo

    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            pass
    try:
        with open("/etc/localtime", "rb") as f:
            return zoneinfo.ZoneInfo.from_file(f, key="Local")
    except (OSError, ValueError):
        return dt.datetime.now().astimezone().tzinfo or dt.timezone.utc


def _times(value: Any, path: str) -> list[tuple[int, int]]:
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{path}: expected an array of {{start_time, end_time}} tables")
    out = []
    for i, item in enumerate(value):
        where = f"{path}[{i}]"
        if not isinstance(item, Mapping):
            raise ValueError(f"{where}: expected a table with start_time and end_time")
        extra = [k for k in item if k not in ("start_time", "end_time")]
        if extra:
            raise ValueError(f"{where}.{extra[0]}: expected start_time or end_time (unknown key)")
        start = _clock_time(item.get("start_time"), f"{where}.start_time")
        end = _clock_time(item.get("end_time"), f"{where}.end_time")
        if start >= 24 * 60:
            raise ValueError(f"{where}.start_time: expected HH:MM before 24:00, got '24:00'")
        if start >= end:
            raise ValueError(
                f"{where}: expected start_time before end_time, got "
                f"{item.get('start_time')!r} to {item.get('end_time')!r} (split a range that "
                "crosses midnight in two)"
            )
        out.append((start, end))
    return out


def _clock_time(value: Any, path: str) -> int:
    match = _TIME.match(value) if isinstance(value, str) else None
    if match is None:
        shown = "nothing" if value is None else repr(value)
        raise ValueError(f"{path}: expected HH:MM (00:00 to 23:59, or 24:00), got {shown}")
    hours, minutes = (match[1], match[2]) if match[1] is not None else (match[3], match[4])
    return int(hours) * 60 + int(minutes)


def _ranges(value: Any, path: str, parse: Any, *, dom: bool = False) -> list[tuple[int, int]]:
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{path}: expected an array of values or ranges such as 'a:b'")
    out = []
    for i, item in enumerate(value):
        where = f"{path}[{i}]"
        if isinstance(item, str) and ":" in item.strip().lstrip("-"):
            text = item.strip()
            # "-3:-1" splits on the colon that is not a sign
            head, _, tail = text.partition(":")
            lo, hi = parse(head, where), parse(tail, where)
        else:
            lo = hi = parse(item, where)
        if dom:
            if (lo > 0) == (hi > 0) and lo > hi:
                raise ValueError(f"{where}: expected the start of the range before its end")
        elif lo > hi:
            raise ValueError(f"{where}: expected the start of the range before its end")
        out.append((lo, hi))
    return out


def _named(table: Mapping[str, int], what: str, low: int, high: int) -> Any:
    def parse(value: Any, where: str) -> int:
        if isinstance(value, str):
            text = value.strip().lower()
            if text in table:
                return table[text]
            if text.isdigit():
                value = int(text)
        if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
            return value
        names = ", ".join(table) if table else ""
        hint = f" or {names}" if names else ""
        raise ValueError(f"{where}: expected {what} ({low} to {high}{hint}), got {value!r}")

    return parse


_weekday = _named(WEEKDAYS, "a weekday", 0, 6)
_month = _named(MONTHS, "a month", 1, 12)


def _day(value: Any, where: str) -> int:
    number: Any = value
    if isinstance(value, str):
        text = value.strip()
        try:
            number = int(text)
        except ValueError:
            number = None
    if isinstance(number, int) and not isinstance(number, bool) and 1 <= abs(number) <= 31:
        return number
    raise ValueError(
        f"{where}: expected a day of the month (1 to 31, or -1 to -31 from the end), got {value!r}"
    )


def _year(value: Any, where: str) -> int:
    number: Any = value
    if isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    if isinstance(number, int) and not isinstance(number, bool) and 1 <= number <= 9999:
        return number
    raise ValueError(f"{where}: expected a year such as 2026, got {value!r}")
