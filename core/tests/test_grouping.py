"""Grouping: alerts that share their group_by values go out as one notification per channel."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pixalert import Alert, DeliveryError, DeliveryStatus
from pixalert._clock import to_datetime
from pixalert.channels import Group, Receipt
from pixalert.storage import AlertEvent
from pixalert.testing import FakeClock, RecordingChannel, make_manager


class GroupChannel(RecordingChannel):
    """A recording channel that renders groups itself (``send_group``)."""

    def __init__(self, name: str = "slack", **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.groups: list[Group] = []
        self.group_previous: list[Receipt | None] = []

    async def send_group(self, group: Group, *, previous: Receipt | None = None) -> Receipt:
        self.calls += 1
        if self.fail:
            raise self.fail.pop(0)
        self.groups.append(group)
        self.group_previous.append(previous)
        return {"ts": f"m{len(self.groups)}"}


def grouping(**keys: Any) -> dict[str, Any]:
    keys.setdefault("group_by", ["source"])
    keys.setdefault("group_wait", "30s")
    keys.setdefault("group_interval", "5m")
    keys.setdefault("repeat_interval", "4h")
    return {"grouping": keys}


async def fire(manager: Any, title: str, source: str = "db", **kwargs: Any) -> Any:
    kwargs.setdefault("priority", "high")
    return await manager.send_alert(title, "m", source=source, channels=["slack"], **kwargs)


def titles(group: Group) -> list[str]:
    return [a.title for a in group.alerts]


async def test_alerts_of_one_group_wait_and_go_out_as_one_notification(clock: FakeClock) -> None:
    slack = GroupChannel()
    async with make_manager([slack], clock=clock, config=grouping()) as manager:
        results = await fire(manager, "Disk full on db-1")
        held = results["slack"]
        assert held.status is DeliveryStatus.HELD and not held
        assert "in group source=db on slack" in (held.error or "")
        clock.advance(10)
        await fire(manager, "Disk full on db-2", priority="medium")
        await fire(manager, "CPU hot", source="api", priority="low")
        await manager.resume_pending()
        assert slack.groups == []  # group_wait is not over
        clock.advance(20)
        await manager.resume_pending()
        assert len(slack.groups) == 1
        (group,) = slack.groups
        assert group.labels == {"source": "db"} and group.reason == "new"
        assert titles(group) == ["Disk full on db-1", "Disk full on db-2"]  # by priority
        assert group.title() == "[FIRING:2] source=db"
        assert slack.sent == []
        clock.advance(5)
        await manager.resume_pending()
        assert len(slack.groups) == 1
        clock.advance(5)  # the api group started 10 s after the db one
        await manager.resume_pending()
        assert [g.labels for g in slack.groups] == [{"source": "db"}, {"source": "api"}]
        history = await manager.history()
    assert {e["results"]["slack"]["status"] for e in history} == {"sent"}


async def test_a_critical_alert_does_not_wait_unless_told(clock: FakeClock) -> None:
    slack = GroupChannel()
    async with make_manager([slack], clock=clock, config=grouping()) as manager:
        await fire(manager, "replica lag", priority="medium")
        clock.advance(5)
        await fire(manager, "DB down", priority="critical")
        await manager.resume_pending()  # the group goes out now, with what it has
        assert [titles(g) for g in slack.groups] == [["DB down", "replica lag"]]
    slack = GroupChannel()
    config = grouping(critical_waits=True)
    async with make_manager([slack], clock=clock, config=config) as manager:
        await fire(manager, "DB down", priority="critical")
        await manager.resume_pending()
        assert slack.groups == []
        clock.advance(30)
        await manager.resume_pending()
        assert len(slack.groups) == 1


async def test_group_interval_paces_news_and_the_message_is_updated(clock: FakeClock) -> None:
    slack = GroupChannel()
    async with make_manager([slack], clock=clock, config=grouping()) as manager:
        await fire(manager, "a")
        clock.advance(30)
        await manager.resume_pending()
        assert len(slack.groups) == 1
        clock.advance(60)
        results = await fire(manager, "b")
        assert "next notification" not in (results["slack"].error or "")
        clock.advance(30)  # group_wait of b is over, group_interval is not
        await manager.resume_pending()
        assert len(slack.groups) == 1
        (held,) = [e for e in await manager.history() if e["title"] == "b"]
        assert held["results"]["slack"]["status"] == "held"
        assert "next notification at" in held["results"]["slack"]["error"]
        clock.advance(210)  # 5 minutes after the first notification
        await manager.resume_pending()
        assert len(slack.groups) == 2
        update = slack.groups[1]
        assert update.reason == "update" and titles(update) == ["a", "b"]
        assert [a.title for a in update.alerts if a.id in update.new] == ["b"]
        assert slack.group_previous == [None, {"ts": "m1"}]  # the receipt, to update in place
        clock.advance(300)
        await manager.resume_pending()
        assert len(slack.groups) == 2  # nothing new: nothing sent


async def test_resolves_are_told_at_the_next_flush_and_end_the_group(clock: FakeClock) -> None:
    slack = GroupChannel()
    async with make_manager([slack], clock=clock, config=grouping()) as manager:
        await fire(manager, "a", key="ka")
        await fire(manager, "b", key="kb")
        clock.advance(30)
        await manager.resume_pending()
        clock.advance(10)
        await fire(manager, "a", key="ka", status="resolved")
        clock.advance(300)
        await manager.resume_pending()
        second = slack.groups[1]
        assert [a.title for a in second.firing] == ["b"]
        assert [a.title for a in second.resolved] == ["a"]
        assert second.title() == "[FIRING:1] [RESOLVED:1] source=db"
        await fire(manager, "b", key="kb", status="resolved")
        clock.advance(300)
        await manager.resume_pending()
        last = slack.groups[2]
        assert last.status == "resolved" and last.title() == "[RESOLVED:1] source=db"
        clock.advance(300)
        await manager.resume_pending()
        assert not await manager.history_store.jobs("group")  # the group is over
        await fire(manager, "c")
        clock.advance(30)
        await manager.resume_pending()
        assert slack.groups[3].reason == "new" and slack.group_previous[3] is None


async def test_an_alert_resolved_before_group_wait_is_not_sent(clock: FakeClock) -> None:
    slack = GroupChannel()
    async with make_manager([slack], clock=clock, config=grouping()) as manager:
        await fire(manager, "flap", key="k1")
        clock.advance(5)
        results = await fire(manager, "flap", key="k1", status="resolved")
        assert results["slack"].status is DeliveryStatus.SUPPRESSED
        clock.advance(60)
        await manager.resume_pending()
        assert slack.groups == [] and slack.sent == []
        history = await manager.history()
    errors = sorted(e["results"]["slack"]["error"] for e in history)
    assert errors[0].startswith("not sent: the firing notification was never delivered")
    assert errors[1].startswith("superseded: the alert resolved")


async def test_repeat_interval_reminds_until_acknowledged(clock: FakeClock) -> None:
    slack = GroupChannel()
    config = grouping(repeat_interval="1h")
    async with make_manager([slack], clock=clock, config=config) as manager:
        results = await fire(manager, "still broken")
        alert_id = (await manager.history())[0]["id"]
        assert results["slack"].status is DeliveryStatus.HELD
        clock.advance(30)
        await manager.resume_pending()
        clock.advance(3600)
        await manager.resume_pending()
        assert [g.reason for g in slack.groups] == ["new", "reminder"]
        entry = await manager.get_alert(alert_id)
        assert entry is not None and [e["kind"] for e in entry["events"]] == ["reminder"]
        now = manager.clock.now()
        await manager.history_store.add_events(
            [AlertEvent(alert_id, "acknowledged", to_datetime(now), "alice", "cli")]
        )
        clock.advance(3600)
        await manager.resume_pending()
        assert [g.reason for g in slack.groups] == ["new", "reminder"]  # acknowledged: quiet


async def test_a_channel_without_send_group_gets_a_digest_alert(clock: FakeClock) -> None:
    email = RecordingChannel("email")
    async with make_manager([email], clock=clock, config=grouping()) as manager:
        for i in range(25):
            await manager.send_alert(
                f"Disk {i:02d}", "m", "medium", channels=["email"], source="db"
            )
        clock.advance(30)
        await manager.resume_pending()
    (digest,) = email.sent
    assert digest.title == "[FIRING:25] source=db"
    assert digest.key.startswith("group:email|")
    lines = digest.message.splitlines()
    assert lines[0] == "25 firing (25 medium)"
    assert lines[2] == "- [MEDIUM] Disk 00 (new)" and lines[-1] == "and 5 more"
    assert digest.metadata["group_labels"] == {"source": "db"} and digest.metadata["firing"] == 25


async def test_a_failing_flush_retries_and_keeps_its_members(clock: FakeClock) -> None:
    slack = GroupChannel(fail=[DeliveryError("503", retryable=True)] * 3)
    config = {**grouping(), "delivery": {"backoff": 0, "retry_schedule": ["1m"]}}
    async with make_manager([slack], clock=clock, config=config) as manager:
        await fire(manager, "a")
        clock.advance(30)
        await manager.resume_pending()
        assert slack.groups == []
        (entry,) = await manager.history()
        assert entry["results"]["slack"]["status"] == "retrying"
        clock.advance(60)
        await manager.resume_pending()
        assert [titles(g) for g in slack.groups] == [["a"]]
        (entry,) = await manager.history()
        assert entry["results"]["slack"]["status"] == "sent"
        assert entry["results"]["slack"]["attempts"] == 4


async def test_an_alertmanager_group_is_kept(clock: FakeClock) -> None:
    slack = GroupChannel()
    async with make_manager([slack], clock=clock, config=grouping()) as manager:
        alerts = [
            Alert(
                f"alert {i}",
                source=f"node-{i}",  # group_by source would split them
                channels=["slack"],
                created_at=to_datetime(clock.now()),
                metadata={
                    "group_key": '{}:{alertname="Down"}',
                    "group_labels": {"alertname": "Down"},
                },
            )
            for i in range(3)
        ]
        await manager.submit_many(alerts)
        await manager.drain()
        await manager.resume_pending()  # Alertmanager waited already: at once
    (group,) = slack.groups
    assert group.labels == {"alertname": "Down"} and group.external_key == '{}:{alertname="Down"}'
    assert len(group.alerts) == 3


async def test_routes_set_their_own_grouping(clock: FakeClock) -> None:
    slack, pager = GroupChannel("slack"), GroupChannel("pagerduty")
    config = {
        "routes": [
            {
                "match": {"source": "db"},
                "channels": ["pagerduty"],
                "group_by": ["env"],
                "group_wait": "0s",
            },
            {"match": {}, "channels": ["slack"]},
        ]
    }
    async with make_manager([slack, pager], clock=clock, config=config) as manager:
        await manager.send_alert("a", metadata={"env": "prod"}, source="db")
        await manager.send_alert("b", metadata={"env": "dev"}, source="db")
        res = await manager.send_alert("c", source="api")
        assert res["slack"].status is DeliveryStatus.SENT  # no grouping on that route
        await manager.resume_pending()
    assert sorted(tuple(g.labels.items()) for g in pager.groups) == [
        (("env", "dev"),),
        (("env", "prod"),),
    ]
    assert [a.title for a in slack.sent] == ["c"]


def _two_managers(path: Path, slack: GroupChannel, clock: FakeClock) -> tuple[Any, Any]:
    url = f"sqlite:///{path}"
    config = {**grouping(), "state": "memory://"}
    return (
        make_manager([slack], clock=clock, config=config, history=url),
        make_manager([slack], clock=clock, config=config, history=url),
    )


@pytest.mark.parametrize("end", ["closed", "abandoned"])
async def test_a_restart_in_the_middle_of_group_wait_still_flushes_once(
    clock: FakeClock, tmp_path: Path, end: str
) -> None:
    slack = GroupChannel()
    first, second = _two_managers(tmp_path / "h.db", slack, clock)
    await first.start()
    for i in range(3):
        await fire(first, f"a{i}")
    if end == "closed":
        await first.aclose()
    else:
        await first.history_store.aclose()  # the process dies mid group_wait (no close_owner)
        first._history = None
    assert slack.groups == []
    clock.advance(30)
    async with second:
        await second.resume_pending()
        await second.resume_pending()
        clock.advance(600)
        await second.resume_pending()
    assert [len(g.alerts) for g in slack.groups] == [3]


async def test_two_instances_on_one_store_flush_a_group_once(
    clock: FakeClock, tmp_path: Path
) -> None:
    slack = GroupChannel()
    first, second = _two_managers(tmp_path / "h.db", slack, clock)
    async with first, second:
        for i in range(4):
            await fire(first if i % 2 else second, f"a{i}")
        clock.advance(30)
        await asyncio.gather(first.resume_pending(), second.resume_pending())
        await asyncio.gather(first.resume_pending(), second.resume_pending())
    assert [len(g.alerts) for g in slack.groups] == [4]


async def test_without_grouping_nothing_is_held(clock: FakeClock) -> None:
    slack = GroupChannel()
    async with make_manager([slack], clock=clock) as manager:
        results = await fire(manager, "a")
    assert results["slack"].status is DeliveryStatus.SENT and not slack.groups


def test_group_digest_lists_and_counts() -> None:
    alerts = [
        Alert(f"t{i}", priority=p, source="db") for i, p in enumerate(["low", "critical", "high"])
    ]
    resolved = Alert("done", priority="high", source="db", status="resolved")
    group = Group("g", {"source": "db"}, (*alerts, resolved), new={alerts[0].id})
    assert [a.title for a in group.alerts] == ["t1", "t2", "t0", "done"]
    assert group.summary() == "3 firing (1 critical, 1 high, 1 low), 1 resolved"
    digest = group.digest(limit=2)
    assert digest.priority.name == "CRITICAL" and digest.status == "firing"
    assert digest.message.splitlines()[-1] == "and 2 more"
    assert Group("g", {}, (resolved,)).digest().status == "resolved"
