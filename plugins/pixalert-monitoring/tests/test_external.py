"""External alerts through ``process_external_alerts``: every captured Alertmanager body,
each surprise of the fixtures' README, Grafana and plain JSON, and clear errors."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import datetime
from typing import Any

import pixalert._sqlite
import pytest
from pixalert import Priority, SubmitError
from pixalert.testing import FakeClock, RecordingChannel, make_manager
from pixalert_monitoring import MonitoringBridge, PayloadError, parse_external

ROUTE_ALL = {"routing": {p: ["*"] for p in ("low", "medium", "high", "critical")}}


def delivered(recorder: RecordingChannel) -> list[tuple[str, str]]:
    """(fingerprint, status) of each alert the channel got."""
    return [(a.metadata.get("fingerprint", a.key), a.status) for a in recorder.sent]


# ---------------------------------------------------------------------------
# Every captured body
# ---------------------------------------------------------------------------


async def test_every_fixture(
    fixture_name: str, am: Any, bridge: MonitoringBridge, recorder: RecordingChannel
) -> None:
    body = am.json(fixture_name)
    summary = await bridge.process_external_alerts(body)
    json.dumps(summary)
    assert summary["format"] == "alertmanager"
    assert summary["received"] == summary["accepted"] == len(body["alerts"])
    assert summary["duplicates"] == 0
    assert summary.get("truncated_alerts", 0) == body["truncatedAlerts"]
    assert len(recorder.sent) == len(body["alerts"])
    # Delivered concurrently: paired by fingerprint, not by order.
    sent = {a.key: a for a in recorder.sent}
    for raw in body["alerts"]:
        alert = sent[f"alertmanager:{raw['fingerprint']}"]
        assert alert.status == raw["status"]
        assert alert.source == "alertmanager"
        assert alert.title == raw["annotations"].get("summary", raw["labels"]["alertname"])
        assert alert.message == raw["annotations"].get("description", "")
        assert alert.metadata["labels"] == raw["labels"]
        assert alert.metadata["annotations"] == raw["annotations"]
        assert alert.metadata["group_key"] == body["groupKey"]
        assert alert.metadata["receiver"] == body["receiver"]
        expected = {"critical": Priority.CRITICAL, "warning": Priority.MEDIUM}
        assert alert.priority is expected[raw["labels"]["severity"]]
    for entry in summary["alerts"]:
        assert entry["results"] == {"recording": "sent"}
    # Alertmanager delivers the same body again (retry, HA peer): taken once.
    again = await bridge.process_external_alerts(body)
    assert again["accepted"] == 0 and again["duplicates"] == len(body["alerts"])
    assert all(e["duplicate"] and e["id"] is None for e in again["alerts"])
    assert len(recorder.sent) == len(body["alerts"])


def test_raw_bytes_parse_the_same_as_pretty_json(fixture_name: str, am: Any) -> None:
    raw = am.raw(fixture_name)
    assert raw.endswith(b"}\n")
    assert json.loads(raw.decode("utf-8")) == am.json(fixture_name)


def test_fixture_copy_matches_the_shared_captures(am: Any) -> None:
    """The copy beside the tests is the shared one, byte for byte (when shared/ is there)."""
    shared = am.path.parents[4] / ".." / "shared" / "fixtures" / "alertmanager"
    shared = shared.resolve()
    if not shared.is_dir():
        pytest.skip(f"no shared fixtures at {shared}")
    for name in am.names:
        assert (shared / f"{name}.json").read_bytes() == (am.path / f"{name}.json").read_bytes()
        assert (shared / "raw" / f"{name}.body").read_bytes() == am.raw(name)


# ---------------------------------------------------------------------------
# The README's surprises, one test each
# ---------------------------------------------------------------------------


async def test_surprise_1_firing_ends_at_is_go_zero_time(
    am: Any, bridge: MonitoringBridge, recorder: RecordingChannel
) -> None:
    # critical_route was posted with an explicit future endsAt; the webhook shows zero time.
    body = am.json("critical_route")
    assert body["alerts"][0]["endsAt"] == "0001-01-01T00:00:00Z"
    await bridge.process_external_alerts(body)
    assert recorder.sent[0].metadata["ends_at"] is None
    assert recorder.sent[0].metadata["starts_at"] == "2026-11-27T05:18:16.148000Z"


async def test_surprise_2_firing_payload_with_a_resolved_alert(
    am: Any, bridge: MonitoringBridge, recorder: RecordingChannel
) -> None:
    body = am.json("partially_resolved")
    assert body["status"] == "firing"
    await bridge.process_external_alerts(body)
    assert sorted(delivered(recorder)) == [
        ("1387954175b8b219", "firing"),
        ("58eb42a7154e9687", "resolved"),
        ("e3d826d0c1ca4fe4", "firing"),
    ]
    (resolved,) = [a for a in recorder.sent if a.resolved]
    assert resolved.metadata["ends_at"] == "2026-11-27T05:18:34.297000Z"


async def test_surprise_3_group_lifecycle_each_notification_once(
    am: Any, bridge: MonitoringBridge, recorder: RecordingChannel
) -> None:
    # firing 2 -> group grows to 3 (whole group re-sent) -> 1 resolved -> last 2 resolved.
    for name in ("firing_group", "firing_group_updated", "partially_resolved", "resolved"):
        await bridge.process_external_alerts(am.json(name))
    assert delivered(recorder) == [
        ("58eb42a7154e9687", "firing"),
        ("e3d826d0c1ca4fe4", "firing"),
        ("1387954175b8b219", "firing"),
        ("58eb42a7154e9687", "resolved"),
        ("e3d826d0c1ca4fe4", "resolved"),
        ("1387954175b8b219", "resolved"),
    ]
    # Firing and resolved of one alert share the key (so PagerDuty closes the incident).
    keys = [a.key for a in recorder.sent]
    assert keys[:3] == keys[3:]


async def test_surprise_4_timestamp_formats(
    am: Any, bridge: MonitoringBridge, recorder: RecordingChannel
) -> None:
    body = am.json("timestamp_formats")
    assert [a["startsAt"] for a in body["alerts"]] == [
        "2026-11-27T05:18:33.123456789Z",
        "2026-11-27T07:18:33.5+02:00",
    ]
    await bridge.process_external_alerts(body)
    assert [a.metadata["starts_at"] for a in recorder.sent] == [
        "2026-11-27T05:18:33.123456Z",
        "2026-11-27T05:18:33.500000Z",
    ]


async def test_surprise_5_resolved_with_ends_at_equal_to_starts_at(
    am: Any, bridge: MonitoringBridge, recorder: RecordingChannel
) -> None:
    body = am.json("resolved_endsat_before_startsat")
    alert = body["alerts"][0]
    assert alert["startsAt"] == alert["endsAt"]
    await bridge.process_external_alerts(body)
    assert delivered(recorder) == [("d369041482a0b197", "resolved")]
    assert recorder.sent[0].metadata["starts_at"] == recorder.sent[0].metadata["ends_at"]
    # The same labels fired later (silence_expired_delivered) with a new startsAt: a new
    # notification, taken too.
    await bridge.process_external_alerts(am.json("silence_expired_delivered"))
    assert delivered(recorder)[1:] == [("d369041482a0b197", "firing")]


def capture_offsets(am: Any, path: str) -> list[float]:
    """When Alertmanager POSTed to ``path``: seconds after its first POST there (the index)."""
    index = json.loads((am.path / "captures_index.json").read_text(encoding="utf-8"))
    times = [
        datetime.fromisoformat(e["received_iso"]).timestamp() for e in index if e["path"] == path
    ]
    return [t - times[0] for t in times]


async def test_surprise_6_redeliveries_are_taken_once(
    am: Any, bridge: MonitoringBridge, recorder: RecordingChannel, clock: FakeClock
) -> None:
    # A 500 answer made Alertmanager send the same body 19 times in 32 s; an answer
    # slower than its 10 s timeout made it send again 10 and 20 s later. Replayed at
    # the captured times, each notification is taken once.
    for path, fixture in (
        ("/x/status/500", "retry_500_first_attempt"),
        ("/x/slow/15", "slow_receiver_first_attempt"),
    ):
        offsets = capture_offsets(am, path)
        assert len(offsets) > 2 and offsets[-1] < bridge.dedup_ttl
        start = clock.now()
        for offset in offsets:
            clock.advance(start + offset - clock.now())
            await bridge.process_external_alerts(am.json(fixture))
    assert delivered(recorder) == [
        (am.json(fixture)["alerts"][0]["fingerprint"], "firing")
        for fixture in ("retry_500_first_attempt", "slow_receiver_first_attempt")
    ]


async def test_default_window_catches_ha_copies_and_lets_repeats_through(
    am: Any, bridge: MonitoringBridge, recorder: RecordingChannel, clock: FakeClock
) -> None:
    """Alertmanager's defaults: peer_timeout 15 s, group_interval 5m, repeat_interval 4h."""
    assert bridge.dedup_ttl == 120.0
    body = am.json("critical_route")
    assert (await bridge.process_external_alerts(body))["accepted"] == 1
    for _peer in (1, 2):  # each HA peer waits peer_timeout times its position
        clock.advance(15)
        assert (await bridge.process_external_alerts(body))["duplicates"] == 1
    # Nothing of one group is sent again before group_interval: by then it is a repeat,
    # taken, and sent (the 5-minute cooldown is over).
    clock.advance(5 * 60 + 1 - 30)
    again = await bridge.process_external_alerts(am.json("repeat_notification"))
    assert (again["accepted"], again["duplicates"]) == (1, 0)
    assert again["alerts"][0]["results"] == {"recording": "sent"}
    # The repeat_interval re-send of the still-firing alert: taken and sent too.
    clock.advance(4 * 3600)
    repeat = await bridge.process_external_alerts(am.json("repeat_notification"))
    assert repeat["alerts"][0]["results"] == {"recording": "sent"}
    assert delivered(recorder) == [("f6c6cd297bb7c8e6", "firing")] * 3


