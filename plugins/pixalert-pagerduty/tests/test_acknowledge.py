"""Acknowledge: an ack in pixalert sends PagerDuty's ``acknowledge`` for the incident,
with the trigger's routing key and dedup key and nothing else; a resolve from pixalert
sends ``resolve``. Checked against the contract-enforcing Events API server."""

from __future__ import annotations

from datetime import datetime, timezone

import pixalert_pagerduty
import pytest
from pixalert import DeliveryError
from pixalert.channels import AlertEvent
from pixalert.testing import FakeClock, make_manager

EVENT = AlertEvent("id", "acknowledged", datetime(2026, 1, 1, tzinfo=timezone.utc), "alice", "cli")


async def test_acknowledge_body_is_routing_key_dedup_key_and_action_only(pd, channel, make_alert):
    alert = make_alert(key="disk-db1", metadata={"host": "db1"})
    receipt = await channel.send(alert)
    assert await channel.acknowledge(alert, event=EVENT, previous=receipt) is True
    body = pd.requests[-1].json()
    assert body == {
        "routing_key": pd.routing_key,
        "dedup_key": "disk-db1",
        "event_action": "acknowledge",
    }
    incident = pd.incident("disk-db1")
    assert incident is not None and incident.status == "acknowledged" and incident.open
    assert pd.rejections == []


async def test_acknowledge_uses_the_dedup_key_pagerduty_answered(pd, channel, make_alert):
    long_key = "k" * 300  # longer than PagerDuty takes: hashed for the trigger
    alert = make_alert(key=long_key)
    receipt = await channel.send(alert)
    assert receipt is not None and receipt["dedup_key"].startswith("sha256:")
    await channel.acknowledge(alert, event=EVENT, previous=receipt)
    assert pd.requests[-1].json()["dedup_key"] == receipt["dedup_key"]
    assert pd.incident(receipt["dedup_key"]).status == "acknowledged"
    # Without a receipt, the same key is derived from the alert.
    await channel.acknowledge(alert, event=EVENT)
    assert pd.requests[-1].json()["dedup_key"] == receipt["dedup_key"]


async def test_acknowledge_failures_say_whether_to_retry(pd, channel, make_alert):
    alert = make_alert(key="k")
    await channel.send(alert)
    pd.fail(503)
    with pytest.raises(DeliveryError) as retry:
        await channel.acknowledge(alert, event=EVENT)
    assert retry.value.retryable
    pd.fail(400, body={"status": "invalid event", "message": "Event object is invalid"})
    with pytest.raises(DeliveryError) as final:
        await channel.acknowledge(alert, event=EVENT)
    assert not final.value.retryable
    assert pd.routing_key not in str(final.value) + str(retry.value)


async def test_ack_and_resolve_from_pixalert_reach_pagerduty(pd):
    clock = FakeClock()
    manager = make_manager(
        config={"channels": {"pagerduty": pd.config()}},
        plugins=[pixalert_pagerduty],
        clock=clock,
    )
    async with manager:
        results = await manager.send_alert("DB down", "primary gone", "critical", key="db-1")
        assert results["pagerduty"].status == "sent"
        alert_id = (await manager.history())[0]["id"]
        clock.advance(60)
        outcome = await manager.ack(alert_id, by="alice", via="cli")
        assert outcome.channels == {"pagerduty": "acknowledged"}
        assert pd.incident("db-1").status == "acknowledged"
        again = await manager.ack(alert_id, by="bob")
        assert not again.changed
        clock.advance(60)
        resolved = await manager.resolve(alert_id, by="alice")
        assert resolved.results["pagerduty"].status == "sent"
    assert [r.json()["event_action"] for r in pd.requests] == ["trigger", "acknowledge", "resolve"]
    assert {r.json()["routing_key"] for r in pd.requests} == {pd.routing_key}
    assert {r.json()["dedup_key"] for r in pd.requests} == {"db-1"}
    assert pd.open_incidents == [] and pd.rejections == []
