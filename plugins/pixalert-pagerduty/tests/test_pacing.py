"""Events for one routing key are paced under PagerDuty's limit, on an injected clock.

The channel's ``pace(alert)`` waits for a turn; the core awaits it before each
attempt's timeout starts, then calls ``send``, which does not wait. ``post``
below does what the core does.
"""

from __future__ import annotations

import pytest


async def post(channel, alert):
    """Wait for a turn, then send: what the core does for each attempt."""
    await channel.pace(alert)
    return await channel.send(alert)


def _waits(clock):
    """The pacing waits, without the microsecond steps that absorb float rounding."""
    return [s for s in clock.sleeps if s > 1e-3]


async def test_a_burst_goes_at_once_then_events_are_paced(pd, channel, clock, make_alert):
    for i in range(10):
        await post(channel, make_alert(key=f"k{i}"))
    assert _waits(clock) == []  # the default burst of 10 is not delayed
    await post(channel, make_alert(key="k10"))
    assert _waits(clock) == [pytest.approx(60 / 110)]
    assert len(pd.received) == 11


async def test_no_60_second_window_holds_more_than_rate_events(pd, channel, clock, make_alert):
    times = []
    for i in range(250):
        await post(channel, make_alert(key=f"k{i}"))
        times.append(clock.now())
    assert len(pd.received) == 250
    busiest = max(sum(1 for t in times[i:] if t - start <= 60.0) for i, start in enumerate(times))
    # PagerDuty allows about 120 a minute per routing key: the burst and the
    # steady rate together use that, and never more.
    assert 115 < busiest <= 120
    # The whole run took as long as the limit demands, and no longer.
    assert times[-1] - times[0] == pytest.approx((250 - 10) * 60 / 110, rel=1e-4)


async def test_rate_and_burst_are_configurable(pd, make_channel, clock, make_alert):
    channel = make_channel(rate=30, burst=1)
    for i in range(3):
        await post(channel, make_alert(key=f"k{i}"))
    assert _waits(clock) == [pytest.approx(60 / 29), pytest.approx(60 / 29)]


async def test_each_channel_paces_its_own_routing_key(pd, make_channel, clock, make_alert):
    other_key = "b" * 32
    first, second = (
        make_channel(burst=1, rate=60),
        make_channel(burst=1, rate=60, routing_key=other_key),
    )
    await post(first, make_alert(key="a"))
    await post(second, make_alert(key="b"))
    assert _waits(clock) == []
    assert pd.incident("b", routing_key=other_key) is not None


async def test_send_itself_does_not_wait_for_a_turn(pd, make_channel, clock, make_alert):
    channel = make_channel(rate=30, burst=1)
    for i in range(3):
        await channel.send(make_alert(key=f"k{i}"))
    assert _waits(clock) == []  # the wait is in pace(), outside the attempt's timeout
    assert len(pd.received) == 3