async def test_repeat_goes_through_cooldown_like_any_alert(
    am: Any, manager: Any, recorder: RecordingChannel, clock: FakeClock
) -> None:
    # The captures' Alertmanager ran with repeat_interval 1m: the repeat came 60.02 s
    # after the first notification. A window under that (30 s) takes it...
    offsets = capture_offsets(am, "/alerts/critical")
    index = json.loads((am.path / "captures_index.json").read_text(encoding="utf-8"))
    critical = [e["fixture"] for e in index if e["path"] == "/alerts/critical"]
    repeat_at = offsets[critical.index("repeat_notification")]
    assert 60 < repeat_at < 61
    async with MonitoringBridge(manager, dedup_ttl="30s") as bridge:
        await bridge.process_external_alerts(am.json("critical_route"))
        clock.advance(repeat_at)
        repeat = await bridge.process_external_alerts(am.json("repeat_notification"))
    # ... and the manager's cooldown (5 minutes here) holds it back, as it would any alert.
    assert (repeat["accepted"], repeat["duplicates"]) == (1, 0)
    assert repeat["alerts"][0]["results"] == {"recording": "suppressed"}
    assert len(recorder.sent) == 1
    history = await manager.history(24)
    assert [h["results"]["recording"]["status"] for h in history] == ["suppressed", "sent"]


