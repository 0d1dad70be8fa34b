"""Delivery: quick retries with backoff, Retry-After, timeouts, permanent failures,
the circuit breaker, and rounds on the timeline that outlast an outage."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest
from pixalert import Alert, DeliveryError
from pixalert._clock import to_datetime
from pixalert._delivery import FIRST_OPEN, CircuitBreaker
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
        clock.advance(3600)
        assert await manager.resume_pending() == 0  # a permanent failure is final


async def test_a_short_retry_after_is_waited_for(clock: FakeClock) -> None:
    slack = RecordingChannel("slack", fail=[DeliveryError("429 rate limited", retry_after=5)])
    async with make_manager([slack], clock=clock, config=FAST) as manager:
        results = await manager.send_alert("t", "m", "low")
    assert results["slack"].status == "sent" and results["slack"].attempts == 2
    assert clock.sleeps == [5]


async def test_a_long_retry_after_moves_the_due_time_instead_of_holding_a_task(
    clock: FakeClock,
) -> None:
    slack = RecordingChannel("slack", fail=[DeliveryError("429 rate limited", retry_after=300)])
    async with make_manager([slack], clock=clock, config=FAST) as manager:
        start = clock.now()
        results = await manager.send_alert("t", "m", "low")
        waiting = results["slack"]
        assert waiting.status == "retrying" and waiting.attempts == 1
        assert waiting.next_attempt_at == to_datetime(start + 300)
        assert clock.sleeps == []  # no task slept through it
        clock.advance(299)
        assert await manager.resume_pending() == 0
        clock.advance(1.5)
        assert await manager.resume_pending() == 1
        (entry,) = await manager.history()
        assert entry["results"]["slack"]["status"] == "sent"
        assert entry["results"]["slack"]["attempts"] == 2


async def test_a_requested_wait_is_capped(clock: FakeClock) -> None:
    slack = RecordingChannel("slack", fail=[DeliveryError("429", retry_after=7200)])
    config = {"delivery": {"max_retry_after": 60}}
    async with make_manager([slack], clock=clock, config=config) as manager:
        start = clock.now()
        results = await manager.send_alert("t", "m", "low")
    assert results["slack"].next_attempt_at == to_datetime(start + 60)


async def test_after_the_quick_attempts_the_delivery_waits_on_the_timeline(
    clock: FakeClock,
) -> None:
    slack = RecordingChannel("slack", fail=[DeliveryError(f"boom {i}") for i in range(10)])
    async with make_manager([slack], clock=clock, config=FAST) as manager:
        start = clock.now()
        results = await manager.send_alert("t", "m", "low")
        waiting = results["slack"]
        assert waiting.status == "retrying" and not waiting
        assert waiting.attempts == 3 and waiting.error == "boom 2"
        assert waiting.next_attempt_at is not None
        # The first step of the default schedule (10s), plus at most 10 % jitter.
        assert start + 10 <= waiting.next_attempt_at.timestamp() <= start + 11
        (entry,) = await manager.history(result="retrying")
        assert entry["state"] == "pending"
        assert entry["results"]["slack"]["next_attempt_at"] == waiting.next_attempt_at.isoformat()
        stats = await manager.stats()
        assert stats["channels"]["slack"]["retrying"] == 1


async def test_retries_outlast_an_outage(clock: FakeClock) -> None:
    """A channel down for two minutes gets the alert when it is back; nothing is lost."""
    slack = RecordingChannel("slack", fail=[DeliveryError("503") for _ in range(6)])
    config = {
        "delivery": {
            "max_attempts": 3,
            "retry_schedule": ["10s", "1m"],
            "backoff": 0,
            "circuit_failures": 100,
        }
    }
    async with make_manager([slack], clock=clock, config=config) as manager:
        start = clock.now()
        assert (await manager.send_alert("t", "m", "low"))["slack"].status == "retrying"
        clock.advance(12)
        assert await manager.resume_pending() == 1  # round two: three more failures
        (entry,) = await manager.history()
        nxt = entry["results"]["slack"]["next_attempt_at"]
        # The schedule counts from acceptance: 10s, then 10s + 1m.
        assert to_datetime(start + 70) <= datetime.fromisoformat(nxt) <= to_datetime(start + 76)
        clock.advance(70)
        assert await manager.resume_pending() == 1
    assert [a.title for a in slack.sent] == ["t"]
    assert slack.calls == 7


async def test_it_gives_up_after_give_up_after(clock: FakeClock) -> None:
    slack = RecordingChannel("slack", fail=[DeliveryError("503") for _ in range(100)])
    config = {
        "delivery": {
            "max_attempts": 1,
            "retry_schedule": ["1h"],
            "give_up_after": "3h",
            "circuit_failures": 1000,
        }
    }
    async with make_manager([slack], clock=clock, config=config) as manager:
        await manager.send_alert("t", "m", "low")
        for _ in range(2):
            clock.advance(4000)  # a step of 1h, plus up to 10 % of jitter
            assert await manager.resume_pending() == 1
        (entry,) = await manager.history()
        assert entry["results"]["slack"]["status"] == "retrying"
        clock.advance(4000)
        assert await manager.resume_pending() == 1
        (entry,) = await manager.history()
        result = entry["results"]["slack"]
        assert result["status"] == "failed" and entry["state"] == "done"
        assert result["error"] == "gave up after 4 attempts over 3h: 503"
        clock.advance(86400)
        assert await manager.resume_pending() == 0


async def test_each_attempt_has_a_timeout(clock: FakeClock) -> None:
    slack = RecordingChannel("slack", hang=True)
    config = {"delivery": {"timeout": 0.05, "max_attempts": 2}}
    async with make_manager([slack], clock=clock, config=config) as manager:
        results = await manager.send_alert("t", "m", "low")
    assert results["slack"].status == "retrying"
    assert results["slack"].attempts == 2
    assert results["slack"].error == "timed out after 0.05s"


class Paced(RecordingChannel):
    """A channel whose service allows one message per ``interval`` seconds (real time)."""

    def __init__(self, name: str, interval: float) -> None:
        super().__init__(name)
        self.interval = interval
        self._next = 0.0

    async def pace(self, alert: Alert) -> None:
        loop = asyncio.get_running_loop()
        wait = self._next - loop.time()
        self._next = max(self._next, loop.time()) + self.interval
        if wait > 0:
            await asyncio.sleep(wait)


async def test_pacing_is_waited_for_before_the_attempt_timeout_starts(clock: FakeClock) -> None:
    """A healthy but busy channel never times out for waiting its turn, so it never
    posts twice (Slack has no idempotency)."""
    slack = Paced("slack", interval=0.03)
    config = {"cooldown_minutes": 0, "delivery": {"timeout": 0.05, "concurrency": 10}}
    async with make_manager([slack], clock=clock, config=config) as manager:
        results = await asyncio.gather(
            *(manager.send_alert(f"alert {i}", "m", "low") for i in range(8))
        )
    # The last of 8 waits ~0.21 s for its turn, far past the 0.05 s attempt timeout.
    assert all(r["slack"].status == "sent" and r["slack"].attempts == 1 for r in results)
    assert slack.calls == 8 and len(slack.sent) == 8


async def test_unexpected_exception_counts_as_a_retryable_failure(clock: FakeClock) -> None:
    slack = RecordingChannel("slack", fail=[RuntimeError("bug")])
    async with make_manager([slack], clock=clock, config=FAST) as manager:
        results = await manager.send_alert("t", "m", "low")
    assert results["slack"].status == "sent" and results["slack"].attempts == 2


async def test_an_open_circuit_defers_deliveries_instead_of_failing_them(
    clock: FakeClock,
) -> None:
    slack = RecordingChannel("slack", fail=[DeliveryError("down") for _ in range(3)])
    config = {
        "cooldown_minutes": 0,
        "delivery": {"max_attempts": 1, "circuit_failures": 3, "circuit_reset": 60},
    }
    async with make_manager([slack], clock=clock, config=config) as manager:
        for i in range(3):
            assert (await manager.send_alert(f"a{i}", "m", "low"))["slack"].status == "retrying"
        calls = slack.calls
        opened = clock.now()
        held = (await manager.send_alert("a3", "m", "low"))["slack"]
        assert held.status == "retrying" and held.attempts == 0
        assert "circuit open" in (held.error or "")
        # When it half-opens: FIRST_OPEN seconds after it opened (circuit_reset is the most).
        assert held.next_attempt_at == to_datetime(opened + FIRST_OPEN)
        assert slack.calls == calls  # not even tried
        health = await manager.health()
        assert health["channels"]["slack"]["circuit"] == "open"
        assert health["status"] == "degraded"
        clock.advance(FIRST_OPEN + 1)
        assert (await manager.health())["channels"]["slack"]["circuit"] == "half-open"
        assert await manager.resume_pending() == 1  # a3, held by the circuit: the trial
        assert (await manager.health())["channels"]["slack"]["circuit"] == "closed"
        clock.advance(10)  # the failed ones at their retry_schedule step (10 s)
        assert await manager.resume_pending() == 3
        entries = await manager.history()
    assert {e["results"]["slack"]["status"] for e in entries} == {"sent"}
    assert sorted(a.title for a in slack.sent) == ["a0", "a1", "a2", "a3"]


def test_an_open_circuit_stays_open_twice_as_long_after_each_failed_trial() -> None:
    """A short outage is over by the first trial; a long one is probed at most every
    ``reset`` seconds; a success starts again from the short opening."""
    breaker = CircuitBreaker(threshold=2, reset=30)
    breaker.failure(0)
    assert breaker.state(0) == "closed"
    breaker.failure(0)
    opened_for = []
    now = 0.0
    for _ in range(5):
        assert breaker.state(now) == "open"
        due = breaker.reopens_at(now)
        opened_for.append(due - now)
        assert breaker.state(due - 0.01) == "open" and breaker.state(due) == "half-open"
        now = due
        assert breaker.allow(now) is True  # the trial
        assert breaker.allow(now) is False  # only one
        breaker.failure(now)
    assert opened_for == [FIRST_OPEN, 10, 20, 30, 30]
    assert breaker.allow(now + 30) is True
    breaker.success()
    assert breaker.state(now + 30) == "closed"
    breaker.failure(now + 31)
    breaker.failure(now + 31)
    assert breaker.reopens_at(now + 31) == now + 31 + FIRST_OPEN

    short = CircuitBreaker(threshold=1, reset=2)  # a reset shorter than FIRST_OPEN
    short.failure(0)
    assert short.reopens_at(0) == 2
    assert short.allow(2) is True
    short.failure(2)
    assert short.reopens_at(2) == 4


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
        assert (await manager.send_alert("c", "m", "low"))["slack"].status == "retrying"
        assert (await manager.health())["channels"]["slack"]["circuit"] == "open"


def _gated_trial_channel(gate: asyncio.Event, trying: asyncio.Event) -> RecordingChannel:
    class Slow(RecordingChannel):
        async def send(self, alert: Alert, *, previous: Any = None) -> Any:
            if alert.title == "trial":
                trying.set()
                await gate.wait()
            return await super().send(alert, previous=previous)

    return Slow("slack", fail=[DeliveryError("down"), DeliveryError("down")])


_TRIAL_CONFIG = {
    "cooldown_minutes": 0,
    "delivery": {
        "max_attempts": 1,
        "circuit_failures": 2,
        "circuit_reset": 10,
        "retry_schedule": ["1h"],
    },
}


async def test_a_delivery_waits_for_the_half_open_trial_of_its_process(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A delivery that finds the trial call out waits for its outcome (at most an
    attempt's timeout) and goes right after a trial that succeeds."""
    from pixalert._delivery import CircuitBreaker

    gate, trying, waiting = asyncio.Event(), asyncio.Event(), asyncio.Event()
    wait_for_trial = CircuitBreaker.trial_finished

    async def spy(self: CircuitBreaker, timeout: float) -> bool:
        waiting.set()
        return await wait_for_trial(self, timeout)

    monkeypatch.setattr(CircuitBreaker, "trial_finished", spy)
    slack = _gated_trial_channel(gate, trying)
    async with make_manager([slack], clock=clock, config=_TRIAL_CONFIG) as manager:
        await manager.send_alert("a", "m", "low")
        await manager.send_alert("b", "m", "low")
        clock.advance(11)  # half-open: the next call is the trial
        trial = asyncio.ensure_future(manager.send_alert("trial", "m", "low"))
        await trying.wait()
        later = asyncio.ensure_future(manager.send_alert("c", "m", "low"))
        await waiting.wait()
        gate.set()
        assert (await trial)["slack"].status == "sent"
        sent = (await later)["slack"]
        assert sent.status == "sent" and sent.attempts == 1
        assert await manager.resume_pending() == 0
    assert sorted(a.title for a in slack.sent) == ["c", "trial"]


