"""Testing code that sends alerts: a FakeClock drives the cooldown (docs/plugins/testing.md)."""

from pixalert.testing import FakeClock, RecordingChannel, make_manager


async def test_a_repeat_is_held_back_by_the_cooldown():
    clock = FakeClock()
    channel = RecordingChannel("slack")
    async with make_manager([channel], clock=clock) as manager:
        await manager.send_alert("Disk full", "97%", "low")
        again = await manager.send_alert("Disk full", "98%", "low")
        assert again["slack"].status == "suppressed"
        clock.advance(5 * 60)  # the default cooldown
        await manager.send_alert("Disk full", "99%", "low")
    assert [a.message for a in channel.sent] == ["97%", "99%"]