async def test_surprise_6_concurrent_redeliveries_taken_once(
    am: Any, bridge: MonitoringBridge, recorder: RecordingChannel
) -> None:
    body = am.json("firing_group_updated")
    summaries = await asyncio.gather(*(bridge.process_external_alerts(body) for _ in range(5)))
    assert sum(s["accepted"] for s in summaries) == 3
    assert len(recorder.sent) == 3


async def test_surprise_6_ha_pair_sharing_state_sends_once(am: Any, clock: FakeClock) -> None:
    from pixalert._memory import MemoryStateBackend

    shared = MemoryStateBackend(clock)
    sinks = [RecordingChannel("recording"), RecordingChannel("recording")]
    managers = [make_manager([s], clock=clock, config=ROUTE_ALL, state=shared) for s in sinks]
    bridges = [MonitoringBridge(m) for m in managers]
    body = am.json("firing_group")
    await asyncio.gather(*(b.process_external_alerts(body) for b in bridges))
    assert sum(len(s.sent) for s in sinks) == 2
    for m in managers:
        await m.aclose()


async def test_surprise_7_released_inhibition_arrives_as_ordinary_firing(
    am: Any, bridge: MonitoringBridge, recorder: RecordingChannel
) -> None:
    for name in ("inhibition_source_critical", "resolved_critical", "inhibition_released_warning"):
        await bridge.process_external_alerts(am.json(name))
    assert delivered(recorder) == [
        ("ba387ed7a1fea181", "firing"),
        ("ba387ed7a1fea181", "resolved"),
        ("ebd8f0a9605d2344", "firing"),
    ]
    assert [a.priority for a in recorder.sent] == [
        Priority.CRITICAL,
        Priority.CRITICAL,
        Priority.MEDIUM,
    ]
    # Its original startsAt, from before the critical resolved.
    assert recorder.sent[2].metadata["starts_at"] == "2026-11-27T05:18:20.195000Z"


