"""The store under real NotificationManagers: a shared history, takeover of a dead one's work."""

from __future__ import annotations

import pixalert_postgres
import pytest
from pixalert import Alert
from pixalert.testing import FakeClock, RecordingChannel, make_manager

pytestmark = pytest.mark.services


async def test_two_instances_share_history_and_cooldown(schema_url: str) -> None:
    clock = FakeClock()
    config = {"history": schema_url, "state": schema_url, "cooldown_minutes": 5}
    one, two = RecordingChannel("slack"), RecordingChannel("slack")
    async with (
        make_manager([one], clock=clock, config=config, plugins=[pixalert_postgres]) as a,
        make_manager([two], clock=clock, config=config, plugins=[pixalert_postgres]) as b,
    ):
        first = await a.send_alert("disk full", "db-1", "low", source="ops")
        second = await b.send_alert("disk full", "db-1", "low", source="ops")
        assert first["slack"].status.value == "sent"
        assert second["slack"].status.value == "suppressed"
        assert len(one.sent) + len(two.sent) == 1

        for manager in (a, b):
            history = await manager.history(hours=1)
            assert len(history) == 2
            assert {row["state"] for row in history} == {"done"}
            stats = await manager.stats(hours=1)
            assert stats["alerts"] == 2
            assert stats["channels"]["slack"]["sent"] == 1
            assert stats["channels"]["slack"]["suppressed"] == 1
        health = await a.health()
        assert health["history"]["status"] == "ok"
        assert health["state"]["status"] == "ok"


async def test_work_of_a_dead_instance_is_finished_by_another(schema_url: str) -> None:
    clock = FakeClock()
    config = {"history": schema_url, "state": schema_url, "delivery": {"lease": 30}}
    survivor_channel = RecordingChannel("slack")
    async with (
        make_manager([], clock=clock, config=config, plugins=[pixalert_postgres]) as dead,
        make_manager(
            [survivor_channel], clock=clock, config=config, plugins=[pixalert_postgres]
        ) as survivor,
    ):
        await dead.start()
        alert = Alert("db down", "primary unreachable", "low", channels=["slack"])
        stale = await dead.history_store.record(alert, owner=dead.instance_id, lease=30)
        # ... and the instance dies here, before any channel was tried.
        assert await survivor.resume_pending() == 0  # its lease is still live
        clock.advance(31)
        assert await survivor.resume_pending() == 1
        assert [a.id for a in survivor_channel.sent] == [alert.id]
        (row,) = await survivor.history(hours=1)
        assert row["state"] == "done"
        assert row["results"]["slack"]["status"] == "sent"
        # The dead instance's late word is refused.
        assert not await dead.history_store.complete(stale)
