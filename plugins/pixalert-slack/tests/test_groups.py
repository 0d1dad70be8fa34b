"""Groups on Slack: one message per group within Slack's limits, updated in place with a bot
token, a new message per notification through a webhook, paced under the posting limit."""

from __future__ import annotations

from typing import Any

import pixalert_slack
from pixalert import Alert
from pixalert.channels import Group
from pixalert.testing import FakeClock, make_manager
from pixalert_slack import build_group_message
from pixalert_slack._blocks import MAX_BLOCKS, MAX_SECTION, slack_len
from pixalert_slack.testing import SlackServer, check_message


def group_of(n: int, **kwargs: Any) -> Group:
    alerts = [
        Alert(
            f"Disk full on db-{i} " + "x" * (i % 7) * 30,
            "/var is 97% full\nsecond line " * (1 + i % 3),
            ["low", "medium", "high", "critical"][i % 4],
            source="db",
        )
        for i in range(n)
    ]
    return Group("slack|0|abc", {"source": "db"}, alerts, new={alerts[0].id}, **kwargs)


def test_a_large_group_fits_slack_s_limits_with_and_n_more() -> None:
    group = group_of(500)
    message = build_group_message(group)
    assert check_message(message) == []
    blocks = message["attachments"][0]["blocks"]
    assert len(blocks) <= MAX_BLOCKS and len(message["blocks"]) <= MAX_BLOCKS
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert all(slack_len(text) <= MAX_SECTION for text in sections)
    lines = [line for text in sections[1:] for line in text.splitlines()]
    more = [b for b in blocks if b["type"] == "context" and "and " in b["elements"][0]["text"]]
    assert more and more[0]["elements"][0]["text"] == f"_and {500 - len(lines)} more_"
    assert lines[0].startswith("• *[CRITICAL]*")  # highest priority first
    assert message["blocks"][0]["text"]["text"] == "[FIRING:500] source=db"
    assert sections[0] == "*500 firing (125 critical, 125 high, 125 medium, 125 low)*"


def test_a_small_group_lists_every_alert_and_marks_the_new_one() -> None:
    group = group_of(3)
    message = build_group_message(group, mention="<!here>")
    assert check_message(message) == []
    text = "\n".join(b["text"]["text"] for b in message["attachments"][0]["blocks"][1:2])
    assert text.count("• ") == 3 and text.count(":new:") == 1
    assert len(message["blocks"]) == 1  # the new one is LOW: no mention
    critical = group_of(4)
    new_critical = Group(
        critical.key, critical.labels, critical.alerts, new={critical.alerts[0].id}
    )
    assert critical.alerts[0].priority.name == "CRITICAL"
    assert build_group_message(new_critical, mention="<!here>")["text"].startswith("<!here> ")


def test_a_resolved_group_is_green() -> None:
    done = Alert("Disk full", "ok", "high", source="db", status="resolved")
    message = build_group_message(Group("g", {"source": "db"}, [done]))
    assert message["attachments"][0]["color"] == "#2EB67D"
    assert message["blocks"][0]["text"]["text"] == "[RESOLVED:1] source=db"


GROUPING = {"group_by": ["source"], "group_wait": "30s", "group_interval": "5m"}


def manager_for(section: dict[str, Any], clock: FakeClock) -> Any:
    return make_manager(
        plugins=[pixalert_slack],
        clock=clock,
        config={"channels": {"slack": section}, "cooldown_minutes": 0, "grouping": GROUPING},
    )


async def test_with_a_bot_token_the_group_message_is_updated_in_place(slack: SlackServer) -> None:
    clock = FakeClock()
    async with manager_for(slack.config("api"), clock) as manager:
        for i in range(3):
            await manager.send_alert(f"Disk {i}", "m", "high", source="db", key=f"d{i}")
        clock.advance(30)
        await manager.resume_pending()
        clock.advance(60)
        await manager.send_alert("Disk 3", "m", "critical", source="db", key="d3")
        await manager.resume_pending()  # CRITICAL: but group_interval is not over
        assert [r.endpoint for r in slack.requests] == ["chat.postMessage"]
        clock.advance(240)
        await manager.resume_pending()
        for i in range(4):
            await manager.send_alert(
                f"Disk {i}", "ok", "high", source="db", key=f"d{i}", status="resolved"
            )
        clock.advance(300)
        await manager.resume_pending()
    assert [r.endpoint for r in slack.requests] == [
        "chat.postMessage",
        "chat.update",
        "chat.update",
    ]
    (message,) = slack.received
    assert [u["blocks"][0]["text"]["text"] for u in message.updates] == [
        "[FIRING:4] source=db",
        "[RESOLVED:4] source=db",
    ]


async def test_through_a_webhook_each_notification_is_a_new_message(slack: SlackServer) -> None:
    clock = FakeClock()
    async with manager_for(slack.config("webhook"), clock) as manager:
        await manager.send_alert("Disk 0", "m", "high", source="db", key="d0")
        clock.advance(30)
        await manager.resume_pending()
        await manager.send_alert("Disk 1", "m", "high", source="db", key="d1")
        clock.advance(300)
        await manager.resume_pending()
    assert slack.lines() == ["#alerts: [FIRING:1] source=db", "#alerts: [FIRING:2] source=db"]


async def test_many_groups_at_once_stay_under_the_posting_limit() -> None:
    clock = FakeClock()
    async with SlackServer(rate_limit=(1.0, 3)) as slack:
        # The channel paces on real time here (the server's limit is real time too).
        section = slack.config("api", rate=1.0, burst=3)
        async with manager_for(section, clock) as manager:
            for source in ("db", "api", "web", "queue", "cache"):
                await manager.send_alert("down", "m", "high", source=source, key=source)
            clock.advance(30)
            await manager.resume_pending()
        assert slack.rate_limited == 0
        assert len(slack.received) == 5