async def test_surprise_8_empty_generator_url(
    am: Any, bridge: MonitoringBridge, recorder: RecordingChannel
) -> None:
    await bridge.process_external_alerts(am.json("timestamp_formats"))
    assert [a.metadata["generator_url"] for a in recorder.sent] == ["", ""]


async def test_truncated_alerts_reported(am: Any, bridge: MonitoringBridge) -> None:
    summary = await bridge.process_external_alerts(am.json("truncated_alerts"))
    assert summary["truncated_alerts"] == 1
    assert summary["received"] == 2


async def test_unicode_and_go_escapes(
    am: Any, bridge: MonitoringBridge, recorder: RecordingChannel
) -> None:
    assert b"\\u003cangle\\u003e \\u0026 ampersand" in am.raw("unicode_escaping")
    await bridge.process_external_alerts(json.loads(am.raw("unicode_escaping")))
    alert = recorder.sent[0]
    assert alert.title == "Certificat expire dans 6 jours — renouveler «bientôt» ✓"
    assert alert.message == 'line one\nline two with "quotes" and <angle> & ampersand'
    assert alert.metadata["labels"]["team"] == "plateforme-réseau"


# ---------------------------------------------------------------------------
# Severity mapping
# ---------------------------------------------------------------------------


def am_alert(**labels: str) -> dict[str, Any]:
    """A minimal Alertmanager v4 body with one firing alert."""
    return {
        "version": "4",
        "groupKey": "{}:{}",
        "status": "firing",
        "receiver": "r",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "A", **labels},
                "annotations": {},
                "startsAt": "2026-11-27T05:18:17.17Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": "0123456789abcdef",
            }
        ],
    }


@pytest.mark.parametrize(
    ("severity", "priority"),
    [
        ("critical", Priority.CRITICAL),
        ("error", Priority.HIGH),
        ("high", Priority.HIGH),
        ("warning", Priority.MEDIUM),
        ("info", Priority.LOW),
        ("WARNING", Priority.MEDIUM),
        ("page", Priority.MEDIUM),
        (None, Priority.MEDIUM),
    ],
)
def test_default_severity_mapping(severity: str | None, priority: Priority) -> None:
    body = am_alert(**({"severity": severity} if severity else {}))
    assert parse_external(body).alerts[0].alert.priority is priority


async def test_severity_mapping_is_configurable(manager: Any) -> None:
    bridge = MonitoringBridge(
        manager, severities={"page": "critical", "warning": "high"}, default_priority="low"
    )
    batch = bridge.parse_external_alerts(am_alert(severity="page"))
    assert batch.alerts[0].alert.priority is Priority.CRITICAL
    assert (
        bridge.parse_external_alerts(am_alert(severity="warning")).alerts[0].alert.priority
        is Priority.HIGH
    )
    assert bridge.parse_external_alerts(am_alert()).alerts[0].alert.priority is Priority.LOW
    with pytest.raises(ValueError, match="severity map: 'page': unknown priority 'urgent'"):
        MonitoringBridge(manager, severities={"page": "urgent"})


