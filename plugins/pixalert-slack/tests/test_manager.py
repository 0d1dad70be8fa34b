"""End to end through the core's NotificationManager: the plugin loaded as a plugin, receipts
kept in history drive chat.update, retries honour Retry-After, and history holds no secret."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pixalert_slack
import pytest
from aiohttp import web
from pixalert.testing import FakeClock, make_manager
from pixalert_slack.testing import SlackServer


def manager_for(section: dict[str, Any], **kwargs: Any) -> Any:
    return make_manager(
        plugins=[pixalert_slack],
        config={"channels": {"slack": section}, "cooldown_minutes": 0},
        **kwargs,
    )


async def test_firing_then_resolved_updates_one_message(slack: SlackServer) -> None:
    async with manager_for(slack.config("api")) as manager:
        results = await manager.send_alert("Disk full", "/ is 97%", "high", channels=["slack"])
        assert results["slack"]
        results = await manager.send_alert(
            "Disk full", "/ is 60%", "high", channels=["slack"], status="resolved"
        )
        assert results["slack"]
    assert [r.endpoint for r in slack.requests] == ["chat.postMessage", "chat.update"]
    [message] = slack.received
    assert message.header == "RESOLVED [HIGH] Disk full"


async def test_seed_style_call_through_the_webhook(slack: SlackServer) -> None:
    async with manager_for(slack.config("webhook")) as manager:
        results = await manager.send_alert("Custom Alert", "Slack only", "low")
    assert results["slack"]
    assert slack.lines() == ["#alerts: [LOW] Custom Alert"]


@pytest.mark.parametrize("spelling", ["ratelimited", "rate_limited"])
async def test_429_is_retried_after_retry_after(slack: SlackServer, spelling: str) -> None:
    slack.fail(429, retry_after=4, body={"ok": False, "error": spelling, "retry_after": 4})
    clock = FakeClock()
    async with manager_for(slack.config("api"), clock=clock) as manager:
        results = await manager.send_alert("Disk full", "", "low", channels=["slack"])
    assert results["slack"]
    assert results["slack"].attempts == 2
    assert any(delay >= 4.0 for delay in clock.sleeps)


async def test_permanent_error_is_not_retried(slack: SlackServer) -> None:
    slack.api_error("channel_not_found", times=5)
    async with manager_for(slack.config("api")) as manager:
        results = await manager.send_alert("Disk full", "", "low", channels=["slack"])
    assert not results["slack"]
    assert results["slack"].attempts == 1
    assert str(results["slack"].error).startswith("slack chat.postMessage: channel_not_found")


def echo(request: web.Request) -> str:
    return json.dumps(
        {"ok": False, "error": str(request.url), "auth": request.headers.get("Authorization")}
    )


@pytest.mark.parametrize("mode", ["webhook", "api"])
async def test_history_database_holds_no_secret(
    slack: SlackServer, tmp_path: Path, mode: str
) -> None:
    slack.fail(500, body=echo, times=10)
    history = f"sqlite:///{tmp_path / 'history.db'}"
    async with manager_for(slack.config(mode), history=history) as manager:
        results = await manager.send_alert("Disk full", "", "high", channels=["slack"])
        rows = await manager.history(hours=1)
    assert not results["slack"]
    secrets = [slack.secret, slack.webhook_path, slack.token]
    texts = [str(results["slack"].error), json.dumps(rows, default=str)]
    texts += [p.read_bytes().decode("latin-1") for p in tmp_path.rglob("*") if p.is_file()]
    for text in texts:
        for secret in secrets:
            assert secret not in text
