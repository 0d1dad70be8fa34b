"""SQLite history store and state backend: the embedded default.

One connection per store, used from one worker thread so the event loop never
blocks on disk. WAL mode lets several processes share the file; cooldown
decisions are one ``INSERT ... ON CONFLICT ... WHERE`` statement, atomic
across them. ``stats()`` reads per-minute rollups, so it stays fast at
millions of rows.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from ._clock import Clock
from ._storage import HistoryEntry, Lease, build_stats, latency_bucket
from ._types import Alert, DeliveryResult, _new_id

__all__ = ["SQLiteDatabase", "SQLiteHistoryStore", "SQLiteStateBackend", "sqlite_path"]

T = TypeVar("T")

SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id          TEXT PRIMARY KEY,
    key         TEXT NOT NULL,
    created_at  REAL NOT NULL,
    body        TEXT NOT NULL,
    state       TEXT NOT NULL,
    owner       TEXT,
    token       TEXT,
    lease_until REAL
);
CREATE INDEX IF NOT EXISTS alerts_created ON alerts (created_at);
CREATE INDEX IF NOT EXISTS alerts_pending ON alerts (lease_until) WHERE state = 'pending';
CREATE TABLE IF NOT EXISTS results (
    alert_id   TEXT NOT NULL,
    channel    TEXT NOT NULL,
    key        TEXT NOT NULL,
    status     TEXT NOT NULL,
    attempts   INTEGER NOT NULL,
    error      TEXT,
    latency    REAL,
    receipt    TEXT,
    created_at REAL NOT NULL,
    PRIMARY KEY (alert_id, channel)
);
CREATE INDEX IF NOT EXISTS results_receipt ON results (key, channel, created_at)
    WHERE receipt IS NOT NULL;
CREATE TABLE IF NOT EXISTS rollup (
    minute  INTEGER NOT NULL,
    channel TEXT NOT NULL,
    status  TEXT NOT NULL,
    bucket  INTEGER NOT NULL,
    n       INTEGER NOT NULL,
    PRIMARY KEY (minute, channel, status, bucket)
);
CREATE TABLE IF NOT EXISTS alert_minutes (
    minute INTEGER PRIMARY KEY,
    n      INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS state (
    key     TEXT PRIMARY KEY,
    expires REAL NOT NULL,
    value   TEXT
);
"""

# Forward migrations of a file at an older version: {new version: statements}.
# _SCHEMA above is always the newest schema (a new file is created from it).
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    2: ("ALTER TABLE state ADD COLUMN value TEXT",),
}


