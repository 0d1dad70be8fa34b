"""The backend under a real NotificationManager: shared cooldown, and delivery with Redis down."""

from __future__ import annotations

import pixalert_redis
import pytest
from pixalert.testing import FakeClock, RecordingChannel, make_manager
from pixalert_redis.testing import RedisServer

pytestmark = pytest.mark.services


async def test_two_managers_sharing_redis_send_once(redis_url: str, prefix: str) -> None:
    config = {"state": f"{redis_url}?prefix={prefix}", "cooldown_minutes": 5}
    first, second = RecordingChannel("slack"), RecordingChannel("slack")
    async with (
        make_manager([first], config=config, plugins=[pixalert_redis]) as a,
        make_manager([second], config=config, plugins=[pixalert_redis]) as b,
    ):
        ra = await a.send_alert("disk full", "db-1 at 97%", "low", source="ops")
        rb = await b.send_alert("disk full", "db-1 at 97%", "low", source="ops")
    assert ra["slack"].status.value == "sent"
    assert rb["slack"].status.value == "suppressed"
    assert len(first.sent) + len(second.sent) == 1


async def test_redis_stopped_mid_run_alerts_still_go_out(private_redis: RedisServer) -> None:
    clock = FakeClock()
    channel = RecordingChannel("slack")
    config = {"state": f"{private_redis.url}?retry_interval=30", "cooldown_minutes": 5}
    async with make_manager([channel], clock=clock, config=config, plugins=[pixalert_redis]) as m:
        assert (await m.health())["state"]["status"] == "ok"
        assert (await m.send_alert("cpu high", "90%", "low", source="a"))["slack"]

        private_redis.stop()
        assert (await m.send_alert("cpu high", "91%", "low", source="b"))["slack"]
        health = await m.health()
        assert health["status"] == "degraded"
        assert health["state"]["status"] == "degraded"
        assert health["state"]["fail_open_total"] == 1

        private_redis.start()
        clock.advance(30)
        assert (await m.health())["state"]["status"] == "ok"
        assert (await m.send_alert("cpu high", "92%", "low", source="c"))["slack"]
        repeat = await m.send_alert("cpu high", "93%", "low", source="c")
        assert repeat["slack"].status.value == "suppressed"
    assert len(channel.sent) == 3
