"""Acknowledging and resolving incidents: recorded with who, when and through what,
idempotent, told to the channels that can show it, unknown ids refused."""

from __future__ import annotations

from typing import Any

import pytest
from pixalert import AckOutcome, AlertNotFound, DeliveryError, ResolveOutcome
from pixalert.channels import Alert, AlertEvent, Receipt
from pixalert.testing import FakeClock, RecordingChannel, make_manager

ROUTE_ALL = {"routing": {p: ["*"] for p in ("low", "medium", "high", "critical")}}


class AckingChannel(RecordingChannel):
    """A recording channel that can show acknowledgements (as PagerDuty and Slack do)."""

    def __init__(self, name: str, *, ack_fail: list[BaseException] | None = None) -> None:
        super().__init__(name, receipt=lambda a: {"ref": f"{name}:{a.id}"})
        self.acks: list[tuple[Alert, AlertEvent, Receipt | None]] = []
        self.ack_fail = list(ack_fail or [])
        self.ack_calls = 0

    async def acknowledge(
        self, alert: Alert, *, event: AlertEvent, previous: Receipt | None = None
    ) -> bool:
        self.ack_calls += 1
        if self.ack_fail:
            raise self.ack_fail.pop(0)
        self.acks.append((alert, event, previous))
        return True


async def test_ack_records_who_when_and_through_what(clock: FakeClock) -> None:
    pager = AckingChannel("pagerduty")
    async with make_manager([pager], clock=clock, config=ROUTE_ALL) as manager:
        results = await manager.send_alert("DB down", "primary unreachable", "critical")
        assert results["pagerduty"].status == "sent"
        alert_id = pager.sent[0].id
        clock.advance(60)
        outcome = await manager.ack(alert_id, by="alice", note="looking", via="cli")
        assert isinstance(outcome, AckOutcome)
        assert outcome.changed and outcome.state == "acknowledged"
        assert (outcome.by, outcome.via, outcome.note) == ("alice", "cli", "looking")
        assert outcome.at is not None and outcome.at.timestamp() == pytest.approx(clock.now())
        assert outcome.channels == {"pagerduty": "acknowledged"}
        assert "acknowledged by alice via cli" in outcome.detail
        stored = await manager.get_alert(alert_id)
        assert stored is not None
        assert [(e["kind"], e["by"], e["via"], e["note"]) for e in stored["events"]] == [
            ("acknowledged", "alice", "cli", "looking")
        ]
        # The channel saw the alert it announced, the event and the receipt of that send.
        acked, event, previous = pager.acks[0]
        assert acked.id == alert_id and event.by == "alice"
        assert previous == {"ref": f"pagerduty:{alert_id}"}
        history = await manager.history()
        assert history[0]["events"][0]["kind"] == "acknowledged"


async def test_a_second_ack_changes_nothing_and_says_who_acked_first(clock: FakeClock) -> None:
    pager = AckingChannel("pagerduty")
    async with make_manager([pager], clock=clock, config=ROUTE_ALL) as manager:
        await manager.send_alert("DB down", "x", "critical")
        alert_id = pager.sent[0].id
        first = await manager.ack(alert_id, by="alice", via="slack")
        clock.advance(30)
        again = await manager.ack(alert_id, by="bob", via="api")
        assert first.changed and not again.changed
        assert (again.state, again.by, again.via) == ("acknowledged", "alice", "slack")
        assert "already acknowledged by alice via slack" in again.detail
        assert len(pager.acks) == 1
        events = (await manager.get_alert(alert_id))["events"]  # type: ignore[index]
        assert len(events) == 1


async def test_an_ack_of_another_alert_of_the_same_incident_is_the_same_ack(
    clock: FakeClock,
) -> None:
    slack = AckingChannel("slack")
    async with make_manager([slack], clock=clock, config=ROUTE_ALL) as manager:
        await manager.send_alert("CPU high", "", "low", key="cpu", cooldown=0)
        clock.advance(10)
        await manager.send_alert("CPU high", "again", "low", key="cpu", cooldown=0)
        first, second = slack.sent
        assert (await manager.ack(second.id, by="alice")).changed
        assert not (await manager.ack(first.id, by="bob")).changed


