"""Pacing: sends to one Slack channel are spaced (about 1/s, short bursts) on its clock."""

from __future__ import annotations

import asyncio

import pytest
from pixalert import Alert
from pixalert.testing import FakeClock
from pixalert_slack.testing import SlackServer

from .conftest import MakeChannel


def alerts(n: int) -> list[Alert]:
    return [Alert(f"Alert {i}", "m", "low") for i in range(n)]


@pytest.mark.parametrize("mode", ["webhook", "api"])
async def test_burst_then_one_per_second(
    slack: SlackServer, make_channel: MakeChannel, mode: str
) -> None:
    clock = FakeClock()
    channel = make_channel(slack.config(mode, rate=1, burst=2), clock=clock)
    for alert in alerts(5):
        await channel.send(alert)
    assert clock.sleeps == [1.0, 1.0, 1.0]  # two at once, then one a second
    assert len(slack.received) == 5


async def test_concurrent_sends_are_paced_too(
    slack: SlackServer, make_channel: MakeChannel
) -> None:
    clock = FakeClock()
    start = clock.now()
    channel = make_channel(slack.config("api"), clock=clock)  # defaults: 1/s, burst 3
    await asyncio.gather(*(channel.send(alert) for alert in alerts(6)))
    assert clock.now() - start == pytest.approx(3.0)
    assert sorted(m.summary for m in slack.received) == sorted(f"[LOW] Alert {i}" for i in range(6))


async def test_bucket_refills_over_time(slack: SlackServer, make_channel: MakeChannel) -> None:
    clock = FakeClock()
    channel = make_channel(slack.config("webhook", rate=2, burst=1), clock=clock)
    first, second, third = alerts(3)
    await channel.send(first)
    await channel.send(second)
    assert clock.sleeps == [0.5]
    clock.advance(10)
    await channel.send(third)
    assert clock.sleeps == [0.5]  # no wait after a quiet spell


async def test_each_channel_instance_paces_its_own_destination(
    slack: SlackServer, make_channel: MakeChannel
) -> None:
    clock = FakeClock()
    one = make_channel(slack.config("webhook", burst=1), clock=clock, name="one")
    two = make_channel(slack.config("api", burst=1), clock=clock, name="two")
    a, b = alerts(2)
    await one.send(a)
    await two.send(b)
    assert clock.sleeps == []


async def test_resolve_update_is_paced(slack: SlackServer, make_channel: MakeChannel) -> None:
    clock = FakeClock()
    channel = make_channel(slack.config("api", burst=1), clock=clock)
    [alert] = alerts(1)
    receipt = await channel.send(alert)
    await channel.send(alert.resolve(), previous=receipt)
    assert clock.sleeps == [1.0]
