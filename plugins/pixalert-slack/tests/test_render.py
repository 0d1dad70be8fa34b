"""Previews: ``render`` builds exactly what ``send`` posts, and sends nothing."""

from __future__ import annotations

import json

from pixalert import Alert
from pixalert.channels import Group, Preview
from pixalert_slack.testing import SlackServer

from .conftest import MakeChannel


def disk_full(**kwargs: object) -> Alert:
    data: dict[str, object] = {"title": "Disk full", "message": "/ is 97% full", "priority": "high"}
    data.update(kwargs)
    return Alert(**data)  # type: ignore[arg-type]


async def test_webhook_preview_is_what_the_webhook_receives(
    slack: SlackServer, make_channel: MakeChannel
) -> None:
    channel = make_channel(slack.config("webhook"))
    alert = disk_full(metadata={"host": "db-1"})
    preview = channel.render(alert)
    assert isinstance(preview, Preview) and preview.channel_type == "slack"
    assert slack.requests == []  # rendering sends nothing
    await channel.send(alert)
    [request] = slack.requests
    assert preview.content["body"] == json.loads(request.body)
    assert preview.content["headers"]["Content-Type"] == request.headers["Content-Type"]
    # The webhook's path is its secret: only the scheme and host are shown.
    url = slack.webhook_url
    assert preview.content["url"].endswith("/\u2026")
    assert url.split("://", 1)[1].split("/", 1)[1] not in json.dumps(preview.to_dict())
    assert "[HIGH] Disk full" in preview.sketch and "db-1" in preview.sketch


async def test_api_preview_is_the_post_message_body(
    slack: SlackServer, make_channel: MakeChannel
) -> None:
    channel = make_channel(slack.config("api"))
    alert = disk_full()
    preview = channel.render(alert)
    await channel.send(alert)
    [request] = slack.requests
    assert preview.content["url"].endswith("/chat.postMessage")
    assert preview.content["body"] == json.loads(request.body)
    assert preview.content["headers"]["Authorization"].startswith("Bearer ")


async def test_group_preview_is_what_send_group_posts(
    slack: SlackServer, make_channel: MakeChannel
) -> None:
    channel = make_channel(slack.config("webhook"))
    alerts = (disk_full(), disk_full(title="CPU hot"))
    group = Group(key="g", labels={"team": "db"}, alerts=alerts, new={a.id for a in alerts})
    preview = channel.render_group(group)
    await channel.send_group(group)
    [request] = slack.requests
    assert preview.content["body"] == json.loads(request.body)
    assert "CPU hot" in preview.sketch
