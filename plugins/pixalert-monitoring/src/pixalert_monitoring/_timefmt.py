"""RFC 3339 timestamps as Alertmanager and Grafana send them, on every supported Python.

Go's ``RFC3339Nano`` trims trailing zeros and keeps the sender's offset, so a
timestamp has 0 to 9 fraction digits and ``Z`` or ``±hh:mm``. Python 3.10's
``datetime.fromisoformat`` rejects all of those; this parser takes them all.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

__all__ = ["ZERO_TIME", "format_timestamp", "parse_timestamp"]

_RFC3339 = re.compile(
    r"(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})[Tt ]"
    r"(?P<hour>\d{2}):(?P<minute>\d{2}):(?P<second>\d{2})"
    r"(?:\.(?P<fraction>\d{1,9}))?"
    r"(?P<zone>[Zz]|[+-]\d{2}:\d{2})"
)

#: Go's zero time: Alertmanager's ``endsAt`` of an alert that is still firing.
ZERO_TIME = "0001-01-01T00:00:00Z"


def parse_timestamp(text: object, *, where: str = "timestamp") -> datetime | None:
    """Parse an RFC 3339 timestamp into an aware UTC datetime.

    Returns None for Go's zero time (``0001-01-01T00:00:00Z``, "no end yet").
    Fractions beyond microseconds are truncated. Raises ``ValueError`` naming
    ``where`` for anything that is not an RFC 3339 timestamp.
    """
    if not isinstance(text, str):
        raise ValueError(
            f"{where}: expected an RFC 3339 timestamp string, got {type(text).__name__}"
        )
    match = _RFC3339.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            f"{where}: expected an RFC 3339 timestamp such as 2026-11-27T05:18:17.17Z, "
            f"got {text[:64]!r}"
        )
    parts = match.groupdict()
    if parts["year"] == "0001" and parts["month"] == "01" and parts["day"] == "01":
        # Go's zero time (in any offset): converting it would overflow year 1.
        return None
    zone = parts["zone"]
    if zone in ("Z", "z"):
        tz = timezone.utc
    else:
        sign = -1 if zone[0] == "-" else 1
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if hours > 23 or minutes > 59:
            raise ValueError(f"{where}: invalid UTC offset {zone!r} in {text[:64]!r}")
        tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    fraction = (parts["fraction"] or "").ljust(6, "0")[:6]
    try:
        value = datetime(
            int(parts["year"]),
            int(parts["month"]),
            int(parts["day"]),
            int(parts["hour"]),
            int(parts["minute"]),
            min(int(parts["second"]), 59),  # a leap second becomes :59
            int(fraction),
            tzinfo=tz,
        )
        return value.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        raise ValueError(f"{where}: not a valid date and time: {text[:64]!r}") from None


def format_timestamp(value: datetime | None) -> str | None:
    """An ISO 8601 UTC string (``...Z``) for ``value``, or None."""
    if value is None:
        return None
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
