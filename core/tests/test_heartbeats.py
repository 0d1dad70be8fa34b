"""Heartbeats: deadlines on the timeline, a late or failed check raises heartbeat:NAME,
the next good ping resolves it, pings from Python (context managers, decorator) and
from alerts that arrive (Alertmanager's Watchdog)."""

from __future__ import annotations

import tempfile
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pixalert import Alert, ConfigError, HeartbeatNotFound
from pixalert._clock import to_datetime
from pixalert.testing import FakeClock, RecordingChannel, make_manager

ROUTE_ALL = {"routing": {p: ["*"] for p in ("low", "medium", "high", "critical")}}


def config(**heartbeats: Any) -> dict[str, Any]:
    return {**ROUTE_ALL, "heartbeats": heartbeats}


def alerts(channel: RecordingChannel) -> list[tuple[str, str, str]]:
    return [(a.key, a.status, a.title) for a in channel.sent]


async def test_a_check_that_never_pings_is_late_after_period_and_grace(clock: FakeClock) -> None:
    pager = RecordingChannel("pager")
    cfg = config(backup={"period": "1h", "grace": "5m", "priority": "critical"})
    async with make_manager([pager], clock=clock, config=cfg) as manager:
        start = clock.now()
        state = (await manager.heartbeats())[0]
        assert state["name"] == "backup" and state["state"] == "new"
        assert state["next_deadline"] == to_datetime(start + 3900).isoformat()
        clock.advance(3899)
        await manager.resume_pending()
        assert pager.sent == []
        clock.advance(1)
        await manager.resume_pending()
        assert alerts(pager) == [("heartbeat:backup", "firing", "Heartbeat backup is late")]
        late = pager.sent[0]
        assert late.priority.name == "CRITICAL"
        assert "has not pinged since pixalert began watching it" in late.message
        assert (await manager.heartbeats())[0]["state"] == "late"
        # Once: later deadlines do not raise it again.
        clock.advance(7200)
        await manager.resume_pending()
        assert len(pager.sent) == 1
        # The next good ping resolves it.
        outcome = await manager.heartbeat_ping("backup")
        assert outcome["alert"] == "resolved" and outcome["state"] == "up"
        assert alerts(pager)[-1] == ("heartbeat:backup", "resolved", "Heartbeat backup is late")


async def test_pings_move_the_deadline_and_the_alert_says_when_the_last_was(
    clock: FakeClock,
) -> None:
    pager = RecordingChannel("pager")
    async with make_manager(
        [pager], clock=clock, config=config(job={"period": "10m", "grace": "1m"})
    ) as manager:
        for _ in range(5):
            clock.advance(9 * 60)
            await manager.heartbeat_ping("job")
            await manager.resume_pending()
        assert pager.sent == []
        last = clock.now()
        clock.advance(11 * 60)
        await manager.resume_pending()
        (late,) = pager.sent
        when = to_datetime(last).strftime("%Y-%m-%d %H:%M:%S UTC")
        assert late.message == (
            f"No ping from job since {when} (11m ago); expected every 10m, grace 1m."
        )
        assert late.metadata["last_ping"] == to_datetime(last).isoformat()
        state = (await manager.heartbeats())[0]
        assert state["pings"] == 5 and state["last_ping"] == to_datetime(last).isoformat()


async def test_fail_raises_at_once_and_success_resolves(clock: FakeClock) -> None:
    pager = RecordingChannel("pager")
    async with make_manager([pager], clock=clock, config=config(etl={"period": "1d"})) as manager:
        await manager.heartbeat_ping("etl")
        clock.advance(60)
        outcome = await manager.heartbeat_ping("etl", "fail", note="exit status 3")
        assert outcome["alert"] == "raised" and outcome["state"] == "failed"
        (failed,) = pager.sent
        assert failed.title == "Heartbeat etl failed" and failed.key == "heartbeat:etl"
        assert "reported a failure at" in failed.message and "exit status 3" in failed.message
        # A second failure in a row is the same incident: no second alert.
        await manager.heartbeat_ping("etl", "fail")
        assert len(pager.sent) == 1
        clock.advance(3600)
        outcome = await manager.heartbeat_ping("etl")
        assert outcome["alert"] == "resolved"
        assert alerts(pager)[-1][1] == "resolved"
        assert (await manager.heartbeat_ping("etl"))["alert"] is None


