"""Groups on PagerDuty: one incident per group, its dedup_key from the group, updated as
alerts join, resolved when the whole group is, every event within 512 KB."""

from __future__ import annotations

import json

import pixalert_pagerduty
from pixalert import Alert
from pixalert.channels import Group
from pixalert.testing import FakeClock, make_manager
from pixalert_pagerduty._channel import (
    MAX_EVENT_BYTES,
    build_group_event,
    group_dedup_key,
)
from pixalert_pagerduty.testing import PagerDutyServer, validate_event

KEY = "a" * 32


def test_a_huge_group_is_cut_to_512_kb_and_says_how_many_more() -> None:
    alerts = [Alert(f"Disk full on db-{i}", "x" * 2000, "high", source="db") for i in range(3000)]
    group = Group("pagerduty|0|abc", {"source": "db"}, alerts)
    event = build_group_event(group, KEY)
    size = len(json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode())
    assert size <= MAX_EVENT_BYTES
    details = event["payload"]["custom_details"]
    assert details["more"] > 0 and len(details["alerts"]) + details["more"] == 3000
    assert validate_event(event) == []
    assert event["payload"]["summary"] == "[FIRING:3000] source=db: 3000 firing (3000 high)"
    assert event["dedup_key"] == group_dedup_key(group) and len(event["dedup_key"]) <= 255


def test_a_group_with_nothing_firing_resolves_its_incident() -> None:
    done = Alert("Disk full", "ok", "high", status="resolved")
    event = build_group_event(Group("g", {}, [done]), KEY)
    assert event == {
        "routing_key": KEY,
        "dedup_key": group_dedup_key(Group("g")),
        "event_action": "resolve",
    }


GROUPING = {"group_by": ["source"], "group_wait": "30s", "group_interval": "5m"}


async def test_one_incident_per_group_updated_then_resolved(pd: PagerDutyServer) -> None:
    clock = FakeClock()
    config = {"channels": {"pagerduty": pd.config()}, "grouping": GROUPING, "cooldown_minutes": 0}
    async with make_manager(plugins=[pixalert_pagerduty], clock=clock, config=config) as m:
        for i in range(3):
            await m.send_alert(
                f"db-{i} down", "m", "high", source="db", key=f"db{i}", channels=["pagerduty"]
            )
        await m.send_alert("api down", "m", "high", source="api", key="api", channels=["pagerduty"])
        clock.advance(30)
        await m.resume_pending()
        assert len(pd.incidents) == 2
        await m.send_alert(
            "db-3 down", "m", "critical", source="db", key="db3", channels=["pagerduty"]
        )
        clock.advance(300)
        await m.resume_pending()
        for i in range(3):
            await m.send_alert(
                f"db-{i} down",
                "ok",
                "high",
                source="db",
                key=f"db{i}",
                status="resolved",
                channels=["pagerduty"],
            )
        clock.advance(300)
        await m.resume_pending()
        db = next(i for i in pd.incidents if "source=db" in i.summary)
        assert db.open  # db-3 still fires
        await m.send_alert(
            "db-3 down",
            "ok",
            "critical",
            source="db",
            key="db3",
            status="resolved",
            channels=["pagerduty"],
        )
        clock.advance(300)
        await m.resume_pending()
    assert len(pd.incidents) == 2 and not pd.rejections
    assert [e["event_action"] for e in db.events] == ["trigger", "trigger", "trigger", "resolve"]
    assert db.events[1]["payload"]["severity"] == "critical"
    assert [a["title"] for a in db.events[1]["payload"]["custom_details"]["alerts"]] == [
        "db-3 down",
        "db-0 down",
        "db-1 down",
        "db-2 down",
    ]
    assert not db.open
