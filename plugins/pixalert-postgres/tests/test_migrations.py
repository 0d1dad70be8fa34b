"""The schema migrates itself forward on start: versioned, idempotent, safe when racing,
and nothing an older schema held is lost (its unfinished alerts are delivered)."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

import pixalert_postgres
import psycopg
import pytest
from pixalert import Alert
from pixalert.testing import FakeClock, RecordingChannel, make_manager
from pixalert_postgres import PostgresHistoryStore
from pixalert_postgres._database import Database
from pixalert_postgres._migrations import MIGRATIONS, migrate
from psycopg import sql
from psycopg.types.json import Jsonb

pytestmark = pytest.mark.services


def versions(pg_url: str, schema: str) -> list[int]:
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            sql.SQL("SELECT version FROM {}.schema_version ORDER BY version").format(
                sql.Identifier(schema)
            )
        ).fetchall()
    return [row[0] for row in rows]


def tables(pg_url: str, schema: str) -> set[str]:
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
        ).fetchall()
    return {row[0] for row in rows}


async def test_fresh_schema_is_created_at_the_newest_version(
    store: PostgresHistoryStore, pg_url: str, schema: str
) -> None:
    await store.open()
    assert versions(pg_url, schema) == [m.version for m in MIGRATIONS]
    assert tables(pg_url, schema) == {
        "schema_version",
        "alerts",
        "deliveries",
        "owners",
        "jobs",
        "events",
        "state_keys",
    }
    assert store.database.version == MIGRATIONS[-1].version


async def test_migrating_again_changes_nothing(pg_url: str, schema: str) -> None:
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        first = await migrate(conn, schema)
        second = await migrate(conn, schema)
    assert first == (MIGRATIONS[-1].version, [m.version for m in MIGRATIONS])
    assert second == (MIGRATIONS[-1].version, [])
    assert versions(pg_url, schema) == [m.version for m in MIGRATIONS]


T0 = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)
ROUTING = {"routing": {p: ["slack", "email"] for p in ("low", "medium", "high", "critical")}}


def _old_alert(conn: Any, schema: str, alert: Alert, state: str) -> None:
    """An alert row as versions 1 to 3 stored it (leased to a dead instance if pending)."""
    conn.execute(
        sql.SQL(
            "INSERT INTO {}.alerts (id, key, created_at, status, priority, body, state, owner, "
            "lease_token, lease_until, recorded_at) VALUES (%s, %s, %s, %s, %s, %s, %s, "
            "'old-instance', 'old-token', %s, %s)"
        ).format(sql.Identifier(schema)),
        (
            alert.id,
            alert.key,
            alert.created_at,
            alert.status,
            int(alert.priority),
            Jsonb(alert.to_dict()),
            state,
            alert.created_at + timedelta(minutes=2),
            alert.created_at,
        ),
    )


def _old_result(conn: Any, schema: str, alert: Alert, channel: str, status: str, **kw: Any) -> None:
    conn.execute(
        sql.SQL(
            "INSERT INTO {}.results (alert_id, channel, key, status, attempts, error, latency, "
            "receipt, created_at, recorded_at, recorded_by) VALUES (%s, %s, %s, %s, %s, %s, %s, "
            "%s, %s, %s, 'old-instance')"
        ).format(sql.Identifier(schema)),
        (
            alert.id,
            channel,
            alert.key,
            status,
            kw.get("attempts", 1),
            kw.get("error"),
            kw.get("latency"),
            Jsonb(kw["receipt"]) if "receipt" in kw else None,
            alert.created_at,
            alert.created_at,
        ),
    )


async def test_a_version_3_schema_is_moved_forward_and_its_unfinished_alerts_delivered(
    pg_url: str, schema: str, schema_url: str
) -> None:
    done = Alert("done", "finished long ago", "high", key="k-done", created_at=T0)
    half = Alert("half", "slack sent, email failed", "high", created_at=T0 + timedelta(minutes=1))
    never = Alert("never", "no channel tried", "high", created_at=T0 + timedelta(minutes=2))
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as aconn:
        assert await migrate(aconn, schema, MIGRATIONS[:3]) == (3, [1, 2, 3])
    with psycopg.connect(pg_url, autocommit=True) as conn:
        _old_alert(conn, schema, done, "done")
        _old_result(conn, schema, done, "slack", "sent", latency=0.25, receipt={"ts": "1.2"})
        _old_result(conn, schema, done, "email", "failed", attempts=3, error="550 no such user")
        _old_alert(conn, schema, half, "pending")
        _old_result(conn, schema, half, "slack", "sent", latency=0.5)
        _old_result(conn, schema, half, "email", "failed", attempts=3, error="timeout")
        _old_alert(conn, schema, never, "pending")

    slack, email = RecordingChannel("slack"), RecordingChannel("email")
    clock = FakeClock(T0.timestamp() + 3600)
    async with make_manager(
        [slack, email], clock=clock, config=ROUTING, history=schema_url, plugins=[pixalert_postgres]
    ) as manager:
        before = {row["id"]: row for row in await manager.history(hours=24)}
        assert versions(pg_url, schema) == [m.version for m in MIGRATIONS]
        # The finished alert is kept as it was, receipt included.
        assert before[done.id]["state"] == "done"
        assert before[done.id]["results"]["slack"]["status"] == "sent"
        assert before[done.id]["results"]["slack"]["latency"] == 0.25
        assert before[done.id]["results"]["email"]["error"] == "550 no such user"
        assert await manager.history_store.last_receipt("k-done", "slack") == {"ts": "1.2"}
        # The unfinished ones are pending: the failed channel is due again.
        assert before[half.id]["state"] == "pending"
        assert before[half.id]["results"]["slack"]["status"] == "sent"
        assert before[half.id]["results"]["email"]["status"] == "pending"
        assert before[never.id]["state"] == "pending"
        assert before[never.id]["results"] == {}

        assert await manager.resume_pending() > 0
        after = {row["id"]: row for row in await manager.history(hours=24)}
        stats = await manager.stats(hours=24)
    # Every channel an unfinished alert had not reached got it, once; nothing else.
    assert sorted(a.title for a in slack.sent) == ["never"]
    assert sorted(a.title for a in email.sent) == ["half", "never"]
    assert {row["state"] for row in after.values()} == {"done"}
    assert after[half.id]["results"]["email"]["status"] == "sent"
    assert after[never.id]["results"].keys() == {"slack", "email"}
    assert after[done.id]["results"] == before[done.id]["results"]
    assert stats["alerts"] == 3
    assert stats["channels"]["slack"]["sent"] == 3
    assert stats["channels"]["email"]["failed"] == 1


async def test_a_version_1_schema_is_moved_forward_keeping_its_data(
    pg_url: str, schema: str, schema_url: str
) -> None:
    pending = Alert("pending", "from version 1", "high", created_at=T0)
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        assert await migrate(conn, schema, MIGRATIONS[:1]) == (1, [1])
    with psycopg.connect(pg_url, autocommit=True) as conn:
        _old_alert(conn, schema, pending, "pending")
    store = PostgresHistoryStore(schema_url, clock=FakeClock(T0.timestamp()))
    try:
        health = await store.health()
        await store.open_owner("new")
        (claim,) = await store.claim_due(owner="new", lease=60)
    finally:
        await store.aclose()
    assert health["schema_version"] == MIGRATIONS[-1].version
    assert health["pending"] == 1
    assert claim.alert == pending
    assert claim.channel == "*"  # routed when it is claimed
    assert versions(pg_url, schema) == [m.version for m in MIGRATIONS]


async def test_state_keys_of_schema_2_gain_a_value_column_keeping_their_keys(
    pg_url: str, schema: str, schema_url: str
) -> None:
    from pixalert_postgres import PostgresStateBackend

    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        assert await migrate(conn, schema, MIGRATIONS[:2]) == (2, [1, 2])
        await conn.execute(
            sql.SQL(
                "INSERT INTO {}.state_keys (key, expires_at) VALUES ('cooldown:old', "
                "now() + interval '1 hour')"
            ).format(sql.Identifier(schema))
        )
    state = PostgresStateBackend(schema_url)
    try:
        assert await state.acquire("cooldown:old", 60) is False  # the old key still holds
        await state.put("silence:x", "{}", 60)
        assert await state.get("silence:x") == "{}"
        assert (await state.health())["schema_version"] == MIGRATIONS[-1].version
    finally:
        await state.aclose()


async def test_instances_starting_together_migrate_once(
    pg_url: str, schema: str, schema_url: str
) -> None:
    databases = [Database(schema_url) for _ in range(8)]
    try:
        await asyncio.gather(*(db.open() for db in databases))
    finally:
        await asyncio.gather(*(db.aclose() for db in databases))
    assert {db.version for db in databases} == {MIGRATIONS[-1].version}
    assert versions(pg_url, schema) == [m.version for m in MIGRATIONS]


_CHILD = r"""
import asyncio, sys
from pixalert_postgres._database import Database

