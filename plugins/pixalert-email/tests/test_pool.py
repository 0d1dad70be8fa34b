"""A few SMTP sessions per channel: a second opens only while the first is busy.

The server's ``hang_next`` holds a DATA reply back, which keeps a session busy
for as long as a test needs without any sleep.
"""

from __future__ import annotations

import asyncio

import pytest
from pixalert import Alert, DeliveryError
from pixalert_email import EmailChannel
from pixalert_email.testing import SMTPTestServer

from .conftest import MakeChannel, build_config, wait_closed

PASSWORD = "pool-secret-password-4Kz"


async def send_while_busy(server: SMTPTestServer, channel: EmailChannel) -> None:
    """Send "held" (its DATA is held back by the server), then "free" meanwhile; end both."""
    server.hang()
    held = asyncio.create_task(channel.send(Alert(title="held")))
    await server.wait_until(lambda s: s.hanging == 1)
    await channel.send(Alert(title="free"))
    server.release()
    await held


def quits(server: SMTPTestServer) -> list[int]:
    """The connection number of every QUIT received."""
    return sorted(c.connection for c in server.requests if c.endpoint == "QUIT")


def mail_connections(server: SMTPTestServer) -> list[int]:
    """The connection number of each MAIL FROM, in order."""
    return [c.connection for c in server.requests if c.endpoint == "MAIL"]


async def test_a_send_while_the_session_is_busy_opens_a_second(
    smtp_server: SMTPTestServer, make_channel: MakeChannel
):
    channel = make_channel(smtp_server)
    await send_while_busy(smtp_server, channel)
    assert sorted(smtp_server.lines()) == [
        "to ops@example.com: [MEDIUM] free",
        "to ops@example.com: [MEDIUM] held",
    ]
    assert smtp_server.connections == channel.connections == 2
    assert smtp_server.logins == 2
    assert smtp_server.open_connections == 2  # both are kept for reuse


async def test_sequential_sends_reuse_one_session(
    smtp_server: SMTPTestServer, make_channel: MakeChannel
):
    channel = make_channel(smtp_server, max_sessions=4)
    for i in range(5):
        await channel.send(Alert(title=f"alert {i}"))
    assert len(smtp_server.received) == 5
    assert smtp_server.connections == channel.connections == 1


async def test_a_trickle_keeps_to_the_first_open_session(
    smtp_server: SMTPTestServer, make_channel: MakeChannel
):
    """Once the burst is over, alerts one at a time go over one session, so the other idles."""
    channel = make_channel(smtp_server)
    await send_while_busy(smtp_server, channel)
    before = len(mail_connections(smtp_server))
    for i in range(4):
        await channel.send(Alert(title=f"later {i}"))
    assert len(set(mail_connections(smtp_server)[before:])) == 1
    assert smtp_server.connections == 2


async def test_max_sessions_one_waits_for_the_session(
    smtp_server: SMTPTestServer, make_channel: MakeChannel
):
    channel = make_channel(smtp_server, max_sessions=1)
    smtp_server.hang()
    held = asyncio.create_task(channel.send(Alert(title="held")))
    await smtp_server.wait_until(lambda s: s.hanging == 1)
    queued = asyncio.create_task(channel.send(Alert(title="queued")))
    smtp_server.release()
    await asyncio.gather(held, queued)
    assert smtp_server.lines() == [
        "to ops@example.com: [MEDIUM] held",
        "to ops@example.com: [MEDIUM] queued",
    ]
    assert smtp_server.connections == channel.connections == 1


async def test_a_session_dropped_after_an_error_is_replaced(
    smtp_server: SMTPTestServer, make_channel: MakeChannel
):
    channel = make_channel(smtp_server)
    await channel.send(Alert(title="one"))
    smtp_server.fail(554, endpoint="DATA")
    with pytest.raises(DeliveryError):
        await channel.send(Alert(title="rejected"))
    await smtp_server.wait_until(lambda s: s.open_connections == 0)  # dropped, not kept
    await channel.send(Alert(title="two"))
    assert smtp_server.lines() == [
        "to ops@example.com: [MEDIUM] one",
        "to ops@example.com: [MEDIUM] two",
    ]
    assert smtp_server.connections == channel.connections == 2
    assert smtp_server.open_connections == 1


