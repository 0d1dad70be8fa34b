"""The public test server: DemoSink, sync and async use, its records and knobs, the manager path."""

from __future__ import annotations

import asyncio

import aiosmtplib
import pixalert_email
import pytest
from pixalert import Alert
from pixalert.channels import DemoSink
from pixalert.testing import make_manager
from pixalert_email import email_channel_spec
from pixalert_email.testing import SMTPTestServer

from .conftest import build_config


async def test_it_is_the_email_demo_sink():
    [sink] = pixalert_email.pixalert_demo_sinks()
    assert isinstance(sink, DemoSink)
    assert sink.channel_type == "email"
    section = await sink.start()
    try:
        config = build_config(dict(section))
        assert config.verify_certs and config.ca_file  # verified against the sink's own CA
        channel = email_channel_spec().factory("email", config)
        try:
            await channel.send(Alert(title="Disk full", priority="high"))
            await channel.send(Alert(title="Disk full", priority="high").resolve())
        finally:
            await channel.aclose()
        assert sink.lines() == [
            "to ops@example.com: [HIGH] Disk full",
            "to ops@example.com: [RESOLVED] [HIGH] Disk full",
        ]
    finally:
        await sink.stop()


def test_sync_use_with_a_plain_with_block():
    with SMTPTestServer(recipients=["a@example.com", "b@example.com"]) as server:
        channel = email_channel_spec().factory("email", build_config(server.config()))

        async def send() -> None:
            await channel.send(Alert(title="from sync code"))
            await channel.aclose()

        asyncio.run(send())
        server.wait_sync(lambda s: s.open_connections == 0)
        assert server.lines() == ["to a@example.com, b@example.com: [MEDIUM] from sync code"]
    assert server.ca_file is not None
    server.stop_sync()  # a second stop is harmless


async def test_records_raw_bytes_and_parsed_message(smtp_server: SMTPTestServer):
    channel = email_channel_spec().factory("email", build_config(smtp_server.config()))
    try:
        await channel.send(Alert(title="Disk full"))
    finally:
        await channel.aclose()
    [msg] = await smtp_server.wait_for(1)
    commands = [(r.endpoint, r.status, r.outcome) for r in smtp_server.requests]
    assert commands[:6] == [
        ("EHLO", 250, "answered"),
        ("STARTTLS", 220, "answered"),
        ("EHLO", 250, "answered"),
        ("AUTH", 235, "answered"),
        ("MAIL", 250, "answered"),
        ("RCPT", 250, "answered"),
    ]
    assert commands[6] == ("DATA", 250, "accepted")
    assert smtp_server.requests_to("DATA")[0].body == msg.data
    assert smtp_server.requests_to("AUTH")[0].body == b""  # credentials are not kept
    assert msg.data.startswith(b"Subject: [MEDIUM] Disk full\r\n")
    assert msg.message["Subject"] == msg.subject == "[MEDIUM] Disk full"
    assert msg.tls and msg.authenticated_as == "pixalert"
    assert smtp_server.auth_attempts[0].mechanism == "PLAIN"
    assert smtp_server.auth_attempts[0].username == "pixalert"


async def test_login_mechanism_and_a_wrong_password(smtp_server: SMTPTestServer):
    smtp = aiosmtplib.SMTP(
        hostname=smtp_server.host,
        port=smtp_server.port,
        start_tls=True,
        tls_context=smtp_server.client_tls_context(),
    )
    await smtp.connect()
    try:
        await smtp.ehlo()
        with pytest.raises(aiosmtplib.SMTPAuthenticationError) as info:
            await smtp.auth_login("pixalert", "nope")
        assert info.value.code == 535
        assert smtp_server.password is not None
        await smtp.auth_login("pixalert", smtp_server.password)
    finally:
        await smtp.quit()
    assert [(a.mechanism, a.success, a.tls) for a in smtp_server.auth_attempts] == [
        ("LOGIN", False, True),
        ("LOGIN", True, True),
    ]
    [refused] = smtp_server.rejections
    assert (refused.endpoint, refused.status) == ("AUTH", 535)
    assert refused.reason == "535 5.7.8 Authentication credentials invalid"


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="security"):
        SMTPTestServer(security="ssl")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="both or neither"):
        SMTPTestServer(username="u", password=None)
    server = SMTPTestServer()
    with pytest.raises(ValueError, match="endpoint: expected one of MAIL, RCPT, DATA"):
        server.fail(451, endpoint="HELO")
    with pytest.raises(ValueError, match="SMTP reply code"):
        server.fail(99)
    with pytest.raises(ValueError, match="retry_after"):
        server.fail(451, retry_after=30)
    with pytest.raises(RuntimeError, match="not started"):
        server.config()


async def test_plain_server_config_has_no_credentials():
    async with SMTPTestServer(security="none") as server:
        section = server.config()
        assert section["security"] == "none"
        assert "password" not in section and "ca_file" not in section
        assert server.ca_file is None


# ---------------------------------------------------------------------------
# Through the core's manager: routing by name, retries, permanent failures, resolve threading
# ---------------------------------------------------------------------------


async def test_manager_sends_retries_and_threads(smtp_server: SMTPTestServer):
    manager = make_manager(
        plugins=[pixalert_email], config={"channels": {"email": smtp_server.config()}}
    )
    async with manager:
        results = await manager.send_alert(
            "Disk full", "95% on db-1", "high", channels=["email"], metadata={"host": "db-1"}
        )
        assert results["email"].status.value == "sent"

        smtp_server.fail(451)
        results = await manager.send_alert("Queue growing", "x", "medium", channels=["email"])
        assert results["email"].status.value == "sent"
        assert results["email"].attempts == 2

        smtp_server.fail(554, body="5.7.1 Spam")
        results = await manager.send_alert("Rejected", "x", "medium", channels=["email"])
        assert results["email"].status.value == "failed"
        assert results["email"].attempts == 1
        assert "554" in (results["email"].error or "")

        results = await manager.send_alert(
            "Disk full", "back to 40%", "high", channels=["email"], status="resolved"
        )
        assert results["email"].status.value == "sent"

    assert smtp_server.lines() == [
        "to ops@example.com: [HIGH] Disk full",
        "to ops@example.com: [MEDIUM] Queue growing",
        "to ops@example.com: [RESOLVED] [HIGH] Disk full",
    ]
    first, resolved = smtp_server.received[0].message, smtp_server.received[2].message
    assert resolved["In-Reply-To"] == first["Message-ID"]
    assert smtp_server.logins == smtp_server.connections  # one login per session
    await smtp_server.wait_until(lambda s: s.open_connections == 0)  # aclose said QUIT


async def test_manager_history_holds_no_password(smtp_server: SMTPTestServer):
    wrong = "definitely-wrong-password-42"
    config = smtp_server.config(password=wrong)
    async with make_manager(plugins=[pixalert_email], config={"channels": {"email": config}}) as m:
        results = await m.send_alert("Disk full", "x", "high", channels=["email"])
        assert results["email"].status.value == "failed"
        assert "authentication failed" in (results["email"].error or "")
        history = await m.history()
    assert wrong not in repr(history)
    assert wrong not in repr(results)
