"""Fixtures: a real aiosmtpd server on 127.0.0.1 and email channels built from its config."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from pixalert.channels import structure_config
from pixalert_email import EmailChannel, EmailConfig, email_channel_spec
from pixalert_email.testing import SMTPTestServer

MakeChannel = Callable[..., EmailChannel]


@pytest.fixture
async def smtp_server() -> AsyncIterator[SMTPTestServer]:
    """A STARTTLS server with a self-signed certificate and AUTH required."""
    async with SMTPTestServer() as server:
        yield server


def build_config(section: dict[str, Any]) -> EmailConfig:
    """Structure a channel section exactly as the core does for ``[channels.email]``."""
    config: EmailConfig = structure_config(EmailConfig, section, path="channels.email")
    return config


@pytest.fixture
async def make_channel() -> AsyncIterator[MakeChannel]:
    """Build channels for a server (with config overrides); all are closed after the test."""
    made: list[EmailChannel] = []

    def make(server: SMTPTestServer, **overrides: Any) -> EmailChannel:
        config = build_config(server.config(**overrides))
        channel = email_channel_spec().factory("email", config)
        assert isinstance(channel, EmailChannel)
        made.append(channel)
        return channel

    yield make
    for channel in made:
        await channel.aclose()


async def wait_closed(server: SMTPTestServer) -> None:
    """Wait until the server has no open connection."""
    await server.wait_until(lambda s: s.open_connections == 0)


Waiter = Callable[[SMTPTestServer], Awaitable[None]]
