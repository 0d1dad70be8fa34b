"""Fixtures: a real local Slack (``SlackServer``) and channels built from config."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pixalert.channels import structure_config
from pixalert.storage import Clock
from pixalert.testing import FakeClock
from pixalert_slack import SlackChannel, SlackConfig
from pixalert_slack.testing import SlackServer

MakeChannel = Callable[..., SlackChannel]


@pytest.fixture
async def slack() -> AsyncIterator[SlackServer]:
    """A contract-enforcing Slack on 127.0.0.1."""
    async with SlackServer() as server:
        yield server


@pytest.fixture
async def make_channel() -> AsyncIterator[MakeChannel]:
    """Build a channel from a config section (as the core does); closed after the test.

    The channel paces on a :class:`FakeClock` unless a ``clock`` is given, so
    no test waits for real time.
    """
    made: list[SlackChannel] = []

    def make(
        section: dict[str, Any], *, clock: Clock | None = None, name: str = "slack"
    ) -> SlackChannel:
        config = structure_config(SlackConfig, section, path=f"channels.{name}")
        channel = SlackChannel(name, config, clock=clock or FakeClock())
        made.append(channel)
        return channel

    yield make
    for channel in made:
        await channel.aclose()
