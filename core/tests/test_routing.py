"""Priority routing: the seed's table, explicit channels, unconfigured channels."""

from __future__ import annotations

import pixalert
import pytest
from pixalert import NotificationChannel, Priority
from pixalert.testing import RecordingChannel, make_manager

ALL = ("email", "slack", "pagerduty", "webhook")


def four_channels() -> dict[str, RecordingChannel]:
    return {name: RecordingChannel(name) for name in ALL}


@pytest.mark.parametrize(
    ("priority", "expected"),
    [
        (Priority.LOW, ["slack"]),
        (Priority.MEDIUM, ["email", "slack"]),
        (Priority.HIGH, ["email", "slack", "pagerduty"]),
        (Priority.CRITICAL, ["email", "slack", "pagerduty", "webhook"]),
    ],
)
async def test_default_routing_table(priority: Priority, expected: list[str]) -> None:
    channels = four_channels()
    async with make_manager(channels.values()) as manager:
        results = await manager.send_alert("Disk full", "95%", priority)
    assert sorted(results) == sorted(expected)
    assert all(results.values())
    for name, channel in channels.items():
        assert len(channel.sent) == (1 if name in expected else 0), name


async def test_explicit_channels_win_over_routing() -> None:
    channels = four_channels()
    async with make_manager(channels.values()) as manager:
        results = await manager.send_alert(
            "Custom Alert",
            "This goes to email and Slack only",
            Priority.HIGH,
            channels=[NotificationChannel.EMAIL, NotificationChannel.SLACK],
        )
    assert list(results) == ["email", "slack"]
    assert not channels["pagerduty"].sent


async def test_results_keys_work_like_the_seed_expects() -> None:
    async with make_manager(four_channels().values()) as manager:
        results = await manager.send_alert("t", "m", "medium")
    lines = [
        f"{channel.value}: {'ok' if success else 'no'}" for channel, success in results.items()
    ]
    assert lines == ["email: ok", "slack: ok"]
    assert results[NotificationChannel.SLACK].status == "sent"
    assert results["slack"].status == "sent"


async def test_unconfigured_channel_is_skipped_with_a_reason() -> None:
    slack = RecordingChannel("slack")
    async with make_manager([slack]) as manager:
        results = await manager.send_alert("t", "m", "high")
    assert results["slack"].status == "sent"
    for name in ("email", "pagerduty"):
        assert results[name].status == "skipped"
        assert results[name].error == "not configured"


async def test_section_without_plugin_is_skipped_naming_the_package() -> None:
    async with make_manager(config={"channels": {"teams": {"url": "x"}}}) as manager:
        results = await manager.send_alert("t", "m", "critical")
    assert results["teams"].status == "skipped"
    assert "pip install pixalert-teams" in (results["teams"].error or "")


async def test_routing_table_is_configurable() -> None:
    channels = four_channels()
    config = {"routing": {"low": ["webhook"], "critical": ["pagerduty"]}}
    async with make_manager(channels.values(), config=config) as manager:
        low = await manager.send_alert("a", "m", "low")
        critical = await manager.send_alert("b", "m", "critical")
    assert list(low) == ["webhook"] and list(critical) == ["pagerduty"]


async def test_plugin_channel_is_routed_like_a_builtin_one() -> None:
    teams = RecordingChannel("teams")
    async with make_manager([teams], config={"routing": {"medium": ["teams"]}}) as manager:
        results = await manager.send_alert("t", "m", "medium")
    assert results["teams"] and results["teams"].channel.value == "teams"


async def test_bad_channel_name_is_a_clear_error_and_nothing_is_stored() -> None:
    async with make_manager([RecordingChannel("slack")]) as manager:
        with pytest.raises(ValueError, match="channels: expected channel names"):
            await manager.send_alert("t", "m", "low", channels=[" "])
        with pytest.raises(ValueError, match="unknown priority"):
            await manager.send_alert("t", "m", "urgent")
        assert await manager.history() == []


class Reroute:
    @pixalert.hookimpl
    def pixalert_route(self, alert: pixalert.Alert, channels: list[str]) -> list[str] | None:
        return ["webhook"] if alert.metadata.get("team") == "infra" else None


async def test_hook_pixalert_route() -> None:
    channels = four_channels()
    async with make_manager(channels.values(), plugins=[Reroute()]) as manager:
        rerouted = await manager.send_alert("a", "m", "low", metadata={"team": "infra"})
        kept = await manager.send_alert("b", "m", "low")
    assert list(rerouted) == ["webhook"] and list(kept) == ["slack"]


async def test_a_channel_not_configured_is_recorded_skipped_with_the_alert() -> None:
    """No claim, no settle: the history reads skipped at once, on every way in."""
    slack = RecordingChannel("slack")
    async with make_manager([slack]) as manager:
        alert_id = await manager.submit(pixalert.Alert("t", "m", "high"))
        await manager.drain()
        (entry,) = await manager.history(limit=None)
    assert entry["id"] == alert_id and entry["state"] == "done"
    results = entry["results"]
    assert results["slack"]["status"] == "sent"
    for name in ("email", "pagerduty"):
        assert (results[name]["status"], results[name]["attempts"]) == ("skipped", 0)
        assert results[name]["error"] == "not configured"


async def test_an_alert_no_channel_can_take_takes_no_cooldown() -> None:
    slack = RecordingChannel("slack")
    async with make_manager([slack]) as manager:
        nowhere = await manager.send_alert(
            "t", "m", "low", key="db-1", cooldown=600, channels=["pagerduty"]
        )
        sent = await manager.send_alert("t", "m", "low", key="db-1", cooldown=600)
    assert nowhere["pagerduty"].status == "skipped"
    assert sent["slack"].status == "sent"  # not swallowed by a cooldown nothing used
    assert len(slack.sent) == 1


async def test_a_silence_suppresses_what_could_be_sent_and_skips_the_rest() -> None:
    slack = RecordingChannel("slack")
    async with make_manager([slack]) as manager:
        await manager.silence({"source": "db"}, duration=60)
        results = await manager.send_alert("t", "m", "medium", source="db")
    assert results["slack"].status == "suppressed"
    assert results["email"].status == "skipped"
    assert not slack.sent
