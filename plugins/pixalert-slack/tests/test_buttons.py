"""Acknowledge and Resolve buttons: shown only when set up, clicks verified as Slack
signs them (forged, replayed, unsigned and altered ones refused), messages updated in
place by chat.update or the click's response_url. Against the local Slack."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

import pytest
from pixalert import Alert
from pixalert.channels import ActionLinks, AlertEvent, InteractionRejected
from pixalert.testing import FakeClock
from pixalert_slack.testing import SlackServer, check_message


def actions() -> ActionLinks:
    return ActionLinks("https://alerts.example.com", clock=FakeClock())


def acked(by: str = "alice") -> AlertEvent:
    return AlertEvent(
        "x", "acknowledged", datetime(2026, 5, 4, 3, 2, 1, tzinfo=timezone.utc), by, "slack"
    )


async def test_buttons_need_the_signing_secret_and_the_public_url(
    slack: SlackServer, make_channel: Any
) -> None:
    plain = make_channel(slack.config("api"))
    secret_only = make_channel(slack.config("api", interactive=True))
    url_only = make_channel(slack.config("api"))
    url_only.use_actions(actions())
    both = make_channel(slack.config("api", interactive=True))
    both.use_actions(actions())
    alert = Alert("Disk full", "/ is 97% full", priority="high")
    for channel in (plain, secret_only, url_only, both):
        await channel.send(alert)
    assert [len(m.buttons) for m in slack.received] == [0, 0, 0, 2]
    ack, resolve = slack.received[-1].buttons
    assert (ack["action_id"], ack["text"]["text"], ack["value"]) == (
        "pixalert_ack",
        "Acknowledge",
        alert.id,
    )
    assert (resolve["action_id"], resolve["value"]) == ("pixalert_resolve", alert.id)
    assert ack["block_id"].startswith("pixalert_actions:")
    assert slack.rejections == []
    # A resolve has no buttons.
    await both.send(alert.resolve())
    assert slack.received[-1].buttons == []


async def test_buttons_on_webhook_messages_too(slack: SlackServer, make_channel: Any) -> None:
    channel = make_channel(slack.config("webhook", interactive=True))
    channel.use_actions(actions())
    await channel.send(Alert("Disk full", priority="critical"))
    assert [b["action_id"] for b in slack.received[0].buttons] == [
        "pixalert_ack",
        "pixalert_resolve",
    ]


def test_the_server_checks_actions_blocks() -> None:
    from pixalert_slack.testing import InvalidMessage

    button = {"type": "button", "text": {"type": "plain_text", "text": "x" * 76}, "action_id": "a"}
    twice = {"type": "button", "text": {"type": "plain_text", "text": "ok"}, "action_id": "a"}
    for elements, detail in (
        ([button], "must be less than 76 characters"),
        ([twice, twice], "used twice"),
        ([], "must have 1 to 25 items"),
    ):
        with pytest.raises(InvalidMessage) as caught:
            check_message({"text": "t", "blocks": [{"type": "actions", "elements": elements}]})
        assert caught.value.error == "invalid_blocks" and detail in caught.value.detail


async def interactive(slack: SlackServer, make_channel: Any, mode: str = "api") -> Any:
    channel = make_channel(slack.config(mode, interactive=True))
    channel.use_actions(actions())
    return channel


async def test_a_signed_click_is_an_interaction(slack: SlackServer, make_channel: Any) -> None:
    channel = await interactive(slack, make_channel)
    alert = Alert("Disk full", priority="high")
    await channel.send(alert)
    body, _ = slack.click_body(slack.received[0], "ack", user="alice")
    headers = slack.sign(body, int(time.time()))
    got = await channel.interaction(headers, body)
    assert got is not None and (got.action, got.alert_id, got.by) == ("ack", alert.id, "alice")
    body, _ = slack.click_body(slack.received[0], "resolve", user="bob")
    got = await channel.interaction(slack.sign(body, int(time.time())), body)
    assert got is not None and (got.action, got.by) == ("resolve", "bob")


@pytest.mark.parametrize(
    "how",
    [
        "unsigned",
        "no timestamp",
        "wrong secret",
        "altered body",
        "replayed",
        "from the future",
        "bad timestamp",
        "signature of another scheme",
    ],
)
async def test_forged_replayed_or_unsigned_clicks_are_refused(
    slack: SlackServer, make_channel: Any, how: str
) -> None:
    channel = await interactive(slack, make_channel)
    await channel.send(Alert("Disk full", priority="high"))
    body, _ = slack.click_body(slack.received[0], "ack")
    now = int(time.time())
    headers = slack.sign(body, now)
    if how == "unsigned":
        headers = {}
    elif how == "no timestamp":
        del headers["X-Slack-Request-Timestamp"]
    elif how == "wrong secret":
        headers = slack.sign(body, now, secret="not-the-signing-secret")
    elif how == "altered body":
        body = body.replace(b"alice", b"mallory")
    elif how == "replayed":
        headers = slack.sign(body, now - 301)
    elif how == "from the future":
        headers = slack.sign(body, now + 301)
    elif how == "bad timestamp":
        headers["X-Slack-Request-Timestamp"] = "yesterday"
    else:
        headers["X-Slack-Signature"] = headers["X-Slack-Signature"].replace("v0=", "v1=")
    with pytest.raises(InteractionRejected) as caught:
        await channel.interaction(headers, body)
    assert caught.value.status == 401
    assert slack.signing_secret not in str(caught.value)


async def test_a_channel_without_a_signing_secret_takes_no_click(
    slack: SlackServer, make_channel: Any
) -> None:
    channel = make_channel(slack.config("api"))
    with pytest.raises(InteractionRejected) as caught:
        await channel.interaction(
            slack.sign(b"payload=%7B%7D", int(time.time())), b"payload=%7B%7D"
        )
    assert caught.value.status == 401 and "no signing_secret" in str(caught.value)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"not a form", 400),
        (b"payload=not-json", 400),
        (b"payload=%5B1%5D", 400),  # a list
        (b'payload={"type":"view_submission"}', None),
        (b'payload={"type":"block_actions","actions":[{"action_id":"other"}]}', None),
        (
            b'payload={"type":"block_actions",'
            b'"actions":[{"action_id":"pixalert_ack","value":"a b"}]}',
            400,
        ),
    ],
)
async def test_signed_bodies_that_are_not_our_clicks(
    slack: SlackServer, make_channel: Any, body: bytes, expected: int | None
) -> None:
    channel = await interactive(slack, make_channel)
    headers = slack.sign(body, int(time.time()))
    if expected is None:
        assert await channel.interaction(headers, body) is None
    else:
        with pytest.raises(InteractionRejected) as caught:
            await channel.interaction(headers, body)
        assert caught.value.status == expected


async def test_acknowledge_updates_the_message_in_place(
    slack: SlackServer, make_channel: Any
) -> None:
    channel = await interactive(slack, make_channel)
    alert = Alert("Disk full", "/ is 97% full", priority="high")
    receipt = await channel.send(alert)
    assert await channel.acknowledge(alert, event=acked("alice <!channel>"), previous=receipt)
    (message,) = slack.received
    assert len(message.updates) == 1
    assert [b["action_id"] for b in message.buttons] == ["pixalert_resolve"]
    texts = " ".join(message.texts())
    assert ":eyes: *Acknowledged* by alice &lt;!channel&gt; via slack" in texts
    assert "(acknowledged by alice" in message.text
    assert slack.lines()[-1] == "#alerts: updated to [HIGH] Disk full"


async def test_a_webhook_message_is_updated_through_the_clicks_response_url(
    slack: SlackServer, make_channel: Any
) -> None:
    channel = await interactive(slack, make_channel, "webhook")
    alert = Alert("Disk full", priority="high", key="disk")
    await channel.send(alert)
    # Nobody clicked: a webhook message cannot be updated.
    assert await channel.acknowledge(alert, event=acked()) is False
    message = slack.received[0]
    body, click = slack.click_body(message, "ack")
    await channel.interaction(slack.sign(body, int(time.time())), body)
    assert await channel.acknowledge(alert, event=acked()) is True
    assert click.uses == 1 and [b["action_id"] for b in message.buttons] == ["pixalert_resolve"]
    # The resolve replaces it too, instead of a new post.
    await channel.send(alert.resolve())
    assert len(slack.received) == 1 and click.uses == 2
    assert message.summary.startswith("RESOLVED") and message.buttons == []


async def test_a_response_url_outside_slack_is_not_followed(
    slack: SlackServer, make_channel: Any
) -> None:
    channel = await interactive(slack, make_channel, "webhook")
    alert = Alert("Disk full", priority="high")
    await channel.send(alert)
    body, _ = slack.click_body(slack.received[0], "ack")
    forged = body.replace(
        slack.url.encode().replace(b":", b"%3A").replace(b"/", b"%2F"),
        b"https%3A%2F%2Fevil.example.com",
    )
    assert forged != body
    assert await channel.interaction(slack.sign(forged, int(time.time())), forged) is not None
    assert await channel.acknowledge(alert, event=acked()) is False
