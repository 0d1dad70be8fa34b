"""Fail open: a private redis-server is stopped and restarted under a live backend.

The machine's shared Redis is never touched here. Time for the retry window
comes from a FakeClock, so nothing waits.
"""

from __future__ import annotations

import logging

import pytest
from pixalert.testing import FakeClock
from pixalert_redis import RedisStateBackend
from pixalert_redis.testing import RedisServer

pytestmark = pytest.mark.services


async def test_fails_open_while_redis_is_down_and_recovers(private_redis: RedisServer) -> None:
    clock = FakeClock()
    backend = RedisStateBackend.from_url(private_redis.url, clock=clock, retry_interval=5)
    try:
        assert await backend.acquire("cooldown:k", 60) is True
        assert await backend.acquire("cooldown:k", 60) is False

        private_redis.stop()
        # Redis is gone: deliver rather than drop, even for a key in cooldown.
        assert await backend.acquire("cooldown:k", 60) is True
        assert backend.degraded
        # Inside the retry window Redis is not tried at all: no timeout per alert.
        assert await backend.acquire("cooldown:k", 60) is True
        assert await backend.acquire_many(["cooldown:k", "cooldown:k"], 60) == [True, True]
        await backend.release("cooldown:k")  # a no-op, never an error
        assert backend.fail_open_total == 4

        private_redis.start()
        # Still inside the window: the backend has not looked yet.
        assert await backend.acquire("cooldown:j", 60) is True
        assert backend.fail_open_total == 5

        clock.advance(5)
        # It looks again and is back to real decisions (the new server lost the keys).
        assert await backend.acquire_many(["cooldown:j", "cooldown:j"], 60) == [True, False]
        assert await backend.acquire("cooldown:j", 60) is False
        assert not backend.degraded
        health = await backend.health()
        assert health["status"] == "ok"
        assert health["fail_open_total"] == 5
    finally:
        await backend.aclose()


async def test_health_reports_degraded_with_a_reason(private_redis: RedisServer) -> None:
    clock = FakeClock()
    backend = RedisStateBackend.from_url(private_redis.url, clock=clock)
    try:
        assert (await backend.health())["status"] == "ok"
        private_redis.kill()
        assert await backend.acquire("dedup:x", 60) is True
        health = await backend.health()
        assert health["status"] == "degraded"
        assert "redis unreachable" in health["reason"]
        assert "fail open" in health["reason"]
        assert health["fail_open_total"] == 1
        assert health["degraded_since"] == clock.now()

        private_redis.start()
        # A health check pings Redis whatever the window: it ends the degraded spell.
        health = await backend.health()
        assert health["status"] == "ok"
        assert "reason" not in health
        assert await backend.acquire("dedup:x", 60) is True
        assert await backend.acquire("dedup:x", 60) is False
    finally:
        await backend.aclose()


async def test_never_reachable_redis_fails_open_from_the_start() -> None:
    from pixalert_redis.testing import free_port

    backend = RedisStateBackend.from_url(f"redis://127.0.0.1:{free_port()}/0", clock=FakeClock())
    try:
        assert await backend.acquire("a", 60) is True
        assert await backend.acquire("a", 60) is True
        assert (await backend.health())["status"] == "degraded"
    finally:
        await backend.aclose()


async def test_password_never_shown(caplog: pytest.LogCaptureFixture) -> None:
    secret = "s3cr3t-redis-pass"
    caplog.set_level(logging.DEBUG)
    with RedisServer(password=secret) as server:
        backend = RedisStateBackend.from_url(server.url, clock=FakeClock())
        wrong = RedisStateBackend.from_url(
            server.url.replace(secret, "wrong-password-x"), clock=FakeClock()
        )
        try:
            assert await backend.acquire("k", 60) is True
            assert await backend.acquire("k", 60) is False
            # A wrong password is an unreachable Redis for our purposes: fail open.
            assert await wrong.acquire("k", 60) is True
            server.stop()
            assert await backend.acquire("k", 60) is True
            texts = [
                repr(backend),
                str(await backend.health()),
                str(await wrong.health()),
                caplog.text,
            ]
        finally:
            await backend.aclose()
            await wrong.aclose()
    for text in texts:
        assert secret not in text
        assert "wrong-password-x" not in text
    assert "redis://:***@127.0.0.1" in repr(backend)


async def test_values_fail_open_while_redis_is_down_and_recover(
    private_redis: RedisServer,
) -> None:
    clock = FakeClock()
    backend = RedisStateBackend.from_url(private_redis.url, clock=clock, retry_interval=5)
    try:
        await backend.put("silence:s1", '{"id": "s1"}', 3600)
        assert await backend.get("silence:s1") == '{"id": "s1"}'
        assert await backend.items("silence:") == {"silence:s1": '{"id": "s1"}'}

        private_redis.stop()
        # Redis is gone: nothing is silenced or inhibited, and nothing is raised.
        assert await backend.items("silence:") == {}
        assert backend.degraded
        assert await backend.get("silence:s1") is None
        await backend.put("inhibit:cpu:api", "critical_cpu_usage", 60)  # dropped
        assert backend.fail_open_total == 3
        health = await backend.health()
        assert health["status"] == "degraded"
        assert health["fail_open_total"] == 3

        private_redis.start()
        clock.advance(5)
        # Back to real answers (the restarted server has no data: the put was dropped).
        assert await backend.get("inhibit:cpu:api") is None
        assert not backend.degraded
        await backend.put("inhibit:cpu:api", "critical_cpu_usage", 60)
        assert await backend.items("inhibit:") == {"inhibit:cpu:api": "critical_cpu_usage"}
        assert backend.fail_open_total == 3
    finally:
        await backend.aclose()
