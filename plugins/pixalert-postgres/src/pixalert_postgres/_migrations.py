"""The schema, as numbered migrations applied forward on start.

Rules for adding one: append a new ``Migration`` with the next number and
never edit an applied one. Keep it additive (new tables, columns with defaults,
indexes) where you can, so instances still running the previous release keep
working during a rolling upgrade; say so in the description where it is not.
``{s}`` is replaced by the quoted schema name.

Version 4 is not additive: the per-alert leases and ``results`` of versions 1
to 3 become one ``deliveries`` row per alert and channel on a timeline, so
every instance must run a pixalert-postgres that knows version 4 (stop the
old ones, then start the new ones). Nothing is lost on the way: each result
becomes a delivery row, and the alerts the old schema had left pending are
delivered (see :data:`MIGRATIONS`).

Version 5 is additive: held deliveries and groups (noise control) and two
lookup indexes. Instances of the previous release keep working on it during
a rolling upgrade, with one limit until every instance runs it: they do not
see held deliveries as waiting (they do not supersede them, and their
``purge`` may remove an alert whose only waiting deliveries are held, if it
is older than the retention). Their sweeps find due work through the new
index of waiting deliveries by key (it holds every waiting delivery).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

__all__ = ["LOCK_CLASS", "MIGRATIONS", "Migration", "migrate"]

_WAITING = "('pending', 'retrying')"
_WAITING_5 = "('pending', 'retrying', 'held')"

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
    # Version 4: deliveries on a timeline, owners checked by advisory lock, jobs,
    # events. An alert's state is no longer stored: it is pending while any of
    # its deliveries waits. Each result of version 3 becomes a delivery row; an
    # alert version 3 had left pending keeps its results, its failed results are
    # due again, and a '*' row (ROUTE_LATER) routes it once more when claimed, so
    # the channels it never reached are delivered too.
    Migration(
        4,
        "deliveries on a timeline, owners, jobs and events (not additive: upgrade every instance)",
        (
            """
            ALTER TABLE {s}.alerts
                ADD COLUMN source       text NOT NULL DEFAULT '',
                ADD COLUMN title_fold   text NOT NULL DEFAULT '',
                ADD COLUMN message_fold text NOT NULL DEFAULT ''
            """,
            """
            UPDATE {s}.alerts SET source = coalesce(body->>'source', ''),
                   title_fold = lower(coalesce(body->>'title', '')),
                   message_fold = lower(coalesce(body->>'message', ''))
            """,
            """
            CREATE TABLE {s}.deliveries (
                alert_id    text NOT NULL REFERENCES {s}.alerts (id) ON DELETE CASCADE,
                channel     text NOT NULL,
                seq         bigint GENERATED ALWAYS AS IDENTITY,
                key         text NOT NULL,
                status      text NOT NULL,
                attempts    integer NOT NULL DEFAULT 0,
                error       text,
                latency     double precision,
                receipt     jsonb,
                created_at  timestamptz NOT NULL,
                queued_at   timestamptz NOT NULL,
                due_at      timestamptz NOT NULL,
                owner       text,
                token       text,
                lease_until timestamptz,
                recorded_at timestamptz,
                recorded_by text,
                PRIMARY KEY (alert_id, channel)
            )
            """,
            """
            INSERT INTO {s}.deliveries (alert_id, channel, key, status, attempts, error,
                                        latency, receipt, created_at, queued_at, due_at,
                                        recorded_at, recorded_by)
            SELECT r.alert_id, r.channel, r.key,
                   CASE WHEN r.status = 'failed' AND a.state = 'pending' THEN 'pending'
                        ELSE r.status END,
                   r.attempts, r.error, r.latency, r.receipt, r.created_at, r.created_at,
                   r.created_at, r.recorded_at, r.recorded_by
            FROM {s}.results r JOIN {s}.alerts a ON a.id = r.alert_id
            ORDER BY r.seq
            """,
            """
            INSERT INTO {s}.deliveries (alert_id, channel, key, status, created_at, queued_at,
                                        due_at)
            SELECT id, '*', key, 'pending', created_at, created_at, created_at
            FROM {s}.alerts WHERE state = 'pending'
            ORDER BY created_at
            """,
            "DROP TABLE {s}.results",
            "DROP INDEX {s}.alerts_pending",
            """
            ALTER TABLE {s}.alerts DROP COLUMN state, DROP COLUMN owner,
                DROP COLUMN lease_token, DROP COLUMN lease_until
            """,
            # claim_due(): the few waiting deliveries, soonest first; close_owner() and
            # the owners still holding claims (only a waiting delivery has an owner).
            f"""
            CREATE INDEX deliveries_due ON {{s}}.deliveries (due_at)
                INCLUDE (alert_id, owner) WHERE status IN {_WAITING}
            """,
            # A resolve looks for the firing deliveries of its key still waiting.
            f"""
            CREATE INDEX deliveries_waiting_key ON {{s}}.deliveries (key, channel)
                WHERE status IN {_WAITING}
            """,
            # stats(): an index-only scan over the window (created_at is the alert's).
            """
            CREATE INDEX deliveries_created_at ON {s}.deliveries (created_at)
                INCLUDE (channel, status, latency)
            """,
            # last_receipt(): the newest successful send of a key on a channel.
            """
            CREATE INDEX deliveries_receipts ON {s}.deliveries (key, channel, created_at DESC)
                WHERE status = 'sent' AND receipt IS NOT NULL
            """,
            # Owners (instances): the advisory lock key each one holds while it lives.
            "CREATE SEQUENCE {s}.owner_keys AS integer",
            """
            CREATE TABLE {s}.owners (
                owner     text PRIMARY KEY,
                lock_key  integer NOT NULL UNIQUE,
                locked_at timestamptz NOT NULL,
                host      text,
                pid       integer
            )
            """,
            """
            CREATE TABLE {s}.jobs (
                kind        text NOT NULL,
                ref         text NOT NULL,
                due_at      timestamptz NOT NULL,
                payload     jsonb NOT NULL,
                owner       text,
                token       text,
                lease_until timestamptz,
                PRIMARY KEY (kind, ref)
            )
            """,
            "CREATE INDEX jobs_due ON {s}.jobs (due_at)",
            """
            CREATE TABLE {s}.events (
                alert_id text NOT NULL REFERENCES {s}.alerts (id) ON DELETE CASCADE,
                seq      bigint GENERATED ALWAYS AS IDENTITY,
                at       timestamptz NOT NULL,
                kind     text NOT NULL,
                actor    text,
                via      text,
                note     text
            )
            """,
            "CREATE INDEX events_alert ON {s}.events (alert_id)",
        ),
    ),
    # Version 5: held deliveries (kept back by noise control until their due time)
    # and groups. 'held' is a waiting status as pending and retrying are; a held
    # delivery may belong to a group (grp), whose job (kind 'group') claims it.
    Migration(
        5,
        "held deliveries and groups; alerts by key, newest first",
        (
            "ALTER TABLE {s}.deliveries ADD COLUMN grp text",
            # claim_due(): waiting deliveries outside groups, soonest first; with the
            # group index below, every waiting delivery (close_owner, health).
            f"""
            CREATE INDEX deliveries_due_v5 ON {{s}}.deliveries (due_at)
                INCLUDE (alert_id, owner) WHERE status IN {_WAITING_5} AND grp IS NULL
            """,
            # claim_group() and a group job's earliest waiting member.
            f"""
            CREATE INDEX deliveries_group ON {{s}}.deliveries (grp, due_at)
                INCLUDE (alert_id, owner) WHERE grp IS NOT NULL AND status IN {_WAITING_5}
            """,
            # A resolve looks for the firing deliveries of its key still waiting.
            f"""
            CREATE INDEX deliveries_waiting_key_v5 ON {{s}}.deliveries (key, channel)
                WHERE status IN {_WAITING_5}
            """,
            "DROP INDEX {s}.deliveries_due",
            "DROP INDEX {s}.deliveries_waiting_key",
            # The newest alerts of a key: acknowledgements, resolves, heartbeats,
            # flapping and `for` look an incident up by key.
            "CREATE INDEX alerts_key_created_at ON {s}.alerts (key, created_at)",
        ),
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
