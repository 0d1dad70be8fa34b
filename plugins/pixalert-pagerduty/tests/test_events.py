"""What the channel posts: trigger and resolve events, severity, summary, dedup key, details."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone

import pytest
from pixalert import Priority
from pixalert_pagerduty._channel import MAX_EVENT_BYTES, dedup_key_for, summary_for


async def test_trigger_opens_and_resolve_closes_the_incident(pd, channel, make_alert):
    alert = make_alert(key="disk-db1")
    receipt = await channel.send(alert)
    assert receipt == {"dedup_key": "disk-db1"}
    incident = pd.incident("disk-db1", routing_key=pd.routing_key)
    assert incident is not None and incident.open
    assert incident.severity == "critical"

    await channel.send(alert.resolve(), previous=receipt)
    assert not incident.open
    assert pd.open_incidents == []
    assert pd.lines() == [
        "trigger critical: Disk full: / is 99% full (dedup disk-db1)",
        "resolve: Disk full: / is 99% full (dedup disk-db1)",
    ]


async def test_resolve_body_is_routing_key_dedup_key_and_action_only(pd, channel, make_alert):
    alert = make_alert(key="k1", metadata={"host": "db1"})
    await channel.send(alert)
    await channel.send(alert.resolve())  # no receipt: the dedup key comes from the alert key
    resolve = pd.requests[-1].json()
    assert resolve == {"routing_key": pd.routing_key, "dedup_key": "k1", "event_action": "resolve"}
    assert pd.requests[-1].headers["Content-Type"] == "application/json"
    assert not pd.incident("k1").open


async def test_resolve_uses_the_dedup_key_from_the_receipt(pd, channel, make_alert):
    first = make_alert(key="k2")
    await channel.send(first)
    await channel.send(first.resolve(), previous={"dedup_key": "k2"})
    assert not pd.incident("k2").open


async def test_trigger_payload_has_every_field(pd, make_channel, make_alert):
    channel = make_channel(source="web-01")
    created = datetime(2026, 5, 4, 3, 2, 1, 123456, tzinfo=timezone.utc)
    alert = make_alert(
        metadata={"component": "postgres", "group": "prod", "class": "disk", "used": 0.99},
        created_at=created,
        key="k3",
    )
    await channel.send(alert)
    event = pd.received[-1]
    assert event["event_action"] == "trigger"
    assert event["dedup_key"] == "k3"
    assert event["routing_key"] == pd.routing_key
    assert event["payload"] == {
        "summary": "Disk full: / is 99% full",
        "source": "web-01",
        "severity": "critical",
        "timestamp": "2026-05-04T03:02:01.123+00:00",
        "component": "postgres",
        "group": "prod",
        "class": "disk",
        "custom_details": {"component": "postgres", "group": "prod", "class": "disk", "used": 0.99},
    }


async def test_the_alerts_own_source_wins_over_the_configured_default(pd, make_channel, make_alert):
    channel = make_channel(source="fallback-host")
    await channel.send(make_alert(source="api-server"))
    assert pd.received[-1]["payload"]["source"] == "api-server"
    await channel.send(make_alert(title="Other"))  # source "pixalert": the default
    assert pd.received[-1]["payload"]["source"] == "fallback-host"


@pytest.mark.parametrize(
    ("priority", "severity"),
    [
        (Priority.CRITICAL, "critical"),
        (Priority.HIGH, "error"),
        (Priority.MEDIUM, "warning"),
        (Priority.LOW, "info"),
    ],
)
async def test_severity_follows_priority(pd, channel, make_alert, priority, severity):
    await channel.send(make_alert(priority=priority))
    assert pd.received[-1]["payload"]["severity"] == severity
    assert pd.lines()[-1].startswith(f"trigger {severity}: ")


async def test_long_summary_is_cut_cleanly_to_1024_characters(pd, channel, make_alert):
    message = "word " * 400 + "END"
    await channel.send(make_alert(message=message, key="long"))
    summary = pd.received[-1]["payload"]["summary"]
    assert len(summary) <= 1024
    assert summary.startswith("Disk full: word word")
    assert summary.endswith("word…")  # cut at a word boundary, marked
    assert "END" not in summary


def test_summary_without_spaces_is_cut_hard_and_lines_are_joined(make_alert):
    assert len(summary_for(make_alert(message="x" * 5000))) == 1024
    assert (
        summary_for(make_alert(title="A\nB", message="line 1\n\n  line 2")) == "A B: line 1 line 2"
    )
    assert summary_for(make_alert(message="")) == "Disk full"


async def test_long_dedup_key_is_hashed(pd, channel, make_alert):
    key = "k" * 300
    alert = make_alert(key=key)
    receipt = await channel.send(alert)
    expected = "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    assert receipt == {"dedup_key": expected}
    assert dedup_key_for(alert) == expected
    assert len(expected) <= 255
    await channel.send(alert.resolve())
    assert not pd.incident(expected).open


async def test_key_of_255_characters_is_kept(pd, channel, make_alert):
    key = "a" * 255
    assert await channel.send(make_alert(key=key)) == {"dedup_key": key}


async def test_no_metadata_no_custom_details(pd, channel, make_alert):
    await channel.send(make_alert())
    assert "custom_details" not in pd.received[-1]["payload"]


async def test_oversized_custom_details_are_dropped_as_alertmanager_does(
    pd, channel, make_alert, caplog
):
    alert = make_alert(metadata={"dump": "x" * MAX_EVENT_BYTES, "host": "db1"}, key="big")
    await channel.send(alert)
    request = pd.requests[-1]
    assert len(request.body) <= MAX_EVENT_BYTES
    details = pd.received[-1]["payload"]["custom_details"]
    assert list(details) == ["error"]
    assert "512000" in details["error"]
    assert "custom_details dropped" in caplog.text
    assert pd.incident("big").open


async def test_unicode_metadata_is_sent_as_utf8_json(pd, channel, make_alert):
    await channel.send(make_alert(metadata={"note": "café ☕"}))
    assert json.loads(pd.requests[-1].body)["payload"]["custom_details"] == {"note": "café ☕"}


async def test_a_second_trigger_adds_to_the_open_incident_and_reopens_after_resolve(
    pd, channel, make_alert
):
    alert = make_alert(key="flap")
    await channel.send(alert)
    await channel.send(alert)
    assert len(pd.incidents) == 1 and len(pd.incidents[0].events) == 2
    await channel.send(alert.resolve())
    await channel.send(alert)
    assert [i.status for i in pd.incidents] == ["resolved", "triggered"]


async def test_receipt_is_the_dedup_key_pagerduty_answers(pd, channel, make_alert):
    assert await channel.send(make_alert(key="abc")) == {"dedup_key": "abc"}
