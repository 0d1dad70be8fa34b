"""Fixtures: loopback stand-ins for Apprise's services, and channels built from config."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from pixalert.channels import structure_config
from pixalert_apprise import AppriseChannel, AppriseConfig
from pixalert_apprise.testing import AppriseSink, SMTPSink

MakeChannel = Callable[..., AppriseChannel]


@pytest.fixture
async def sink() -> AsyncIterator[AppriseSink]:
    """An HTTP server on 127.0.0.1 for json://, form://, xml:// and ntfy:// URLs."""
    async with AppriseSink() as server:
        yield server


@pytest.fixture
def smtp() -> Iterator[SMTPSink]:
    """A plain SMTP server on 127.0.0.1 with AUTH, for mailto:// URLs."""
    with SMTPSink(username="alerts-bot", password="Smtp-pass-4711") as server:
        yield server


@pytest.fixture
async def make_channel() -> AsyncIterator[MakeChannel]:
    """Build a channel from a config section, as the core does; closed after the test."""
    made: list[AppriseChannel] = []

    def make(section: dict[str, Any], *, name: str = "apprise") -> AppriseChannel:
        config = structure_config(AppriseConfig, section, path=f"channels.{name}")
        channel = AppriseChannel(name, config)
        made.append(channel)
        return channel

    yield make
    for channel in made:
        await channel.aclose()


def free_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    return free_port()
