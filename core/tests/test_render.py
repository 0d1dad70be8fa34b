"""Previews: ``manager.render`` decides as sending would, and sends and writes nothing."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
import pytest
from pixalert import Alert, RenderDecision, RenderResult
from pixalert.channels import Preview, register_secret
from pixalert.testing import FakeClock, RecordingChannel, make_manager


class RenderingChannel(RecordingChannel):
    """A channel with its own ``render`` (and a secret it would put on the wire)."""

    token = "rendering-channel-token-0123"

    def __init__(self, name: str = "hook") -> None:
        super().__init__(name)
        register_secret(self.token)
        self.rendered: list[Alert] = []

    def render(self, alert: Alert) -> Preview:
        self.rendered.append(alert)
        return Preview(
            "hook",
            {"body": {"title": alert.title}, "headers": {"Authorization": f"Bearer {self.token}"}},
            f"{alert.title} ({self.token})",
        )


async def test_every_routed_channel_is_previewed_and_nothing_is_sent(clock: FakeClock) -> None:
    slack, hook = RecordingChannel("slack"), RenderingChannel()
    config = {"routing": {"high": ["slack", "hook", "pagerduty"]}}
    async with make_manager([slack, hook], clock=clock, config=config) as manager:
        alert = Alert("Disk full", "97%", "high", metadata={"host": "db-1"})
        result = await manager.render(alert)
        assert isinstance(result, RenderResult)
        assert list(result.channels) == ["slack", "hook", "pagerduty"]
        assert result["slack"].decision is RenderDecision.SEND and result["slack"].sends
        generic = result["slack"].preview
        assert generic is not None and generic.content["title"] == "Disk full"
        assert "[HIGH] Disk full" in generic.sketch and "host: db-1" in generic.sketch
        own = result["hook"].preview
        assert own is not None and own.content["body"] == {"title": "Disk full"}
        assert result["pagerduty"].decision is RenderDecision.SKIPPED
        assert result["pagerduty"].preview is None
        assert slack.sent == [] and hook.sent == []
        assert await manager.history() == []  # nothing written
        data = result.to_dict()
        assert data["channels"]["hook"]["decision"] == "send"


async def test_registered_secrets_are_masked_in_previews(clock: FakeClock) -> None:
    hook = RenderingChannel()
    async with make_manager([hook], clock=clock) as manager:
        result = await manager.render(Alert("Disk full", channels=["hook"]))
    preview = result["hook"].preview
    assert preview is not None
    assert RenderingChannel.token not in repr(preview.to_dict())
    assert preview.content["headers"]["Authorization"].startswith("Bearer ")


async def test_render_takes_no_cooldown_and_sees_one_taken(clock: FakeClock) -> None:
    slack = RecordingChannel("slack")
    async with make_manager([slack], clock=clock, config={"cooldown_minutes": 10}) as manager:
        first = await manager.render(Alert("CPU high", priority="low"))
        assert first["slack"].decision is RenderDecision.SEND
        again = await manager.render(Alert("CPU high", priority="low"))
        assert again["slack"].decision is RenderDecision.SEND  # render took no cooldown
        sent = await manager.send_alert("CPU high", "m", "low")
        assert sent["slack"].status == "sent"
        after = await manager.render(Alert("CPU high", priority="low"))
        assert after["slack"].decision is RenderDecision.SUPPRESSED
        assert "cooldown" in (after["slack"].reason or "")
        assert after["slack"].preview is not None  # what it would have sent
        assert len(await manager.history()) == 1
    assert len(slack.sent) == 1


async def test_a_silenced_alert_is_shown_suppressed(clock: FakeClock) -> None:
    slack = RecordingChannel("slack")
    async with make_manager([slack], clock=clock) as manager:
        silence = await manager.silence({"source": "db-*"}, duration=600, comment="maintenance")
        result = await manager.render(Alert("Disk full", source="db-1", priority="low"))
    assert result["slack"].decision is RenderDecision.SUPPRESSED
    assert result["slack"].reason == f"silenced by {silence.id}: maintenance"
    assert slack.sent == []


async def test_grouped_and_held_decisions(clock: FakeClock) -> None:
    slack, mail = RecordingChannel("slack"), RecordingChannel("email")
    config = {
        "routes": [
            {"match": {"team": "db"}, "channels": ["slack"], "group_by": ["team"]},
            {"match": {}, "channels": ["email"], "for": "2m"},
        ]
    }
    async with make_manager([slack, mail], clock=clock, config=config) as manager:
        grouped = await manager.render(Alert("Disk full", metadata={"team": "db"}))
        held = await manager.render(Alert("CPU hot", metadata={"team": "web"}))
        assert await manager.history() == []
    slack_render = grouped["slack"]
    assert slack_render.decision is RenderDecision.GROUPED and slack_render.route == 0
    assert slack_render.group_key is not None and slack_render.group_key.startswith("slack|0|")
    assert slack_render.preview is not None and "Disk full" in slack_render.preview.sketch
    email = held["email"]
    assert email.decision is RenderDecision.HELD and email.route == 1
    assert email.due is not None
    assert email.due.timestamp() == pytest.approx(clock.now() + 120, abs=5)
    assert "notified only if still firing" in (email.reason or "")
    assert slack.sent == mail.sent == []


async def test_a_muted_route_is_held_until_the_interval_ends() -> None:
    clock = FakeClock(dt.datetime(2026, 6, 1, 21, 0, tzinfo=dt.timezone.utc).timestamp())
    slack = RecordingChannel("slack")
    config = {
        "time_intervals": {
            "nights": [{"times": [{"start_time": "22:00", "end_time": "24:00"}], "location": "UTC"}]
        },
        "routes": [{"match": {}, "channels": ["slack"], "mute_time_intervals": ["nights"]}],
    }
    clock.advance(3600)
    async with make_manager([slack], clock=clock, config=config) as manager:
        result = await manager.render(Alert("Disk full"))
    assert result["slack"].decision is RenderDecision.HELD
    assert "muted by time interval 'nights'" in (result["slack"].reason or "")


async def test_channel_shows_one_channel_even_if_not_routed(clock: FakeClock) -> None:
    slack, hook = RecordingChannel("slack"), RenderingChannel()
    config = {"routing": {"medium": ["slack"]}}
    async with make_manager([slack, hook], clock=clock, config=config) as manager:
        only = await manager.render(Alert("Disk full"), channel="slack")
        assert list(only.channels) == ["slack"]
        other = await manager.render(Alert("Disk full"), channel="hook")
        assert other["hook"].decision is RenderDecision.NOT_ROUTED
        assert other["hook"].preview is not None
        with pytest.raises(ValueError, match="nope"):
            await manager.render(Alert("Disk full"), channel="nope")


async def test_a_channel_that_cannot_build_its_message_says_why(clock: FakeClock) -> None:
    from pixalert import DeliveryError

    class Broken(RecordingChannel):
        def render(self, alert: Alert) -> Preview:
            raise DeliveryError.permanent("email: no recipients")

    async with make_manager([Broken("broken")], clock=clock) as manager:
        result = await manager.render(Alert("Disk full", channels=["broken"]))
    assert result["broken"].error == "email: no recipients"
    assert result["broken"].preview is None


async def test_send_and_render_hand_the_channel_the_same_prepared_alert(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one step that turns (alert, channel) into what ``send`` gets is shared."""
    from pixalert._pipeline import Pipeline

    def prepare(self: Any, alert: Alert, channel: str, **kwargs: Any) -> Alert:
        return attrs.evolve(alert, title=f"{alert.title} via {channel}")

    monkeypatch.setattr(Pipeline, "prepare", prepare)
    hook = RenderingChannel()
    async with make_manager([hook], clock=clock) as manager:
        result = await manager.render(Alert("Disk full", channels=["hook"]))
        await manager.send_alert("Disk full", channels=["hook"])
    assert result["hook"].preview is not None
    assert result["hook"].preview.content["body"] == {"title": "Disk full via hook"}
    assert [a.title for a in hook.sent] == ["Disk full via hook"]


def test_render_sync(clock: FakeClock) -> None:
    slack = RecordingChannel("slack")
    manager = make_manager([slack], clock=clock)
    try:
        result = manager.render_sync(Alert("Disk full"))
    finally:
        manager.close_sync()
    assert result["slack"].decision is RenderDecision.SEND


async def test_a_heartbeat_ping_alert_is_not_recorded_by_render(clock: FakeClock) -> None:
    slack = RecordingChannel("slack")
    config = {"heartbeats": {"backup": {"period": "1h", "match": {"source": "backup"}}}}
    async with make_manager([slack], clock=clock, config=config) as manager:
        result = await manager.render(Alert("backup ok", source="backup"))
        assert result["slack"].decision is RenderDecision.SUPPRESSED
        assert "heartbeat ping for backup" in (result["slack"].reason or "")
        [beat] = await manager.heartbeats()
        assert beat["last_ping"] is None
