"""The bridge's rule evaluation: per service, cooldowns, resolve, inhibition, the loop."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from pixalert import DeliveryError, Priority
from pixalert.testing import FakeClock, RecordingChannel, make_manager
from pixalert_monitoring import MonitoringBridge

ROUTE_ALL = {"routing": {p: ["*"] for p in ("low", "medium", "high", "critical")}}


def sent(recorder: RecordingChannel) -> list[tuple[str, str]]:
    """(key, status) of each alert the channel got."""
    return [(a.key, a.status) for a in recorder.sent]


def test_record_metric_validates(bridge: MonitoringBridge) -> None:
    with pytest.raises(ValueError, match="metric_name: expected a non-empty string"):
        bridge.record_metric("", 1)
    with pytest.raises(ValueError, match="value of 'cpu': expected a number, got str"):
        bridge.record_metric("cpu", "high")  # type: ignore[arg-type]
    for value in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError, match="value of 'cpu': expected a finite number, got"):
            bridge.record_metric("cpu", value)
    with pytest.raises(ValueError, match="service_name"):
        bridge.record_metric("cpu", 1, "%", "")


async def test_seed_example_no_alert_below_thresholds(
    bridge: MonitoringBridge, recorder: RecordingChannel
) -> None:
    bridge.setup_default_alert_rules()
    bridge.record_metric("cpu_usage_percent", 45.2, "%", "api-server")
    bridge.record_metric("memory_usage_percent", 67.8, "%", "api-server")
    assert await bridge.check_alert_conditions() == []
    assert recorder.sent == []


async def test_rules_are_evaluated_per_service(
    bridge: MonitoringBridge, recorder: RecordingChannel
) -> None:
    bridge.setup_default_alert_rules()
    bridge.record_metric("cpu_usage_percent", 88.0, "%", "api")
    bridge.record_metric("cpu_usage_percent", 40.0, "%", "web")
    summary = await bridge.check_alert_conditions()
    assert sent(recorder) == [("monitoring:high_cpu_usage:api", "firing")]
    alert = recorder.sent[0]
    assert alert.priority is Priority.MEDIUM
    assert alert.title == "high_cpu_usage on api"
    assert "cpu_usage_percent is 88% on api" in alert.message
    assert alert.metadata["service"] == "api"
    assert alert.metadata["threshold"] == 85.0
    assert summary[0]["results"] == {"recording": "sent"}
    json.dumps(summary)


async def test_cooldown_is_per_rule_and_service(
    bridge: MonitoringBridge, recorder: RecordingChannel, clock: FakeClock
) -> None:
    bridge.setup_default_alert_rules()  # high_cpu_usage: 10 minutes
    bridge.record_metric("cpu_usage_percent", 88, "%", "api")
    await bridge.check_alert_conditions()
    clock.advance(5 * 60)
    await bridge.check_alert_conditions()  # api in cooldown
    bridge.record_metric("cpu_usage_percent", 89, "%", "web")
    await bridge.check_alert_conditions()  # web has its own cooldown
    assert sent(recorder) == [
        ("monitoring:high_cpu_usage:api", "firing"),
        ("monitoring:high_cpu_usage:web", "firing"),
    ]
    clock.advance(5 * 60)  # api: 10 minutes since its alert; web: 5
    await bridge.check_alert_conditions()
    assert sent(recorder)[2:] == [("monitoring:high_cpu_usage:api", "firing")]
    clock.advance(5 * 60)
    await bridge.check_alert_conditions()
    assert sent(recorder)[3:] == [("monitoring:high_cpu_usage:web", "firing")]


async def test_resolves_when_the_metric_goes_back(
    bridge: MonitoringBridge, recorder: RecordingChannel, clock: FakeClock
) -> None:
    bridge.setup_default_alert_rules()
    bridge.record_metric("queue_size", 1500, "", "worker")
    await bridge.check_alert_conditions()
    clock.advance(60)
    bridge.record_metric("queue_size", 200, "", "worker")
    summary = await bridge.check_alert_conditions()
    assert sent(recorder) == [
        ("monitoring:large_processing_queue:worker", "firing"),
        ("monitoring:large_processing_queue:worker", "resolved"),
    ]
    resolved = recorder.sent[1]
    assert resolved.key == recorder.sent[0].key
    assert resolved.id != recorder.sent[0].id
    assert "queue_size is back to 200 on worker" in resolved.message
    assert summary[0]["status"] == "resolved"
    # Nothing more while it stays under.
    clock.advance(3600)
    assert await bridge.check_alert_conditions() == []
    assert len(recorder.sent) == 2


async def test_inhibition_sends_only_the_critical_rule(
    bridge: MonitoringBridge, recorder: RecordingChannel, clock: FakeClock
) -> None:
    bridge.setup_default_alert_rules()
    bridge.record_metric("cpu_usage_percent", 97, "%", "api")
    await bridge.check_alert_conditions()
    assert sent(recorder) == [("monitoring:critical_cpu_usage:api", "firing")]
    assert recorder.sent[0].priority is Priority.HIGH
    firing = {f["rule"]: f for f in bridge.firing_rules()}
    assert firing["high_cpu_usage"]["inhibited_by"] == "critical_cpu_usage"
    assert firing["high_cpu_usage"]["notified"] is False

    # Down to 90: the critical resolves, the high one is no longer inhibited.
    clock.advance(60)
    bridge.record_metric("cpu_usage_percent", 90, "%", "api")
    await bridge.check_alert_conditions()
    assert sorted(sent(recorder)[1:]) == [
        ("monitoring:critical_cpu_usage:api", "resolved"),
        ("monitoring:high_cpu_usage:api", "firing"),
    ]

    # Back to normal: only what was sent is resolved.
    clock.advance(60)
    bridge.record_metric("cpu_usage_percent", 20, "%", "api")
    await bridge.check_alert_conditions()
    assert sent(recorder)[3:] == [("monitoring:high_cpu_usage:api", "resolved")]
    assert bridge.firing_rules() == []


async def test_inhibited_rule_that_was_never_sent_is_not_resolved(
    bridge: MonitoringBridge, recorder: RecordingChannel, clock: FakeClock
) -> None:
    bridge.setup_default_alert_rules()
    bridge.record_metric("memory_usage_percent", 95, "%", "db")
    await bridge.check_alert_conditions()
    clock.advance(60)
    bridge.record_metric("memory_usage_percent", 10, "%", "db")
    await bridge.check_alert_conditions()
    assert sent(recorder) == [
        ("monitoring:critical_memory_usage:db", "firing"),
        ("monitoring:critical_memory_usage:db", "resolved"),
    ]


async def test_flapping_inside_the_cooldown_is_not_resent(
    bridge: MonitoringBridge, recorder: RecordingChannel, clock: FakeClock
) -> None:
    bridge.add_alert_rule("errors", "error_rate_percent", 5, ">", "medium", 10)
    for value in (9, 1, 9, 1):  # fire, resolve, fire again 2 min later, resolve
        bridge.record_metric("error_rate_percent", value, "%", "api")
        await bridge.check_alert_conditions()
        clock.advance(60)
    assert sent(recorder) == [
        ("monitoring:errors:api", "firing"),
        ("monitoring:errors:api", "resolved"),
    ]
    # Still breaching once the cooldown is over: sent again, then resolved.
    clock.advance(10 * 60)
    bridge.record_metric("error_rate_percent", 9, "%", "api")
    await bridge.check_alert_conditions()
    bridge.record_metric("error_rate_percent", 1, "%", "api")
    await bridge.check_alert_conditions()
    assert sent(recorder)[2:] == [
        ("monitoring:errors:api", "firing"),
        ("monitoring:errors:api", "resolved"),
    ]


async def test_no_resolve_when_the_firing_alert_never_got_out(clock: FakeClock) -> None:
    failing = RecordingChannel("recording", fail=[DeliveryError.permanent("down")])
    manager = make_manager([failing], clock=clock, config=ROUTE_ALL)
    async with MonitoringBridge(manager) as bridge:
        bridge.add_alert_rule("r", "m", 1, ">", "low", 0)
        bridge.record_metric("m", 5)
        summary = await bridge.check_alert_conditions()
        assert summary[0]["results"] == {"recording": "failed"}
        bridge.record_metric("m", 0)
        assert await bridge.check_alert_conditions() == []
    await manager.aclose()
    assert failing.sent == []


async def test_removed_rule_resolves_its_alert(
    bridge: MonitoringBridge, recorder: RecordingChannel
) -> None:
    bridge.add_alert_rule("r", "m", 1, ">", "low", 0)
    bridge.record_metric("m", 5)
    await bridge.check_alert_conditions()
    bridge.remove_alert_rule("r")
    await bridge.check_alert_conditions()
    assert sent(recorder) == [
        ("monitoring:r:default", "firing"),
        ("monitoring:r:default", "resolved"),
    ]
    assert "was removed" in recorder.sent[1].message


async def test_lower_than_rules_and_equal_priorities_both_fire(
    bridge: MonitoringBridge, recorder: RecordingChannel
) -> None:
    bridge.add_alert_rule("few_workers", "workers", 3, "<", "high", 5)
    bridge.add_alert_rule("odd_workers", "workers", 4, "!=", "high", 5)
    bridge.record_metric("workers", 1, "", "pool")
    await bridge.check_alert_conditions()
    assert sorted(sent(recorder)) == [
        ("monitoring:few_workers:pool", "firing"),
        ("monitoring:odd_workers:pool", "firing"),
    ]


async def test_monitoring_loop_checks_every_interval_and_stops_cleanly(
    bridge: MonitoringBridge, recorder: RecordingChannel, clock: FakeClock
) -> None:
    bridge.add_alert_rule("r", "m", 1, ">", "low", 0)
    collected: list[float] = []

    def collect(b: MonitoringBridge) -> None:
        collected.append(clock.now())
        b.record_metric("m", 5 if len(collected) % 2 else 0)
        if len(collected) == 4:
            b.stop()

    await asyncio.wait_for(bridge.start_monitoring_loop(30, collect=collect), 10)
    assert not bridge.running
    assert clock.sleeps == [30, 30, 30]
    assert [c - collected[0] for c in collected] == [0, 30, 60, 90]
    assert (
        sent(recorder)
        == [
            ("monitoring:r:default", "firing"),
            ("monitoring:r:default", "resolved"),
        ]
        * 2
    )


async def test_stop_from_outside_while_waiting(bridge: MonitoringBridge) -> None:
    # A real-time sleep of an hour: stop() must end the wait at once.
    from pixalert.storage import SystemClock

    bridge.clock = SystemClock()
    checked = asyncio.Event()
    task = asyncio.ensure_future(
        bridge.start_monitoring_loop(3600, on_check=lambda _: checked.set())
    )
    await checked.wait()
    assert bridge.running
    bridge.stop()
    await asyncio.wait_for(task, 10)
    assert not bridge.running


async def test_stop_before_the_loop_starts(bridge: MonitoringBridge) -> None:
    task = asyncio.ensure_future(bridge.start_monitoring_loop(60))
    bridge.stop()
    await asyncio.wait_for(task, 10)


async def test_loop_survives_a_failing_check(
    bridge: MonitoringBridge, caplog: pytest.LogCaptureFixture
) -> None:
    calls = 0

    def collect(b: MonitoringBridge) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("sensor unavailable")
        b.stop()

    await asyncio.wait_for(bridge.start_monitoring_loop(1, collect=collect), 10)
    assert calls == 2
    assert "monitoring check failed: RuntimeError: sensor unavailable" in caplog.text


async def test_loop_arguments(bridge: MonitoringBridge) -> None:
    with pytest.raises(ValueError, match="check_interval: expected seconds > 0"):
        await bridge.start_monitoring_loop(0)
    task = asyncio.ensure_future(bridge.start_monitoring_loop(60))
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="already running"):
        await bridge.start_monitoring_loop(60)
    bridge.stop()
    await task


async def test_history_and_health_summary_async(
    bridge: MonitoringBridge, recorder: RecordingChannel, clock: FakeClock
) -> None:
    bridge.setup_default_alert_rules()
    bridge.record_metric("cpu_usage_percent", 97, "%", "api")
    bridge.record_metric("memory_usage_percent", 50, "%", "api")
    bridge.record_metric("queue_size", 10, "", "worker", "degraded")
    await bridge.check_alert_conditions()
    clock.advance(1)
    await bridge.process_external_alerts({"title": "Backup failed", "priority": "low"})

    history = await bridge.aget_alert_history(24)
    assert [h["title"] for h in history] == ["Backup failed", "critical_cpu_usage on api"]

    summary = await bridge.aget_system_health_summary()
    json.dumps(summary)
    assert summary["status"] == "critical"
    assert summary["services"]["api"]["status"] == "critical"
    assert summary["services"]["api"]["metrics"]["cpu_usage_percent"]["value"] == 97
    assert summary["services"]["api"]["firing_rules"] == ["critical_cpu_usage", "high_cpu_usage"]
    # A metric recorded with a status other than "ok" makes its service a warning.
    assert summary["services"]["worker"]["status"] == "warning"
    assert summary["services"]["worker"]["metrics"]["queue_size"]["status"] == "degraded"
    assert {f["rule"] for f in summary["firing_rules"]} == {"critical_cpu_usage", "high_cpu_usage"}
    assert summary["notification_system"]["channels"]["recording"]["circuit"] == "closed"
    counts = summary["alerts_last_24h"]
    assert counts["total"] == 2
    assert counts["by_priority"]["HIGH"] == 1 and counts["by_priority"]["LOW"] == 1
    assert counts["by_source"] == {"monitoring": 1, "external": 1}


async def test_sync_calls_inside_a_running_loop(
    bridge: MonitoringBridge, recorder: RecordingChannel
) -> None:
    bridge.add_alert_rule("r", "m", 1, ">", "high", 0)
    bridge.record_metric("m", 5, "", "svc")
    await bridge.check_alert_conditions()
    history = bridge.get_alert_history(hours=24)
    assert [h["key"] for h in history] == ["monitoring:r:svc"]
    assert history[0]["results"]["recording"]["status"] == "sent"
    summary = bridge.get_system_health_summary()
    json.dumps(summary)
    assert summary["alerts_last_24h"]["total"] == 1
    assert summary["notification_system"]["status"] == "ok"
    with pytest.raises(ValueError, match="hours: expected a number > 0"):
        bridge.get_alert_history(hours=0)


def test_sync_calls_outside_an_event_loop(recorder: RecordingChannel, clock: FakeClock) -> None:
    manager = make_manager([recorder], clock=clock, config=ROUTE_ALL)
    bridge = MonitoringBridge(manager)
    bridge.setup_default_alert_rules()
    bridge.record_metric("error_rate_percent", 20, "%", "api")
    # The seed calls these without await, from plain code.
    sent_now = manager.run_sync(bridge.check_alert_conditions())
    assert sent_now[0]["rule"] == "critical_error_rate"
    alerts = bridge.get_alert_history(hours=24)
    assert len(alerts) == 1 and alerts[0]["state"] == "done"
    health: dict[str, Any] = bridge.get_system_health_summary()
    assert json.loads(json.dumps(health))["alerts_last_24h"]["total"] == 1
    manager.close_sync()
