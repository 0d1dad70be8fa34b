"""Escalation policies on the timeline: steps at their due time, an ack or a resolve
stops them, a restart between steps keeps the time, two instances run each step once."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import attrs
import pixalert
import pytest
from pixalert import ConfigError
from pixalert.channels import ChannelSpec
from pixalert.testing import FakeClock, RecordingChannel, make_manager


@attrs.define
class MailerConfig:
    """A channel type with recipients, as email has."""

    recipients: list[str] = attrs.Factory(lambda: ["oncall@example.com"])


class Mailer(RecordingChannel):
    """Records what it sent and to whom."""

    log: list[tuple[str, str, tuple[str, ...]]] = []

    def __init__(self, name: str, config: MailerConfig) -> None:
        super().__init__(name)
        self.recipients = tuple(config.recipients)

    async def send(self, alert: Any, *, previous: Any = None) -> Any:
        Mailer.log.append((self.name, alert.title, self.recipients))
        return await super().send(alert, previous=previous)


class Plugin:
    """``recording`` and ``mailer`` channel types."""

    @pixalert.hookimpl
    def pixalert_channels(self) -> list[ChannelSpec]:
        from pixalert.testing import recording_spec

        return [
            recording_spec(),
            ChannelSpec("mailer", MailerConfig, Mailer, recipients_field="recipients"),
        ]


CHANNELS = {
    "slack": {"type": "recording"},
    "pagerduty": {"type": "recording"},
    "email": {"type": "mailer", "recipients": ["team@example.com"]},
}
POLICY = {
    "steps": [
        {"channels": ["pagerduty"]},
        {"after": "5m", "channels": ["email"], "recipients": ["cto@example.com"]},
        {"after": "10m", "channels": ["pagerduty"]},
    ],
    "repeat": 1,
}


def config(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "channels": CHANNELS,
        "routing": {
            "low": ["slack"],
            "medium": ["slack"],
            "high": ["slack"],
            "critical": ["slack"],
        },
        "routes": [{"match": {"team": "db"}, "channels": ["slack"], "escalation": "db"}],
        "escalation": {"db": POLICY},
    }
    base.update(extra)
    return base


def sent(manager: Any, name: str) -> list[Any]:
    return list(manager.channels[name].sent)


@pytest.fixture(autouse=True)
def _fresh_log() -> None:
    Mailer.log = []


async def test_steps_run_at_their_due_time_then_repeat(clock: FakeClock) -> None:
    async with make_manager(config=config(), plugins=[Plugin()], clock=clock) as manager:
        start = clock.now()
        await manager.send_alert("DB down", "primary", "high", metadata={"team": "db"}, key="db")
        assert len(sent(manager, "slack")) == 1 and sent(manager, "pagerduty") == []
        # Step 1 is due at once: it runs with the next sweep.
        assert await manager.resume_pending() >= 1
        await manager.drain()
        pages = sent(manager, "pagerduty")
        assert len(pages) == 1 and pages[0].key == "db"
        assert pages[0].metadata["escalation"] == (
            "db step 1 of 3, round 1 of 2: not acknowledged after 0s"
        )
        listing = await manager.escalations()
        assert [(e["key"], e["step"], e["steps"], e["channels"]) for e in listing] == [
            ("db", 2, 3, ["email@db.2"])
        ]
        assert listing[0]["next_at"] == pixalert._clock.to_datetime(start + 300).isoformat()
        clock.advance(299)
        await manager.resume_pending()
        assert Mailer.log == []
        clock.advance(1)
        await manager.resume_pending()
        await manager.drain()
        assert Mailer.log == [("email@db.2", "DB down", ("cto@example.com",))]
        clock.advance(600)
        await manager.resume_pending()
        await manager.drain()
        # Step 3, then round 2: the steps again, the first at once after the last.
        labels = [a.metadata["escalation"].split(":")[0] for a in sent(manager, "pagerduty")]
        assert labels == [
            "db step 1 of 3, round 1 of 2",
            "db step 3 of 3, round 1 of 2",
            "db step 1 of 3, round 2 of 2",
        ]
        clock.advance(300)
        await manager.resume_pending()
        clock.advance(600)
        await manager.resume_pending()
        await manager.drain()
        assert len(sent(manager, "pagerduty")) == 4 and len(Mailer.log) == 2
        assert await manager.escalations() == []  # done
        clock.advance(86400)
        assert await manager.resume_pending() == 0
        origin = await manager.get_alert(sent(manager, "slack")[0].id)
        events = origin["events"]
        assert [e["kind"] for e in events] == ["escalated"] * 6
        assert events[1]["note"] == "db step 2 of 3, round 1 of 2: email@db.2"


async def test_an_ack_mid_way_stops_it(clock: FakeClock) -> None:
    async with make_manager(config=config(), plugins=[Plugin()], clock=clock) as manager:
        await manager.send_alert("DB down", "", "high", metadata={"team": "db"}, key="db")
        await manager.resume_pending()
        await manager.drain()
        assert len(sent(manager, "pagerduty")) == 1
        origin = sent(manager, "slack")[0]
        clock.advance(120)
        outcome = await manager.ack(origin.id, by="alice")
        assert outcome.escalation_stopped
        assert await manager.escalations() == []
        stopped = await manager.escalations(include_stopped=True)
        assert stopped[0]["state"] == "acknowledged" and stopped[0]["acknowledged_by"] == "alice"
        clock.advance(7200)
        await manager.resume_pending()
        await manager.drain()
        assert len(sent(manager, "pagerduty")) == 1 and Mailer.log == []
        # The same incident firing again does not start it over.
        await manager.send_alert(
            "DB down", "", "high", metadata={"team": "db"}, key="db", cooldown=0
        )
        clock.advance(7200)
        await manager.resume_pending()
        await manager.drain()
        assert len(sent(manager, "pagerduty")) == 1


async def test_an_ack_of_an_escalation_notice_stops_it_too(clock: FakeClock) -> None:
    async with make_manager(config=config(), plugins=[Plugin()], clock=clock) as manager:
        await manager.send_alert("DB down", "", "high", metadata={"team": "db"}, key="db")
        await manager.resume_pending()
        await manager.drain()
        notice = sent(manager, "pagerduty")[0]
        assert (await manager.ack(notice.id, by="pager-person")).escalation_stopped
        clock.advance(3600)
        await manager.resume_pending()
        await manager.drain()
        assert Mailer.log == []


async def test_a_resolve_stops_it_and_reaches_the_channels_escalation_told(
    clock: FakeClock,
) -> None:
    async with make_manager(config=config(), plugins=[Plugin()], clock=clock) as manager:
        await manager.send_alert("DB down", "", "high", metadata={"team": "db"}, key="db")
        await manager.resume_pending()
        await manager.drain()
        clock.advance(300)
        await manager.resume_pending()
        await manager.drain()
        clock.advance(10)
        # The resolve goes as routed (slack), and to the channels only escalation told.
        await manager.send_alert(
            "DB down", "", "high", metadata={"team": "db"}, key="db", status="resolved"
        )
        await manager.drain()
        assert [a.status for a in sent(manager, "slack")] == ["firing", "resolved"]
        assert [a.status for a in sent(manager, "pagerduty")] == ["firing", "resolved"]
        assert [(n, t) for n, t, _ in Mailer.log] == [("email@db.2", "DB down")] * 2
        assert await manager.escalations(include_stopped=True) == []
        clock.advance(3600)
        await manager.resume_pending()
        await manager.drain()
        assert len(sent(manager, "pagerduty")) == 2
        # A new incident of that key escalates again.
        await manager.send_alert(
            "DB down", "", "high", metadata={"team": "db"}, key="db", cooldown=0
        )
        await manager.resume_pending()
        await manager.drain()
        assert len(sent(manager, "pagerduty")) == 3


async def test_manager_resolve_stops_it(clock: FakeClock) -> None:
    async with make_manager(config=config(), plugins=[Plugin()], clock=clock) as manager:
        await manager.send_alert("DB down", "", "high", metadata={"team": "db"}, key="db")
        await manager.resume_pending()
        await manager.drain()
        outcome = await manager.resolve(sent(manager, "slack")[0].id, by="bob")
        await manager.drain()
        assert outcome.changed
        assert [a.status for a in sent(manager, "pagerduty")] == ["firing", "resolved"]
        clock.advance(7200)
        await manager.resume_pending()
        assert Mailer.log == []


async def test_the_default_policy_applies_to_critical_alerts_no_route_gives_another(
    clock: FakeClock,
) -> None:
    cfg = config(
        escalation={
            "db": POLICY,
            "default": {"steps": [{"after": "1m", "channels": ["pagerduty"]}]},
        }
    )
    async with make_manager(config=cfg, plugins=[Plugin()], clock=clock) as manager:
        await manager.send_alert("Web down", "", "critical", key="web")
        await manager.send_alert("Web slow", "", "high", key="slow")
        await manager.send_alert("DB down", "", "critical", metadata={"team": "db"}, key="db")
        policies = {e["key"]: e["policy"] for e in await manager.escalations()}
        assert policies == {"web": "default", "db": "db"}


async def test_an_at_once_step_skips_the_channels_the_alert_went_to(clock: FakeClock) -> None:
    policy = {"steps": [{"channels": ["slack", "pagerduty"]}]}
    async with make_manager(
        config=config(escalation={"db": policy}), plugins=[Plugin()], clock=clock
    ) as manager:
        await manager.send_alert("DB down", "", "high", metadata={"team": "db"}, key="db")
        await manager.resume_pending()
        await manager.drain()
        assert len(sent(manager, "slack")) == 1 and len(sent(manager, "pagerduty")) == 1


async def test_a_suppressed_alert_does_not_escalate(clock: FakeClock) -> None:
    async with make_manager(config=config(), plugins=[Plugin()], clock=clock) as manager:
        await manager.silence({"key": "db"}, duration=3600)
        await manager.send_alert("DB down", "", "high", metadata={"team": "db"}, key="db")
        assert await manager.escalations() == []
        clock.advance(7200)
        await manager.resume_pending()
        assert sent(manager, "pagerduty") == []


async def test_a_restart_between_steps_runs_the_next_step_on_time(clock: FakeClock) -> None:
    folder = tempfile.mkdtemp(prefix="pixalert-esc-")
    url = f"sqlite:///{folder}/history.db"
    first = make_manager(config=config(), plugins=[Plugin()], clock=clock, history=url)
    async with first:
        await first.send_alert("DB down", "", "high", metadata={"team": "db"}, key="db")
        await first.resume_pending()
        await first.drain()
        assert len(sent(first, "pagerduty")) == 1
    clock.advance(300)  # down over the due time of step 2
    second = make_manager(config=config(), plugins=[Plugin()], clock=clock, history=url)
    async with second:
        await second.resume_pending()
        await second.drain()
        assert Mailer.log == [("email@db.2", "DB down", ("cto@example.com",))]
        listing = await second.escalations()
        # Step 3 is due 10 minutes after step 2 was due, not after the restart.
        assert listing[0]["step"] == 3
        assert (
            listing[0]["next_at"]
            == pixalert._clock.to_datetime(
                listing_start(await second.history(key="db")) + 900
            ).isoformat()
        )


def listing_start(history: list[dict[str, Any]]) -> float:
    from datetime import datetime

    return datetime.fromisoformat(history[-1]["created_at"]).timestamp()


async def test_two_instances_on_one_store_run_each_step_once(clock: FakeClock) -> None:
    folder = Path(tempfile.mkdtemp(prefix="pixalert-esc-"))
    url = f"sqlite:///{folder}/history.db"
    managers = [
        make_manager(config=config(), plugins=[Plugin()], clock=clock, history=url)
        for _ in range(2)
    ]
    try:
        await managers[0].send_alert("DB down", "", "high", metadata={"team": "db"}, key="db")
        for _ in range(4):  # both sweep at once, over and over, while time goes by
            await asyncio.gather(*(m.resume_pending() for m in managers))
            await asyncio.gather(*(m.drain() for m in managers))
            clock.advance(300)
        pages = sum(len(sent(m, "pagerduty")) for m in managers)
        assert pages == 3  # round 1: steps 1 and 3, round 2: step 1 (at once after step 3)
        assert len(Mailer.log) == 1
        clock.advance(3600)
        for _ in range(3):
            await asyncio.gather(*(m.resume_pending() for m in managers))
            await asyncio.gather(*(m.drain() for m in managers))
            clock.advance(600)
        assert sum(len(sent(m, "pagerduty")) for m in managers) == 4
        assert len(Mailer.log) == 2
    finally:
        for m in managers:
            await m.aclose()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"routes": [{"match": {"team": "db"}, "escalation": "nope"}]},
            "unknown escalation policy 'nope' (configured: db) @ routes[0].escalation",
        ),
        (
            {"escalation": {"db": {"steps": [{"channels": ["sms"]}]}}},
            "channel 'sms' is not configured",
        ),
        (
            {"escalation": {"db": {"steps": [{"channels": ["slack"], "recipients": ["a@b.c"]}]}}},
            "none of this step's channels (slack) has recipients to replace "
            "@ escalation.db.steps[0].recipients",
        ),
        (
            {"escalation": {"db": {"steps": [{"channels": ["email"], "recipients": [3]}]}}},
            "expected addresses, got 3 @ escalation['db'].steps[0].recipients",
        ),
        ({"escalation": {"db": {"steps": [{"channels": []}]}}}, "expected at least one channel"),
        (
            {"escalation": {"db": {"steps": POLICY["steps"], "repeat": "x"}}},
            "expected how many more times",
        ),
    ],
)
def test_config_errors_name_the_problem(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make_manager(config=config(**extra), plugins=[Plugin()])
    assert message in str(caught.value)


def test_a_derived_channel_is_not_part_of_every_channel() -> None:
    manager = make_manager(config=config(), plugins=[Plugin()])
    assert "email@db.2" in manager.channels
    alert = pixalert.Alert("t", priority="critical")
    manager.settings.routing.critical = ["*"]
    assert "email@db.2" not in manager.route(alert)
    assert set(manager.route(alert)) == {"slack", "pagerduty", "email"}


async def test_a_resolve_of_an_escalation_notice_goes_as_the_alert_was_routed(
    clock: FakeClock,
) -> None:
    async with make_manager(config=config(), plugins=[Plugin()], clock=clock) as manager:
        await manager.send_alert("DB down", "", "high", metadata={"team": "db"}, key="db")
        await manager.resume_pending()
        await manager.drain()
        notice = sent(manager, "pagerduty")[0]
        outcome = await manager.resolve(notice.id, by="pager-person")
        await manager.drain()
        assert set(outcome.results) == {"slack"}  # as routed
        assert [a.status for a in sent(manager, "slack")] == ["firing", "resolved"]
        assert [a.status for a in sent(manager, "pagerduty")] == ["firing", "resolved"]
        assert "escalation" not in sent(manager, "slack")[1].metadata
