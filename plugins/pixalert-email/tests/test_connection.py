"""One SMTP session serves a burst of alerts; it is reopened when dropped and closed when idle."""

from __future__ import annotations

import asyncio

from pixalert import Alert
from pixalert_email.testing import SMTPTestServer

from .conftest import MakeChannel, wait_closed

BURST = 25


async def test_burst_uses_one_connection_and_one_login(
    smtp_server: SMTPTestServer, make_channel: MakeChannel
):
    channel = make_channel(smtp_server)
    for i in range(BURST):
        await channel.send(Alert(title=f"alert {i}"))
    assert len(smtp_server.received) == BURST
    assert smtp_server.connections == 1
    assert smtp_server.logins == 1
    assert [c.endpoint for c in smtp_server.requests].count("STARTTLS") == 1


async def test_concurrent_burst_shares_max_sessions_connections(
    smtp_server: SMTPTestServer, make_channel: MakeChannel
):
    channel = make_channel(smtp_server)  # max_sessions = 2 by default
    await asyncio.gather(*(channel.send(Alert(title=f"alert {i}")) for i in range(BURST)))
    assert sorted(smtp_server.lines()) == sorted(
        f"to ops@example.com: [MEDIUM] alert {i}" for i in range(BURST)
    )
    assert smtp_server.connections == channel.connections == 2
    assert smtp_server.logins == 2


async def test_concurrent_burst_with_one_session_shares_the_connection(
    smtp_server: SMTPTestServer, make_channel: MakeChannel
):
    channel = make_channel(smtp_server, max_sessions=1)
    await asyncio.gather(*(channel.send(Alert(title=f"alert {i}")) for i in range(BURST)))
    assert len(smtp_server.received) == BURST
    assert smtp_server.connections == channel.connections == 1
    assert smtp_server.logins == 1


async def test_session_dropped_by_the_server_is_reopened(
    smtp_server: SMTPTestServer, make_channel: MakeChannel
):
    channel = make_channel(smtp_server)
    await channel.send(Alert(title="before"))
    smtp_server.drop_connections()
    await channel.send(Alert(title="after"))
    assert smtp_server.lines() == [
        "to ops@example.com: [MEDIUM] before",
        "to ops@example.com: [MEDIUM] after",
    ]
    assert smtp_server.connections == 2
    assert smtp_server.logins == 2


async def test_421_on_a_reused_session_reconnects_transparently(
    smtp_server: SMTPTestServer, make_channel: MakeChannel
):
    channel = make_channel(smtp_server)
    await channel.send(Alert(title="before"))
    smtp_server.fail(421, endpoint="MAIL")  # "closing transmission channel", then it closes
    await channel.send(Alert(title="after"))
    assert smtp_server.lines()[-1] == "to ops@example.com: [MEDIUM] after"
    assert len(smtp_server.received) == 2
    assert smtp_server.connections == 2


async def test_idle_session_is_closed_with_quit(
    smtp_server: SMTPTestServer, make_channel: MakeChannel
):
    channel = make_channel(smtp_server, idle_close=0.05)
    await channel.send(Alert(title="one"))
    await wait_closed(smtp_server)
    assert [c.endpoint for c in smtp_server.requests][-1] == "QUIT"
    await channel.send(Alert(title="two"))
    assert smtp_server.connections == 2


async def test_idle_close_zero_closes_after_each_alert(
    smtp_server: SMTPTestServer, make_channel: MakeChannel
):
    channel = make_channel(smtp_server, idle_close=0)
    await channel.send(Alert(title="one"))
    assert [c.endpoint for c in smtp_server.requests][-1] == "QUIT"
    await channel.send(Alert(title="two"))
    assert smtp_server.connections == 2


async def test_a_send_in_between_keeps_the_session(
    smtp_server: SMTPTestServer, make_channel: MakeChannel
):
    """An idle timer that fires after the session was used again does not close it."""
    channel = make_channel(smtp_server, idle_close=3600)
    await channel.send(Alert(title="one"))
    [session, _] = channel._sessions
    stale = session.uses
    await channel.send(Alert(title="two"))
    channel._close_if_idle(session, stale)
    await channel.send(Alert(title="three"))
    assert smtp_server.connections == 1
    channel._close_if_idle(session, session.uses)
    await wait_closed(smtp_server)
    assert [c.endpoint for c in smtp_server.requests][-1] == "QUIT"


async def test_aclose_says_quit_and_is_idempotent(
    smtp_server: SMTPTestServer, make_channel: MakeChannel
):
    channel = make_channel(smtp_server)
    await channel.send(Alert(title="one"))
    await channel.aclose()
    await channel.aclose()
    await wait_closed(smtp_server)
    assert [c.endpoint for c in smtp_server.requests][-1] == "QUIT"
    # A closed channel that is used again simply opens a new session.
    await channel.send(Alert(title="two"))
    assert smtp_server.connections == 2


async def test_aclose_without_any_send(make_channel: MakeChannel, smtp_server: SMTPTestServer):
    channel = make_channel(smtp_server)
    await channel.aclose()
    assert smtp_server.connections == 0
