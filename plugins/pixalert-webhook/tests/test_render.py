"""Previews: ``render`` builds exactly the request ``send`` POSTs, signature included."""

from __future__ import annotations

import json
from collections.abc import Callable

from pixalert import Alert
from pixalert.channels import Group
from pixalert.testing import FakeClock
from pixalert_webhook import WebhookChannel, verify
from pixalert_webhook.testing import WebhookReceiver

Build = Callable[..., WebhookChannel]


def disk_full() -> Alert:
    return Alert("Disk full", "95% used on db-1", "high", metadata={"host": "db-1"})


async def test_preview_is_the_signed_request_the_receiver_gets(
    receiver: WebhookReceiver, make_channel: Build, secret: str, clock: FakeClock
) -> None:
    url = receiver.url + "/t0ken-in-the-path?key=s3cr3t-value"
    channel = make_channel(urls=[url], secret=secret, headers={"Authorization": "Bearer abcd1234"})
    alert = disk_full()
    preview = channel.render(alert)
    assert receiver.received == []  # rendering sends nothing
    await channel.send(alert)
    [got] = receiver.received
    assert preview.raw == got.body
    assert preview.content["body"] == got.payload
    [target] = preview.content["targets"]
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature", "content-type"):
        assert target["headers"][name] == got.headers[name]
    assert verify(secret, target["headers"], preview.raw, now=clock.now()) == got.payload
    shown = json.dumps(preview.to_dict())
    assert "abcd1234" not in target["headers"]["Authorization"]
    for secret_text in ("t0ken-in-the-path", "s3cr3t-value", "abcd1234", secret):
        assert secret_text not in shown
    assert target["url"] == "http://" + url.split("://", 1)[1].split("/", 1)[0] + "/\u2026"


async def test_group_preview_is_what_send_group_posts(
    receiver: WebhookReceiver, make_channel: Build, secret: str
) -> None:
    channel = make_channel(urls=[receiver.url], secret=secret)
    alerts = (disk_full(), Alert("CPU hot"))
    group = Group(key="g", labels={"team": "db"}, alerts=alerts, new={a.id for a in alerts})
    preview = channel.render_group(group)
    await channel.send_group(group)
    [got] = receiver.received
    assert preview.raw == got.body
    assert preview.content["targets"][0]["headers"]["webhook-id"] == got.webhook_id
