"""Fixtures: a started contract-enforcing receiver, a fake clock, and channels aimed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pixalert.channels import structure_config
from pixalert.testing import FakeClock
from pixalert_webhook import WebhookChannel, WebhookConfig, generate_secret
from pixalert_webhook.testing import WebhookReceiver


@pytest.fixture
def clock() -> FakeClock:
    """Time that moves only when told; the receiver and the channel share it."""
    return FakeClock()


@pytest.fixture
def secret() -> str:
    """A fresh Standard Webhooks secret."""
    return generate_secret()


@pytest.fixture
async def receiver(secret: str, clock: FakeClock) -> AsyncIterator[WebhookReceiver]:
    """A signed receiver on 127.0.0.1 that validates every body against the schema."""
    async with WebhookReceiver(secret=secret, now=clock.now, validate_schema=True) as server:
        yield server


@pytest.fixture
async def make_channel(
    clock: FakeClock,
) -> AsyncIterator[Callable[..., WebhookChannel]]:
    """Build a channel from a config dict (through the core's converter); closed after the test."""
    made: list[WebhookChannel] = []

    def build(name: str = "webhook", **section: Any) -> WebhookChannel:
        config = structure_config(WebhookConfig, section, path=f"channels.{name}")
        channel = WebhookChannel(name, config, clock=clock)
        made.append(channel)
        return channel

    yield build
    for channel in made:
        await channel.aclose()