async def test_start_measures_the_run_and_an_unfinished_run_is_late(clock: FakeClock) -> None:
    pager = RecordingChannel("pager")
    cfg = config(report={"period": "1d", "grace": "30m"})
    async with make_manager([pager], clock=clock, config=cfg) as manager:
        await manager.heartbeat_ping("report", "start")
        running = (await manager.heartbeats())[0]
        assert running["running"] and running["started_at"] is not None
        clock.advance(125)
        done = await manager.heartbeat_ping("report")
        assert done["last_duration"] == pytest.approx(125) and not done["running"]
        clock.advance(3600)
        await manager.heartbeat_ping("report", "start")
        clock.advance(30 * 60 + 1)
        await manager.resume_pending()
        (late,) = pager.sent
        assert (
            "started at" in late.message
            and "did not finish within its grace of 30m" in late.message
        )


async def test_a_cron_schedule_in_a_time_zone(clock: FakeClock) -> None:
    paris = ZoneInfo("Europe/Paris")
    start = datetime(2026, 3, 28, 12, 0, tzinfo=paris).timestamp()  # the day before DST
    clock = FakeClock(start)
    pager = RecordingChannel("pager")
    cfg = config(nightly={"schedule": "0 3 * * *", "timezone": "Europe/Paris", "grace": "1h"})
    async with make_manager([pager], clock=clock, config=cfg) as manager:
        state = (await manager.heartbeats())[0]
        expected = datetime(2026, 3, 29, 4, 0, tzinfo=paris)  # 03:00 (+1h grace) on DST day
        assert datetime.fromisoformat(state["next_deadline"]) == expected
        assert state["expected"] == "cron '0 3 * * *' (Europe/Paris), grace 1h"
        clock.advance(expected.timestamp() - clock.now() - 1)
        await manager.resume_pending()
        assert pager.sent == []
        clock.advance(2)
        await manager.resume_pending()
        assert len(pager.sent) == 1
        await manager.heartbeat_ping("nightly")
        state = (await manager.heartbeats())[0]
        nxt = datetime(2026, 3, 30, 4, 0, tzinfo=paris)
        assert datetime.fromisoformat(state["next_deadline"]) == nxt


async def test_the_context_managers_and_the_decorator(clock: FakeClock) -> None:
    pager = RecordingChannel("pager")
    async with make_manager([pager], clock=clock, config=config(job={"period": "1h"})) as manager:
        async with manager.heartbeat("job"):
            clock.advance(7)
        state = (await manager.heartbeats())[0]
        assert state["state"] == "up" and state["last_duration"] == pytest.approx(7)

        with pytest.raises(RuntimeError, match="disk full"):
            async with manager.heartbeat("job"):
                raise RuntimeError("disk full")
        assert pager.sent[0].title == "Heartbeat job failed"
        assert "RuntimeError: disk full" in pager.sent[0].message

        @manager.heartbeat("job")
        async def run(n: int) -> int:
            clock.advance(n)
            return n * 2

        assert await run(3) == 6
        assert run.__name__ == "run"
        state = (await manager.heartbeats())[0]
        assert state["state"] == "up" and state["last_duration"] == pytest.approx(3)
        assert pager.sent[-1].status == "resolved"

    with pytest.raises(HeartbeatNotFound, match="no heartbeat 'nope' is configured"):
        manager.heartbeat("nope")


def test_the_sync_context_manager_and_decorator(clock: FakeClock) -> None:
    pager = RecordingChannel("pager")
    manager = make_manager([pager], clock=clock, config=config(job={"period": "1h"}))
    try:
        with manager.heartbeat("job"):
            clock.advance(4)

        @manager.heartbeat("job")
        def crash() -> None:
            raise ValueError("bad input")

        with pytest.raises(ValueError):
            crash()
        assert [a.title for a in pager.sent] == ["Heartbeat job failed"]
        states = manager.run_sync(manager.heartbeats())
        assert states[0]["state"] == "failed"
        manager.heartbeat("job").ping_sync()
        assert pager.sent[-1].status == "resolved"
    finally:
        manager.close_sync()


