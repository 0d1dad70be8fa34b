"""Failures say whether a retry may help, and never carry the password."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from pixalert import Alert, DeliveryError
from pixalert_email.testing import SMTPTestServer

from .conftest import MakeChannel

WRONG_PASSWORD = "wrong-pw-Zq81!xv"


def chain(exc: BaseException) -> list[BaseException]:
    """The exception and every cause and context behind it."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def assert_no_secret(exc: BaseException, *secrets: str) -> None:
    for item in chain(exc):
        for secret in secrets:
            assert secret not in str(item)
            assert secret not in repr(item)
            assert all(secret not in str(arg) for arg in item.args)


async def test_wrong_password_is_permanent_and_not_shown(
    smtp_server: SMTPTestServer, make_channel: MakeChannel, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    channel = make_channel(smtp_server, password=WRONG_PASSWORD)
    with pytest.raises(DeliveryError) as info:
        await channel.send(Alert(title="Disk full"))
    error = info.value
    assert error.retryable is False
    assert "authentication failed" in error.message and "535" in error.message
    assert error.__cause__ is None and error.__suppress_context__
    assert_no_secret(error, WRONG_PASSWORD)
    assert WRONG_PASSWORD not in caplog.text
    assert WRONG_PASSWORD not in repr(channel) and WRONG_PASSWORD not in repr(channel.config)
    assert [(a.tls, a.success) for a in smtp_server.auth_attempts] == [(True, False)]
    assert smtp_server.received == []


@pytest.mark.parametrize("code", [421, 450, 451, 452])
async def test_4xx_at_data_is_retryable(
    smtp_server: SMTPTestServer, make_channel: MakeChannel, code: int
):
    channel = make_channel(smtp_server)
    smtp_server.fail(code)
    with pytest.raises(DeliveryError) as info:
        await channel.send(Alert(title="Disk full"))
    assert info.value.retryable is True
    assert str(code) in info.value.message
    # The next attempt goes through (on a fresh session: the failed one was dropped).
    await channel.send(Alert(title="Disk full"))
    assert len(smtp_server.received) == 1


@pytest.mark.parametrize("code", [550, 552, 554])
async def test_5xx_at_data_is_permanent(
    smtp_server: SMTPTestServer, make_channel: MakeChannel, code: int
):
    channel = make_channel(smtp_server)
    smtp_server.fail(code, body="5.7.1 Rejected by policy")
    with pytest.raises(DeliveryError) as info:
        await channel.send(Alert(title="Disk full"))
    assert info.value.retryable is False
    assert f"{code} 5.7.1 Rejected by policy" in info.value.message
    assert "DATA" in info.value.message


async def test_sender_refused_is_permanent(smtp_server: SMTPTestServer, make_channel: MakeChannel):
    smtp_server.fail(553, body="5.7.1 Sender address rejected", endpoint="MAIL")
    with pytest.raises(DeliveryError) as info:
        await make_channel(smtp_server).send(Alert(title="Disk full"))
    assert info.value.retryable is False
    assert "MAIL FROM" in info.value.message


async def test_temporary_sender_failure_on_a_new_session_is_retryable(
    smtp_server: SMTPTestServer, make_channel: MakeChannel
):
    smtp_server.fail(421, endpoint="MAIL")
    with pytest.raises(DeliveryError) as info:
        await make_channel(smtp_server).send(Alert(title="Disk full"))
    assert info.value.retryable is True


@pytest.mark.parametrize("code, retryable", [(450, True), (550, False)])
async def test_every_recipient_refused(
    smtp_server: SMTPTestServer, make_channel: MakeChannel, code: int, retryable: bool
):
    smtp_server.fail(code, endpoint="RCPT")
    with pytest.raises(DeliveryError) as info:
        await make_channel(smtp_server).send(Alert(title="Disk full"))
    assert info.value.retryable is retryable
    assert "every recipient was refused" in info.value.message
    assert smtp_server.received == []


async def test_server_reply_echoing_the_password_is_masked(
    smtp_server: SMTPTestServer, make_channel: MakeChannel
):
    password = smtp_server.password
    assert password is not None
    smtp_server.fail(554, body=f"5.7.1 go away {password}")
    with pytest.raises(DeliveryError) as info:
        await make_channel(smtp_server).send(Alert(title="Disk full"))
    assert password not in info.value.message
    assert "go away **********" in info.value.message


async def test_connection_refused_is_retryable(
    smtp_server: SMTPTestServer, make_channel: MakeChannel
):
    port = smtp_server.refused_port
    channel = make_channel(smtp_server, smtp_port=port)
    with pytest.raises(DeliveryError) as info:
        await channel.send(Alert(title="Disk full"))
    assert info.value.retryable is True
    assert f"127.0.0.1:{port}" in info.value.message
    assert_no_secret(info.value, smtp_server.password or "")


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """A TCP server that accepts connections and never says a word."""
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for writer in writers:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_silent_server_times_out_retryably(
    smtp_server: SMTPTestServer, make_channel: MakeChannel, silent_server: int
):
    channel = make_channel(smtp_server, smtp_port=silent_server, timeout=0.2)
    with pytest.raises(DeliveryError) as info:
        await channel.send(Alert(title="Disk full"))
    assert info.value.retryable is True
    assert "timed out" in info.value.message


async def test_hanging_data_times_out_retryably(
    smtp_server: SMTPTestServer, make_channel: MakeChannel
):
    # Long enough for TLS and AUTH on a loaded machine; DATA then hangs for good.
    channel = make_channel(smtp_server, timeout=1.0)
    smtp_server.hang()
    with pytest.raises(DeliveryError) as info:
        await channel.send(Alert(title="Disk full"))
    assert info.value.retryable is True
    assert "timed out DATA" in info.value.message
    smtp_server.release()
    await channel.send(Alert(title="Disk full again"))
    assert smtp_server.lines()[-1] == "to ops@example.com: [MEDIUM] Disk full again"


async def test_cancelled_send_drops_the_session(
    smtp_server: SMTPTestServer, make_channel: MakeChannel
):
    """The manager's per-attempt timeout cancels send: the half-used session is not reused."""
    channel = make_channel(smtp_server)
    await channel.send(Alert(title="first"))
    smtp_server.hang()
    task = asyncio.ensure_future(channel.send(Alert(title="stuck")))
    await smtp_server.wait_until(lambda s: s.hanging == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    smtp_server.release()
    await channel.send(Alert(title="after"))
    assert smtp_server.connections == 2
    assert smtp_server.lines()[-1] == "to ops@example.com: [MEDIUM] after"
    assert channel.connections == 2


@pytest.mark.parametrize("endpoint", ["MAIL", "RCPT", "DATA"])
async def test_a_dropped_connection_is_retryable_and_the_next_send_reconnects(
    smtp_server: SMTPTestServer, make_channel: MakeChannel, endpoint: str
):
    channel = make_channel(smtp_server)
    smtp_server.drop(endpoint=endpoint)
    with pytest.raises(DeliveryError) as info:
        await channel.send(Alert(title="cut off"))
    assert info.value.retryable is True
    [dropped] = smtp_server.requests_to(endpoint)
    assert (dropped.status, dropped.outcome, dropped.reason) == (None, "fault", "drop")
    await channel.send(Alert(title="after"))
    assert smtp_server.lines() == ["to ops@example.com: [MEDIUM] after"]
    assert smtp_server.connections == 2


async def test_a_hang_at_mail_holds_the_reply_until_released(
    smtp_server: SMTPTestServer, make_channel: MakeChannel
):
    channel = make_channel(smtp_server)
    smtp_server.hang(endpoint="MAIL")
    task = asyncio.ensure_future(channel.send(Alert(title="held")))
    await smtp_server.wait_until(lambda s: s.hanging == 1)
    assert smtp_server.received == []
    smtp_server.release()
    await task
    assert smtp_server.lines() == ["to ops@example.com: [MEDIUM] held"]
