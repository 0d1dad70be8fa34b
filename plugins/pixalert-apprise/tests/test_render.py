"""Previews: ``render`` shows exactly what ``send`` hands each Apprise service."""

from __future__ import annotations

import json
from typing import Any

from pixalert import Alert

from .conftest import MakeChannel

ALERT = Alert(
    title="Disk full",
    message="95% used on db-1",
    priority="high",
    metadata={"host": "db-1"},
    source="monitoring",
)


async def test_preview_is_what_the_service_receives(sink: Any, make_channel: MakeChannel) -> None:
    url = sink.url_of("json")
    channel = make_channel({"urls": [url]})
    preview = channel.render(ALERT)
    assert sink.notifications == []  # rendering sends nothing
    await channel.send(ALERT)
    [received] = sink.notifications
    assert preview.channel_type == "apprise"
    assert preview.content["title"] == received.title
    assert preview.content["notify_type"] == json.loads(received.body)["type"]
    [service] = preview.content["services"]
    assert service["scheme"] == "json" and service["body"] == received.message
    assert url not in json.dumps(preview.to_dict())  # services by scheme, never by URL
    assert preview.sketch.startswith("[HIGH] Disk full\n\n95% used on db-1")
