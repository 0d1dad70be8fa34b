"""``manager.history`` windows and filters, ``manager.stats_by`` and ``pixalert.parse_time``."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from pixalert import parse_time
from pixalert.testing import FakeClock, RecordingChannel, make_manager

NOW = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90m", "2027-01-15T06:30:00+00:00"),
        ("2h", "2027-01-15T06:00:00+00:00"),
        ("7d", "2027-01-08T08:00:00+00:00"),
        ("1h30m", "2027-01-15T06:30:00+00:00"),
        ("now", "2027-01-15T08:00:00+00:00"),
        ("2026-12-01", "2026-12-01T00:00:00+00:00"),
        ("2026-12-01T09:30", "2026-12-01T09:30:00+00:00"),  # naive: UTC
        ("2026-12-01 09:30:00", "2026-12-01T09:30:00+00:00"),
        ("2026-12-01T09:30+01:00", "2026-12-01T08:30:00+00:00"),
        ("2026-12-01T09:30Z", "2026-12-01T09:30:00+00:00"),
    ],
)
def test_parse_time(text: str, expected: str) -> None:
    assert parse_time(text, now=NOW).isoformat() == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-2h", "expected a duration ago >= 0 (such as 2h), got '-2h'"),
        ("2", "expected a duration ago such as 90m, 2h, 7d, or an ISO 8601 time"),
        ("soon", "got 'soon'"),
        ("2026-02-30", "got '2026-02-30'"),
        ("", "got ''"),
    ],
)
def test_parse_time_errors_say_what_was_expected(text: str, expected: str) -> None:
    with pytest.raises(ValueError, match="expected") as caught:
        parse_time(text, now=NOW)
    assert expected in str(caught.value)


def test_parse_time_takes_datetimes() -> None:
    naive = datetime(2026, 12, 1, 9, 30)
    assert parse_time(naive) == naive.replace(tzinfo=timezone.utc)
    paris = datetime(2026, 12, 1, 9, 30, tzinfo=timezone(timedelta(hours=1)))
    assert parse_time(paris).isoformat() == "2026-12-01T08:30:00+00:00"


async def _manager_with_alerts(clock: FakeClock) -> Any:
    manager = make_manager([RecordingChannel("slack")], clock=clock, history="memory://")
    for title, priority, ago in (
        ("old", "low", 3 * 3600),
        ("mid", "high", 3600),
        ("new", "high", 60),
    ):
        clock._now = NOW - ago
        await manager.send_alert(title, "text", priority, ["slack"], source=title)
    clock._now = NOW
    return manager


async def test_history_window_and_filters() -> None:
    clock = FakeClock(NOW)
    manager = await _manager_with_alerts(clock)
    async with manager:

        async def titles(*args: object, **kwargs: object) -> list[str]:
            return [e["title"] for e in await manager.history(*args, **kwargs)]

        assert await titles() == ["new", "mid", "old"]
        assert await titles(2) == ["new", "mid"]
        assert await titles(since="2h") == ["new", "mid"]
        assert await titles(since="4h", until="30m") == ["mid", "old"]
        assert await titles(until="2h") == ["old"]  # the 24 h before until
        until = datetime.fromtimestamp(NOW - 1800, timezone.utc)
        assert await titles(since=until - timedelta(hours=1), until=until) == ["mid"]
        assert await titles(priorities=["high"], since="1d") == ["new", "mid"]
        assert await titles(status="acknowledged") == []
        await manager.ack((await manager.history(source="mid"))[0]["id"], by="alice")
        assert await titles(status="acknowledged") == ["mid"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"since": "2h", "hours": 3}, "since: give since or hours, not both"),
        ({"since": "later"}, "since: expected a duration ago"),
        ({"until": "-1h"}, "until: expected a duration ago >= 0"),
        ({"since": "1h", "until": "2h"}, "until: expected a time after since"),
        ({"hours": 0}, "hours: expected a finite number > 0, got 0"),
        ({"hours": float("nan")}, "hours: expected a finite number > 0"),
        ({"status": "asleep"}, "status: expected one of firing, resolved, acknowledged"),
        ({"result": "lost"}, "result: expected one of sent,"),
        ({"priorities": ["urgent"]}, "unknown priority 'urgent'"),
    ],
)
async def test_history_bad_arguments_are_value_errors_naming_them(
    kwargs: dict[str, object], message: str
) -> None:
    async with make_manager([], clock=FakeClock(NOW), history="memory://") as manager:
        with pytest.raises(ValueError) as caught:
            await manager.history(**kwargs)
        assert message in str(caught.value)


async def test_stats_by() -> None:
    clock = FakeClock(NOW)
    manager = await _manager_with_alerts(clock)
    async with manager:
        stats = await manager.stats_by("priority", since="2h")
        assert stats["alerts"] == 2 and list(stats["groups"]) == ["HIGH"]
        assert stats["groups"]["HIGH"]["sent"] == 2
        hours = await manager.stats_by("hour", 24, until="30m")
        assert list(hours["groups"]) == ["2027-01-15T05:00:00+00:00", "2027-01-15T07:00:00+00:00"]
        assert hours["until"] == "2027-01-15T07:30:00+00:00"
        by_source = await manager.stats_by("source")
        assert list(by_source["groups"]) == ["mid", "new", "old"]
        plain = await manager.stats(since="2h")
        assert plain["alerts"] == 2 and plain["channels"]["slack"]["sent"] == 2
        with pytest.raises(ValueError, match="by: expected one of channel, priority"):
            await manager.stats_by("colour")


async def test_stats_by_on_a_store_without_it_counts_from_its_entries() -> None:
    """A store written before stats_by (no BaseHistoryStore) still answers."""
    from pixalert.storage import MemoryHistoryStore

    clock = FakeClock(NOW)
    inner = MemoryHistoryStore(clock)

    class OldStore:
        """Every method of the memory store but stats_by."""

        def __getattr__(self, name: str) -> Any:
            if name == "stats_by":
                raise AttributeError(name)
            return getattr(inner, name)

    manager = make_manager([RecordingChannel("slack")], clock=clock, history=OldStore())
    async with manager:
        await manager.send_alert("one", "text", "high", ["slack"])
        stats = await manager.stats_by("channel")
    assert stats["alerts"] == 1 and stats["groups"]["slack"]["sent"] == 1
