"""The schema, as numbered migrations applied forward on start.

Rules for adding one: append a new ``Migration`` with the next number, never
edit an applied one, and keep it additive (new tables, columns with defaults,
indexes) so instances still running the previous release keep working during
a rolling upgrade. ``{s}`` is replaced by the quoted schema name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

__all__ = ["LOCK_CLASS", "MIGRATIONS", "Migration", "migrate"]

# First key of the advisory lock taken while migrating ('pixa' as an int4);
# the second is hashtext(schema), so different schemas migrate independently.
LOCK_CLASS = 0x70697861


@attrs.frozen
class Migration:
    """One step of the schema: ``version``, a short description and its statements."""

    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "alerts, delivery results and receipts",
        (
            """
            CREATE TABLE {s}.alerts (
                id          text PRIMARY KEY,
                key         text NOT NULL,
                created_at  timestamptz NOT NULL,
                status      text NOT NULL,
                priority    smallint NOT NULL,
                body        jsonb NOT NULL,
                state       text NOT NULL DEFAULT 'pending'
                            CHECK (state IN ('pending', 'done')),
                owner       text,
                lease_token text,
                lease_until timestamptz,
                recorded_at timestamptz NOT NULL
            )
            """,
            # history() and stats() windows, newest first.
            "CREATE INDEX alerts_created_at ON {s}.alerts (created_at)",
            # claim_pending(): the few pending alerts, by lease expiry.
            """
            CREATE INDEX alerts_pending ON {s}.alerts (lease_until)
                WHERE state = 'pending'
            """,
            """
            CREATE TABLE {s}.results (
                alert_id    text NOT NULL REFERENCES {s}.alerts (id) ON DELETE CASCADE,
                channel     text NOT NULL,
                seq         bigint GENERATED ALWAYS AS IDENTITY,
                key         text NOT NULL,
                status      text NOT NULL,
                attempts    integer NOT NULL,
                error       text,
                latency     double precision,
                receipt     jsonb,
                created_at  timestamptz NOT NULL,
                recorded_at timestamptz NOT NULL,
                recorded_by text,
                PRIMARY KEY (alert_id, channel)
            )
            """,
            # stats(): an index-only scan over the window (created_at is the alert's).
            """
            CREATE INDEX results_created_at ON {s}.results (created_at)
                INCLUDE (channel, status, latency)
            """,
            # last_receipt(): the newest successful send of a key on a channel.
            """
            CREATE INDEX results_receipts ON {s}.results (key, channel, created_at DESC)
                WHERE status = 'sent' AND receipt IS NOT NULL
            """,
        ),
    ),
    Migration(
        2,
        "cooldown and dedup keys",
        (
            """
            CREATE TABLE {s}.state_keys (
                key        text PRIMARY KEY,
                expires_at timestamptz NOT NULL
            )
            """,
            "CREATE INDEX state_keys_expires_at ON {s}.state_keys (expires_at)",
        ),
    ),
    Migration(
        3,
        "values of state keys (silences, inhibitions)",
        ("ALTER TABLE {s}.state_keys ADD COLUMN value text",),
    ),
)


def _render(statement: str, schema: str) -> Any:
    from psycopg import sql

    return sql.SQL(statement.replace("{s}", "{schema}")).format(schema=sql.Identifier(schema))


async def migrate(
    conn: Any, schema: str, migrations: Sequence[Migration] = MIGRATIONS
) -> tuple[int, list[int]]:
    """Bring ``schema`` up to the newest of ``migrations``; return (version, applied).

    Runs in one transaction under an advisory lock, so instances starting at
    the same time take turns and each migration is applied exactly once.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (LOCK_CLASS, schema))
        await conn.execute(_render("CREATE SCHEMA IF NOT EXISTS {s}", schema))
        await conn.execute(
            _render(
                """
                CREATE TABLE IF NOT EXISTS {s}.schema_version (
                    version     integer PRIMARY KEY,
                    description text NOT NULL,
                    applied_at  timestamptz NOT NULL DEFAULT now()
                )
                """,
                schema,
            )
        )
        cursor = await conn.execute(
            _render("SELECT coalesce(max(version), 0) FROM {s}.schema_version", schema)
        )
        row = await cursor.fetchone()
        current = int(row[0]) if row else 0
        applied = []
        for migration in sorted(migrations, key=lambda m: m.version):
            if migration.version <= current:
                continue
            for statement in migration.statements:
                await conn.execute(_render(statement, schema))
            await conn.execute(
                _render(
                    "INSERT INTO {s}.schema_version (version, description) VALUES (%s, %s)",
                    schema,
                ),
                (migration.version, migration.description),
            )
            applied.append(migration.version)
            current = migration.version
        return current, applied