def _migrate(conn: sqlite3.Connection) -> None:
    """Create the schema in a new file, or move an older file forward, in one transaction.

    The version is read again under the write lock: of several processes
    opening an old file at once, the first migrates and the others see it done.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
        else:
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS.get(step, ()):
                    conn.execute(statement)
        if version < SCHEMA_VERSION:
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def sqlite_path(url: str) -> str:
    """The file path of a SQLite URL, as SQLAlchemy reads them.

    ``sqlite:///relative.db``, ``sqlite:////absolute/path.db``, ``sqlite://`` (memory).
    """
    if not url.startswith("sqlite:"):
        raise ValueError(f"history: expected a sqlite:///path URL, got {url.split(':', 1)[0]}:...")
    rest = url[len("sqlite:") :]
    if rest.startswith("///"):
        return rest[3:]
    if rest.startswith("//"):
        return rest[2:] or ":memory:"
    return rest or ":memory:"


class SQLiteDatabase:
    """One SQLite file, opened once and used from one worker thread."""

    _shared: dict[str, SQLiteDatabase] = {}
    _shared_lock = threading.Lock()

    def __init__(self, path: str) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pixalert-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._users = 0
        # Calls waiting for the worker thread, and whether it is draining them.
        self._pending: list[_Call] = []
        self._pending_lock = threading.Lock()
        self._draining = False

    @classmethod
    def open(cls, path: str) -> SQLiteDatabase:
        """The database for ``path``, shared by the stores of one process."""
        with cls._shared_lock:
            db = cls._shared.get(path)
            if db is None or path == ":memory:":
                db = cls(path)
                if path != ":memory:":
                    cls._shared[path] = db
            db._users += 1
            return db

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                # Alert text can be sensitive: a new database is owner-only (0600).
                with contextlib.suppress(FileExistsError):
                    os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            if self.path != ":memory:":
                # -wal and -shm take the database's mode whatever the umask.
                mode = os.stat(self.path).st_mode & 0o666
                for suffix in ("-wal", "-shm"):
                    with contextlib.suppress(OSError):  # not there yet, or not ours
                        if os.stat(self.path + suffix).st_mode & 0o777 != mode:
                            os.chmod(self.path + suffix, mode)
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version < SCHEMA_VERSION:
                _migrate(conn)
            self._conn = conn
        return self._conn

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on the worker thread.

        Calls that queue up while the worker is busy run together in one
        transaction (group commit). If one raises, the transaction is rolled
        back and the calls run again one by one, so only that one fails.
        Each caller gets its value once it is committed.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._pending_lock:
            self._pending.append((fn, loop, future))
            start = not self._draining
            self._draining = True
        if start:
            self._executor.submit(self._drain)
        return await future

    def _drain(self) -> None:
        """On the worker thread: run queued calls, batch by batch, until none is left."""
        while True:
            with self._pending_lock:
                batch, self._pending = self._pending, []
                if not batch:
                    self._draining = False
                    return
            batch = [call for call in batch if not call[2].cancelled()]
            if not batch:
                continue
            try:
                outcomes = self._run_batch(batch)
            except BaseException as exc:  # the batch itself failed (SAVEPOINT, ROLLBACK...)
                with contextlib.suppress(sqlite3.Error):
                    if self._conn is not None and self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
                outcomes = [(loop, future, None, exc) for _, loop, future in batch]
            _settle(outcomes)

    def _run_batch(self, batch: list[_Call]) -> list[_Outcome]:
        try:
            conn = self._connect()
        except BaseException as exc:
            return [(loop, future, None, exc) for _, loop, future in batch]
        if len(batch) == 1:
            fn, loop, future = batch[0]
            try:
                return [(loop, future, fn(conn), None)]
            except BaseException as exc:
                return [(loop, future, None, exc)]
        outcomes: list[_Outcome] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            return self._one_by_one(batch)  # no shared transaction: as if unbatched
        for fn, loop, future in batch:
            try:
                value = fn(conn)
            except BaseException:
                # Rare (a constraint, a full disk): undo the batch and run its calls
                # one by one, so that only the failing one fails. Calls touch nothing
                # but the database, so running one again after a rollback is safe.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                return self._one_by_one(batch)
            outcomes.append((loop, future, value, None))
        try:
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return [(loop, future, None, exc) for _, loop, future in batch]
        return outcomes

    def _one_by_one(self, batch: list[_Call]) -> list[_Outcome]:
        return [outcome for call in batch for outcome in self._run_batch([call])]

    async def release(self) -> None:
        """Drop one user; close the file when the last one leaves."""
        with self._shared_lock:
            self._users -= 1
            if self._users > 0:
                return
            if self._shared.get(self.path) is self:
                del self._shared[self.path]

        def close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, close)
        self._executor.shutdown(wait=False)


_Call = tuple[Callable[[sqlite3.Connection], Any], asyncio.AbstractEventLoop, "asyncio.Future[Any]"]
_Outcome = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Any, "BaseException | None"]


def _settle(outcomes: list[_Outcome]) -> None:
    """Hand each outcome to its caller's event loop: one wake-up per loop per batch."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
    for outcome in outcomes:
        by_loop.setdefault(outcome[0], []).append(outcome)
    for loop, items in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            loop.call_soon_threadsafe(_resolve, items)


def _resolve(outcomes: list[_Outcome]) -> None:
    for _, future, value, exc in outcomes:
        if future.cancelled():
            continue
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(value)


