"""Incoming webhook mode against the local Slack: success, escaping, limits, and error classes."""

from __future__ import annotations

import json

import pytest
from pixalert import Alert, DeliveryError
from pixalert_slack.testing import SlackServer

from .conftest import MakeChannel


def disk_full(**kwargs: object) -> Alert:
    data: dict[str, object] = {"title": "Disk full", "message": "/ is 97% full", "priority": "high"}
    data.update(kwargs)
    return Alert(**data)  # type: ignore[arg-type]


async def test_posts_block_kit_message(slack: SlackServer, make_channel: MakeChannel) -> None:
    channel = make_channel(slack.config("webhook"))
    receipt = await channel.send(disk_full(metadata={"host": "db-1"}))
    assert receipt is None  # a webhook answers no message id
    [request] = slack.requests
    assert request.status == 200 and request.answer == "ok"
    assert request.headers["Content-Type"] == "application/json; charset=utf-8"
    assert "Authorization" not in request.headers
    body = json.loads(request.body)
    assert set(body) == {"text", "blocks", "attachments"}  # no channel override on webhooks
    [message] = slack.received
    assert message.via == "webhook"
    assert message.header == "[HIGH] Disk full"
    assert message.colour == "#E8710A"
    assert slack.lines() == ["#alerts: [HIGH] Disk full"]


async def test_user_text_arrives_escaped(slack: SlackServer, make_channel: MakeChannel) -> None:
    channel = make_channel(slack.config("webhook"))
    await channel.send(disk_full(message="ping <!channel> and <@U0001> & friends"))
    [message] = slack.received
    assert "ping &lt;!channel&gt; and &lt;@U0001&gt; &amp; friends" in message.texts()
    assert not any("<!channel>" in text for text in message.texts())


async def test_oversized_alert_is_truncated_not_rejected(
    slack: SlackServer, make_channel: MakeChannel
) -> None:
    channel = make_channel(slack.config("webhook"))
    await channel.send(
        disk_full(
            title="x" * 1000,
            message="<" * 50_000,
            metadata={f"k{i}": "v" * 5000 for i in range(60)},
        )
    )
    [request] = slack.requests
    assert (request.status, request.answer) == (200, "ok")


async def test_mention_on_critical(slack: SlackServer, make_channel: MakeChannel) -> None:
    channel = make_channel(slack.config("webhook", mention_on_critical="@here"))
    await channel.send(disk_full(priority="critical"))
    await channel.send(disk_full(priority="high"))
    critical, high = slack.received
    assert critical.text.startswith("<!here> ")
    assert any(t.startswith("<!here> ") for t in critical.texts())
    assert not any("<!here>" in t for t in high.texts())


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, "invalid_payload"),
        (400, "user_not_found"),
        (403, "action_prohibited"),
        (404, "channel_not_found"),
        (410, "channel_is_archived"),
    ],
)
async def test_4xx_is_permanent_with_slacks_error(
    slack: SlackServer, make_channel: MakeChannel, status: int, body: str
) -> None:
    slack.fail(status, body=body)
    channel = make_channel(slack.config("webhook"))
    with pytest.raises(DeliveryError) as info:
        await channel.send(disk_full())
    assert not info.value.retryable
    assert str(info.value) == f"slack webhook: HTTP {status} {body}"


async def test_unknown_webhook_path_is_no_service(
    slack: SlackServer, make_channel: MakeChannel
) -> None:
    channel = make_channel({"webhook_url": slack.url + "/services/T1/B1/wrongsecret"})
    with pytest.raises(DeliveryError) as info:
        await channel.send(disk_full())
    assert str(info.value) == "slack webhook: HTTP 404 no_service"
    assert not info.value.retryable


@pytest.mark.parametrize("spelling", ["ratelimited", "rate_limited"])
async def test_429_is_retryable_with_retry_after(
    slack: SlackServer, make_channel: MakeChannel, spelling: str
) -> None:
    slack.fail(429, retry_after=7, body={"ok": False, "error": spelling, "retry_after": 7})
    channel = make_channel(slack.config("webhook"))
    with pytest.raises(DeliveryError) as info:
        await channel.send(disk_full())
    assert info.value.retryable
    assert info.value.retry_after == 7.0
    assert spelling in str(info.value)
    # The next attempt (the core's retry) goes through.
    await channel.send(disk_full())
    assert len(slack.received) == 1


async def test_429_retry_after_from_the_body(slack: SlackServer, make_channel: MakeChannel) -> None:
    slack.fail(429, body=json.dumps({"retry_after": 3, "ok": False, "error": "rate_limited"}))
    channel = make_channel(slack.config("webhook"))
    with pytest.raises(DeliveryError) as info:
        await channel.send(disk_full())
    assert (info.value.retryable, info.value.retry_after) == (True, 3.0)


@pytest.mark.parametrize(("status", "body"), [(500, "rollup_error"), (502, ""), (503, "<html>")])
async def test_5xx_is_retryable(
    slack: SlackServer, make_channel: MakeChannel, status: int, body: str
) -> None:
    slack.fail(status, body=body)
    channel = make_channel(slack.config("webhook"))
    with pytest.raises(DeliveryError) as info:
        await channel.send(disk_full())
    assert info.value.retryable
    assert str(info.value).startswith(f"slack webhook: HTTP {status}")
    assert "<html>" not in str(info.value)  # only Slack's error words are kept
    if body == "rollup_error":
        assert str(info.value).endswith("rollup_error")


async def test_200_without_ok_is_a_failure(slack: SlackServer, make_channel: MakeChannel) -> None:
    slack.fail(200, body="<html>a login page</html>")
    channel = make_channel(slack.config("webhook"))
    with pytest.raises(DeliveryError, match="without 'ok'") as info:
        await channel.send(disk_full())
    assert not info.value.retryable


async def test_redirect_is_not_followed(slack: SlackServer, make_channel: MakeChannel) -> None:
    slack.fail(302, body="", headers={"Location": slack.webhook_url})
    channel = make_channel(slack.config("webhook"))
    with pytest.raises(DeliveryError, match="redirect not followed") as info:
        await channel.send(disk_full())
    assert not info.value.retryable
    assert len(slack.requests) == 1


async def test_timeout_is_retryable(slack: SlackServer, make_channel: MakeChannel) -> None:
    slack.hang()
    channel = make_channel(slack.config("webhook", timeout=0.2))
    with pytest.raises(DeliveryError, match="timed out") as info:
        await channel.send(disk_full())
    assert info.value.retryable


async def test_connection_refused_is_retryable(
    slack: SlackServer, make_channel: MakeChannel
) -> None:
    channel = make_channel({"webhook_url": slack.refused_url(slack.webhook_url)})
    with pytest.raises(DeliveryError) as info:
        await channel.send(disk_full())
    assert info.value.retryable
    assert str(info.value).startswith("slack webhook: ")


async def test_closed_channel_refuses(slack: SlackServer, make_channel: MakeChannel) -> None:
    channel = make_channel(slack.config("webhook"))
    await channel.aclose()
    await channel.aclose()  # twice is fine
    with pytest.raises(DeliveryError, match="closed") as info:
        await channel.send(disk_full())
    assert not info.value.retryable
    assert slack.requests == []


async def test_one_pooled_connection_for_a_burst(
    slack: SlackServer, make_channel: MakeChannel
) -> None:
    channel = make_channel(slack.config("webhook"))
    for _ in range(3):
        await channel.send(disk_full())
    assert len(slack.received) == 3
    assert len({r.connection for r in slack.requests}) == 1  # keep-alive: one client port
