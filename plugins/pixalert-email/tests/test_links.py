"""Acknowledge and Resolve links in the email: in the text and the HTML part, signed
and expiring, only when the receiver's public URL and a link secret are configured.
Through a real aiosmtpd server on 127.0.0.1."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pixalert import Alert
from pixalert.channels import ActionLinks
from pixalert.testing import FakeClock
from pixalert_email.testing import SMTPTestServer

SECRET = "email-link-secret-0123456789"


def links(secret: str | None = SECRET, clock: FakeClock | None = None) -> ActionLinks:
    return ActionLinks(
        "https://alerts.example.com", secret=secret, link_ttl=7200, clock=clock or FakeClock()
    )


def parts(received: Any) -> tuple[str, str]:
    text = html = ""
    for part in received.message.walk():
        if part.get_content_type() == "text/plain":
            text = part.get_content().replace("\r\n", "\n")
        elif part.get_content_type() == "text/html":
            html = part.get_content()
    return text, html


def check(maker: ActionLinks, url: str, action: str, alert_id: str) -> None:
    split = urlsplit(url)
    assert split.path == f"/links/{action}/{alert_id}"
    query = parse_qs(split.query)
    maker.verify(action, alert_id, query["expires"][0], query["sig"][0])


async def test_the_email_carries_signed_links(
    smtp_server: SMTPTestServer, make_channel: Any
) -> None:
    clock = FakeClock()
    maker = links(clock=clock)
    channel = make_channel(smtp_server)
    channel.use_actions(maker)
    alert = Alert("Disk full", "/ is 97% full", priority="high")
    await channel.send(alert)
    (received,) = smtp_server.received
    text, html = parts(received)
    ack = re.search(r"^Acknowledge: (\S+)$", text, re.MULTILINE)
    resolve = re.search(r"^Resolve: +(\S+)$", text, re.MULTILINE)
    assert ack and resolve
    check(maker, ack.group(1), "ack", alert.id)
    check(maker, resolve.group(1), "resolve", alert.id)
    assert "These links ask you to confirm" in text
    # The HTML part has the same links, escaped.
    hrefs = re.findall(r'href="([^"]+)"', html)
    assert [h.replace("&amp;", "&") for h in hrefs] == [ack.group(1), resolve.group(1)]
    assert ">Acknowledge</a>" in html and ">Resolve</a>" in html
    assert SECRET not in received.data.decode("ascii", "replace")


async def test_no_links_in_a_resolve_or_without_a_secret(
    smtp_server: SMTPTestServer, make_channel: Any
) -> None:
    signed = make_channel(smtp_server)
    signed.use_actions(links())
    unsigned = make_channel(smtp_server)
    unsigned.use_actions(links(secret=None))
    plain = make_channel(smtp_server)
    alert = Alert("Disk full", priority="high")
    await signed.send(alert.resolve())
    await unsigned.send(alert)
    await plain.send(alert)
    for received in smtp_server.received:
        text, html = parts(received)
        assert "/links/" not in text and "/links/" not in html
    assert len(smtp_server.received) == 3