def _tx(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    if conn.in_transaction:  # inside a batch: its savepoint already isolates this call
        return fn(conn)
    conn.execute("BEGIN IMMEDIATE")
    try:
        value = fn(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return value


_ACQUIRE = (
    "INSERT INTO state (key, expires) VALUES (?, ?) "
    "ON CONFLICT (key) DO UPDATE SET expires = excluded.expires, value = NULL "
    "WHERE state.expires <= ?"
)


class SQLiteStateBackend:
    """Cooldown and dedup keys in a SQLite table, atomic across processes."""

    def __init__(self, url: str, clock: Clock) -> None:
        self._db = SQLiteDatabase.open(sqlite_path(url))
        self._clock = clock

    async def acquire(self, key: str, ttl: float) -> bool:
        """Set ``key`` for ``ttl`` seconds unless it is live; True if this call set it."""
        now = self._clock.now()

        def run(conn: sqlite3.Connection) -> bool:
            return conn.execute(_ACQUIRE, (key, now + ttl, now)).rowcount == 1

        return await self._db.run(run)

    async def acquire_many(self, keys: Sequence[str], ttl: float) -> list[bool]:
        """:meth:`acquire` for each key, in one transaction."""
        now = self._clock.now()

        def run(conn: sqlite3.Connection) -> list[bool]:
            return [conn.execute(_ACQUIRE, (key, now + ttl, now)).rowcount == 1 for key in keys]

        return await self._db.run(lambda c: _tx(c, run))

    async def release(self, key: str) -> None:
        """Forget ``key``."""
        await self._db.run(lambda c: c.execute("DELETE FROM state WHERE key = ?", (key,)))

    async def put(self, key: str, value: str, ttl: float) -> None:
        """Set ``key`` to ``value`` for ``ttl`` seconds (``ttl <= 0`` forgets it)."""
        if ttl <= 0:
            await self.release(key)
            return
        expires = self._clock.now() + ttl
        await self._db.run(
            lambda c: c.execute(
                "INSERT INTO state (key, expires, value) VALUES (?, ?, ?) ON CONFLICT (key) "
                "DO UPDATE SET expires = excluded.expires, value = excluded.value",
                (key, expires, value),
            )
        )

    async def get(self, key: str) -> str | None:
        """The value of ``key`` if it is live."""
        now = self._clock.now()

        def run(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT value FROM state WHERE key = ? AND expires > ?", (key, now)
            ).fetchone()
            return None if row is None else row[0]

        return await self._db.run(run)

    async def items(self, prefix: str) -> dict[str, str]:
        """Every live key set by ``put`` that starts with ``prefix`` (a primary-key range scan)."""
        now = self._clock.now()
        upper = _prefix_upper(prefix)

        def run(conn: sqlite3.Connection) -> dict[str, str]:
            sql = "SELECT key, value FROM state WHERE key >= ? AND expires > ? "
            sql += "AND value IS NOT NULL"
            params: tuple[Any, ...] = (prefix, now)
            if upper is not None:
                sql += " AND key < ?"
                params = (prefix, now, upper)
            return {k: v for k, v in conn.execute(sql, params) if k.startswith(prefix)}

        return await self._db.run(run)

    async def health(self) -> Mapping[str, Any]:
        """ok, with the file path."""
        return {"status": "ok", "backend": "sqlite", "path": self._db.path}

    async def aclose(self) -> None:
        """Close the file (when no other store of this process uses it)."""
        await self._db.release()


def _prefix_upper(prefix: str) -> str | None:
    """The smallest text above every text starting with ``prefix`` (None: no bound).

    SQLite compares text byte-wise in UTF-8, that is by code point, so this is
    ``prefix`` with its last character bumped by one.
    """
    if not prefix:
        return None
    bumped = ord(prefix[-1]) + 1
    if bumped > 0x10FFFF or 0xD800 <= bumped <= 0xDFFF:
        return None
    return prefix[:-1] + chr(bumped)


def _minute(ts: float) -> int:
    return int(ts // 60)


class SQLiteHistoryStore:
    """History in SQLite, with leases so a crashed sender's work is taken over."""

    def __init__(self, url: str, clock: Clock) -> None:
        self._db = SQLiteDatabase.open(sqlite_path(url))
        self._clock = clock

    async def record(self, alert: Alert, *, owner: str, lease: float) -> Lease:
        """Store ``alert`` as pending, leased to ``owner``."""
        return (await self.record_many([alert], owner=owner, lease=lease))[0]

    async def record_many(
        self, alerts: Sequence[Alert], *, owner: str, lease: float
    ) -> list[Lease]:
        """:meth:`record` for each alert, in one transaction."""
        until = self._clock.now() + lease
        leases = [Lease(alert, _new_id()) for alert in alerts]
        rows = [
            (
                held.alert.id,
                held.alert.key,
                held.alert.created_at.timestamp(),
                json.dumps(held.alert.to_dict(), separators=(",", ":")),
                owner,
                held.token,
                until,
            )
            for held in leases
        ]
        minutes = collections.Counter(_minute(row[2]) for row in rows)

        def run(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO alerts (id, key, created_at, body, state, owner, token, lease_until) "
                "VALUES (?, ?, ?, ?, 'pending', ?, ?, ?)",
                rows,
            )
            conn.executemany(
                "INSERT INTO alert_minutes (minute, n) VALUES (?, ?) "
                "ON CONFLICT (minute) DO UPDATE SET n = n + excluded.n",
                minutes.items(),
            )

        await self._db.run(lambda c: _tx(c, run))
        return leases

    async def record_result(self, lease: Lease, result: DeliveryResult) -> bool:
        """Store a channel's result if ``lease`` is still held."""

        def run(conn: sqlite3.Connection) -> bool:
            if not _holds(conn, lease):
                return False
            _write_results(conn, lease.alert, [result])
            return True

        return await self._db.run(lambda c: _tx(c, run))

    async def complete(self, lease: Lease) -> bool:
        """Mark done if ``lease`` is still held."""
        return await self._db.run(lambda c: _complete(c, lease))

    async def finish(self, lease: Lease, results: Sequence[DeliveryResult]) -> bool:
        """Store every result and mark done, in one transaction, if ``lease`` is still held."""

        def run(conn: sqlite3.Connection) -> bool:
            if not _complete(conn, lease):  # the lease is gone: write nothing
                return False
            _write_results(conn, lease.alert, results)
            return True

        return await self._db.run(lambda c: _tx(c, run))

    async def renew(self, leases: Sequence[Lease], lease: float) -> None:
        """Extend the leases still held."""
        until = self._clock.now() + lease
        rows = [(until, item.alert.id, item.token) for item in leases]
        if rows:
            await self._db.run(
                lambda c: _tx(
                    c,
                    lambda c2: c2.executemany(
                        "UPDATE alerts SET lease_until = ? WHERE id = ? AND token = ?", rows
                    ),
                )
            )

    async def claim_pending(self, *, owner: str, lease: float, limit: int = 100) -> list[Lease]:
        """Claim pending alerts whose lease has expired."""
        now = self._clock.now()

        def run(conn: sqlite3.Connection) -> list[Lease]:
            rows = conn.execute(
                "SELECT id, body FROM alerts WHERE state = 'pending' AND lease_until <= ? "
                "ORDER BY created_at LIMIT ?",
                (now, limit),
            ).fetchall()
            claimed = []
            for alert_id, body in rows:
                token = _new_id()
                conn.execute(
                    "UPDATE alerts SET owner = ?, token = ?, lease_until = ? WHERE id = ?",
                    (owner, token, now + lease, alert_id),
                )
                claimed.append(Lease(Alert.from_dict(json.loads(body)), token))
            return claimed

        return await self._db.run(lambda c: _tx(c, run))

    async def results_for(self, alert_id: str) -> list[DeliveryResult]:
        """Results recorded so far for ``alert_id``."""

        def run(conn: sqlite3.Connection) -> list[DeliveryResult]:
            rows = conn.execute(
                "SELECT channel, status, attempts, error, latency, receipt FROM results "
                "WHERE alert_id = ?",
                (alert_id,),
            ).fetchall()
            return [_result(row) for row in rows]

        return await self._db.run(run)

    async def last_receipt(self, key: str, channel: str) -> Mapping[str, str] | None:
        """Receipt of the newest successful send of ``key`` on ``channel``."""

        def run(conn: sqlite3.Connection) -> Mapping[str, str] | None:
            row = conn.execute(
                "SELECT receipt FROM results WHERE key = ? AND channel = ? "
                "AND receipt IS NOT NULL AND status = 'sent' ORDER BY created_at DESC LIMIT 1",
                (key, channel),
            ).fetchone()
            return json.loads(row[0]) if row else None

        return await self._db.run(run)

    async def entries(self, since: datetime, *, limit: int | None = None) -> list[HistoryEntry]:
        """Alerts created at or after ``since``, newest first."""
        start = since.timestamp()

        def run(conn: sqlite3.Connection) -> list[HistoryEntry]:
            sql = (
                "SELECT id, body, state FROM alerts WHERE created_at >= ? ORDER BY created_at DESC"
            )
            params: tuple[Any, ...] = (start,)
            if limit is not None:
                sql += " LIMIT ?"
                params = (start, limit)
            rows = conn.execute(sql, params).fetchall()
            results: dict[str, list[DeliveryResult]] = {}
            result_rows = (
                conn.execute(
                    "SELECT r.alert_id, r.channel, r.status, r.attempts, r.error, r.latency, "
                    "r.receipt FROM alerts a JOIN results r ON r.alert_id = a.id "
                    "WHERE a.created_at >= ?",
                    (start,),
                )
                if limit is None
                else _results_for_ids(conn, [r[0] for r in rows])
            )
            for row in result_rows:
                results.setdefault(row[0], []).append(_result(row[1:]))
            return [
                HistoryEntry(
                    Alert.from_dict(json.loads(body)), state, tuple(results.get(alert_id, ()))
                )
                for alert_id, body, state in rows
            ]

        return await self._db.run(run)

    async def stats(self, since: datetime) -> dict[str, Any]:
        """Per-channel counts and latency percentiles, from the per-minute rollups."""
        first = _minute(since.timestamp())
        start = since.timestamp()

        def run(conn: sqlite3.Connection) -> dict[str, Any]:
            # Whole minutes come from the rollup; the partial first minute is exact.
            counts: dict[tuple[str, str], int] = {}
            histograms: dict[str, dict[int, int]] = {}
            for channel, status, bucket, n in conn.execute(
                "SELECT channel, status, bucket, SUM(n) FROM rollup WHERE minute > ? "
                "GROUP BY channel, status, bucket",
                (first,),
            ):
                _add(counts, histograms, channel, status, bucket, n)
            # Through alerts' created_at index (results have none: a scan of them all).
            for channel, status, latency in conn.execute(
                "SELECT r.channel, r.status, r.latency FROM alerts a "
                "JOIN results r ON r.alert_id = a.id "
                "WHERE a.created_at >= ? AND a.created_at < ?",
                (start, (first + 1) * 60),
            ):
                bucket = latency_bucket(latency) if status == "sent" and latency is not None else -1
                _add(counts, histograms, channel, status, bucket, 1)
            (alerts,) = conn.execute(
                "SELECT COALESCE(SUM(n), 0) FROM alert_minutes WHERE minute > ?", (first,)
            ).fetchone()
            (partial,) = conn.execute(
                "SELECT COUNT(*) FROM alerts WHERE created_at >= ? AND created_at < ?",
                (start, (first + 1) * 60),
            ).fetchone()
            return build_stats(since, int(alerts) + int(partial), counts, histograms)

        return await self._db.run(run)

    async def purge(self, before: datetime) -> int:
        """Delete alerts (and their results and rollups) created before ``before``."""
        cutoff = before.timestamp()

        def run(conn: sqlite3.Connection) -> int:
            conn.execute("DELETE FROM results WHERE created_at < ?", (cutoff,))
            conn.execute("DELETE FROM rollup WHERE minute < ?", (_minute(cutoff),))
            conn.execute("DELETE FROM alert_minutes WHERE minute < ?", (_minute(cutoff),))
            conn.execute("DELETE FROM state WHERE expires < ?", (self._clock.now(),))
            return conn.execute("DELETE FROM alerts WHERE created_at < ?", (cutoff,)).rowcount

        return await self._db.run(lambda c: _tx(c, run))

    async def health(self) -> Mapping[str, Any]:
        """ok, with the file path and the number of pending alerts."""

        def run(conn: sqlite3.Connection) -> int:
            return int(
                conn.execute("SELECT COUNT(*) FROM alerts WHERE state = 'pending'").fetchone()[0]
            )

        try:
            pending = await self._db.run(run)
        except sqlite3.Error as exc:
            return {"status": "degraded", "backend": "sqlite", "error": str(exc)}
        return {"status": "ok", "backend": "sqlite", "path": self._db.path, "pending": pending}

    async def aclose(self) -> None:
        """Close the file (when no other store of this process uses it)."""
        await self._db.release()


def _holds(conn: sqlite3.Connection, lease: Lease) -> bool:
    row = conn.execute(
        "SELECT 1 FROM alerts WHERE id = ? AND token = ?", (lease.alert.id, lease.token)
    ).fetchone()
    return row is not None


def _complete(conn: sqlite3.Connection, lease: Lease) -> bool:
    cur = conn.execute(
        "UPDATE alerts SET state = 'done', token = NULL, owner = NULL, lease_until = NULL "
        "WHERE id = ? AND token = ?",
        (lease.alert.id, lease.token),
    )
    return cur.rowcount == 1


def _write_results(
    conn: sqlite3.Connection, alert: Alert, results: Sequence[DeliveryResult]
) -> None:
    """Insert (or replace) channels' results and keep the rollups in step."""
    if not results:
        return
    created = alert.created_at.timestamp()
    minute = _minute(created)
    # Results written before (a retried or resumed alert) leave the rollups first.
    replaced = {str(result.channel) for result in results}
    for channel, status, latency in conn.execute(
        "SELECT channel, status, latency FROM results WHERE alert_id = ?", (alert.id,)
    ):
        if channel in replaced:
            conn.execute(
                "UPDATE rollup SET n = n - 1 WHERE minute = ? AND channel = ? "
                "AND status = ? AND bucket = ?",
                (minute, channel, status, _bucket(status, latency)),
            )
    rows = []
    rollups = []
    for result in results:
        channel = str(result.channel)
        status = result.status.value
        rows.append(
            (
                alert.id,
                channel,
                alert.key,
                status,
                result.attempts,
                result.error,
                result.latency,
                json.dumps(dict(result.receipt)) if result.receipt else None,
                created,
            )
        )
        rollups.append((minute, channel, status, _bucket(status, result.latency)))
    conn.executemany(
        "INSERT OR REPLACE INTO results (alert_id, channel, key, status, attempts, "
        "error, latency, receipt, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    conn.executemany(
        "INSERT INTO rollup (minute, channel, status, bucket, n) VALUES (?, ?, ?, ?, 1) "
        "ON CONFLICT (minute, channel, status, bucket) DO UPDATE SET n = n + 1",
        rollups,
    )


def _bucket(status: str, latency: float | None) -> int:
    """The rollup's latency bucket of a result: -1 for results that were not sent."""
    return latency_bucket(latency) if status == "sent" and latency is not None else -1


def _add(
    counts: dict[tuple[str, str], int],
    histograms: dict[str, dict[int, int]],
    channel: str,
    status: str,
    bucket: int,
    n: int,
) -> None:
    if n <= 0:
        return
    counts[(channel, status)] = counts.get((channel, status), 0) + n
    if status == "sent" and bucket >= 0:
        hist = histograms.setdefault(channel, {})
        hist[bucket] = hist.get(bucket, 0) + n


def _results_for_ids(conn: sqlite3.Connection, ids: list[str]) -> list[Any]:
    out: list[Any] = []
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        marks = ",".join("?" * len(chunk))
        out.extend(
            conn.execute(
                "SELECT alert_id, channel, status, attempts, error, latency, receipt "
                f"FROM results WHERE alert_id IN ({marks})",
                chunk,
            )
        )
    return out


def _result(row: Sequence[Any]) -> DeliveryResult:
    channel, status, attempts, error, latency, receipt = row
    return DeliveryResult(
        channel=channel,
        status=status,
        attempts=attempts,
        error=error,
        latency=latency,
        receipt=json.loads(receipt) if receipt else None,
    )
