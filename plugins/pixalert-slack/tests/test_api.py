"""Web API mode (bot token): chat.postMessage, receipts, chat.update on resolve, ok:false, 429."""

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


async def test_post_message_returns_a_receipt(
    slack: SlackServer, make_channel: MakeChannel
) -> None:
    channel = make_channel(slack.config("api"))
    receipt = await channel.send(disk_full())
    [message] = slack.received
    assert receipt == {"ts": message.ts, "channel": message.channel_id}
    assert message.channel_id.startswith("C")
    [request] = slack.requests
    assert request.endpoint == "chat.postMessage"
    assert request.headers["Authorization"] == f"Bearer {slack.token}"
    assert request.headers["Content-Type"] == "application/json; charset=utf-8"
    assert "warning" not in request.answer
    body = json.loads(request.body)
    assert body["channel"] == "#alerts"
    assert body["unfurl_links"] is False and body["unfurl_media"] is False
    assert body["text"] == "[HIGH] Disk full: / is 97% full"
    assert slack.lines() == ["#alerts: [HIGH] Disk full"]


async def test_resolve_updates_the_announcing_message(
    slack: SlackServer, make_channel: MakeChannel
) -> None:
    channel = make_channel(slack.config("api"))
    firing = disk_full()
    receipt = await channel.send(firing)
    assert receipt is not None
    again = await channel.send(firing.resolve("back to 60%"), previous=receipt)
    assert again == receipt
    [message] = slack.received  # no second message
    assert [r.endpoint for r in slack.requests] == ["chat.postMessage", "chat.update"]
    update = json.loads(slack.requests[1].body)
    assert (update["channel"], update["ts"]) == (receipt["channel"], receipt["ts"])
    assert message.header == "RESOLVED [HIGH] Disk full"
    assert message.colour == "#2EB67D"
    assert len(message.updates) == 1
    assert slack.lines() == [
        "#alerts: [HIGH] Disk full",
        "#alerts: updated to RESOLVED [HIGH] Disk full",
    ]


async def test_resolve_without_receipt_posts(slack: SlackServer, make_channel: MakeChannel) -> None:
    channel = make_channel(slack.config("api"))
    await channel.send(disk_full().resolve())
    assert [r.endpoint for r in slack.requests] == ["chat.postMessage"]


async def test_firing_alert_with_previous_posts_anew(
    slack: SlackServer, make_channel: MakeChannel
) -> None:
    channel = make_channel(slack.config("api"))
    receipt = await channel.send(disk_full())
    await channel.send(disk_full(), previous=receipt)
    assert [r.endpoint for r in slack.requests] == ["chat.postMessage", "chat.postMessage"]
    assert len(slack.received) == 2


async def test_update_of_a_vanished_message_posts_instead(
    slack: SlackServer, make_channel: MakeChannel
) -> None:
    channel = make_channel(slack.config("api"))
    receipt = await channel.send(
        disk_full().resolve(), previous={"ts": "1.000001", "channel": "C000000001"}
    )
    assert [r.endpoint for r in slack.requests] == ["chat.update", "chat.postMessage"]
    assert slack.requests[0].answer["error"] == "message_not_found"
    assert receipt == {"ts": slack.received[0].ts, "channel": "C000000001"}


async def test_update_rate_limited_is_retried_not_reposted(
    slack: SlackServer, make_channel: MakeChannel
) -> None:
    channel = make_channel(slack.config("api"))
    receipt = await channel.send(disk_full())
    slack.fail(429, retry_after=2, endpoint="chat.update")
    with pytest.raises(DeliveryError) as info:
        await channel.send(disk_full().resolve(), previous=receipt)
    assert (info.value.retryable, info.value.retry_after) == (True, 2.0)
    assert len(slack.received) == 1


@pytest.mark.parametrize(
    "error",
    ["not_in_channel", "is_archived", "missing_scope", "account_inactive", "invalid_blocks"],
)
async def test_ok_false_is_a_permanent_failure(
    slack: SlackServer, make_channel: MakeChannel, error: str
) -> None:
    slack.api_error(error)
    channel = make_channel(slack.config("api"))
    with pytest.raises(DeliveryError) as info:
        await channel.send(disk_full())
    assert str(info.value) == f"slack chat.postMessage: {error}"
    assert not info.value.retryable


