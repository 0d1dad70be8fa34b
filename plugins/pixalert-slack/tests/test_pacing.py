"""Pacing: posts to one Slack channel are spaced (about 1/s, short bursts) on its clock.

The channel's ``pace(alert)`` waits for a turn; the core awaits it before each
attempt's timeout starts, then calls ``send``, which does not wait. ``post``
below does what the core does.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pixalert import Alert
from pixalert.testing import FakeClock
from pixalert_slack import SlackChannel
from pixalert_slack.testing import SlackServer

from .conftest import MakeChannel


def alerts(n: int) -> list[Alert]:
    return [Alert(f"Alert {i}", "m", "low") for i in range(n)]


async def post(channel: SlackChannel, alert: Alert, previous: Any = None) -> Any:
    """Wait for a turn, then send: what the core does for each attempt."""
    await channel.pace(alert)
    return await channel.send(alert, previous=previous)


@pytest.mark.parametrize("mode", ["webhook", "api"])
async def test_burst_then_one_per_second(
    slack: SlackServer, make_channel: MakeChannel, mode: str
) -> None:
    clock = FakeClock()
    channel = make_channel(slack.config(mode, rate=1, burst=2), clock=clock)
    for alert in alerts(5):
        await post(channel, alert)
    assert clock.sleeps == [1.0, 1.0, 1.0]  # two at once, then one a second
    assert len(slack.received) == 5


async def test_concurrent_sends_are_paced_too(
    slack: SlackServer, make_channel: MakeChannel
) -> None:
    clock = FakeClock()
    start = clock.now()
    channel = make_channel(slack.config("api"), clock=clock)  # defaults: 1/s, burst 3
    await asyncio.gather(*(post(channel, alert) for alert in alerts(6)))
    assert clock.now() - start == pytest.approx(3.0)
    assert sorted(m.summary for m in slack.received) == sorted(f"[LOW] Alert {i}" for i in range(6))


async def test_bucket_refills_over_time(slack: SlackServer, make_channel: MakeChannel) -> None:
    clock = FakeClock()
    channel = make_channel(slack.config("webhook", rate=2, burst=1), clock=clock)
    first, second, third = alerts(3)
    await post(channel, first)
    await post(channel, second)
    assert clock.sleeps == [0.5]
    clock.advance(10)
    await post(channel, third)
    assert clock.sleeps == [0.5]  # no wait after a quiet spell


async def test_each_channel_instance_paces_its_own_destination(
    slack: SlackServer, make_channel: MakeChannel
) -> None:
    clock = FakeClock()
    one = make_channel(slack.config("webhook", burst=1), clock=clock, name="one")
    two = make_channel(slack.config("api", burst=1), clock=clock, name="two")
    a, b = alerts(2)
    await post(one, a)
    await post(two, b)
    assert clock.sleeps == []


async def test_resolve_update_is_paced(slack: SlackServer, make_channel: MakeChannel) -> None:
    clock = FakeClock()
    channel = make_channel(slack.config("api", burst=1), clock=clock)
    [alert] = alerts(1)
    receipt = await post(channel, alert)
    await post(channel, alert.resolve(), previous=receipt)
    assert clock.sleeps == [1.0]


@pytest.mark.parametrize("mode", ["webhook", "api"])
async def test_send_itself_does_not_wait_for_a_turn(
    slack: SlackServer, make_channel: MakeChannel, mode: str
) -> None:
    """The wait is in pace(), which the core awaits outside the attempt's timeout."""
    clock = FakeClock()
    channel = make_channel(slack.config(mode, rate=1, burst=1), clock=clock)
    for alert in alerts(3):
        await channel.send(alert)
    assert clock.sleeps == []
    assert len(slack.received) == 3


async def test_the_core_waits_for_a_turn_outside_the_attempt_timeout(
    slack: SlackServer, make_channel: MakeChannel
) -> None:
    """Through a manager, on the real clock: the last of 4 alerts waits 0.75 s for its
    turn, longer than the 0.4 s attempt timeout; that is no failure, and nothing is
    posted twice."""
    from pixalert.channels import SystemClock
    from pixalert.testing import make_manager

    channel = make_channel(slack.config("webhook", rate=4, burst=1), clock=SystemClock())
    config = {"cooldown_minutes": 0, "delivery": {"timeout": 0.4}}
    async with make_manager([channel], config=config) as manager:
        results = await asyncio.gather(
            *(manager.send_alert(a.title, "m", "low", channels=["slack"]) for a in alerts(4))
        )
    assert [(r["slack"].status.value, r["slack"].attempts) for r in results] == [("sent", 1)] * 4
    assert len(slack.requests) == 4
