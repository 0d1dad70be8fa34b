"""Previews: ``render`` builds exactly the message ``send`` delivers, and connects to nothing."""

from __future__ import annotations

import email
import email.policy
import re

from pixalert import Alert
from pixalert.channels import Group
from pixalert_email.testing import SMTPTestServer

from .conftest import MakeChannel


def _boundary_free(data: bytes) -> bytes:
    """``data`` with its MIME boundary (random per message) made fixed."""
    return re.sub(rb"={15}\d{19}==", b"BOUNDARY", data)


async def test_preview_is_the_message_the_server_receives(
    smtp_server: SMTPTestServer, make_channel: MakeChannel
) -> None:
    channel = make_channel(smtp_server)
    alert = Alert(
        title="Disk <full>", message="/ is 97% full", priority="high", metadata={"host": "db-1"}
    )
    preview = channel.render(alert)
    assert channel.connections == 0 and smtp_server.received == []
    await channel.send(alert)
    [received] = smtp_server.received
    assert preview.raw is not None and preview.media_type == "message/rfc822"
    assert _boundary_free(preview.raw) == _boundary_free(received.data)
    headers = dict(preview.content["headers"])
    assert headers["Subject"] == received.message["Subject"]
    assert headers["Message-ID"] == received.message["Message-ID"]
    parsed = email.message_from_bytes(preview.raw, policy=email.policy.default)
    text = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert text is not None and html is not None
    assert text.get_content().replace("\r\n", "\n").strip() == preview.content["text"].strip()
    assert "Disk &lt;full&gt;" in html.get_content()
    assert preview.content["envelope"]["to"] == list(channel.config.recipients)
    assert "Subject: [HIGH] Disk <full>" in preview.sketch


async def test_the_password_is_not_in_the_preview(
    smtp_server: SMTPTestServer, make_channel: MakeChannel
) -> None:
    channel = make_channel(smtp_server)
    assert channel.config.password is not None
    preview = channel.render(Alert(title="Disk full"))
    shown = repr(preview.to_dict())
    assert channel.config.password.get() not in shown


async def test_group_preview_is_what_send_group_delivers(
    smtp_server: SMTPTestServer, make_channel: MakeChannel
) -> None:
    channel = make_channel(smtp_server)
    alerts = (Alert(title="Disk full"), Alert(title="CPU hot"))
    group = Group(key="g", labels={"team": "db"}, alerts=alerts, new={a.id for a in alerts})
    preview = channel.render_group(group)
    await channel.send_group(group)
    [received] = smtp_server.received
    assert preview.raw is not None
    assert _boundary_free(preview.raw) == _boundary_free(received.data)