async def test_unknown_channel_is_permanent(slack: SlackServer, make_channel: MakeChannel) -> None:
    channel = make_channel(slack.config("api", channel="#nowhere"))
    with pytest.raises(DeliveryError) as info:
        await channel.send(disk_full())
    assert str(info.value) == "slack chat.postMessage: channel_not_found"
    assert not info.value.retryable


async def test_bad_token_is_permanent(slack: SlackServer, make_channel: MakeChannel) -> None:
    channel = make_channel(slack.config("api", token="xoxb-not-the-right-one"))
    with pytest.raises(DeliveryError) as info:
        await channel.send(disk_full())
    assert str(info.value) == "slack chat.postMessage: invalid_auth"
    assert not info.value.retryable


@pytest.mark.parametrize("error", ["ratelimited", "rate_limited", "internal_error", "fatal_error"])
async def test_ok_false_transient_errors_are_retryable(
    slack: SlackServer, make_channel: MakeChannel, error: str
) -> None:
    slack.api_error(error)
    channel = make_channel(slack.config("api"))
    with pytest.raises(DeliveryError) as info:
        await channel.send(disk_full())
    assert info.value.retryable
    assert error in str(info.value)


@pytest.mark.parametrize("spelling", ["ratelimited", "rate_limited"])
async def test_429_honours_retry_after(
    slack: SlackServer, make_channel: MakeChannel, spelling: str
) -> None:
    slack.fail(429, retry_after=30, body={"ok": False, "error": spelling, "retry_after": 30})
    channel = make_channel(slack.config("api"))
    with pytest.raises(DeliveryError) as info:
        await channel.send(disk_full())
    assert info.value.retryable
    assert info.value.retry_after == 30.0
    assert str(info.value) == f"slack chat.postMessage: HTTP 429 {spelling}"
    assert await channel.send(disk_full()) is not None


@pytest.mark.parametrize(("status", "retryable"), [(500, True), (503, True), (404, False)])
async def test_http_errors(
    slack: SlackServer, make_channel: MakeChannel, status: int, retryable: bool
) -> None:
    slack.fail(status, body="<html>nope</html>")
    channel = make_channel(slack.config("api"))
    with pytest.raises(DeliveryError) as info:
        await channel.send(disk_full())
    assert info.value.retryable is retryable
    assert str(info.value) == f"slack chat.postMessage: HTTP {status}"


async def test_200_without_json_is_retryable(slack: SlackServer, make_channel: MakeChannel) -> None:
    slack.fail(200, body="<html>proxy</html>")
    channel = make_channel(slack.config("api"))
    with pytest.raises(DeliveryError, match="without a Slack API answer") as info:
        await channel.send(disk_full())
    assert info.value.retryable


async def test_invalid_blocks_detail_is_reported(
    slack: SlackServer, make_channel: MakeChannel
) -> None:
    # The server explains invalid_blocks as Slack does, in response_metadata.
    slack.fail(
        200,
        body={
            "ok": False,
            "error": "invalid_blocks",
            "response_metadata": {"messages": ["[ERROR] must be less than 151 characters"]},
        },
    )
    channel = make_channel(slack.config("api"))
    with pytest.raises(DeliveryError) as info:
        await channel.send(disk_full())
    assert str(info.value) == (
        "slack chat.postMessage: invalid_blocks ([ERROR] must be less than 151 characters)"
    )


async def test_mention_on_critical(slack: SlackServer, make_channel: MakeChannel) -> None:
    channel = make_channel(slack.config("api", mention_on_critical="S0ONCALL"))
    await channel.send(disk_full(priority="critical"))
    [message] = slack.received
    assert message.text.startswith("<!subteam^S0ONCALL> ")
    assert message.payload["blocks"][1]["text"]["text"].startswith("<!subteam^S0ONCALL> ")


async def test_channel_given_by_id(make_channel: MakeChannel) -> None:
    async with SlackServer(channels={"ops": "C0OPS"}) as server:
        channel = make_channel(server.config("api", channel="C0OPS"))
        assert await channel.send(disk_full()) == {"ts": server.received[0].ts, "channel": "C0OPS"}
