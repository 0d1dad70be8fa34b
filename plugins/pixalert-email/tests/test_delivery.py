"""Alerts reach a real SMTP server: STARTTLS with AUTH, implicit TLS, plain relay; message shape."""

from __future__ import annotations

import email.utils
from datetime import datetime, timezone

import pytest
from pixalert import Alert, Priority
from pixalert_email.testing import SMTPTestServer

from .conftest import MakeChannel


async def test_starttls_with_auth_delivers(smtp_server: SMTPTestServer, make_channel: MakeChannel):
    channel = make_channel(smtp_server)
    receipt = await channel.send(Alert(title="Disk full", message="95% on db-1", priority="high"))

    assert smtp_server.lines() == ["to ops@example.com: [HIGH] Disk full"]
    [msg] = smtp_server.received
    assert msg.tls
    assert msg.authenticated_as == "pixalert"
    assert msg.mail_from == "alerts@example.com"
    assert receipt is not None
    assert receipt["message_id"] == msg.message["Message-ID"]
    verbs = [(c.endpoint, c.tls) for c in smtp_server.requests]
    assert verbs[:4] == [("EHLO", False), ("STARTTLS", False), ("EHLO", True), ("AUTH", True)]
    assert [(a.tls, a.success) for a in smtp_server.auth_attempts] == [(True, True)]


async def test_implicit_tls(make_channel: MakeChannel):
    async with SMTPTestServer(security="tls") as server:
        channel = make_channel(server)
        assert channel.config.security == "tls"
        await channel.send(Alert(title="Queue growing", priority="medium"))
        assert server.lines() == ["to ops@example.com: [MEDIUM] Queue growing"]
        assert all(c.tls for c in server.requests)
        assert "STARTTLS" not in [c.endpoint for c in server.requests]
        assert server.logins == 1


async def test_plain_relay_without_tls_or_auth(make_channel: MakeChannel):
    async with SMTPTestServer(security="none") as server:
        channel = make_channel(server)
        await channel.send(Alert(title="Backup done", priority="low"))
        assert server.lines() == ["to ops@example.com: [LOW] Backup done"]
        assert not server.received[0].tls
        assert server.auth_attempts == []


async def test_several_recipients_in_envelope_and_to_header(make_channel: MakeChannel):
    recipients = ["ops@example.com", "oncall@example.org", "OPS@example.com"]
    async with SMTPTestServer(recipients=recipients) as server:
        channel = make_channel(server)
        await channel.send(Alert(title="Disk full"))
        [msg] = server.received
        assert msg.rcpt_tos == ("ops@example.com", "oncall@example.org")  # duplicate dropped
        assert msg.message["To"] == "ops@example.com, oncall@example.org"


async def test_message_is_multipart_alternative(
    smtp_server: SMTPTestServer, make_channel: MakeChannel
):
    created = datetime(2025, 8, 27, 12, 30, tzinfo=timezone.utc)
    alert = Alert(
        title="High Memory Usage Detected",
        message="Memory usage has exceeded 85% threshold on server-01",
        priority=Priority.MEDIUM,
        metadata={"server": "server-01", "memory_usage": "87%", "cores": 8},
        source="monitoring",
        created_at=created,
    )
    await make_channel(smtp_server).send(alert)
    [received] = smtp_server.received
    msg = received.message

    assert msg.get_content_type() == "multipart/alternative"
    assert msg["Subject"] == "[MEDIUM] High Memory Usage Detected"
    assert msg["From"] == "alerts@example.com"
    assert msg["To"] == "ops@example.com"
    assert email.utils.parsedate_to_datetime(msg["Date"]) == created
    assert msg["Message-ID"] == f"<pixalert.{alert.id}@example.com>"
    assert msg["Auto-Submitted"] == "auto-generated"
    parts = [part.get_content_type() for part in msg.iter_parts()]
    assert parts == ["text/plain", "text/html"]

    text = msg.get_body(("plain",)).get_content()
    assert "Memory usage has exceeded 85% threshold on server-01" in text
    assert "server: server-01" in text and "cores: 8" in text
    html = msg.get_body(("html",)).get_content()
    assert '<table class="metadata"' in html
    assert '<th align="left" valign="top">memory_usage</th>' in html
    assert '<td align="left" valign="top">87%</td>' in html
    # Every line of the wire bytes is 7-bit and within SMTP's line limit.
    assert all(len(line) <= 998 for line in received.data.split(b"\r\n"))
    assert max(received.data) < 128


async def test_message_id_is_stable_across_retries(
    smtp_server: SMTPTestServer, make_channel: MakeChannel
):
    channel = make_channel(smtp_server)
    alert = Alert(title="Disk full")
    smtp_server.fail(451)
    with pytest.raises(Exception):  # noqa: B017 - the retryable failure, asserted elsewhere
        await channel.send(alert)
    await channel.send(alert)
    await channel.send(Alert(title="Disk full"))
    ids = [m.message["Message-ID"] for m in smtp_server.received]
    assert ids[0] == f"<pixalert.{alert.id}@example.com>"
    assert ids[1] != ids[0]


async def test_resolved_alert_says_so_and_threads_under_the_alert(
    smtp_server: SMTPTestServer, make_channel: MakeChannel
):
    channel = make_channel(smtp_server)
    alert = Alert(title="Disk full", priority="high")
    receipt = await channel.send(alert)
    await channel.send(alert.resolve("back to 40%"), previous=receipt)

    assert smtp_server.lines() == [
        "to ops@example.com: [HIGH] Disk full",
        "to ops@example.com: [RESOLVED] [HIGH] Disk full",
    ]
    first, second = (m.message for m in smtp_server.received)
    assert second["In-Reply-To"] == first["Message-ID"]
    assert second["References"] == first["Message-ID"]
    assert "RESOLVED" in second.get_body(("plain",)).get_content()


async def test_a_bad_previous_receipt_is_ignored(
    smtp_server: SMTPTestServer, make_channel: MakeChannel
):
    channel = make_channel(smtp_server)
    bogus = {"message_id": "<x@y>\r\nBcc: evil@example.com"}
    await channel.send(Alert(title="Disk full", status="resolved"), previous=bogus)
    [msg] = smtp_server.received
    assert msg.message["In-Reply-To"] is None
    assert b"evil" not in msg.data


async def test_some_recipients_refused_is_sent_with_a_note(make_channel: MakeChannel):
    async with SMTPTestServer(recipients=["ops@example.com", "gone@example.com"]) as server:
        channel = make_channel(server)
        server.fail(550, endpoint="RCPT")
        receipt = await channel.send(Alert(title="Disk full"))
        assert server.received[0].rcpt_tos == ("gone@example.com",)
        assert receipt is not None
        assert receipt["refused"] == "ops@example.com (550)"


async def test_non_ascii_title_and_message(smtp_server: SMTPTestServer, make_channel: MakeChannel):
    channel = make_channel(smtp_server)
    await channel.send(Alert(title="Überlast auf Knoten ☃", message="Température: 95 °C"))
    [msg] = smtp_server.received
    assert msg.subject == "[MEDIUM] Überlast auf Knoten ☃"
    assert "Température: 95 °C" in msg.message.get_body(("plain",)).get_content()
