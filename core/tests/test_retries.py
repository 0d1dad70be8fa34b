"""Delivery: retries with backoff, Retry-After, timeouts, permanent failures, circuit breaker."""

from __future__ import annotations

import asyncio

from pixalert import DeliveryError
from pixalert.testing import FakeClock, RecordingChannel, make_manager

FAST = {"delivery": {"backoff": 1.0, "max_attempts": 3, "timeout": 5}}


async def test_two_failures_then_success_takes_three_attempts(clock: FakeClock) -> None:
    slack = RecordingChannel("slack", fail=[DeliveryError("503"), DeliveryError("503")])
    async with make_manager([slack], clock=clock, config=FAST) as manager:
        results = await manager.send_alert("t", "m", "low")
    assert results["slack"].status == "sent"
    assert results["slack"].attempts == 3
    # Exponential backoff with jitter: 0.5-1 s, then 1-2 s.
    assert len(clock.sleeps) == 2
    assert 0.5 <= clock.sleeps[0] <= 1.0 and 1.0 <= clock.sleeps[1] <= 2.0


async def test_permanent_failure_is_tried_once(clock: FakeClock) -> None:
    slack = RecordingChannel("slack", fail=[DeliveryError.permanent("HTTP 403 invalid_token")])
    async with make_manager([slack], clock=clock, config=FAST) as manager:
        results = await manager.send_alert("t", "m", "low")
    assert results["slack"].status == "failed"
    assert results["slack"].attempts == 1
    assert results["slack"].error == "HTTP 403 invalid_token (permanent, not retried)"
    assert clock.sleeps == []


async def test_retry_after_is_honoured(clock: FakeClock) -> None:
    slack = RecordingChannel("slack", fail=[DeliveryError("429 rate limited", retry_after=30)])
    async with make_manager([slack], clock=clock, config=FAST) as manager:
        results = await manager.send_alert("t", "m", "low")
    assert results["slack"].attempts == 2
    assert clock.sleeps == [30]


async def test_retry_after_is_capped(clock: FakeClock) -> None:
    slack = RecordingChannel("slack", fail=[DeliveryError("429", retry_after=3600)])
    config = {"delivery": {"max_retry_after": 60}}
    async with make_manager([slack], clock=clock, config=config) as manager:
        await manager.send_alert("t", "m", "low")
    assert clock.sleeps == [60]


async def test_attempts_are_bounded(clock: FakeClock) -> None:
    slack = RecordingChannel("slack", fail=[DeliveryError(f"boom {i}") for i in range(10)])
    async with make_manager([slack], clock=clock, config=FAST) as manager:
        results = await manager.send_alert("t", "m", "low")
    assert results["slack"].status == "failed"
    assert results["slack"].attempts == 3
    assert results["slack"].error == "boom 2"


async def test_each_attempt_has_a_timeout(clock: FakeClock) -> None:
    slack = RecordingChannel("slack", hang=True)
    config = {"delivery": {"timeout": 0.05, "max_attempts": 2}}
    async with make_manager([slack], clock=clock, config=config) as manager:
        results = await manager.send_alert("t", "m", "low")
    assert results["slack"].status == "failed"
    assert results["slack"].attempts == 2
    assert results["slack"].error == "timed out after 0.05s"


async def test_unexpected_exception_counts_as_a_retryable_failure(clock: FakeClock) -> None:
    slack = RecordingChannel("slack", fail=[RuntimeError("bug")])
    async with make_manager([slack], clock=clock, config=FAST) as manager:
        results = await manager.send_alert("t", "m", "low")
    assert results["slack"].status == "sent" and results["slack"].attempts == 2


async def test_circuit_opens_after_repeated_failures_and_half_opens_later(clock: FakeClock) -> None:
    failures = [DeliveryError("down") for _ in range(3)]
    slack = RecordingChannel("slack", fail=failures)
    config = {
        "cooldown_minutes": 0,
        "delivery": {"max_attempts": 1, "circuit_failures": 3, "circuit_reset": 60},
    }
    async with make_manager([slack], clock=clock, config=config) as manager:
        for i in range(3):
            assert (await manager.send_alert(f"a{i}", "m", "low"))["slack"].status == "failed"
        calls = slack.calls
        blocked = await manager.send_alert("a3", "m", "low")
        assert blocked["slack"].status == "failed"
        assert "circuit open" in (blocked["slack"].error or "")
        assert slack.calls == calls  # not even tried
        assert (await manager.health())["channels"]["slack"]["circuit"] == "open"
        assert (await manager.health())["status"] == "degraded"
        clock.advance(61)
        assert (await manager.health())["channels"]["slack"]["circuit"] == "half-open"
        trial = await manager.send_alert("a4", "m", "low")
        assert trial["slack"].status == "sent"
        assert (await manager.health())["channels"]["slack"]["circuit"] == "closed"


async def test_failed_half_open_trial_opens_the_circuit_again(clock: FakeClock) -> None:
    slack = RecordingChannel("slack", fail=[DeliveryError("down") for _ in range(3)])
    config = {
        "cooldown_minutes": 0,
        "delivery": {"max_attempts": 1, "circuit_failures": 2, "circuit_reset": 10},
    }
    async with make_manager([slack], clock=clock, config=config) as manager:
        await manager.send_alert("a", "m", "low")
        await manager.send_alert("b", "m", "low")
        clock.advance(11)
        assert (await manager.send_alert("c", "m", "low"))["slack"].status == "failed"
        assert (await manager.health())["channels"]["slack"]["circuit"] == "open"


async def test_per_channel_concurrency_limit(clock: FakeClock) -> None:
    running = 0
    peak = 0
    gate = asyncio.Event()

    class Slow(RecordingChannel):
        async def send(self, alert, *, previous=None):  # type: ignore[no-untyped-def]
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await gate.wait()
            running -= 1
            return await super().send(alert, previous=previous)

    slow = Slow("slack")
    config = {"cooldown_minutes": 0, "delivery": {"concurrency": 2}}
    async with make_manager([slow], clock=clock, config=config) as manager:
        tasks = [asyncio.create_task(manager.send_alert(f"t{i}", "m", "low")) for i in range(6)]
        while running < 2:
            await asyncio.sleep(0)
        for _ in range(20):
            await asyncio.sleep(0)
        assert running == 2
        gate.set()
        await asyncio.gather(*tasks)
    assert peak == 2 and len(slow.sent) == 6