async def test_unknown_ids_raise_alert_not_found(clock: FakeClock) -> None:
    async with make_manager([RecordingChannel("slack")], clock=clock) as manager:
        for call in (manager.ack, manager.resolve):
            with pytest.raises(AlertNotFound) as caught:
                await call("0123456789abcdef")
            assert isinstance(caught.value, KeyError)
            assert str(caught.value) == "no alert '0123456789abcdef' in the history"
        with pytest.raises(AlertNotFound):
            await manager.ack("")


async def test_only_channels_that_announced_it_are_told(clock: FakeClock) -> None:
    pager, slack = AckingChannel("pagerduty"), AckingChannel("slack")
    async with make_manager([pager, slack], clock=clock) as manager:
        await manager.send_alert("t", "", "low")  # low: slack only
        outcome = await manager.ack(slack.sent[0].id)
        assert outcome.channels == {"slack": "acknowledged"}
        assert pager.acks == [] and len(slack.acks) == 1


async def test_a_failed_channel_update_is_retried_on_the_timeline(clock: FakeClock) -> None:
    pager = AckingChannel("pagerduty", ack_fail=[DeliveryError("HTTP 503"), DeliveryError("503")])
    async with make_manager([pager], clock=clock, config=ROUTE_ALL) as manager:
        await manager.send_alert("t", "", "high")
        outcome = await manager.ack(pager.sent[0].id, by="alice")
        assert outcome.changed
        assert outcome.channels == {"pagerduty": "retrying: HTTP 503"}
        assert pager.acks == []
        clock.advance(31)
        assert await manager.resume_pending() == 1
        assert pager.acks == []  # failed again: the next try is later
        clock.advance(61)
        await manager.resume_pending()
        assert len(pager.acks) == 1 and pager.acks[0][1].by == "alice"
        clock.advance(3600)
        assert await manager.resume_pending() == 0


async def test_a_permanent_channel_failure_is_reported_not_retried(clock: FakeClock) -> None:
    pager = AckingChannel("pagerduty", ack_fail=[DeliveryError.permanent("HTTP 400 invalid")])
    async with make_manager([pager], clock=clock, config=ROUTE_ALL) as manager:
        await manager.send_alert("t", "", "high")
        outcome = await manager.ack(pager.sent[0].id)
        assert outcome.channels == {"pagerduty": "failed: HTTP 400 invalid"}
        clock.advance(3600)
        assert await manager.resume_pending() == 0


async def test_resolve_sends_the_resolve_and_records_who(clock: FakeClock) -> None:
    pager = AckingChannel("pagerduty")
    async with make_manager([pager], clock=clock, config=ROUTE_ALL) as manager:
        await manager.send_alert("DB down", "primary unreachable", "critical", key="db")
        alert_id = pager.sent[0].id
        clock.advance(120)
        outcome = await manager.resolve(alert_id, by="bob", note="failed over", via="api")
        assert isinstance(outcome, ResolveOutcome)
        assert outcome.changed and outcome.state == "resolved"
        assert outcome.results["pagerduty"].status == "sent"
        resolve = pager.sent[1]
        assert resolve.status == "resolved" and resolve.key == "db"
        assert resolve.id == outcome.resolve_id
        assert resolve.created_at.timestamp() == pytest.approx(clock.now())
        assert "Resolved by bob via api: failed over" in resolve.message
        assert pager.previous[1] == {"ref": f"pagerduty:{alert_id}"}  # updates what it sent
        events = (await manager.get_alert(alert_id))["events"]  # type: ignore[index]
        assert [(e["kind"], e["by"], e["via"]) for e in events] == [("resolved", "bob", "api")]
        again = await manager.resolve(alert_id, by="carol")
        assert not again.changed and "already resolved" in again.detail
        assert again.resolve_id == resolve.id
        assert len(pager.sent) == 2
        late = await manager.ack(alert_id, by="dave")
        assert not late.changed and late.state == "resolved"


async def test_a_resolve_that_arrived_ends_the_incident_and_a_new_one_can_be_acked(
    clock: FakeClock,
) -> None:
    slack = AckingChannel("slack")
    async with make_manager([slack], clock=clock) as manager:
        await manager.send_alert("t", "", "low", key="k")
        first = slack.sent[0].id
        clock.advance(10)
        await manager.send_alert("t", "", "low", key="k", status="resolved")
        assert not (await manager.ack(first)).changed
        assert not (await manager.resolve(first)).changed
        clock.advance(10)
        await manager.send_alert("t", "", "low", key="k", cooldown=0)
        assert (await manager.ack(slack.sent[-1].id, by="alice")).changed
        # The old alert belongs to the old incident still.
        assert (await manager.ack(first)).state == "resolved"


