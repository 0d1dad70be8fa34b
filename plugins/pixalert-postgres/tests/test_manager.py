"""The store under real NotificationManagers, and owner liveness on the real server.

A shared history and cooldown; the work of a process that died taken over at
once (its advisory lock went with its session), the lease as the fallback for
owners that hold no lock (an older instance, or one that has not taken its
lock again since the server restarted); the lock taken again after its
connection drops.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pixalert_postgres
import psycopg
import pytest
from pixalert import Alert, DeliveryResult
from pixalert.testing import FakeClock, RecordingChannel, make_manager
from pixalert_postgres import PostgresHistoryStore
from pixalert_postgres._owners import namespace
from psycopg import sql

pytestmark = pytest.mark.services

LEASE = 120.0


async def test_two_instances_share_history_and_cooldown(schema_url: str) -> None:
    clock = FakeClock()
    config = {"history": schema_url, "state": schema_url, "cooldown_minutes": 5}
    one, two = RecordingChannel("slack"), RecordingChannel("slack")
    async with (
        make_manager([one], clock=clock, config=config, plugins=[pixalert_postgres]) as a,
        make_manager([two], clock=clock, config=config, plugins=[pixalert_postgres]) as b,
    ):
        first = await a.send_alert("disk full", "db-1", "low", source="ops")
        second = await b.send_alert("disk full", "db-1", "low", source="ops")
        assert first["slack"].status.value == "sent"
        assert second["slack"].status.value == "suppressed"
        assert len(one.sent) + len(two.sent) == 1

        for manager in (a, b):
            history = await manager.history(hours=1)
            assert len(history) == 2
            assert {row["state"] for row in history} == {"done"}
            stats = await manager.stats(hours=1)
            assert stats["alerts"] == 2
            assert stats["channels"]["slack"]["sent"] == 1
            assert stats["channels"]["slack"]["suppressed"] == 1
        health = await a.health()
        assert health["history"]["status"] == "ok"
        assert health["history"]["liveness"] == "locked"
        assert health["state"]["status"] == "ok"


async def test_the_work_of_a_dead_process_is_taken_over_at_once(
    schema_url: str, make_store: Callable[..., PostgresHistoryStore], clock: FakeClock
) -> None:
    config = {"history": schema_url, "state": schema_url, "delivery": {"lease": LEASE}}
    channel = RecordingChannel("slack")
    dying = make_store()
    await dying.open_owner("dying-process")
    alert = Alert("db down", "primary unreachable", "low", channels=["slack"])
    (recorded,) = await dying.record_many([alert], [["slack"]], owner="dying-process", lease=LEASE)
    async with make_manager(
        [channel], clock=clock, config=config, plugins=[pixalert_postgres]
    ) as survivor:
        assert await survivor.resume_pending() == 0  # its owner is alive
        await dying.aclose()  # ... and dies: no close_owner, the session ends
        assert await survivor.resume_pending() == 1  # at once: the clock has not moved
        assert [a.id for a in channel.sent] == [alert.id]
        (row,) = await survivor.history(hours=1)
        assert row["state"] == "done"
        assert row["results"]["slack"]["status"] == "sent"
    # The dead process's late word is refused.
    late = make_store()
    settled = await late.settle([(recorded.claims[0], DeliveryResult("slack", "failed", 1, "x"))])
    assert settled.accepted == (False,)


async def test_owners_without_a_lock_fall_back_to_the_lease(
    make_store: Callable[..., PostgresHistoryStore],
    clock: FakeClock,
    pg_url: str,
    schema: str,
) -> None:
    old, restarted, survivor = make_store(), make_store(), make_store()
    await survivor.open_owner("survivor")
    # An instance that never takes a lock (no owners row): only its lease counts.
    await old.record_many([Alert("a", "no lock")], [["slack"]], owner="old", lease=LEASE)
    # An instance that took its lock before the server last started and has not
    # taken it again (a PostgreSQL restart): its lease counts, not the lock.
    await restarted.open_owner("restarted")
    await restarted.record_many(
        [Alert("b", "restart")], [["slack"]], owner="restarted", lease=LEASE
    )
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "UPDATE {}.owners SET locked_at = pg_postmaster_start_time() - interval '1 s' "
                "WHERE owner = 'restarted'"
            ).format(sql.Identifier(schema))
        )
    await restarted.owner_locks.aclose()  # its session is gone
    assert await survivor.claim_due(owner="survivor", lease=LEASE) == []
    clock.advance(LEASE + 1)
    taken = await survivor.claim_due(owner="survivor", lease=LEASE)
    assert sorted(c.alert.title for c in taken) == ["a", "b"]


async def _lock_key(pg_url: str, schema: str, owner: str) -> int:
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        cursor = await conn.execute(
            sql.SQL("SELECT lock_key FROM {}.owners WHERE owner = %s").format(
                sql.Identifier(schema)
            ),
            (owner,),
        )
        row = await cursor.fetchone()
        assert row is not None, f"owner {owner!r} has no row"
        return int(row[0])


async def _lock_holder(pg_url: str, schema: str, key: int) -> int | None:
    """The backend pid holding the liveness lock ``key`` of ``schema``, or None."""
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        cursor = await conn.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = %s::oid "
            "AND objid = %s::oid AND objsubid = 2 AND granted AND database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database())",
            (namespace(schema), key),
        )
        row = await cursor.fetchone()
        return None if row is None else int(row[0])


async def test_a_lost_lock_connection_is_replaced_and_the_lock_taken_again(
    make_store: Callable[..., PostgresHistoryStore], pg_url: str, schema: str
) -> None:
    store, other = make_store(), make_store()
    await store.open_owner("me")
    await other.open_owner("other")
    first = await _lock_holder(pg_url, schema, await _lock_key(pg_url, schema, "me"))
    assert first is not None
    with psycopg.connect(pg_url, autocommit=True) as conn:  # the session is cut
        conn.execute("SELECT pg_terminate_backend(%s)", (first,))
    deadline = time.monotonic() + 30
    while store.owner_locks.retaken == 0:
        assert time.monotonic() < deadline, "the lock was not taken again"
        await asyncio.sleep(0.05)  # polling the watchdog's progress
    second = await _lock_holder(pg_url, schema, await _lock_key(pg_url, schema, "me"))
    assert second is not None and second != first
    assert (await store.health())["liveness"] == "locked"
    # Live again: what it claims now stays with it.
    await store.record_many([Alert("x", "y")], [["slack"]], owner="me", lease=LEASE)
    assert await other.claim_due(owner="other", lease=LEASE) == []


async def test_close_owner_gives_back_and_unlocks(
    make_store: Callable[..., PostgresHistoryStore], pg_url: str, schema: str
) -> None:
    store, other = make_store(), make_store()
    await store.open_owner("leaving")
    await other.open_owner("other")
    await store.record_many([Alert("x", "y")], [["slack", "email"]], owner="leaving", lease=LEASE)
    key = await _lock_key(pg_url, schema, "leaving")
    assert await _lock_holder(pg_url, schema, key) is not None
    await store.close_owner("leaving")
    assert await _lock_holder(pg_url, schema, key) is None
    assert len(await other.claim_due(owner="other", lease=LEASE)) == 2
    assert (await store.health())["owners"] == 0
