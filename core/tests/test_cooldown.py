"""Cooldown: the same incident is not sent again inside its window."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pixalert
import pytest
from pixalert import DeliveryError, StoreUnavailable
from pixalert._sqlite import SQLiteHistoryStore
from pixalert.testing import FakeClock, RecordingChannel, make_manager


async def test_second_identical_alert_is_suppressed(clock: FakeClock) -> None:
    slack = RecordingChannel("slack")
    async with make_manager([slack], clock=clock) as manager:
        first = await manager.send_alert("CPU high", "91%", "low")
        second = await manager.send_alert("CPU high", "92%", "low")
    assert first["slack"].status == "sent"
    assert second["slack"].status == "suppressed"
    assert "cooldown" in (second["slack"].error or "")
    assert len(slack.sent) == 1


async def test_different_key_is_not_suppressed(clock: FakeClock) -> None:
    slack = RecordingChannel("slack")
    async with make_manager([slack], clock=clock) as manager:
        await manager.send_alert("CPU high", "m", "low", key="api-1")
        other = await manager.send_alert("CPU high", "m", "low", key="api-2")
    assert other["slack"].status == "sent"


async def test_cooldown_expires_after_the_window(clock: FakeClock) -> None:
    slack = RecordingChannel("slack")
    async with make_manager([slack], clock=clock, config={"cooldown_minutes": 10}) as manager:
        await manager.send_alert("CPU high", "m", "low")
        clock.advance(9 * 60)
        assert (await manager.send_alert("CPU high", "m", "low"))["slack"].status == "suppressed"
        clock.advance(61)
        assert (await manager.send_alert("CPU high", "m", "low"))["slack"].status == "sent"
    assert len(slack.sent) == 2


async def test_per_alert_cooldown_overrides_config(clock: FakeClock) -> None:
    slack = RecordingChannel("slack")
    async with make_manager([slack], clock=clock) as manager:
        await manager.send_alert("t", "m", "low", cooldown=0)
        again = await manager.send_alert("t", "m", "low", cooldown=0)
    assert again["slack"].status == "sent"


async def test_resolve_and_escalation_are_not_swallowed(clock: FakeClock) -> None:
    slack = RecordingChannel("slack")
    async with make_manager([slack], clock=clock, config={"routing": {"high": ["slack"]}}) as m:
        await m.send_alert("db down", "m", "low")
        escalated = await m.send_alert("db down", "m", "high")
        resolved = await m.send_alert("db down", "ok", "high", status="resolved")
    assert escalated["slack"].status == "sent"
    assert resolved["slack"].status == "sent"


async def test_failed_delivery_does_not_start_a_cooldown(clock: FakeClock) -> None:
    slack = RecordingChannel("slack", fail=[DeliveryError.permanent("down")])
    async with make_manager([slack], clock=clock) as manager:
        first = await manager.send_alert("t", "m", "low")
        second = await manager.send_alert("t", "m", "low")
    assert first["slack"].status == "failed"
    assert second["slack"].status == "sent"


class Silence:
    @pixalert.hookimpl
    def pixalert_suppress(self, alert: pixalert.Alert) -> object:
        async def decide() -> str | None:
            return "maintenance window" if alert.source == "db" else None

        return decide()


async def test_hook_pixalert_suppress(clock: FakeClock) -> None:
    slack = RecordingChannel("slack")
    async with make_manager([slack], clock=clock, plugins=[Silence()]) as manager:
        silenced = await manager.send_alert("t", "m", "low", source="db")
        normal = await manager.send_alert("t", "m", "low", source="web")
    assert silenced["slack"].status == "suppressed"
    assert silenced["slack"].error == "maintenance window"
    assert normal["slack"].status == "sent"


_CHILD = textwrap.dedent(
    """
    import asyncio, json, sys
    from pixalert.testing import RecordingChannel, make_manager

    async def main():
        slack = RecordingChannel("slack")
        async with make_manager([slack], history=sys.argv[1], clock=None) as m:
            results = await m.send_alert("shared incident", "m", "low")
        print(results["slack"].status.value)

    asyncio.run(main())
    """
)


def test_two_processes_sharing_a_sqlite_file_send_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/shared.db"
    statuses = []
    procs = [
        subprocess.Popen([sys.executable, "-c", _CHILD, url], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        statuses.append(out.strip())
    assert sorted(statuses) == ["sent", "suppressed"]


async def test_an_alert_the_store_refused_leaves_no_cooldown(
    clock: FakeClock, tmp_path: Path
) -> None:
    # The record and the cooldown key go out together; when the record fails,
    # the key taken for the lost alert is given back.
    class FullDisk(SQLiteHistoryStore):
        refuse = False

        async def record(self, alert: Any, channels: Any, **kwargs: Any) -> Any:
            if self.refuse:
                raise StoreUnavailable(f"{self.path}: database or disk is full")
            return await super().record(alert, channels, **kwargs)

    slack = RecordingChannel("slack")
    store = FullDisk(f"sqlite:///{tmp_path}/h.db", clock)
    async with make_manager([slack], clock=clock, history=store) as manager:
        store.refuse = True
        with pytest.raises(StoreUnavailable, match="disk is full"):
            await manager.send_alert("CPU high", "91%", "low")
        store.refuse = False
        retry = await manager.send_alert("CPU high", "92%", "low")
    assert retry["slack"].status == "sent"  # not suppressed by the lost alert's cooldown
    assert [a.message for a in slack.sent] == ["92%"]


async def test_an_alert_id_sent_twice_is_delivered_once(clock: FakeClock) -> None:
    slack = RecordingChannel("slack")
    async with make_manager([slack], clock=clock, config={"cooldown_minutes": 0}) as manager:
        alert = pixalert.Alert("CPU high", "91%", "low")
        first = await manager.send_notification(alert)
        again = await manager.send_notification(alert)
    assert first["slack"].status == again["slack"].status == "sent"
    assert len(slack.sent) == 1