async def test_outcomes_are_json_safe(clock: FakeClock) -> None:
    import json

    slack = AckingChannel("slack")
    async with make_manager([slack], clock=clock) as manager:
        await manager.send_alert("t", "", "low")
        ack = await manager.ack(slack.sent[0].id, by="alice")
        resolve = await manager.resolve(slack.sent[0].id, by="alice")
    for outcome in (ack, resolve):
        data: dict[str, Any] = json.loads(json.dumps(outcome.to_dict()))
        assert data["alert_id"] == slack.sent[0].id and data["changed"] is True
    assert json.loads(json.dumps(resolve.to_dict()))["results"]["slack"]["status"] == "sent"


def test_ack_from_sync_code(clock: FakeClock) -> None:
    slack = AckingChannel("slack")
    manager = make_manager([slack], clock=clock)
    try:
        manager.send_alert_sync("t", "", "low")
        outcome = manager.run_sync(manager.ack(slack.sent[0].id, by="alice"))
        assert outcome.changed and slack.acks[0][1].by == "alice"
    finally:
        manager.close_sync()


class InteractiveChannel(AckingChannel):
    """A channel whose service sends button clicks (the receiver's POST /<channel>/actions)."""

    async def interaction(self, headers: Any, body: bytes) -> Any:
        from pixalert.channels import Interaction, InteractionRejected

        if headers.get("x-signature") != "good":
            raise InteractionRejected(401, "bad signature")
        if body == b"nothing":
            return None
        action, alert_id = body.decode().split(":")
        return Interaction(action, alert_id, by="carol")  # type: ignore[arg-type]


async def test_a_channel_interaction_acks_in_the_background(clock: FakeClock) -> None:
    from pixalert.channels import InteractionRejected

    chat = InteractiveChannel("chat")
    plain = RecordingChannel("plain")
    async with make_manager([chat, plain], clock=clock, config=ROUTE_ALL) as manager:
        await manager.send_alert("t", "", "low")
        alert_id = chat.sent[0].id
        with pytest.raises(InteractionRejected) as refused:
            await manager.handle_interaction(
                "chat", {"x-signature": "bad"}, b"ack:" + alert_id.encode()
            )
        assert refused.value.status == 401
        await manager.drain()
        assert (await manager.get_alert(alert_id))["events"] == []  # type: ignore[index]
        assert await manager.handle_interaction("chat", {"x-signature": "good"}, b"nothing") is None
        got = await manager.handle_interaction(
            "chat", {"x-signature": "good"}, b"ack:" + alert_id.encode()
        )
        assert got is not None and got.action == "ack"
        await manager.drain()
        events = (await manager.get_alert(alert_id))["events"]  # type: ignore[index]
        assert [(e["kind"], e["by"], e["via"]) for e in events] == [
            ("acknowledged", "carol", "chat")
        ]
        with pytest.raises(LookupError, match="channel 'plain' takes no interactions"):
            await manager.handle_interaction("plain", {}, b"")
        with pytest.raises(LookupError):
            await manager.handle_interaction("nope", {}, b"")
        # An unknown alert from a verified click is logged, not raised into the receiver.
        await manager.handle_interaction("chat", {"x-signature": "good"}, b"resolve:ffff")
        await manager.drain()


async def test_two_acks_at_once_on_two_instances_make_one(clock: FakeClock) -> None:
    import asyncio
    import tempfile

    from pixalert.storage import MemoryStateBackend

    url = f"sqlite:///{tempfile.mkdtemp(prefix='pixalert-ack-')}/history.db"
    shared = MemoryStateBackend(clock)
    pagers = [AckingChannel("pagerduty") for _ in range(2)]
    managers = [
        make_manager([p], clock=clock, config=ROUTE_ALL, history=url, state=shared) for p in pagers
    ]
    try:
        await managers[0].send_alert("DB down", "", "critical")
        alert_id = pagers[0].sent[0].id
        outcomes = await asyncio.gather(
            managers[0].ack(alert_id, by="alice"), managers[1].ack(alert_id, by="bob")
        )
        assert sorted(o.changed for o in outcomes) == [False, True]
        events = (await managers[1].get_alert(alert_id))["events"]  # type: ignore[index]
        assert len(events) == 1
    finally:
        for m in managers:
            await m.aclose()
