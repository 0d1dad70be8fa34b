"""PostgreSQL history store and state backend (psycopg 3, async, pooled).

Every instance pointing at one database shares one history. Alerts are held
under leases: ``claim_pending`` takes expired ones with ``SELECT ... FOR
UPDATE SKIP LOCKED``, and every write of a holder checks its lease token in
the same statement, so a stale holder's late result is rejected. Times
(leases, cooldown expiry) come from the manager's clock; keep the instances'
clocks in sync (NTP), well within the lease.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from pixalert import Alert, DeliveryResult, StoreUnavailable
from pixalert.channels import redact
from pixalert.storage import (
    HistoryEntry,
    Lease,
    SystemClock,
    mask_url,
    positive_option,
    split_url_options,
)

from ._migrations import MIGRATIONS, migrate

__all__ = [
    "Database",
    "PostgresHistoryStore",
    "PostgresStateBackend",
    "StoreUnavailable",
    "mask_url",
    "parse_url",
]

log = logging.getLogger("pixalert.postgres")

DEFAULT_SCHEMA = "pixalert"
DEFAULT_POOL_SIZE = 10
DEFAULT_POOL_TIMEOUT = 10.0
DEFAULT_CONNECT_TIMEOUT = 5
_OWN_PARAMS = ("schema", "pool_size", "pool_timeout")
_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_CLEANUP_EVERY = 1000  # state acquires between deletions of expired keys


def parse_url(url: str) -> tuple[str, dict[str, Any]]:
    """Split a ``postgresql://`` URL into the libpq URL and pixalert's own options.

    pixalert reads ``schema`` (default ``pixalert``), ``pool_size`` (default 10)
    and ``pool_timeout`` (seconds to wait for a connection, default 10) from the
    query string; libpq gets the rest (``sslmode``, ``connect_timeout``, ...).
    Raises ``ValueError`` naming the bad parameter, without the password.
    """
    if urlsplit(url).scheme.lower() not in ("postgresql", "postgres"):
        raise ValueError(f"{mask_url(url)}: expected a postgresql:// URL")
    libpq_url, own = split_url_options(url, _OWN_PARAMS)
    schema = own.get("schema", DEFAULT_SCHEMA)
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(
            f"{mask_url(url)}: schema expected a name of letters, digits and _ "
            f"(at most 63, not starting with a digit), got {schema!r}"
        )
    options = {
        "schema": schema,
        "pool_size": int(
            positive_option(
                "pool_size", own.get("pool_size", str(DEFAULT_POOL_SIZE)), url, integer=True
            )
        ),
        "pool_timeout": positive_option(
            "pool_timeout", own.get("pool_timeout", str(DEFAULT_POOL_TIMEOUT)), url
        ),
        # libpq waits forever for a dead host unless told; a URL may set its own.
        "connect_timeout": None
        if "connect_timeout=" in urlsplit(libpq_url).query
        else DEFAULT_CONNECT_TIMEOUT,
    }
    return libpq_url, options


def _dt(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


class Database:
    """One pool of connections to one schema, opened and migrated on first use."""

    def __init__(self, url: str, *, clock: Any = None) -> None:
        self.conninfo, options = parse_url(url)
        self.display_url = mask_url(url)
        self.schema: str = options["schema"]
        self.clock = clock if clock is not None else SystemClock()
        self.version: int | None = None
        self._pool_size: int = options["pool_size"]
        self._pool_timeout: float = options["pool_timeout"]
        self._connect_timeout: int | None = options["connect_timeout"]
        self._pool: Any = None
        self._lock: asyncio.Lock | None = None
        self._sql: dict[str, Any] = {}

    def now(self) -> datetime:
        """The clock's time as an aware datetime."""
        return _dt(self.clock.now())

    def sql(self, text: str) -> Any:
        """``text`` with ``{s}`` replaced by the quoted schema (cached)."""
        query = self._sql.get(text)
        if query is None:
            from psycopg import sql

            query = sql.SQL(text.replace("{s}", "{schema}")).format(
                schema=sql.Identifier(self.schema)
            )
            self._sql[text] = query
        return query

    def _unavailable(self, exc: BaseException) -> StoreUnavailable:
        detail = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else "")
        return StoreUnavailable(
            f"PostgreSQL at {self.display_url}: {type(exc).__name__}"
            + (f": {detail[:300]}" if detail else "")
        )

    async def _open(self) -> Any:
        if self._pool is not None:
            return self._pool
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._pool is not None:
                return self._pool
            import psycopg
            from psycopg_pool import AsyncConnectionPool

            kwargs: dict[str, Any] = {"autocommit": True}
            if self._connect_timeout is not None:
                kwargs["connect_timeout"] = self._connect_timeout
            # Migrate on a connection of its own first: an unreachable server
            # fails here at once, rather than after the pool's wait.
            try:
                async with await psycopg.AsyncConnection.connect(self.conninfo, **kwargs) as conn:
                    version, applied = await migrate(conn, self.schema)
            except (psycopg.Error, OSError) as exc:
                raise self._unavailable(exc) from None
            pool = AsyncConnectionPool(
                self.conninfo,
                min_size=1,
                max_size=self._pool_size,
                timeout=self._pool_timeout,
                kwargs=kwargs,
                open=False,
                name="pixalert",
                check=AsyncConnectionPool.check_connection,
            )
            await pool.open(wait=False)
            newest = MIGRATIONS[-1].version
            if applied:
                log.info(
                    "postgres schema %s migrated to version %s (applied %s)",
                    self.schema,
                    version,
                    applied,
                )
            if version > newest:
                log.warning(
                    "postgres schema %s is at version %s, newer than this pixalert-postgres "
                    "knows (%s); carrying on (migrations are additive)",
                    self.schema,
                    version,
                    newest,
                )
            self.version = version
            self._pool = pool
            return pool

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        """A pooled connection (autocommit); driver errors become :class:`StoreUnavailable`."""
        import psycopg
        from psycopg_pool import PoolClosed, PoolTimeout

        pool = await self._open()
        try:
            async with pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout, PoolClosed) as exc:
            raise self._unavailable(exc) from None

    async def fetch(self, text: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Run one statement and return its rows."""
        async with self.connection() as conn:
            cursor = await conn.execute(self.sql(text), params)
            return await cursor.fetchall() if cursor.description else []

    async def health(self, backend: str) -> dict[str, Any]:
        """A health report for ``backend`` ("postgresql" history or state)."""
        report: dict[str, Any] = {"backend": "postgresql", "url": self.display_url}
        report["schema"] = self.schema
        try:
            if backend == "history":
                rows = await self.fetch("SELECT count(*) FROM {s}.alerts WHERE state = 'pending'")
                report["pending"] = int(rows[0][0])
            else:
                await self.fetch("SELECT 1")
        except StoreUnavailable as exc:
            report["status"] = "degraded"
            report["reason"] = str(exc)
            return report
        report["status"] = "ok"
        report["schema_version"] = self.version
        return report

    async def aclose(self) -> None:
        """Close the pool."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()


# ---------------------------------------------------------------------------
# History
# ---------------------------------------------------------------------------

_RECORD = """
INSERT INTO {s}.alerts (id, key, created_at, status, priority, body, state,
                        owner, lease_token, lease_until, recorded_at)
VALUES (%(id)s, %(key)s, %(created_at)s, %(status)s, %(priority)s, %(body)s, 'pending',
        %(owner)s, %(token)s, %(until)s, %(now)s)
ON CONFLICT (id) DO NOTHING
RETURNING 1
"""

# The lease check and the write are one statement: FOR SHARE keeps a
# concurrent claim from changing the token until this result is stored.
_RECORD_RESULT = """
WITH held AS (
    SELECT id, key, created_at, owner FROM {s}.alerts
    WHERE id = %(id)s AND lease_token = %(token)s AND state = 'pending'
    FOR SHARE
)
INSERT INTO {s}.results (alert_id, channel, key, status, attempts, error, latency, receipt,
                         created_at, recorded_at, recorded_by)
SELECT id, %(channel)s, key, %(status)s, %(attempts)s, %(error)s, %(latency)s, %(receipt)s,
       created_at, %(now)s, owner
FROM held
ON CONFLICT (alert_id, channel) DO UPDATE SET
    status = EXCLUDED.status, attempts = EXCLUDED.attempts, error = EXCLUDED.error,
    latency = EXCLUDED.latency, receipt = EXCLUDED.receipt,
    recorded_at = EXCLUDED.recorded_at, recorded_by = EXCLUDED.recorded_by
RETURNING 1
"""

_COMPLETE = """
UPDATE {s}.alerts SET state = 'done', lease_token = NULL, lease_until = NULL
WHERE id = %(id)s AND lease_token = %(token)s AND state = 'pending'
RETURNING 1
"""

_RENEW = """
UPDATE {s}.alerts AS a SET lease_until = %(until)s
FROM unnest(%(ids)s::text[], %(tokens)s::text[]) AS l (id, token)
WHERE a.id = l.id AND a.lease_token = l.token AND a.state = 'pending'
"""

_CLAIM = """
WITH due AS (
    SELECT id FROM {s}.alerts
    WHERE state = 'pending' AND (lease_until IS NULL OR lease_until <= %(now)s)
    ORDER BY created_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE {s}.alerts AS a
SET owner = %(owner)s, lease_until = %(until)s,
    lease_token = replace(gen_random_uuid()::text, '-', '')
FROM due WHERE a.id = due.id
RETURNING a.body, a.lease_token, a.created_at
"""

_RESULTS_FOR = """
SELECT channel, status, attempts, error, latency, receipt FROM {s}.results
WHERE alert_id = %(id)s ORDER BY seq
"""

_LAST_RECEIPT = """
SELECT receipt FROM {s}.results
WHERE key = %(key)s AND channel = %(channel)s AND status = 'sent' AND receipt IS NOT NULL
ORDER BY created_at DESC LIMIT 1
"""

_ENTRIES = """
SELECT id, body, state FROM {s}.alerts
WHERE created_at >= %(since)s
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s
"""

_ENTRY_RESULTS = """
SELECT alert_id, channel, status, attempts, error, latency, receipt FROM {s}.results
WHERE alert_id = ANY(%(ids)s)
ORDER BY seq
"""

_STATS = """
SELECT channel, status, count(*),
       percentile_disc(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency)
           FILTER (WHERE status = 'sent')
FROM {s}.results
WHERE created_at >= %(since)s
GROUP BY channel, status
"""

_COUNT = "SELECT count(*) FROM {s}.alerts WHERE created_at >= %(since)s"

_PURGE = "DELETE FROM {s}.alerts WHERE created_at < %(before)s"
_PURGE_STATE = "DELETE FROM {s}.state_keys WHERE expires_at < %(now)s"


def _result(row: Sequence[Any]) -> DeliveryResult:
    channel, status, attempts, error, latency, receipt = row
    return DeliveryResult(
        channel=channel,
        status=status,
        attempts=attempts,
        error=error,
        latency=latency,
        receipt=dict(receipt) if receipt else None,
    )


class PostgresHistoryStore:
    """The history of every instance in one PostgreSQL schema, with leased deliveries.

    ``url`` is ``postgresql://[user[:password]@]host[:port]/db[?schema=...]``;
    see :func:`parse_url` for the options. The schema is created and migrated
    forward on first use.
    """

    def __init__(self, url: str, *, clock: Any = None) -> None:
        self._db = Database(url, clock=clock)

    def __repr__(self) -> str:
        return f"PostgresHistoryStore({self._db.display_url!r}, schema={self._db.schema!r})"

    @property
    def database(self) -> Database:
        """The connection pool and schema this store uses."""
        return self._db

    async def open(self) -> None:
        """Connect and migrate now, rather than on first use."""
        await self._db._open()

    async def record(self, alert: Alert, *, owner: str, lease: float) -> Lease:
        """Store ``alert`` as pending, claimed by ``owner`` for ``lease`` seconds."""
        import uuid

        from psycopg.types.json import Jsonb

        token = uuid.uuid4().hex
        now = self._db.clock.now()
        rows = await self._db.fetch(
            _RECORD,
            {
                "id": alert.id,
                "key": alert.key,
                "created_at": alert.created_at,
                "status": alert.status,
                "priority": int(alert.priority),
                "body": Jsonb(alert.to_dict()),
                "owner": owner,
                "token": token,
                "until": _dt(now + lease),
                "now": _dt(now),
            },
        )
        if not rows:
            raise ValueError(f"history: alert id {alert.id!r} is already recorded")
        return Lease(alert, token)

    async def record_result(self, lease: Lease, result: DeliveryResult) -> bool:
        """Store one channel's result; False if ``lease`` is no longer held."""
        from psycopg.types.json import Jsonb

        rows = await self._db.fetch(
            _RECORD_RESULT,
            {
                "id": lease.alert.id,
                "token": lease.token,
                "channel": str(result.channel),
                "status": result.status.value,
                "attempts": result.attempts,
                "error": result.error,
                "latency": result.latency,
                "receipt": Jsonb(dict(result.receipt)) if result.receipt else None,
                "now": self._db.now(),
            },
        )
        return bool(rows)

    async def complete(self, lease: Lease) -> bool:
        """Mark the alert done; False if ``lease`` is no longer held."""
        rows = await self._db.fetch(_COMPLETE, {"id": lease.alert.id, "token": lease.token})
        return bool(rows)

    async def renew(self, leases: Sequence[Lease], lease: float) -> None:
        """Extend the leases still held by ``lease`` seconds from now (the heartbeat)."""
        if not leases:
            return
        await self._db.fetch(
            _RENEW,
            {
                "until": _dt(self._db.clock.now() + lease),
                "ids": [item.alert.id for item in leases],
                "tokens": [item.token for item in leases],
            },
        )

    async def claim_pending(self, *, owner: str, lease: float, limit: int = 100) -> list[Lease]:
        """Claim pending alerts whose lease expired, oldest first, skipping rows others hold."""
        now = self._db.clock.now()
        rows = await self._db.fetch(
            _CLAIM,
            {"now": _dt(now), "until": _dt(now + lease), "owner": owner, "limit": limit},
        )
        rows.sort(key=lambda row: row[2])
        return [Lease(Alert.from_dict(body), token) for body, token, _ in rows]

    async def results_for(self, alert_id: str) -> list[DeliveryResult]:
        """The results already recorded for an alert, in the order they were first stored."""
        return [_result(row) for row in await self._db.fetch(_RESULTS_FOR, {"id": alert_id})]

    async def last_receipt(self, key: str, channel: str) -> Mapping[str, str] | None:
        """The receipt of the newest successful send of ``key`` on ``channel``."""
        rows = await self._db.fetch(_LAST_RECEIPT, {"key": key, "channel": str(channel)})
        return dict(rows[0][0]) if rows else None

    async def entries(self, since: datetime, *, limit: int | None = None) -> list[HistoryEntry]:
        """Alerts created at or after ``since``, newest first, with their results."""
        async with self._db.connection() as conn:
            cursor = await conn.execute(self._db.sql(_ENTRIES), {"since": since, "limit": limit})
            rows = await cursor.fetchall()
            cursor = await conn.execute(
                self._db.sql(_ENTRY_RESULTS), {"ids": [row[0] for row in rows]}
            )
            result_rows = await cursor.fetchall()
        results: dict[str, list[DeliveryResult]] = {}
        for alert_id, *result in result_rows:
            results.setdefault(alert_id, []).append(_result(result))
        return [
            HistoryEntry(Alert.from_dict(body), state, tuple(results.get(alert_id, ())))
            for alert_id, body, state in rows
        ]

    async def stats(self, since: datetime) -> dict[str, Any]:
        """Per-channel counts, success rate and p50/p95/p99 latency since ``since``.

        The shape of :func:`pixalert.storage.build_stats`; percentiles are exact
        nearest-rank values (``percentile_disc``) computed in the database.
        """
        from pixalert.storage import build_stats

        params = {"since": since}
        async with self._db.connection() as conn:
            cursor = await conn.execute(self._db.sql(_STATS), params)
            rows = await cursor.fetchall()
            cursor = await conn.execute(self._db.sql(_COUNT), params)
            count_row = await cursor.fetchone()
        counts = {(channel, status): int(n) for channel, status, n, _ in rows}
        stats: dict[str, Any] = build_stats(
            since, int(count_row[0]) if count_row else 0, counts, {}
        )
        for channel, status, _, values in rows:
            if status == "sent" and values and values[0] is not None:
                stats["channels"][channel]["latency"] = {
                    "p50": round(values[0], 6),
                    "p95": round(values[1], 6),
                    "p99": round(values[2], 6),
                }
        return stats

    async def purge(self, before: datetime) -> int:
        """Delete alerts created before ``before`` (with their results); return how many."""
        async with self._db.connection() as conn:
            cursor = await conn.execute(self._db.sql(_PURGE), {"before": before})
            count: int = cursor.rowcount
            await conn.execute(self._db.sql(_PURGE_STATE), {"now": self._db.now()})
        return max(0, count)

    async def health(self) -> Mapping[str, Any]:
        """``{"status": "ok", "pending": n, ...}``, or degraded with the reason."""
        return await self._db.health("history")

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._db.aclose()


# ---------------------------------------------------------------------------
# Cooldown and dedup state
# ---------------------------------------------------------------------------

# One statement decides: insert the key, or take it over only if it expired.
# Two instances racing on one key serialise on the row; the second sees the
# first's new expiry and gets no row back.
_ACQUIRE = """
INSERT INTO {s}.state_keys (key, expires_at) VALUES (%(key)s, %(until)s)
ON CONFLICT (key) DO UPDATE SET expires_at = EXCLUDED.expires_at, value = NULL
WHERE {s}.state_keys.expires_at <= %(now)s
RETURNING 1
"""

_RELEASE = "DELETE FROM {s}.state_keys WHERE key = %(key)s"

# Silences and inhibitions: a value with an expiry, set unconditionally.
_PUT = """
INSERT INTO {s}.state_keys (key, expires_at, value) VALUES (%(key)s, %(until)s, %(value)s)
ON CONFLICT (key) DO UPDATE SET expires_at = EXCLUDED.expires_at, value = EXCLUDED.value
"""

_GET = """
SELECT value FROM {s}.state_keys
WHERE key = %(key)s AND expires_at > %(now)s AND value IS NOT NULL
"""

_ITEMS = """
SELECT key, value FROM {s}.state_keys
WHERE starts_with(key, %(prefix)s) AND expires_at > %(now)s AND value IS NOT NULL
"""


class PostgresStateBackend:
    """Cooldown and dedup keys, silences and inhibitions in PostgreSQL, for teams with no Redis.

    A key is a row with an expiry; :meth:`acquire` is one ``INSERT ... ON
    CONFLICT DO UPDATE ... WHERE expires_at <= now RETURNING``. Unlike the
    Redis backend it does not fail open: if PostgreSQL is down, the history is
    down too.
    """

    def __init__(self, url: str, *, clock: Any = None) -> None:
        self._db = Database(url, clock=clock)
        self._acquires = 0

    def __repr__(self) -> str:
        return f"PostgresStateBackend({self._db.display_url!r}, schema={self._db.schema!r})"

    @property
    def database(self) -> Database:
        """The connection pool and schema this backend uses."""
        return self._db

    async def acquire(self, key: str, ttl: float) -> bool:
        """Set ``key`` for ``ttl`` seconds unless it is set; True if this call set it."""
        now = self._db.clock.now()
        rows = await self._db.fetch(
            _ACQUIRE, {"key": key, "until": _dt(now + ttl), "now": _dt(now)}
        )
        self._acquires += 1
        if self._acquires % _CLEANUP_EVERY == 0:
            await self._db.fetch(_PURGE_STATE, {"now": _dt(now)})
        return bool(rows)

    async def release(self, key: str) -> None:
        """Forget ``key``."""
        await self._db.fetch(_RELEASE, {"key": key})

    async def put(self, key: str, value: str, ttl: float) -> None:
        """Set ``key`` to ``value`` for ``ttl`` seconds (``ttl <= 0`` forgets it)."""
        if ttl <= 0:
            await self.release(key)
            return
        until = _dt(self._db.clock.now() + ttl)
        await self._db.fetch(_PUT, {"key": key, "until": until, "value": value})

    async def get(self, key: str) -> str | None:
        """The value of ``key`` if it is live."""
        rows = await self._db.fetch(_GET, {"key": key, "now": self._db.now()})
        return str(rows[0][0]) if rows else None

    async def items(self, prefix: str) -> dict[str, str]:
        """Every live key set by ``put`` that starts with ``prefix``."""
        rows = await self._db.fetch(_ITEMS, {"prefix": prefix, "now": self._db.now()})
        return {str(key): str(value) for key, value in rows}

    async def health(self) -> Mapping[str, Any]:
        """``{"status": "ok", ...}``, or degraded with the reason."""
        return await self._db.health("state")

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._db.aclose()
