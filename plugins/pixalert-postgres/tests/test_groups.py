"""Held deliveries and groups on the real PostgreSQL, beyond the conformance suite.

Recording members of groups stays one statement per batch, with their groups'
jobs; batches racing into the same groups neither deadlock nor lose a job;
instances racing for a group's members get each once; a member recorded while
its group's job is being finished keeps the job on the timeline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from pixalert import Alert, DeliveryResult
from pixalert.storage import Planned
from pixalert.testing import FakeClock
from pixalert_postgres import PostgresHistoryStore
from psycopg import sql
from psycopg.types.json import Jsonb

from .conftest import Calls

pytestmark = pytest.mark.services

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def clock() -> FakeClock:
    """Whole seconds (PostgreSQL keeps microseconds: due times compare exactly)."""
    return FakeClock(float(int(time.time())))


def alert(n: int, **kwargs: Any) -> Alert:
    return Alert(f"alert {n}", "m", "high", created_at=T0 + timedelta(seconds=n), **kwargs)


def member(group: str, due: float, *, flush_by: float | None = None) -> Planned:
    return Planned("slack", due, group=group, note=f"in {group}", flush_by=flush_by)


def sent(channel: str = "slack") -> DeliveryResult:
    return DeliveryResult(channel, "sent", 1, None, 0.01)


async def test_recording_members_is_one_round_trip_with_their_groups_jobs(
    store: PostgresHistoryStore, clock: FakeClock
) -> None:
    await store.open_owner("i1")
    now = clock.now()
    calls = Calls(store)
    alerts = [alert(i) for i in range(300)]
    plans: list[list[str | Planned]] = [
        [member(f"g{i % 3}", now + 60 - i % 7, flush_by=now + 30 + i % 3), "email"]
        for i in range(300)
    ]
    recorded = await store.record_many(alerts, plans, owner="i1", lease=60)
    assert calls.take() == 1
    assert {c.channel for r in recorded for c in r.claims} == {"email"}
    # One job per group, due at the soonest flush_by of its members.
    assert [(j.ref, j.due, dict(j.payload)) for j in await store.jobs("group")] == [
        ("g0", now + 30, {}),
        ("g1", now + 31, {}),
        ("g2", now + 32, {}),
    ]
    calls.take()
    clock.advance(60)
    (job, *_) = await store.claim_jobs(owner="i1", lease=60)
    members = await store.claim_group(job.job.ref, owner="i1", lease=60)
    assert calls.take() == 2
    assert len(members) == 100
    assert [c.alert.created_at for c in members] == sorted(c.alert.created_at for c in members)
    await store.settle([(c, sent()) for c in members])
    calls.take()
    assert await store.finish_job(job)
    assert calls.take() == 1
    assert [j.ref for j in await store.jobs("group")] == ["g1", "g2"]


async def test_batches_racing_into_the_same_groups_keep_one_job_each(
    make_store: Callable[..., PostgresHistoryStore], clock: FakeClock
) -> None:
    now = clock.now()
    stores = [make_store() for _ in range(4)]
    for n, store in enumerate(stores):
        await store.open_owner(f"i{n}")

    async def write(n: int, store: PostgresHistoryStore) -> None:
        for batch in range(5):
            alerts = [alert(1000 * n + 100 * batch + i) for i in range(20)]
            # Each batch joins the groups in another order, sooner and later.
            plans: list[list[str | Planned]] = [
                [member(f"g{(i + n) % 5}", now + 100 - n * 10 - batch - i % 5)] for i in range(20)
            ]
            await store.record_many(alerts, plans, owner=f"i{n}", lease=60)

    await asyncio.gather(*(write(n, s) for n, s in enumerate(stores)))
    jobs = {j.ref: j.due for j in await stores[0].jobs("group")}
    assert sorted(jobs) == ["g0", "g1", "g2", "g3", "g4"]
    # Each job is due with the soonest of its members: 100 - 30 - 4 - (i % 5) for the
    # last writer's last batch, the members with i % 5 == 4 in group (4 + 3) % 5 = 2.
    soonest: dict[str, float] = {}
    for n in range(4):
        for batch in range(5):
            for i in range(20):
                ref, due = f"g{(i + n) % 5}", now + 100 - n * 10 - batch - i % 5
                soonest[ref] = min(soonest.get(ref, due), due)
    assert jobs == soonest


async def test_instances_racing_for_a_groups_members_get_each_once(
    make_store: Callable[..., PostgresHistoryStore], clock: FakeClock
) -> None:
    writer = make_store()
    await writer.open_owner("writer")
    alerts = [alert(i) for i in range(120)]
    await writer.record_many(
        alerts, [[member("g", clock.now())] for _ in alerts], owner="writer", lease=60
    )
    claimers = [make_store() for _ in range(4)]

    async def take(store: PostgresHistoryStore, owner: str) -> list[str]:
        await store.open_owner(owner)
        got: list[str] = []
        while batch := await store.claim_group("g", owner=owner, lease=60, limit=7):
            got.extend(c.alert.id for c in batch)
        return got

    taken = await asyncio.gather(*(take(s, f"i{n}") for n, s in enumerate(claimers)))
    everything = [item for batch in taken for item in batch]
    assert len(everything) == len(set(everything)) == 120
    assert not await writer.claim_due(owner="writer", lease=60)  # members are the group's


async def test_a_member_recorded_while_its_group_is_finished_keeps_the_job(
    store: PostgresHistoryStore, clock: FakeClock, pg_url: str, schema: str
) -> None:
    """A recording that moved the group's job commits while the job's holder finishes
    it: the holder sees the new member, and the job stays, due with it."""
    await store.open_owner("i1")
    now = clock.now()
    first = alert(1)
    await store.record(first, [member("g", now)], owner="i1", lease=60)
    (job,) = await store.claim_jobs(owner="i1", lease=60)
    (claim,) = await store.claim_group("g", owner="i1", lease=60)
    await store.settle([(claim, sent())])

    late = alert(2)
    ident = sql.Identifier(schema)
    async with await psycopg.AsyncConnection.connect(pg_url) as recorder:
        # What recording a member does, left uncommitted: the alert, its held delivery,
        # and the group's job moved (the row locked, as any upsert of it locks it).
        await recorder.execute(
            sql.SQL(
                "INSERT INTO {}.alerts (id, key, created_at, status, priority, body, "
                "recorded_at) VALUES (%s, %s, %s, 'firing', 3, %s, now())"
            ).format(ident),
            (late.id, late.key, late.created_at, Jsonb(late.to_dict())),
        )
        await recorder.execute(
            sql.SQL(
                "INSERT INTO {}.deliveries (alert_id, channel, key, status, error, created_at, "
                "queued_at, due_at, grp) VALUES (%s, 'slack', %s, 'held', 'in g', %s, %s, %s, 'g')"
            ).format(ident),
            (late.id, late.key, late.created_at, late.created_at, _at(now + 30)),
        )
        await recorder.execute(
            sql.SQL(
                "INSERT INTO {}.jobs AS j (kind, ref, due_at, payload) "
                "VALUES ('group', 'g', %s, '{{}}') ON CONFLICT (kind, ref) DO UPDATE "
                "SET due_at = EXCLUDED.due_at WHERE EXCLUDED.due_at < j.due_at"
            ).format(ident),
            (_at(now + 30),),
        )
        finishing = asyncio.ensure_future(store.finish_job(job))
        await _blocked_by(pg_url, recorder.info.backend_pid)
        assert not finishing.done()
        await recorder.commit()
        assert await finishing
    assert [(j.ref, j.due) for j in await store.jobs("group")] == [("g", now + 30)]
    clock.advance(30)
    assert [c.job.ref for c in await store.claim_jobs(owner="i1", lease=60)] == ["g"]
    assert [c.alert.id for c in await store.claim_group("g", owner="i1", lease=60)] == [late.id]


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


async def _blocked_by(pg_url: str, pid: int, timeout: float = 10.0) -> None:
    """Wait until some session waits for a lock that backend ``pid`` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        while True:
            cursor = await conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
                (pid,),
            )
            row = await cursor.fetchone()
            if row and row[0]:
                return
            if loop.time() > deadline:
                raise AssertionError(f"nothing waited for backend {pid} within {timeout} s")
            await asyncio.sleep(0.01)