def test_title_falls_back_to_alertname_and_missing_fingerprint_is_derived() -> None:
    body = am_alert(severity="info")
    del body["alerts"][0]["fingerprint"]
    first = parse_external(body).alerts[0].alert
    second = parse_external(body).alerts[0].alert
    assert first.title == "A"
    assert first.key == second.key and first.key.startswith("alertmanager:")


# ---------------------------------------------------------------------------
# Grafana and plain bodies
# ---------------------------------------------------------------------------

# Grafana's unified alerting webhook body (as in Grafana's documentation).
GRAFANA = {
    "receiver": "My Super Webhook",
    "status": "firing",
    "orgId": 1,
    "alerts": [
        {
            "status": "firing",
            "labels": {
                "alertname": "High memory usage",
                "team": "blue",
                "zone": "us-1",
                "severity": "critical",
            },
            "annotations": {
                "description": "The system has high memory usage",
                "runbook_url": "https://myrunbook.com/runbook/1234",
                "summary": "This alert was triggered for zone us-1",
            },
            "startsAt": "2021-10-12T09:51:03.157076+02:00",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "https://play.grafana.org/alerting/1afz29v7z/edit",
            "fingerprint": "c6eadffa33fcdf37",
            "silenceURL": "https://play.grafana.org/alerting/silence/new?alertmanager=grafana",
            "dashboardURL": "",
            "panelURL": "",
            "values": {"B": 44.23943737541908, "C": 1},
            "valueString": "[ var='B' labels={} value=44.23943737541908 ]",
        },
        {
            "status": "resolved",
            "labels": {"alertname": "High CPU usage", "team": "blue", "zone": "eu-1"},
            "annotations": {"summary": "This alert was triggered for zone eu-1"},
            "startsAt": "2021-10-12T09:56:03.157076+02:00",
            "endsAt": "2021-10-12T10:01:03.157076+02:00",
            "generatorURL": "https://play.grafana.org/alerting/d1rdpdv7k/edit",
            "fingerprint": "bc97ff14869b13e3",
            "silenceURL": "https://play.grafana.org/alerting/silence/new",
            "dashboardURL": "",
            "panelURL": "",
            "values": None,
            "valueString": "",
        },
    ],
    "groupLabels": {},
    "commonLabels": {"team": "blue"},
    "commonAnnotations": {},
    "externalURL": "https://play.grafana.org/",
    "version": "1",
    "groupKey": "{}:{}",
    "truncatedAlerts": 0,
    "title": "[FIRING:1, RESOLVED:1]  (blue)",
    "state": "alerting",
    "message": "**Firing**\n\nLabels:\n - alertname = High memory usage\n",
}


async def test_grafana_webhook(bridge: MonitoringBridge, recorder: RecordingChannel) -> None:
    summary = await bridge.process_external_alerts(GRAFANA)
    assert summary["format"] == "grafana" and summary["accepted"] == 2
    firing, resolved = recorder.sent
    assert firing.source == "grafana" and firing.key == "grafana:1:c6eadffa33fcdf37"
    assert firing.priority is Priority.CRITICAL
    assert firing.title == "This alert was triggered for zone us-1"
    assert firing.message == "The system has high memory usage"
    assert firing.metadata["values"] == {"B": 44.23943737541908, "C": 1}
    assert firing.metadata["starts_at"] == "2021-10-12T07:51:03.157076Z"
    assert resolved.status == "resolved" and resolved.priority is Priority.MEDIUM
    again = await bridge.process_external_alerts(GRAFANA)
    assert again["duplicates"] == 2 and len(recorder.sent) == 2


