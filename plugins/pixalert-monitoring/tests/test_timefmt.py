"""RFC 3339 timestamps as Alertmanager sends them, parsed the same on every Python."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from pixalert_monitoring import parse_timestamp
from pixalert_monitoring._timefmt import format_timestamp

UTC = timezone.utc


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-27T05:18:17Z", datetime(2026, 11, 27, 5, 18, 17, tzinfo=UTC)),
        ("2026-11-27T05:18:17.17Z", datetime(2026, 11, 27, 5, 18, 17, 170000, tzinfo=UTC)),
        ("2026-11-27T05:18:34.297Z", datetime(2026, 11, 27, 5, 18, 34, 297000, tzinfo=UTC)),
        # 9 fraction digits: truncated to microseconds.
        ("2026-11-27T05:18:33.123456789Z", datetime(2026, 11, 27, 5, 18, 33, 123456, tzinfo=UTC)),
        # The sender's offset is kept by Alertmanager; we convert to UTC.
        ("2026-11-27T07:18:33.5+02:00", datetime(2026, 11, 27, 5, 18, 33, 500000, tzinfo=UTC)),
        ("2026-11-27T00:18:33-05:00", datetime(2026, 11, 27, 5, 18, 33, tzinfo=UTC)),
        ("2026-11-27t05:18:17.1z", datetime(2026, 11, 27, 5, 18, 17, 100000, tzinfo=UTC)),
    ],
)
def test_every_fraction_length_and_offset(text: str, expected: datetime) -> None:
    value = parse_timestamp(text)
    assert value == expected
    assert value is not None and value.utcoffset() == timedelta(0)


def test_all_fraction_lengths_zero_to_nine() -> None:
    for digits in range(10):
        fraction = "." + "1" * digits if digits else ""
        value = parse_timestamp(f"2026-11-27T05:18:17{fraction}Z")
        assert value is not None
        assert value.microsecond == int(("1" * min(digits, 6)).ljust(6, "0") or 0)


def test_go_zero_time_means_no_end() -> None:
    # Surprise 1: a firing alert's endsAt; never converted (year 1 overflows).
    assert parse_timestamp("0001-01-01T00:00:00Z") is None
    assert parse_timestamp("0001-01-01T00:00:00+01:00") is None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "yesterday",
        "2026-11-27",
        "2026-11-27T05:18:17",
        "2026-11-27T05:18:17.Z",
        "2026-11-27T05:18:17.1234567890Z",
        "2026-13-27T05:18:17Z",
        "2026-11-27T05:18:17+25:00",
    ],
)
def test_rejects_non_rfc3339_with_the_place(text: str) -> None:
    with pytest.raises(ValueError, match=r"^alerts\[0\]\.startsAt: "):
        parse_timestamp(text, where="alerts[0].startsAt")


def test_rejects_non_strings() -> None:
    with pytest.raises(ValueError, match="expected an RFC 3339 timestamp string, got int"):
        parse_timestamp(12)


def test_format_round_trip() -> None:
    value = parse_timestamp("2026-11-27T07:18:33.5+02:00")
    assert format_timestamp(value) == "2026-11-27T05:18:33.500000Z"
    assert format_timestamp(None) is None
