"""Noise control under real NotificationManagers sharing one PostgreSQL schema: a group
whose flush was cut short by an instance that died is notified by another at once
(the dead instance's claims on the group's job and members went with its lock), and a
resolve recorded on one instance supersedes what another holds back."""

from __future__ import annotations

import asyncio
from typing import Any

import pixalert_postgres
import pytest
from pixalert import DeliveryStatus
from pixalert.channels import Group, Receipt
from pixalert.storage import SUPERSEDED
from pixalert.testing import FakeClock, RecordingChannel, make_manager

pytestmark = pytest.mark.services

GROUPING = {"grouping": {"group_by": ["source"], "group_wait": "30s"}, "state": "memory://"}


class GroupChannel(RecordingChannel):
    """Records the groups it notifies; with ``stall``, waits forever in its first one."""

    def __init__(self, *, stall: bool = False) -> None:
        super().__init__("slack")
        self.groups: list[Group] = []
        self.entered = asyncio.Event()
        self.stall = stall

    async def send_group(self, group: Group, *, previous: Receipt | None = None) -> Receipt:
        self.entered.set()
        if self.stall:
            await asyncio.Event().wait()  # the process dies in here
        self.groups.append(group)
        return {"ts": str(len(self.groups))}


def manager(channel: RecordingChannel, clock: FakeClock, url: str, **config: Any) -> Any:
    return make_manager(
        [channel], clock=clock, config={**GROUPING, **config}, history=url,
        plugins=[pixalert_postgres],
    )  # fmt: skip


async def test_a_flush_cut_short_by_a_dead_instance_is_done_by_another_at_once(
    schema_url: str, clock: FakeClock
) -> None:
    stalled, slack = GroupChannel(stall=True), GroupChannel()
    dying, other = manager(stalled, clock, schema_url), manager(slack, clock, schema_url)
    async with other:
        await dying.start()
        for i in range(3):
            await dying.send_alert(f"a{i}", "m", "high", source="db", channels=["slack"])
        clock.advance(30)
        flushing = asyncio.ensure_future(dying.resume_pending())
        await stalled.entered.wait()  # it holds the group's job and its three members
        assert await other.resume_pending() == 0  # a live holder: nothing is taken
        await dying.history_store.aclose()  # the process dies: its lock goes with it
        flushing.cancel()
        await asyncio.gather(flushing, return_exceptions=True)
        await other.resume_pending()  # at once, not after the lease
        await other.resume_pending()
        history = await other.history(hours=1)
    await dying.aclose()
    assert [len(g.alerts) for g in slack.groups] == [3]
    assert {e["results"]["slack"]["status"] for e in history} == {"sent"}


async def test_a_resolve_on_one_instance_supersedes_what_another_holds(
    schema_url: str, clock: FakeClock
) -> None:
    first_slack, second_slack = GroupChannel(), GroupChannel()
    first = manager(first_slack, clock, schema_url)
    second = manager(second_slack, clock, schema_url)
    async with first, second:
        held = await first.send_alert("Disk full", "m", "high", source="db", key="disk")
        assert held["slack"].status is DeliveryStatus.HELD
        await second.send_alert(
            "Disk full", "m", "high", source="db", key="disk", status="resolved"
        )
        clock.advance(30)
        await asyncio.gather(first.resume_pending(), second.resume_pending())
        history = {e["status"]: e for e in await second.history(hours=1)}
    assert first_slack.groups == second_slack.groups == []
    firing = history["firing"]["results"]["slack"]
    assert (firing["status"], firing["error"]) == ("suppressed", SUPERSEDED)