async def main():
    sys.stdin.readline()
    dbs = [Database(sys.argv[1]) for _ in range(4)]
    await asyncio.gather(*(db.open() for db in dbs))
    print(*sorted({db.version for db in dbs}))
    for db in dbs:
        await db.aclose()

asyncio.run(main())
"""


def test_processes_starting_together_migrate_once(
    pg_url: str, schema: str, schema_url: str
) -> None:
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, schema_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [child.communicate("go\n", timeout=120) for child in children]
    for child, (out, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err
        assert out.split() == [str(MIGRATIONS[-1].version)]
    assert versions(pg_url, schema) == [m.version for m in MIGRATIONS]


async def test_a_newer_schema_is_used_with_a_warning(
    pg_url: str, schema: str, schema_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        await migrate(conn, schema)
        await conn.execute(
            sql.SQL(
                "INSERT INTO {}.schema_version (version, description) VALUES (99, 'future')"
            ).format(sql.Identifier(schema))
        )
    caplog.set_level(logging.WARNING, logger="pixalert.postgres")
    store = PostgresHistoryStore(schema_url)
    try:
        assert (await store.health())["status"] == "ok"
    finally:
        await store.aclose()
    assert "newer than this pixalert-postgres knows" in caplog.text


async def test_schemas_are_independent(pg_url: str, schema: str) -> None:
    other = schema + "_b"
    try:
        async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
            await migrate(conn, schema)
            await migrate(conn, other)
        assert versions(pg_url, other) == [m.version for m in MIGRATIONS]
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(other)))


def _indexes(pg_url: str, schema: str) -> set[str]:
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = %s", (schema,))
        return {row[0] for row in rows.fetchall()}


async def test_a_version_4_schema_gains_held_deliveries_keeping_its_timeline(
    pg_url: str, schema: str, schema_url: str
) -> None:
    """Version 5 is additive: what version 4 stored is kept and claimed as before, rows
    written as version 4 writes them still work, and held deliveries and groups work."""
    from pixalert import DeliveryResult
    from pixalert.storage import Planned

    waiting = Alert("waiting", "left pending by a dead instance", "high", created_at=T0)
    retrying = Alert("retrying", "due again later", "high", created_at=T0)
    done = Alert("done", "finished", "high", key="k-done", created_at=T0)
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as aconn:
        assert await migrate(aconn, schema, MIGRATIONS[:4]) == (4, [1, 2, 3, 4])
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for a in (waiting, retrying, done):
            conn.execute(
                sql.SQL(
                    "INSERT INTO {}.alerts (id, key, created_at, status, priority, body, "
                    "recorded_at) VALUES (%s, %s, %s, 'firing', 3, %s, %s)"
                ).format(sql.Identifier(schema)),
                (a.id, a.key, a.created_at, Jsonb(a.to_dict()), a.created_at),
            )
        for a, status, due, owner in (
            (waiting, "pending", T0, "old-instance"),
            (retrying, "retrying", T0 + timedelta(hours=2), None),
            (done, "sent", T0, None),
        ):
            conn.execute(
                sql.SQL(
                    "INSERT INTO {}.deliveries (alert_id, channel, key, status, attempts, "
                    "receipt, created_at, queued_at, due_at, owner, token, lease_until) "
                    "VALUES (%s, 'slack', %s, %s, 1, %s, %s, %s, %s, %s, %s, %s)"
                ).format(sql.Identifier(schema)),
                (
                    a.id,
                    a.key,
                    status,
                    Jsonb({"ts": "1.2"}) if status == "sent" else None,
                    a.created_at,
                    a.created_at,
                    due,
                    owner,
                    "old-token" if owner else None,
                    T0 + timedelta(minutes=2) if owner else None,
                ),
            )
        conn.execute(
            sql.SQL(
                "INSERT INTO {}.jobs (kind, ref, due_at, payload) "
                "VALUES ('escalation', 'k1', %s, '{{\"step\": 2}}')"
            ).format(sql.Identifier(schema)),
            (T0 + timedelta(hours=1),),
        )
    clock = FakeClock(T0.timestamp() + 3600)
    store = PostgresHistoryStore(schema_url, clock=clock)
    try:
        await store.open_owner("new")
        (claim,) = await store.claim_due(owner="new", lease=60)
        assert claim.alert == waiting and claim.attempts == 1
        assert [(j.kind, j.ref, dict(j.payload)) for j in await store.jobs()] == [
            ("escalation", "k1", {"step": 2})
        ]
        assert await store.last_receipt("k-done", "slack") == {"ts": "1.2"}
        assert (await store.entry(retrying.id)).state == "pending"  # type: ignore[union-attr]
        # Held deliveries and groups, on the migrated schema.
        new = Alert("new", "m", "high", created_at=T0 + timedelta(hours=1))
        plan = Planned("slack", clock.now() + 30, group="slack|db", note="group_wait")
        recorded = await store.record(new, [plan], owner="new", lease=60)
        assert not recorded.claims
        assert [(j.kind, j.ref) for j in await store.jobs("group")] == [("group", "slack|db")]
        clock.advance(30)
        (member,) = await store.claim_group("slack|db", owner="new", lease=60)
        assert member.alert == new
        await store.settle([(member, DeliveryResult("slack", "sent", 1, None, 0.1))])
        health = await store.health()
    finally:
        await store.aclose()
    assert health["schema_version"] == 5
    assert (health["pending"], health["retrying"], health["held"]) == (2, 1, 0)
    assert versions(pg_url, schema) == [1, 2, 3, 4, 5]
    indexes = _indexes(pg_url, schema)
    assert {"deliveries_due_v5", "deliveries_group", "deliveries_waiting_key_v5"} <= indexes
    assert {"alerts_key_created_at", "events_alert"} <= indexes
    assert not {"deliveries_due", "deliveries_waiting_key"} & indexes