async def test_a_delivery_held_while_the_half_open_trial_is_out_is_not_due_at_once(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the trial outlasts the wait, a held delivery waits a moment (TRIAL_WAIT):
    were it due at once, a sweep would claim it, hold it, and claim it again, without end."""
    from pixalert._delivery import TRIAL_WAIT, CircuitBreaker

    async def outlasted(self: CircuitBreaker, timeout: float) -> bool:
        return False  # as when the trial is still out after an attempt's timeout

    monkeypatch.setattr(CircuitBreaker, "trial_finished", outlasted)
    gate, trying = asyncio.Event(), asyncio.Event()
    slack = _gated_trial_channel(gate, trying)
    async with make_manager([slack], clock=clock, config=_TRIAL_CONFIG) as manager:
        await manager.send_alert("a", "m", "low")
        await manager.send_alert("b", "m", "low")
        clock.advance(11)  # half-open: the next call is the trial
        trial = asyncio.ensure_future(manager.send_alert("trial", "m", "low"))
        await trying.wait()
        now = clock.now()
        held = (await manager.send_alert("c", "m", "low"))["slack"]
        assert held.status == "retrying" and held.attempts == 0
        assert held.next_attempt_at == to_datetime(now + TRIAL_WAIT)
        assert await manager.resume_pending() == 0  # nothing is due while the trial is out
        gate.set()
        assert (await trial)["slack"].status == "sent"
        clock.advance(TRIAL_WAIT + 0.001)
        assert await manager.resume_pending() == 1  # c goes: the circuit closed
        clock.advance(3600 * 1.1)
        assert await manager.resume_pending() == 2  # a and b, at their next round
    assert sorted(a.title for a in slack.sent) == ["a", "b", "c", "trial"]


async def test_per_channel_concurrency_limit(clock: FakeClock) -> None:
    running = 0
    peak = 0
    gate = asyncio.Event()
    two_in = asyncio.Event()

    class Slow(RecordingChannel):
        async def send(self, alert: Alert, *, previous: Any = None) -> Any:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            if running == 2:
                two_in.set()
            await gate.wait()
            running -= 1
            return await super().send(alert, previous=previous)

    slow = Slow("slack")
    config = {"cooldown_minutes": 0, "delivery": {"concurrency": 2}}
    async with make_manager([slow], clock=clock, config=config) as manager:
        tasks = [asyncio.create_task(manager.send_alert(f"t{i}", "m", "low")) for i in range(6)]
        await two_in.wait()
        await _let_others_run()  # every task has had its turn: none got past the limit
        assert running == 2
        gate.set()
        await asyncio.gather(*tasks)
    assert peak == 2 and len(slow.sent) == 6


async def _let_others_run() -> None:
    """Yield to the event loop until every ready task has run as far as it can
    (no real time passes: each task either blocks on the limit or gets through)."""
    for _ in range(50):
        await asyncio.sleep(0)


@pytest.mark.parametrize("schedule", [[], ["0s"], ["soon"], "nan"])
def test_a_bad_retry_schedule_is_a_config_error(schedule: Any) -> None:
    from pixalert import ConfigError

    with pytest.raises(ConfigError, match="retry_schedule"):
        make_manager([], config={"delivery": {"retry_schedule": schedule}})