async def test_plain_object_and_list(bridge: MonitoringBridge, recorder: RecordingChannel) -> None:
    one = await bridge.process_external_alerts(
        {
            "title": "Disk full",
            "message": "/var at 99%",
            "priority": "high",
            "metadata": {"host": "db-1"},
        }
    )
    assert one["format"] == "plain" and one["accepted"] == 1
    many = await bridge.process_external_alerts(
        [
            {"title": "A"},
            {"title": "B", "priority": 4, "status": "resolved", "key": "b"},
            {"title": "C", "priority": "warning"},
        ]
    )
    assert many["accepted"] == 3
    got = sorted((a.title, a.priority, a.status, a.source) for a in recorder.sent)
    assert got == [
        ("A", Priority.MEDIUM, "firing", "external"),
        ("B", Priority.CRITICAL, "resolved", "external"),
        ("C", Priority.MEDIUM, "firing", "external"),
        ("Disk full", Priority.HIGH, "firing", "external"),
    ]
    assert recorder.sent[0].metadata == {"host": "db-1"}  # the first body went out first
    # Plain alerts carry no notification identity: the same body twice is two alerts
    # (the manager's cooldown decides about repeats).
    assert (await bridge.process_external_alerts({"title": "Z"}))["accepted"] == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("just text", "expected a JSON object or array"),
        (42, "got a number"),
        ({"foo": 1}, "unrecognised alert body (keys: 'foo'): expected an Alertmanager webhook"),
        ({"alerts": []}, 'has "alerts" but no "version"'),
        ({"alerts": [], "version": "3"}, "unsupported webhook version '3'"),
        ([], "empty list"),
        ({"title": ""}, "plain alert: title: expected a non-empty string"),
        ({"title": "x", "priority": "urgent"}, "plain alert: priority: unknown priority 'urgent'"),
        ({"title": "x", "severity": "high"}, "plain alert: unknown key(s) 'severity'"),
        ({"title": "x", "metadata": [1]}, "plain alert: metadata: expected an object"),
        ([{"title": "x"}, "y"], "plain alert [1]: expected a {title, message, priority"),
        ({**am_alert(), "alerts": {"a": 1}}, "alerts: expected an array"),
    ],
)
def test_unrecognised_or_invalid_bodies(body: Any, message: str) -> None:
    with pytest.raises(PayloadError) as info:
        parse_external(body)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_alertmanager_field_errors_are_all_named() -> None:
    body = am_alert()
    good = body["alerts"][0]
    body["alerts"] = [
        good,
        {**good, "status": "pending"},
        {**good, "startsAt": "yesterday"},
        {**good, "labels": {"alertname": 3}},
        "nope",
    ]
    with pytest.raises(PayloadError) as info:
        parse_external(body)
    errors = info.value.errors
    assert (
        "alertmanager webhook: alerts[1].status: expected 'firing' or 'resolved', got 'pending'"
        in errors
    )
    assert any(
        e.startswith("alertmanager webhook: alerts[2].startsAt: expected an RFC 3339")
        for e in errors
    )
    assert (
        "alertmanager webhook: alerts[3].labels.alertname: expected a string, got a number"
        in errors
    )
    assert "alertmanager webhook: alerts[4]: expected an object, got a string" in errors


async def test_nothing_half_processed(
    am: Any, bridge: MonitoringBridge, recorder: RecordingChannel, manager: Any
) -> None:
    body = am.json("firing_group_updated")
    body["alerts"][2]["startsAt"] = "not a time"
    with pytest.raises(ValueError, match=r"alerts\[2\]\.startsAt"):
        await bridge.process_external_alerts(body)
    with pytest.raises(ValueError, match=r"plain alert \[2\]"):
        await bridge.process_external_alerts([{"title": "a"}, {"title": "b"}, {"title": 3}])
    assert recorder.sent == []
    assert await manager.history(24) == []
    # Nothing was remembered either: the corrected body is taken in full.
    summary = await bridge.process_external_alerts(am.json("firing_group_updated"))
    assert summary["accepted"] == 3