async def test_an_alert_matching_a_heartbeat_is_its_ping_not_a_notification(
    clock: FakeClock,
) -> None:
    pager = RecordingChannel("pager")
    cfg = config(prometheus={"period": "5m", "match": {"alertname": "Watchdog"}})
    async with make_manager([pager], clock=clock, config=cfg) as manager:
        watchdog = Alert(
            "Watchdog",
            "An alert that should always be firing",
            priority="low",
            metadata={"labels": {"alertname": "Watchdog", "severity": "none"}},
            source="alertmanager",
            created_at=to_datetime(clock.now()),
        )
        results = await manager.send_notification(watchdog)
        assert results["pager"].status == "suppressed"
        assert results["pager"].error == "heartbeat ping for prometheus"
        assert pager.sent == []
        state = (await manager.heartbeats())[0]
        assert state["pings"] == 1 and state["state"] == "up"
        # A resolved Watchdog is no ping, and not delivered either.
        clock.advance(60)
        results = await manager.send_notification(watchdog.resolve())
        assert results["pager"].status == "suppressed"
        assert (await manager.heartbeats())[0]["pings"] == 1
        # Prometheus died: no Watchdog for longer than period + grace.
        clock.advance(11 * 60)
        await manager.resume_pending()
        assert alerts(pager) == [("heartbeat:prometheus", "firing", "Heartbeat prometheus is late")]
        await manager.submit(attrs_evolve(watchdog, clock))
        await manager.drain()
        assert alerts(pager)[-1][1] == "resolved"


def attrs_evolve(alert: Alert, clock: FakeClock) -> Alert:
    import attrs
    from pixalert._types import _new_id

    return attrs.evolve(alert, id=_new_id(), created_at=to_datetime(clock.now()))


async def test_a_deadline_survives_a_restart(clock: FakeClock) -> None:
    url = f"sqlite:///{tempfile.mkdtemp(prefix='pixalert-hb-')}/history.db"
    cfg = config(job={"period": "10m", "grace": "0s"})
    async with make_manager([RecordingChannel("pager")], clock=clock, config=cfg, history=url) as m:
        await m.heartbeat_ping("job")
    clock.advance(601)
    pager = RecordingChannel("pager")
    async with make_manager([pager], clock=clock, config=cfg, history=url) as m:
        await m.resume_pending()
        assert alerts(pager) == [("heartbeat:job", "firing", "Heartbeat job is late")]


async def test_unknown_names_and_signals(clock: FakeClock) -> None:
    async with make_manager(
        [RecordingChannel("pager")], clock=clock, config=config(a={"period": "1m"})
    ) as m:
        with pytest.raises(HeartbeatNotFound) as caught:
            await m.heartbeat_ping("b")
        assert isinstance(caught.value, KeyError) and caught.value.known == ["a"]
        with pytest.raises(ValueError, match="signal: expected one of success, start, fail"):
            await m.heartbeat_ping("a", "stop")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("heartbeat", "message"),
    [
        ({}, "expected either period"),
        ({"period": "1m", "schedule": "* * * * *"}, "expected either period"),
        ({"period": "0s"}, "expected a finite duration > 0"),
        ({"schedule": "61 * * * *"}, "schedule: not a cron line"),
        ({"schedule": "0 0 30 2 *"}, "never fires within 8 years"),
        ({"period": "1m", "timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"period": "1m", "channels": ["sms"]}, "channel 'sms' is not configured"),
        ({"period": "1m", "match": {"alertname": "=~("}}, "expected a regular expression, got '('"),
        ({"period": "1m", "priority": "urgent"}, "unknown priority 'urgent'"),
    ],
)
def test_config_errors(heartbeat: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make_manager([RecordingChannel("pager")], config=config(check=heartbeat))
    assert message in str(caught.value)


def test_names_must_fit_a_url_and_a_key() -> None:
    with pytest.raises(ConfigError, match=r"expected names of letters.* @ heartbeats"):
        make_manager(config=config(**{"bad name/x": {"period": "1m"}}))


def test_the_listing_is_json_safe(clock: FakeClock) -> None:
    import json

    manager = make_manager(config=config(a={"period": "1m"}, b={"schedule": "@daily"}), clock=clock)
    try:
        listing = manager.run_sync(manager.heartbeats())
        assert [h["name"] for h in listing] == ["a", "b"]
        assert json.loads(json.dumps(listing)) == listing
        assert datetime.fromisoformat(listing[1]["next_deadline"]).tzinfo == timezone.utc
    finally:
        manager.close_sync()


async def test_a_shorter_period_takes_effect_at_the_next_start(clock: FakeClock) -> None:
    url = f"sqlite:///{tempfile.mkdtemp(prefix='pixalert-hb-')}/history.db"
    async with make_manager(clock=clock, config=config(job={"period": "1d"}), history=url) as m:
        await m.heartbeat_ping("job")
        pinged = clock.now()
    cfg = config(job={"period": "10m", "grace": "0s"})
    async with make_manager(clock=clock, config=cfg, history=url) as m:
        (state,) = await m.heartbeats()
        assert state["next_deadline"] == to_datetime(pinged + 600).isoformat()
