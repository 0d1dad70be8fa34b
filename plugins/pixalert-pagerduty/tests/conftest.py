"""Fixtures: a local Events API v2 server and channels pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pixalert import Alert
from pixalert.channels import structure_config
from pixalert.testing import FakeClock
from pixalert_pagerduty import PagerDutyChannel, PagerDutyConfig
from pixalert_pagerduty.testing import PagerDutyServer

MakeChannel = Callable[..., PagerDutyChannel]


@pytest.fixture
async def pd() -> AsyncIterator[PagerDutyServer]:
    """A running contract-enforcing Events API v2 on 127.0.0.1."""
    async with PagerDutyServer() as server:
        yield server


@pytest.fixture
def clock() -> FakeClock:
    """Fake time for pacing."""
    return FakeClock()


@pytest.fixture
async def make_channel(pd: PagerDutyServer, clock: FakeClock) -> AsyncIterator[MakeChannel]:
    """Build channels against ``pd`` (config overrides as keyword arguments); closed after."""
    built: list[PagerDutyChannel] = []

    def make(**overrides: Any) -> PagerDutyChannel:
        config = structure_config(
            PagerDutyConfig, pd.config(**overrides), path="channels.pagerduty"
        )
        channel = PagerDutyChannel("pagerduty", config, clock=clock)
        built.append(channel)
        return channel

    yield make
    for channel in built:
        await channel.aclose()


@pytest.fixture
def channel(make_channel: MakeChannel) -> PagerDutyChannel:
    """A channel on ``pd`` with default settings and a fake clock."""
    return make_channel()


@pytest.fixture
def make_alert() -> Callable[..., Alert]:
    """Build alerts: ``make_alert(title="...", priority="low", ...)`` (critical by default)."""

    def make(title: str = "Disk full", message: str = "/ is 99% full", **kwargs: Any) -> Alert:
        kwargs.setdefault("priority", "critical")
        return Alert(title, message, **kwargs)

    return make
