"""Held deliveries: ``for``, time intervals, occurrences and flapping."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pixalert import ConfigError, DeliveryStatus
from pixalert.testing import FakeClock, RecordingChannel, make_manager

# Saturday 2026-03-28 12:00 UTC; Europe/Berlin moves to summer time on Sunday 03-29 at 01:00 UTC.
SATURDAY_NOON = dt.datetime(2026, 3, 28, 12, 0, tzinfo=dt.timezone.utc).timestamp()


def at(*args: int) -> float:
    return dt.datetime(*args, tzinfo=dt.timezone.utc).timestamp()


def route(**keys: Any) -> dict[str, Any]:
    return {"routes": [{"match": {}, "channels": ["slack"], **keys}]}


async def test_for_holds_until_still_firing(clock: FakeClock) -> None:
    slack = RecordingChannel("slack")
    async with make_manager([slack], clock=clock, config=route(**{"for": "2m"})) as manager:
        results = await manager.send_alert("CPU hot", "m", "high", key="cpu")
        held = results["slack"]
        assert held.status is DeliveryStatus.HELD
        assert held.next_attempt_at is not None
        assert held.next_attempt_at.timestamp() == pytest.approx(clock.now() + 120)
        assert "notified only if still firing" in (held.error or "")
        clock.advance(119)
        await manager.resume_pending()
        assert slack.sent == []
        clock.advance(1)
        await manager.resume_pending()
        assert [a.title for a in slack.sent] == ["CPU hot"]


async def test_a_resolve_before_for_elapsed_sends_nothing_and_says_why(clock: FakeClock) -> None:
    slack = RecordingChannel("slack")
    async with make_manager([slack], clock=clock, config=route(**{"for": "2m"})) as manager:
        await manager.send_alert("CPU hot", "m", "high", key="cpu")
        clock.advance(60)
        results = await manager.send_alert("CPU hot", "ok", "high", key="cpu", status="resolved")
        assert results["slack"].status is DeliveryStatus.SUPPRESSED
        clock.advance(600)
        await manager.resume_pending()
        assert slack.sent == []
        firing, resolved = sorted(await manager.history(), key=lambda e: e["status"])
    assert firing["results"]["slack"]["error"].startswith("superseded: the alert resolved")
    assert resolved["results"]["slack"]["error"].startswith("not sent: the firing notification")


NIGHTS = {
    "time_intervals": {
        "nights": [
            {"times": [{"start_time": "22:00", "end_time": "24:00"}], "location": "Europe/Berlin"},
            {"times": [{"start_time": "00:00", "end_time": "07:00"}], "location": "Europe/Berlin"},
        ]
    }
}


async def test_a_muted_delivery_is_held_until_the_interval_ends_across_dst() -> None:
    clock = FakeClock(at(2026, 3, 28, 23, 0))  # 00:00 in Berlin, Sunday: the clocks go forward
    slack = RecordingChannel("slack")
    config = {**NIGHTS, **route(mute_time_intervals=["nights"])}
    async with make_manager([slack], clock=clock, config=config) as manager:
        results = await manager.send_alert("Disk full", "m", "high")
        held = results["slack"]
        assert held.status is DeliveryStatus.HELD
        # 07:00 summer time in Berlin is 05:00 UTC (not 06:00: the night was an hour short)
        assert held.next_attempt_at == dt.datetime(2026, 3, 29, 5, 0, tzinfo=dt.timezone.utc)
        assert "muted by time interval 'nights' until 2026-03-29 05:00:00 UTC" in (held.error or "")
        clock.advance(5 * 3600.0 + 59 * 60)
        await manager.resume_pending()
        assert slack.sent == []
        clock.advance(60)
        await manager.resume_pending()
        assert [a.title for a in slack.sent] == ["Disk full"]


async def test_a_muted_delivery_that_resolves_meanwhile_is_never_sent() -> None:
    clock = FakeClock(at(2026, 6, 1, 21, 0))  # 23:00 in Berlin
    slack = RecordingChannel("slack")
    config = {**NIGHTS, **route(mute_time_intervals=["nights"])}
    async with make_manager([slack], clock=clock, config=config) as manager:
        await manager.send_alert("Disk full", "m", "high", key="disk")
        clock.advance(3600)
        resolved = await manager.send_alert("Disk full", "m", "high", key="disk", status="resolved")
        assert resolved["slack"].status is DeliveryStatus.SUPPRESSED
        clock.advance(12 * 3600)
        await manager.resume_pending()
        assert slack.sent == []


async def test_outside_an_active_interval_deliveries_wait_for_it() -> None:
    clock = FakeClock(at(2026, 6, 6, 10, 0))  # a Saturday
    slack = RecordingChannel("slack")
    config = {
        "time_intervals": {
            "office": {
                "weekdays": ["monday:friday"],
                "times": [{"start_time": "09:00", "end_time": "17:00"}],
            }
        },
        **route(active_time_intervals=["office"]),
    }
    async with make_manager([slack], clock=clock, config=config) as manager:
        results = await manager.send_alert("Report late", "m", "low")
        assert results["slack"].next_attempt_at == dt.datetime(
            2026, 6, 8, 9, 0, tzinfo=dt.timezone.utc
        )
        assert "outside active time interval 'office'" in (results["slack"].error or "")


async def test_a_retry_that_falls_into_a_mute_interval_is_held_again() -> None:
    from pixalert import DeliveryError

    clock = FakeClock(at(2026, 6, 1, 19, 59))  # 21:59 in Berlin
    slack = RecordingChannel("slack", fail=[DeliveryError("503", retryable=True)] * 3)
    config = {
        **NIGHTS,
        **route(mute_time_intervals=["nights"]),
        "delivery": {"backoff": 0, "retry_schedule": ["5m"]},
    }
    async with make_manager([slack], clock=clock, config=config) as manager:
        results = await manager.send_alert("Disk full", "m", "high")
        assert results["slack"].status is DeliveryStatus.RETRYING
        clock.advance(331)  # 22:04 in Berlin (5m and up to 10 % jitter): muted
        await manager.resume_pending()
        assert slack.sent == []
        (entry,) = await manager.history()
        assert entry["results"]["slack"]["status"] == "held"
        assert entry["results"]["slack"]["attempts"] == 3
        clock.advance(9 * 3600)
        await manager.resume_pending()
        assert len(slack.sent) == 1


async def test_occurrences_notify_from_the_nth_firing_within_the_window(clock: FakeClock) -> None:
    slack = RecordingChannel("slack")
    config = {
        **route(occurrences=3, occurrences_window="10m"),
        "cooldown_minutes": 0,
    }
    async with make_manager([slack], clock=clock, config=config) as manager:
        first = await manager.send_alert("Queue long", "m", "medium", key="q")
        assert first["slack"].status is DeliveryStatus.SUPPRESSED
        assert "occurrence 1 of 3 within 10m" in (first["slack"].error or "")
        clock.advance(60)
        await manager.send_alert("Queue long", "m", "medium", key="q")
        clock.advance(60)
        third = await manager.send_alert("Queue long", "m", "medium", key="q")
        assert third["slack"].status is DeliveryStatus.SENT
        clock.advance(3600)
        again = await manager.send_alert("Queue long", "m", "medium", key="q")
        assert again["slack"].status is DeliveryStatus.SUPPRESSED  # the window moved on
        resolve = await manager.send_alert("Queue long", "m", "medium", key="q", status="resolved")
        assert resolve["slack"].status is DeliveryStatus.SUPPRESSED
        assert "never notified" in (resolve["slack"].error or "")
    assert len(slack.sent) == 1


async def test_a_flapping_key_is_notified_once_then_its_settled_state(clock: FakeClock) -> None:
    slack = RecordingChannel("slack")
    config = {"flapping": {"changes": 3, "window": "10m", "settle": "5m"}, "cooldown_minutes": 0}
    async with make_manager([slack], clock=clock, config=config) as manager:
        statuses = ["firing", "resolved"] * 4
        results = []
        for status in statuses:
            results.append(
                await manager.send_alert(
                    "Link", "m", "low", key="link", status=status, channels=["slack"]
                )
            )
            clock.advance(30)
        sent = [r["slack"].status for r in results]
        # changes: 0,1,2,3 -> fine; the 5th alert makes 4 changes: notified with a note
        assert sent[:5] == [DeliveryStatus.SENT] * 5
        assert all(s is DeliveryStatus.SUPPRESSED for s in sent[5:])
        assert "flapping" in (results[5]["slack"].error or "")
        assert "flapping: changed state 4 times within 10m" in slack.sent[4].metadata["flapping"]
        clock.advance(301)
        await manager.resume_pending()
        assert len(slack.sent) == 6
        settled = slack.sent[5]
        assert settled.status == "resolved"
        assert settled.metadata["flapping"].startswith("settled after flapping: resolved")
        await manager.send_alert("Link", "m", "low", key="link", channels=["slack"])
    assert len(slack.sent) == 7


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"@ time_intervals\.nights\.times\[0\]\.start_time"):
        make_manager(config={"time_intervals": {"nights": {"times": [{"start_time": "7am"}]}}})
    with pytest.raises(ConfigError, match=r"unknown time interval 'nigths' .* @ routes\[0\]"):
        make_manager(
            [RecordingChannel("slack")],
            config={**NIGHTS, **route(mute_time_intervals=["nigths"])},
        )
    with pytest.raises(ConfigError, match=r"@ time_intervals\.office\[1\]\.weekdays\[0\]"):
        make_manager(config={"time_intervals": {"office": [{}, {"weekdays": ["someday"]}]}})
    with pytest.raises(ConfigError, match=r"unknown time zone 'Mars/Base'"):
        make_manager(config={"time_intervals": {"x": {"location": "Mars/Base"}}})
    with pytest.raises(ConfigError, match=r"expected a duration .* @ routes\[0\]\.for"):
        make_manager([RecordingChannel("slack")], config=route(**{"for": "soon"}))


async def test_a_version_3_sqlite_file_gains_held_deliveries(tmp_path: Any) -> None:
    import sqlite3

    from pixalert import Alert
    from pixalert._sqlite import _SCHEMA, SQLiteHistoryStore
    from pixalert.storage import Planned

    path = tmp_path / "v3.db"
    conn = sqlite3.connect(path)
    conn.executescript(_SCHEMA)
    for index in ("deliveries_due_v4", "deliveries_waiting_key_v4", "deliveries_group"):
        conn.execute(f"DROP INDEX {index}")
    conn.execute("ALTER TABLE deliveries DROP COLUMN grp")
    conn.executescript(  # version 3's indexes
        "CREATE INDEX deliveries_due ON deliveries (due_at) "
        "WHERE status IN ('pending', 'retrying');"
        "CREATE INDEX deliveries_waiting_key ON deliveries (key, channel) "
        "WHERE status IN ('pending', 'retrying');"
        "INSERT INTO alerts (id, key, created_at, body, state) VALUES "
        '(\'a1\', \'k\', 0, \'{"title": "old", "id": "a1", "key": "k", '
        '"created_at": "2026-01-01T00:00:00+00:00"}\', \'pending\');'
        "INSERT INTO deliveries (alert_id, channel, key, status, created_at, queued_at, due_at)"
        " VALUES ('a1', 'slack', 'k', 'pending', 0, 0, 0);"
        "PRAGMA user_version=3;"
    )
    conn.commit()
    conn.close()
    clock = FakeClock(at(2026, 6, 1, 12, 0))
    store = SQLiteHistoryStore(f"sqlite:///{path}", clock)
    try:
        await store.open_owner("me")
        (claim,) = await store.claim_due(owner="me", lease=60)
        assert claim.alert.title == "old"
        alert = Alert("new", created_at=dt.datetime.now(dt.timezone.utc))
        plan = Planned("slack", clock.now() + 60, group="g", note="held")
        recorded = await store.record(alert, [plan], owner="me", lease=60)
        assert not recorded.claims and [j.ref for j in await store.jobs("group")] == ["g"]
    finally:
        await store.aclose()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 5
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert {"deliveries_due_v4", "deliveries_group"} <= names
        assert "deliveries_due" not in names
    finally:
        conn.close()
