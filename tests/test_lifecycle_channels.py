"""Acknowledgement end to end through the real channel plugins, each against its
contract server, and the receiver over HTTP: Slack's buttons (a stand-in that signs
its clicks as Slack does), PagerDuty's acknowledge and resolve, email links from a
message received by aiosmtpd."""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

pytest.importorskip("pixalert_monitoring")
pytest.importorskip("pixalert_slack.testing")
pytest.importorskip("pixalert_pagerduty.testing")
pytest.importorskip("pixalert_email.testing")

import pixalert_email
import pixalert_pagerduty
import pixalert_slack
from pixalert.testing import make_manager
from pixalert_email.testing import SMTPTestServer
from pixalert_monitoring.testing import running_receiver
from pixalert_pagerduty.testing import PagerDutyServer
from pixalert_slack.testing import SlackServer

PLUGINS = [pixalert_slack, pixalert_pagerduty, pixalert_email]
PUBLIC = "https://alerts.example.com"
LINK_SECRET = "an-email-link-secret-for-tests"


async def events(manager: Any, alert_id: str) -> list[tuple[str, str | None, str | None]]:
    found = await manager.get_alert(alert_id)
    return [(e["kind"], e["by"], e["via"]) for e in found["events"]]


@pytest.mark.parametrize("mode", ["api", "webhook"])
async def test_slack_buttons_acknowledge_and_resolve(mode: str) -> None:
    async with SlackServer() as slack, PagerDutyServer() as pd:
        config = {
            "channels": {"slack": slack.config(mode, interactive=True), "pagerduty": pd.config()},
            "actions": {"public_url": PUBLIC},
        }
        manager = make_manager(config=config, plugins=PLUGINS)
        try:
            async with running_receiver(manager) as base:
                actions = f"{base}/slack/actions"
                results = await manager.send_alert("DB down", "primary gone", "critical", key="db")
                assert {k: r.status.value for k, r in results.items()} == {
                    "slack": "sent",
                    "pagerduty": "sent",
                }
                (message,) = slack.received
                alert_id = message.buttons[0]["value"]
                assert [b["action_id"] for b in message.buttons] == [
                    "pixalert_ack",
                    "pixalert_resolve",
                ]

                # Forged, replayed and unsigned clicks: 401, and nothing changes.
                now = int(time.time())
                for kwargs in (
                    {"secret": "a-guessed-secret"},
                    {"timestamp": now - 600},
                    {"timestamp": now + 600},
                    {"signed": False},
                ):
                    refused = await slack.click(message, "ack", url=actions, **kwargs)
                    assert refused.status_code == 401, kwargs
                    assert refused.json()["error"] == "request refused"
                await manager.drain()
                assert await events(manager, alert_id) == []
                assert message.updates == [] and pd.incident("db").status == "triggered"

                clicked = await slack.click(message, "ack", url=actions, user="alice")
                assert clicked.status_code == 200
                await manager.drain()
                assert await events(manager, alert_id) == [("acknowledged", "alice", "slack")]
                assert [b["action_id"] for b in message.buttons] == ["pixalert_resolve"]
                assert any("*Acknowledged* by alice" in t for t in message.texts())
                assert pd.incident("db").status == "acknowledged"

                # Slack retries a click it got no quick answer for: harmless.
                body, _ = slack.click_body(message, "resolve", user="carol")
                retry = {
                    "Content-Type": "application/x-www-form-urlencoded",
                    **slack.sign(body, int(time.time())),
                }
                async with httpx.AsyncClient() as client:
                    first = await client.post(actions, content=body, headers=retry)
                    again = await client.post(
                        actions, content=body, headers={**retry, "X-Slack-Retry-Num": "1"}
                    )
                assert (first.status_code, again.status_code) == (200, 200)
                await manager.drain()
                kinds = [kind for kind, _, _ in await events(manager, alert_id)]
                assert kinds == ["acknowledged", "resolved"]
                results = await manager.history(key="db")
                assert [a["status"] for a in results] == ["resolved", "firing"]

                assert await events(manager, alert_id) == [
                    ("acknowledged", "alice", "slack"),
                    ("resolved", "carol", "slack"),
                ]
                assert message.summary.startswith("RESOLVED") and message.buttons == []
                assert len(slack.received) == 1  # updated in place, in both modes
                assert not pd.incident("db").open
        finally:
            await manager.aclose()
        assert [r.json()["event_action"] for r in pd.requests] == [
            "trigger",
            "acknowledge",
            "resolve",
        ]
        assert slack.rejections == [] and pd.rejections == []


async def test_slack_without_a_signing_secret_has_no_buttons_and_refuses_clicks() -> None:
    async with SlackServer() as slack:
        config = {"channels": {"slack": slack.config("api")}, "actions": {"public_url": PUBLIC}}
        manager = make_manager(config=config, plugins=PLUGINS)
        try:
            async with running_receiver(manager) as base, httpx.AsyncClient() as client:
                await manager.send_alert("Disk full", "", "critical")
                assert slack.received[0].buttons == []
                body = b"payload=%7B%7D"
                response = await client.post(
                    f"{base}/slack/actions",
                    content=body,
                    headers=slack.sign(body, int(time.time())),
                )
                assert response.status_code == 401
        finally:
            await manager.aclose()


async def test_email_links_acknowledge_after_confirming() -> None:
    async with SMTPTestServer() as smtp, PagerDutyServer() as pd:
        config = {
            "channels": {"email": smtp.config(), "pagerduty": pd.config()},
            "actions": {"public_url": PUBLIC, "secret": LINK_SECRET, "link_ttl": "1h"},
        }
        manager = make_manager(config=config, plugins=PLUGINS)
        try:
            async with running_receiver(manager) as base, httpx.AsyncClient() as client:
                await manager.send_alert("DB down", "primary gone", "critical", key="db")
                await smtp.wait_for(1)
                text = next(
                    p.get_content()
                    for p in smtp.received[0].message.walk()
                    if p.get_content_type() == "text/plain"
                ).replace("\r\n", "\n")
                ack_url = re.search(r"^Acknowledge: (\S+)$", text, re.MULTILINE).group(1)  # type: ignore[union-attr]
                assert ack_url.startswith(f"{PUBLIC}/links/ack/")
                split = urlsplit(ack_url)
                local = f"{base}{split.path}?{split.query}"
                alert_id = split.path.rsplit("/", 1)[1]

                page = await client.get(local)  # a scanner prefetching the link
                assert page.status_code == 200 and "Acknowledge this alert?" in page.text
                assert await events(manager, alert_id) == []
                assert pd.incident("db").status == "triggered"

                done = await client.post(local, data={"by": "dana"})
                assert done.status_code == 200 and "Alert acknowledged" in done.text
                assert await events(manager, alert_id) == [("acknowledged", "dana", "email")]
                assert pd.incident("db").status == "acknowledged"
                twice = await client.post(local, data={"by": "erin"})
                assert "Already acknowledged" in twice.text
                assert len(await events(manager, alert_id)) == 1

                tampered = local.replace("/links/ack/", "/links/resolve/")
                refused = await client.post(tampered)
                assert refused.status_code == 403 and "not valid" in refused.text
                assert pd.incident("db").open
        finally:
            await manager.aclose()