async def test_an_error_on_one_session_leaves_the_other(
    smtp_server: SMTPTestServer, make_channel: MakeChannel
):
    channel = make_channel(smtp_server)
    await send_while_busy(smtp_server, channel)  # two sessions open
    smtp_server.fail(554, endpoint="DATA")
    with pytest.raises(DeliveryError):
        await channel.send(Alert(title="rejected"))
    await smtp_server.wait_until(lambda s: s.open_connections == 1)
    await channel.send(Alert(title="after"))
    assert smtp_server.lines()[-1] == "to ops@example.com: [MEDIUM] after"
    assert smtp_server.connections == 2  # the session left open was reused


async def test_idle_close_closes_each_session(
    smtp_server: SMTPTestServer, make_channel: MakeChannel
):
    channel = make_channel(smtp_server, idle_close=0.05)
    await send_while_busy(smtp_server, channel)
    await wait_closed(smtp_server)
    assert quits(smtp_server) == [1, 2]
    await channel.send(Alert(title="again"))
    assert smtp_server.connections == channel.connections == 3


async def test_idle_close_zero_quits_each_session_after_its_alert(
    smtp_server: SMTPTestServer, make_channel: MakeChannel
):
    channel = make_channel(smtp_server, idle_close=0)
    await send_while_busy(smtp_server, channel)
    assert quits(smtp_server) == [1, 2]
    await wait_closed(smtp_server)
    assert len(smtp_server.received) == 2


async def test_aclose_quits_every_session_and_is_idempotent(
    smtp_server: SMTPTestServer, make_channel: MakeChannel
):
    channel = make_channel(smtp_server)
    await send_while_busy(smtp_server, channel)
    await channel.aclose()
    await channel.aclose()
    await wait_closed(smtp_server)
    assert quits(smtp_server) == [1, 2]
    assert all(session.smtp is None for session in channel._sessions)


async def test_aclose_waits_for_a_send_in_flight(
    smtp_server: SMTPTestServer, make_channel: MakeChannel
):
    channel = make_channel(smtp_server)
    smtp_server.hang()
    held = asyncio.create_task(channel.send(Alert(title="held")))
    await smtp_server.wait_until(lambda s: s.hanging == 1)
    closing = asyncio.create_task(channel.aclose())
    smtp_server.release()
    await asyncio.gather(held, closing)
    await wait_closed(smtp_server)
    assert smtp_server.lines() == ["to ops@example.com: [MEDIUM] held"]
    assert quits(smtp_server) == [1]


def test_sessions_of_a_finished_event_loop_are_forgotten():
    with SMTPTestServer() as server:
        channel = EmailChannel("email", build_config(server.config()))

        async def burst() -> None:
            await send_while_busy(server, channel)  # two sessions, left open

        asyncio.run(burst())

        async def again() -> None:
            await channel.send(Alert(title="next loop"))
            await channel.aclose()

        asyncio.run(again())
        assert server.lines()[-1] == "to ops@example.com: [MEDIUM] next loop"
        assert server.connections == channel.connections == 3
        # The new loop's session said QUIT; the old loop's could not (its loop is closed).
        server.wait_sync(lambda s: quits(s) == [3])


async def test_password_stays_out_of_errors_and_repr(make_channel: MakeChannel):
    async with SMTPTestServer(username="alerts@example.com", password=PASSWORD) as server:
        channel = make_channel(server)
        await send_while_busy(server, channel)
        server.fail(554, body=f"rejected {PASSWORD}", endpoint="DATA")
        with pytest.raises(DeliveryError) as info:
            await channel.send(Alert(title="rejected"))
        assert PASSWORD not in str(info.value)
        assert PASSWORD not in repr(channel)
        assert server.logins == 2
