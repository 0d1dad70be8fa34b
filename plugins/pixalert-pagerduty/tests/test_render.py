"""Previews: ``render`` builds exactly the event ``send`` posts, and posts nothing."""

from __future__ import annotations

import json

from pixalert.channels import Group


async def test_preview_is_the_event_the_server_receives(pd, channel, make_alert):
    alert = make_alert(metadata={"component": "postgres"}, key="k1")
    preview = channel.render(alert)
    assert pd.received == []  # rendering posts nothing
    await channel.send(alert)
    event = pd.received[-1]
    body = dict(preview.content["body"])
    assert body.pop("routing_key") != pd.routing_key  # masked
    assert body == {k: v for k, v in event.items() if k != "routing_key"}
    assert pd.routing_key not in json.dumps(preview.to_dict())
    assert preview.content["url"] == channel.config.url
    assert "trigger" in preview.sketch and "Disk full" in preview.sketch


async def test_resolve_preview(pd, channel, make_alert):
    alert = make_alert(key="k2").resolve()
    preview = channel.render(alert)
    assert preview.content["body"]["event_action"] == "resolve"
    assert preview.content["body"]["dedup_key"] == "k2"


async def test_group_preview_is_what_send_group_posts(pd, channel, make_alert):
    alerts = (make_alert(), make_alert(title="CPU hot"))
    group = Group(key="g", labels={"team": "db"}, alerts=alerts, new={a.id for a in alerts})
    preview = channel.render_group(group)
    await channel.send_group(group)
    body = dict(preview.content["body"])
    body.pop("routing_key")
    assert body == {k: v for k, v in pd.received[-1].items() if k != "routing_key"}