async def test_max_alerts(bridge: MonitoringBridge, recorder: RecordingChannel) -> None:
    from pixalert_monitoring import PayloadTooLarge

    with pytest.raises(PayloadTooLarge, match=r"too many alerts in one request: 3 \(at most 2\)"):
        await bridge.process_external_alerts([{"title": "a"}] * 3, max_alerts=2)
    assert recorder.sent == []


async def test_store_failure_lets_a_redelivery_take_what_was_not_stored(
    am: Any, recorder: RecordingChannel, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A store without transactions records one alert at a time: the first of the
    # body is kept when the second fails, so a redelivery takes only the other two.
    manager = make_manager([recorder], config=ROUTE_ALL, history="memory://")
    bridge = MonitoringBridge(manager)
    await manager.start()
    store = manager.history_store
    real_record = store.record
    calls = 0

    async def flaky_record(alert: Any, channels: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError("disk full")
        return await real_record(alert, channels, **kwargs)

    monkeypatch.setattr(store, "record", flaky_record)
    body = am.json("firing_group_updated")
    with pytest.raises(SubmitError, match="disk full") as raised:
        await bridge.process_external_alerts(body, wait=False)
    assert len(raised.value.stored) == 1
    summary = await bridge.process_external_alerts(body, wait=False)
    assert [e["duplicate"] for e in summary["alerts"]] == [True, False, False]
    await manager.drain()
    await manager.aclose()
    assert sorted(delivered(recorder)) == sorted(
        [
            ("58eb42a7154e9687", "firing"),
            ("e3d826d0c1ca4fe4", "firing"),
            ("1387954175b8b219", "firing"),
        ]
    )


async def test_a_body_is_stored_in_one_transaction_all_or_nothing(
    am: Any,
    recorder: RecordingChannel,
    clock: FakeClock,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    manager = make_manager(
        [recorder], clock=clock, config=ROUTE_ALL, history=f"sqlite:///{tmp_path}/h.db"
    )
    bridge = MonitoringBridge(manager)
    try:
        first = await bridge.process_external_alerts([{"title": "already stored"}], wait=False)
        await manager.drain()
        real_record = pixalert._sqlite._record
        real_record_simple = pixalert._sqlite._record_simple
        calls = 0

        def full_disk(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls == 2:  # inside the transaction, after the first alert of the body
                raise sqlite3.OperationalError("database or disk is full")
            return real_record(*args, **kwargs)

        def full_disk_after_writing(*args: Any, **kwargs: Any) -> Any:
            real_record_simple(*args, **kwargs)  # the whole body written, not committed
            raise sqlite3.OperationalError("database or disk is full")

        # A body is written alert by alert (SQLite before 3.35) or in a few statements.
        monkeypatch.setattr(pixalert._sqlite, "_record", full_disk)
        monkeypatch.setattr(pixalert._sqlite, "_record_simple", full_disk_after_writing)
        body = am.json("firing_group_updated")
        with pytest.raises(SubmitError, match="disk is full") as raised:
            await bridge.process_external_alerts(body, wait=False)
        assert raised.value.stored == []
        assert len(await manager.history(24)) == len(first["alerts"])  # none of the body kept
        # Nothing was stored, so every dedup mark was released: the retry takes all three.
        monkeypatch.setattr(pixalert._sqlite, "_record", real_record)
        monkeypatch.setattr(pixalert._sqlite, "_record_simple", real_record_simple)
        retry = await bridge.process_external_alerts(body, wait=False)
        assert [e["duplicate"] for e in retry["alerts"]] == [False, False, False]
        await manager.drain()
        assert len(await manager.history(24)) == len(first["alerts"]) + 3
    finally:
        await manager.aclose()


async def test_background_mode_returns_once_stored(
    am: Any, bridge: MonitoringBridge, recorder: RecordingChannel, manager: Any
) -> None:
    summary = await bridge.process_external_alerts(am.json("firing_group"), wait=False)
    stored = await manager.history(24)
    assert {h["id"] for h in stored} == {e["id"] for e in summary["alerts"]}
    await manager.drain()
    assert len(recorder.sent) == 2
