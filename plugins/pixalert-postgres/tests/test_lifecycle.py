"""Escalation, acknowledgements and heartbeats with two instances on one PostgreSQL schema
(history and state): each escalation step runs once, an acknowledgement on one instance
stops what the other would escalate, two acknowledgements at once make one, and a
missed heartbeat deadline raises one alert, resolved once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pixalert
import pixalert_postgres
import pytest
from pixalert.channels import Alert, AlertEvent, ChannelSpec, Receipt
from pixalert.testing import FakeClock, RecordingChannel, make_manager, recording_spec

pytestmark = pytest.mark.services


class AckingChannel(RecordingChannel):
    """A recording channel that can show acknowledgements (as PagerDuty and Slack do)."""

    acks: list[tuple[str, str | None]] = []

    def __init__(self, name: str, config: Any = None) -> None:
        super().__init__(name, receipt=lambda a: {"ref": f"{name}:{a.id}"})

    async def acknowledge(
        self, alert: Alert, *, event: AlertEvent, previous: Receipt | None = None
    ) -> bool:
        AckingChannel.acks.append((alert.id, event.by))
        return True


class Plugin:
    """``recording`` and ``acking`` channel types."""

    @pixalert.hookimpl
    def pixalert_channels(self) -> list[ChannelSpec]:
        acking = recording_spec("acking")
        return [recording_spec(), ChannelSpec("acking", acking.config_type, AckingChannel)]


ROUTING = {p: ["slack"] for p in ("low", "medium", "high", "critical")}
POLICY = {
    "steps": [
        {"channels": ["pagerduty"]},
        {"after": "5m", "channels": ["email"]},
        {"after": "10m", "channels": ["pagerduty"]},
    ],
    "repeat": 1,
}


def config(url: str, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "history": url,
        "state": url,
        "channels": {
            "slack": {"type": "recording"},
            "pagerduty": {"type": "acking"},
            "email": {"type": "recording"},
        },
        "routing": ROUTING,
        "routes": [{"match": {"team": "db"}, "channels": ["slack"], "escalation": "db"}],
        "escalation": {"db": POLICY},
    }
    base.update(extra)
    return base


@pytest.fixture(autouse=True)
def _fresh_acks() -> None:
    AckingChannel.acks = []


@pytest.fixture
async def two(schema_url: str, clock: FakeClock) -> AsyncIterator[Callable[..., tuple[Any, Any]]]:
    """Two managers sharing this test's schema (history and state); closed after."""
    made: list[Any] = []

    def make(**extra: Any) -> tuple[Any, Any]:
        for _ in range(2):
            made.append(
                make_manager(
                    clock=clock,
                    config=config(schema_url, **extra),
                    plugins=[pixalert_postgres, Plugin()],
                )
            )
        return made[-2], made[-1]

    yield make
    for manager in made:
        await manager.aclose()


def sent(managers: tuple[Any, ...], channel: str) -> list[Any]:
    return [a for m in managers for a in m.channels[channel].sent]


async def sweep(managers: tuple[Any, ...]) -> None:
    """Both instances sweep at once, then finish what they started."""
    await asyncio.gather(*(m.resume_pending() for m in managers))
    await asyncio.gather(*(m.drain() for m in managers))


async def test_two_instances_run_each_escalation_step_once(
    two: Callable[..., tuple[Any, Any]], clock: FakeClock
) -> None:
    managers = two()
    await managers[0].send_alert("DB down", "", "high", metadata={"team": "db"}, key="db")
    for _ in range(4):  # both sweep at once, over and over, while time goes by
        await sweep(managers)
        clock.advance(300)
    # Round 1: steps 1 and 3; round 2: step 1 (at once after step 3).
    assert len(sent(managers, "pagerduty")) == 3
    assert len(sent(managers, "email")) == 1
    clock.advance(3600)
    for _ in range(3):
        await sweep(managers)
        clock.advance(600)
    assert len(sent(managers, "pagerduty")) == 4
    assert len(sent(managers, "email")) == 2
    assert await managers[1].escalations() == []


async def test_an_ack_on_one_instance_stops_the_escalation_on_the_other(
    two: Callable[..., tuple[Any, Any]], clock: FakeClock
) -> None:
    first, second = managers = two()
    await first.send_alert("DB down", "", "high", metadata={"team": "db"}, key="db")
    await sweep(managers)
    assert len(sent(managers, "pagerduty")) == 1
    (origin,) = sent(managers, "slack")
    listed = await second.escalations()
    assert [(e["key"], e["step"]) for e in listed] == [("db", 2)]
    clock.advance(120)
    outcome = await second.ack(origin.id, by="alice")
    assert outcome.changed and outcome.escalation_stopped
    assert await first.escalations() == []
    clock.advance(7200)
    await sweep(managers)
    assert len(sent(managers, "pagerduty")) == 1 and sent(managers, "email") == []
    # PagerDuty was told, once, by the instance that took the ack.
    assert [by for _, by in AckingChannel.acks] == ["alice"]
    entry = await first.get_alert(origin.id)
    assert [(e["kind"], e["by"]) for e in entry["events"] if e["kind"] == "acknowledged"] == [
        ("acknowledged", "alice")
    ]


async def test_two_acks_at_once_on_two_instances_make_one(
    two: Callable[..., tuple[Any, Any]],
) -> None:
    first, second = managers = two()
    await first.send_alert("DB down", "", "critical")
    (origin,) = sent(managers, "slack")
    outcomes = await asyncio.gather(
        first.ack(origin.id, by="alice"), second.ack(origin.id, by="bob")
    )
    assert sorted(o.changed for o in outcomes) == [False, True]
    events = (await second.get_alert(origin.id))["events"]
    assert len([e for e in events if e["kind"] == "acknowledged"]) == 1


async def test_a_missed_heartbeat_raises_one_alert_and_one_ping_resolves_it(
    two: Callable[..., tuple[Any, Any]], clock: FakeClock
) -> None:
    beat = {"job": {"period": "10m", "grace": "0s", "channels": ["slack"]}}
    first, second = managers = two(heartbeats=beat)
    await first.heartbeat_ping("job")
    clock.advance(601)
    await sweep(managers)
    await sweep(managers)
    assert [(a.key, a.status) for a in sent(managers, "slack")] == [("heartbeat:job", "firing")]
    assert (await first.heartbeats())[0]["state"] == "late"
    outcome = await second.heartbeat_ping("job")
    assert outcome["alert"] == "resolved"
    again = await first.heartbeat_ping("job")
    assert again["alert"] is None
    await sweep(managers)
    assert [(a.key, a.status) for a in sent(managers, "slack")] == [
        ("heartbeat:job", "firing"),
        ("heartbeat:job", "resolved"),
    ]
