"""The schema migrates itself forward on start: versioned, idempotent, safe when racing."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys

import psycopg
import pytest
from pixalert_postgres import PostgresHistoryStore
from pixalert_postgres._migrations import MIGRATIONS, migrate
from pixalert_postgres._store import Database
from psycopg import sql

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
    assert tables(pg_url, schema) == {"schema_version", "alerts", "results", "state_keys"}
    assert store.database.version == MIGRATIONS[-1].version


async def test_migrating_again_changes_nothing(pg_url: str, schema: str) -> None:
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        first = await migrate(conn, schema)
        second = await migrate(conn, schema)
    assert first == (MIGRATIONS[-1].version, [m.version for m in MIGRATIONS])
    assert second == (MIGRATIONS[-1].version, [])
    assert versions(pg_url, schema) == [m.version for m in MIGRATIONS]


async def test_an_old_schema_is_moved_forward_keeping_its_data(
    make_store: object, pg_url: str, schema: str, schema_url: str
) -> None:
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        assert await migrate(conn, schema, MIGRATIONS[:1]) == (1, [1])
        await conn.execute(
            sql.SQL(
                "INSERT INTO {}.alerts (id, key, created_at, status, priority, body, "
                "recorded_at) VALUES ('a1', 'k', now(), 'firing', 3, '{{}}', now())"
            ).format(sql.Identifier(schema))
        )
    store = PostgresHistoryStore(schema_url)
    try:
        health = await store.health()
    finally:
        await store.aclose()
    assert health["schema_version"] == MIGRATIONS[-1].version
    assert health["pending"] == 1
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
        assert (await state.health())["schema_version"] == 3
    finally:
        await state.aclose()


async def test_instances_starting_together_migrate_once(
    pg_url: str, schema: str, schema_url: str
) -> None:
    databases = [Database(schema_url) for _ in range(8)]
    try:
        await asyncio.gather(*(db._open() for db in databases))
    finally:
        await asyncio.gather(*(db.aclose() for db in databases))
    assert {db.version for db in databases} == {MIGRATIONS[-1].version}
    assert versions(pg_url, schema) == [m.version for m in MIGRATIONS]


_CHILD = r"""
import asyncio, sys
from pixalert_postgres._store import Database

async def main():
    sys.stdin.readline()
    dbs = [Database(sys.argv[1]) for _ in range(4)]
    await asyncio.gather(*(db._open() for db in dbs))
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
