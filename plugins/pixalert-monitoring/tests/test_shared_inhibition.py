"""Inhibition across instances: bridges on managers sharing one state backend (SQLite here)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pixalert.storage import MemoryStateBackend
from pixalert.testing import FakeClock, RecordingChannel, make_manager
from pixalert_monitoring import MonitoringBridge

ROUTE_ALL = {"routing": {p: ["*"] for p in ("low", "medium", "high", "critical")}}


def sent(recorder: RecordingChannel) -> list[tuple[str, str]]:
    """(key, status) of each alert the channel got."""
    return [(a.key, a.status) for a in recorder.sent]


class Instance:
    """One pixalert instance: a manager with its own channel, and a bridge on it."""

    def __init__(self, manager: Any) -> None:
        self.manager = manager
        self.recorder: RecordingChannel = next(iter(manager.channels.values()))
        self.bridge = MonitoringBridge(manager)
        self.bridge.setup_default_alert_rules()


@pytest.fixture
async def pair(tmp_path: Path, clock: FakeClock) -> AsyncIterator[tuple[Instance, Instance]]:
    """Two instances whose managers share one SQLite state file (and nothing else)."""
    config = {**ROUTE_ALL, "state": f"sqlite:///{tmp_path / 'state.db'}"}
    managers = [
        make_manager([RecordingChannel("recording")], clock=clock, config=config) for _ in range(2)
    ]
    instances = [Instance(m) for m in managers]
    for manager in managers:
        await manager.start()
    try:
        yield instances[0], instances[1]
    finally:
        for instance in instances:
            await instance.bridge.aclose()
            await instance.manager.aclose()


async def test_critical_on_one_instance_inhibits_the_high_on_another(
    pair: tuple[Instance, Instance], clock: FakeClock
) -> None:
    a, b = pair
    a.bridge.record_metric("cpu_usage_percent", 97, "%", "api")
    await a.bridge.check_alert_conditions()
    assert sent(a.recorder) == [("monitoring:critical_cpu_usage:api", "firing")]

    # b sees only 90 % (its own sample), but a's critical rule fires for api.
    b.bridge.record_metric("cpu_usage_percent", 90, "%", "api")
    assert await b.bridge.check_alert_conditions() == []
    assert b.recorder.sent == []
    (high,) = b.bridge.firing_rules()
    assert high["rule"] == "high_cpu_usage"
    assert high["inhibited_by"] == "critical_cpu_usage"

    # Another service is not inhibited.
    b.bridge.record_metric("cpu_usage_percent", 90, "%", "web")
    await b.bridge.check_alert_conditions()
    assert sent(b.recorder) == [("monitoring:high_cpu_usage:web", "firing")]

    # a keeps firing past its cooldown (5 min): the key is refreshed, b stays quiet on api.
    for _ in range(3):
        clock.advance(240)
        await a.bridge.check_alert_conditions()
        await b.bridge.check_alert_conditions()
    assert ("monitoring:high_cpu_usage:api", "firing") not in sent(b.recorder)

    # a's critical clears: the key is lifted and b's high goes out at its next check.
    a.bridge.record_metric("cpu_usage_percent", 20, "%", "api")
    await a.bridge.check_alert_conditions()
    assert sent(a.recorder)[-1] == ("monitoring:critical_cpu_usage:api", "resolved")
    clock.advance(60)
    await b.bridge.check_alert_conditions()
    assert ("monitoring:high_cpu_usage:api", "firing") in sent(b.recorder)
    assert b.bridge.firing_rules()[0]["inhibited_by"] is None


async def test_the_key_lives_in_the_state_backend_with_the_rule_name(
    pair: tuple[Instance, Instance], clock: FakeClock
) -> None:
    a, _ = pair
    a.bridge.record_metric("memory_usage_percent", 95, "%", "db")
    await a.bridge.check_alert_conditions()
    state = a.manager.state_backend
    assert await state.items("inhibit:") == {
        "inhibit:memory_usage_percent:db": "critical_memory_usage"
    }
    # Its life is the critical rule's cooldown (5 min) unless refreshed.
    clock.advance(299)
    assert await state.get("inhibit:memory_usage_percent:db") == "critical_memory_usage"
    clock.advance(1)
    assert await state.get("inhibit:memory_usage_percent:db") is None


async def test_an_instance_that_dies_stops_inhibiting_after_the_ttl(
    pair: tuple[Instance, Instance], clock: FakeClock
) -> None:
    a, b = pair
    a.bridge.record_metric("error_rate_percent", 20, "%", "api")
    await a.bridge.check_alert_conditions()  # a fires critical_error_rate, then says no more
    b.bridge.record_metric("error_rate_percent", 10, "%", "api")
    assert await b.bridge.check_alert_conditions() == []
    clock.advance(5 * 60)
    await b.bridge.check_alert_conditions()
    assert sent(b.recorder) == [("monitoring:high_error_rate:api", "firing")]


async def test_a_lower_rule_never_inhibits_a_higher_one(
    pair: tuple[Instance, Instance],
) -> None:
    a, b = pair
    # Only a rule that outranks another of its metric publishes; b's own state
    # at most holds its own highest rule. A stale lower name is ignored.
    await b.manager.state_backend.put("inhibit:cpu_usage_percent:api", "high_cpu_usage", 600)
    a.bridge.record_metric("cpu_usage_percent", 97, "%", "api")
    await a.bridge.check_alert_conditions()
    assert sent(a.recorder) == [("monitoring:critical_cpu_usage:api", "firing")]
    # An unknown rule name (from a bridge with other rules) inhibits nothing here.
    await b.manager.state_backend.put("inhibit:queue_size:api", "mystery_rule", 600)
    b.bridge.record_metric("queue_size", 2000, "", "api")
    await b.bridge.check_alert_conditions()
    assert sent(b.recorder) == [("monitoring:large_processing_queue:api", "firing")]


async def test_a_failing_state_backend_leaves_inhibition_local(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(MemoryStateBackend):
        async def get(self, key: str) -> str | None:
            raise OSError("state is down")

        async def put(self, key: str, value: str, ttl: float) -> None:
            raise OSError("state is down")

    recorder = RecordingChannel("recording")
    manager = make_manager([recorder], clock=clock, config=ROUTE_ALL, state=Broken(clock))
    bridge = MonitoringBridge(manager)
    bridge.setup_default_alert_rules()
    caplog.set_level(logging.WARNING, logger="pixalert.monitoring")
    try:
        bridge.record_metric("cpu_usage_percent", 97, "%", "api")
        await bridge.check_alert_conditions()
        clock.advance(60)
        bridge.record_metric("cpu_usage_percent", 90, "%", "api")
        await bridge.check_alert_conditions()
    finally:
        await bridge.aclose()
        await manager.aclose()
    assert sorted(sent(recorder)) == [
        ("monitoring:critical_cpu_usage:api", "firing"),
        ("monitoring:critical_cpu_usage:api", "resolved"),
        ("monitoring:high_cpu_usage:api", "firing"),
    ]
    assert "shared inhibition inhibit:cpu_usage_percent:api unavailable" in caplog.text
