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
import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from ._clock import Clock, to_datetime
from ._storage import (
    ACKNOWLEDGED,
    GROUP_JOB,
    NEVER_NOTIFIED,
    ROUTE_LATER,
    SUPERSEDED,
    AlertEvent,
    BaseHistoryStore,
    BaseStateBackend,
    Claim,
    HistoryEntry,
    HistoryQuery,
    Job,
    JobClaim,
    Planned,
    Recorded,
    Settled,
    build_stats,
    build_stats_by,
    check_outcome,
    check_stats_by,
    hour_key,
    latency_bucket,
    planned,
)
from ._types import Alert, DeliveryResult, Priority, _new_id

try:
    import fcntl as _fcntl
except ImportError:  # pragma: no cover - Windows: owners are checked by lease only
    _fcntl = None  # type: ignore[assignment]

__all__ = ["SQLiteDatabase", "SQLiteHistoryStore", "SQLiteStateBackend", "sqlite_path"]

T = TypeVar("T")

SCHEMA_VERSION = 5

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id          TEXT PRIMARY KEY,
    key         TEXT NOT NULL,
    created_at  REAL NOT NULL,
    body        TEXT NOT NULL,
    state       TEXT NOT NULL,
    priority    INTEGER NOT NULL DEFAULT 2,
    status      TEXT NOT NULL DEFAULT 'firing',
    source      TEXT NOT NULL DEFAULT '',
    title       TEXT NOT NULL DEFAULT '',
    message     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS alerts_created ON alerts (created_at);
CREATE INDEX IF NOT EXISTS alerts_key_created ON alerts (key, created_at);
CREATE INDEX IF NOT EXISTS alerts_waiting ON alerts (state) WHERE state = 'pending';
CREATE TABLE IF NOT EXISTS deliveries (
    alert_id    TEXT NOT NULL,
    channel     TEXT NOT NULL,
    key         TEXT NOT NULL,
    status      TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    error       TEXT,
    latency     REAL,
    receipt     TEXT,
    created_at  REAL NOT NULL,
    queued_at   REAL NOT NULL,
    due_at      REAL NOT NULL,
    owner       TEXT,
    token       TEXT,
    lease_until REAL,
    grp         TEXT,
    PRIMARY KEY (alert_id, channel)
);
CREATE INDEX IF NOT EXISTS deliveries_due_v4 ON deliveries (due_at)
    WHERE status IN ('pending', 'retrying', 'held') AND grp IS NULL;
CREATE INDEX IF NOT EXISTS deliveries_waiting_key_v4 ON deliveries (key, channel)
    WHERE status IN ('pending', 'retrying', 'held');
CREATE INDEX IF NOT EXISTS deliveries_group ON deliveries (grp, due_at)
    WHERE grp IS NOT NULL AND status IN ('pending', 'retrying', 'held');
CREATE INDEX IF NOT EXISTS deliveries_receipt ON deliveries (key, channel, created_at)
    WHERE receipt IS NOT NULL;
CREATE TABLE IF NOT EXISTS jobs (
    kind        TEXT NOT NULL,
    ref         TEXT NOT NULL,
    due_at      REAL NOT NULL,
    payload     TEXT NOT NULL,
    owner       TEXT,
    token       TEXT,
    lease_until REAL,
    PRIMARY KEY (kind, ref)
);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (due_at);
CREATE TABLE IF NOT EXISTS events (
    alert_id TEXT NOT NULL,
    at       REAL NOT NULL,
    kind     TEXT NOT NULL,
    actor    TEXT,
    via      TEXT,
    note     TEXT
);
CREATE INDEX IF NOT EXISTS events_alert ON events (alert_id);
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
    # Version 3: deliveries on a timeline replace per-alert leases. The alerts'
    # old owner/token/lease_until columns stay, unused. An alert left pending
    # by version 2 keeps its results; the channels it had not finished (and
    # any it never reached) are delivered: failed results of pending alerts are
    # due again, and a '*' row routes the alert once more when it is claimed.
    3: (
        "ALTER TABLE alerts ADD COLUMN priority INTEGER NOT NULL DEFAULT 2",
        "ALTER TABLE alerts ADD COLUMN status TEXT NOT NULL DEFAULT 'firing'",
        "ALTER TABLE alerts ADD COLUMN source TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE alerts ADD COLUMN title TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE alerts ADD COLUMN message TEXT NOT NULL DEFAULT ''",
        "UPDATE alerts SET priority = CASE json_extract(body, '$.priority') "
        "WHEN 'LOW' THEN 1 WHEN 'MEDIUM' THEN 2 WHEN 'HIGH' THEN 3 ELSE 4 END, "
        "status = json_extract(body, '$.status'), source = json_extract(body, '$.source'), "
        "title = json_extract(body, '$.title'), message = json_extract(body, '$.message')",
        "DROP INDEX IF EXISTS alerts_pending",
        *(
            statement.strip()
            for statement in _SCHEMA.split(";")
            if any(name in statement for name in ("deliveries", "jobs", "events", "waiting"))
        ),
        "INSERT INTO deliveries (alert_id, channel, key, status, attempts, error, latency, "
        "receipt, created_at, queued_at, due_at) SELECT r.alert_id, r.channel, r.key, "
        "CASE WHEN r.status = 'failed' AND a.state = 'pending' THEN 'pending' ELSE r.status END, "
        "r.attempts, r.error, r.latency, r.receipt, r.created_at, r.created_at, 0 "
        "FROM results r JOIN alerts a ON a.id = r.alert_id",
        "INSERT INTO deliveries (alert_id, channel, key, status, created_at, queued_at, due_at) "
        "SELECT id, '*', key, 'pending', created_at, created_at, 0 FROM alerts "
        "WHERE state = 'pending'",
        "DROP TABLE results",
    ),
    # Version 4: held deliveries (noise control) and groups. A version 3 file
    # gains the group column; the waiting indexes take 'held' in.
    4: (
        "ALTER TABLE deliveries ADD COLUMN grp TEXT",
        "DROP INDEX IF EXISTS deliveries_due",
        "DROP INDEX IF EXISTS deliveries_waiting_key",
        *(
            statement.strip()
            for statement in _SCHEMA.split(";")
            if "INDEX" in statement and "deliveries" in statement and "grp" in statement
        ),
        *(
            statement.strip()
            for statement in _SCHEMA.split(";")
            if "deliveries_waiting_key_v4" in statement
        ),
    ),
    # Version 5: the newest alerts of a key (acknowledgements, resolves, heartbeats,
    # flapping and `for` look an incident up by key).
    5: ("CREATE INDEX IF NOT EXISTS alerts_key_created ON alerts (key, created_at)",),
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
                    if statement.startswith("ALTER TABLE deliveries ADD COLUMN") and (
                        statement.split()[5] in _columns(conn, "deliveries")
                    ):
                        continue  # made by an earlier step from the newest schema
                    conn.execute(statement)
        if version < SCHEMA_VERSION:
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


def _create_private(path: Path) -> None:
    """Create the database file owner-only (0600) if it does not exist yet."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def _fold(text: str | None) -> str | None:
    """Case folding for searches (SQLite's own lower() knows only ASCII)."""
    return None if text is None else text.casefold()


#: ``?synchronous=`` of a SQLite URL: how much a commit waits for the disk (WAL mode).
SYNCHRONOUS = ("normal", "full")


def sqlite_path(url: str) -> str:
    """The file path of a SQLite URL, as SQLAlchemy reads them.

    ``sqlite:///relative.db``, ``sqlite:////absolute/path.db``, ``sqlite://`` (memory);
    a query (``?synchronous=full``, see :func:`sqlite_synchronous`) is not part of it.
    """
    if not url.startswith("sqlite:"):
        raise ValueError(f"history: expected a sqlite:///path URL, got {url.split(':', 1)[0]}:...")
    rest = url[len("sqlite:") :].split("?", 1)[0]
    if rest.startswith("///"):
        return rest[3:]
    if rest.startswith("//"):
        return rest[2:] or ":memory:"
    return rest or ":memory:"


def sqlite_synchronous(url: str) -> str:
    """The ``synchronous`` setting a SQLite URL asks for: ``normal`` (the default: a
    commit survives the process being killed, a power cut can lose the last ones)
    or ``full`` (``?synchronous=full``: each commit is on disk before it returns)."""
    query = url.split("?", 1)[1] if "?" in url else ""
    options = {k: v for k, v in (p.partition("=")[::2] for p in query.split("&") if p)}
    unknown = sorted(set(options) - {"synchronous"})
    if unknown:
        raise ValueError(
            f"{url.split('?', 1)[0]}: unknown option {unknown[0]!r} (expected: synchronous)"
        )
    value = options.get("synchronous", "normal").lower()
    if value not in SYNCHRONOUS:
        raise ValueError(
            f"{url.split('?', 1)[0]}: synchronous: expected normal or full, got {value[:20]!r}"
        )
    return value


class SQLiteDatabase:
    """One SQLite file, opened once and used from one worker thread."""

    _shared: dict[str, SQLiteDatabase] = {}
    _shared_lock = threading.Lock()

    def __init__(self, path: str, synchronous: str = "normal") -> None:
        self.path = path
        self.synchronous = synchronous
        self._synchronous = ""  # the setting the connection has
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pixalert-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._users = 0
        # Calls waiting for the worker thread, and whether it is draining them.
        self._pending: list[_Call] = []
        self._pending_lock = threading.Lock()
        self._draining = False

    @classmethod
    def open(cls, path: str, synchronous: str = "normal") -> SQLiteDatabase:
        """The database for ``path``, shared by the stores of one process (``full``
        wins when two of them ask for different ``synchronous`` settings)."""
        with cls._shared_lock:
            db = cls._shared.get(path)
            if db is None or path == ":memory:":
                db = cls(path, synchronous)
                if path != ":memory:":
                    cls._shared[path] = db
            elif synchronous == "full":
                db.synchronous = "full"  # the worker applies it before its next batch
            db._users += 1
            return db

    def _connect(self) -> sqlite3.Connection:
        if self._conn is not None and self._synchronous != self.synchronous:
            self._conn.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
            self._synchronous = self.synchronous
        if self._conn is None:
            if self.path != ":memory:":
                _create_private(Path(self.path))
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
            self._synchronous = self.synchronous
            conn.execute("PRAGMA busy_timeout=30000")
            conn.create_function("pixalert_fold", 1, _fold, deterministic=True)
            conn.create_function("pixalert_bucket", 1, latency_bucket, deterministic=True)
            if self.path != ":memory:":
                for suffix in ("-wal", "-shm"):  # alert text can be sensitive: owner-only
                    with contextlib.suppress(OSError):
                        os.chmod(self.path + suffix, 0o600)
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
        try:
            for calls in _kinds(batch):
                first = calls[0][0]
                if isinstance(first, _Mergeable) and len(calls) > 1:
                    # The calls were made concurrently, so none waits for another:
                    # running those of one kind together, in fewer statements, is
                    # as good as any order.
                    values = type(first).many(conn, [call[0] for call in calls])
                else:
                    values = [fn(conn) for fn, _, _ in calls]
                outcomes.extend(
                    (loop, future, value, None)
                    for (_, loop, future), value in zip(calls, values, strict=True)
                )
        except BaseException:
            # Rare (a constraint, a full disk): undo the batch and run its calls
            # one by one, so that only the failing one fails. Calls touch nothing
            # but the database, so running one again after a rollback is safe.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return self._one_by_one(batch)
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


class _Mergeable:
    """A call on the worker thread that can run together with others of its kind.

    Called alone it does its own work (``call(conn)``); ``many(conn, calls)``
    does the work of several in fewer statements and returns each one's value.
    The worker uses it for the calls of one batch, in one transaction.
    """

    def __call__(self, conn: sqlite3.Connection) -> Any:
        return _tx(conn, lambda c: self.many(c, [self])[0])

    @classmethod
    def many(cls, conn: sqlite3.Connection, calls: Sequence[Any]) -> list[Any]:
        raise NotImplementedError


def _kinds(batch: list[_Call]) -> list[list[_Call]]:
    """The calls of ``batch`` by kind: mergeable calls of one class together (where the
    first of them was), every other call alone, in order."""
    out: list[list[_Call]] = []
    by_kind: dict[type, list[_Call]] = {}
    for call in batch:
        fn = call[0]
        if isinstance(fn, _Mergeable):
            same = by_kind.get(type(fn))
            if same is not None:
                same.append(call)
                continue
            same = by_kind[type(fn)] = [call]
            out.append(same)
        else:
            out.append([call])
    return out


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


class _AcquireCall(_Mergeable):
    """One ``acquire`` or ``acquire_many`` call; the acquires of one batch are written
    by one multi-row upsert, which returns the keys it set."""

    __slots__ = ("keys", "now", "ttl")

    def __init__(self, keys: list[str], ttl: float, now: float) -> None:
        self.keys = keys
        self.ttl = ttl
        self.now = now

    @classmethod
    def many(cls, conn: sqlite3.Connection, calls: Sequence[Any]) -> list[list[bool]]:
        rows = [(key, call.now + call.ttl) for call in calls for key in call.keys]
        if not _RETURNING or len(rows) < 2:
            taken = [
                conn.execute(_ACQUIRE, (key, call.now + call.ttl, call.now)).rowcount == 1
                for call in calls
                for key in call.keys
            ]
        else:
            # A key is live if it expires after the newest of the calls' times: the
            # calls were made concurrently, and by now that time has passed for all.
            now = max(call.now for call in calls)
            found = {row[0] for row in _returning(conn, _ACQUIRE_MANY, rows, "(?, ?)", now)}
            # A key asked for twice is taken by its first ask (as one by one).
            taken = []
            for key, _ in rows:
                taken.append(key in found)
                found.discard(key)
        out = []
        start = 0
        for call in calls:
            out.append(taken[start : start + len(call.keys)])
            start += len(call.keys)
        return out


_ACQUIRE_MANY = (
    "INSERT INTO state (key, expires) VALUES {values} "
    "ON CONFLICT (key) DO UPDATE SET expires = excluded.expires, value = NULL "
    "WHERE state.expires <= ? RETURNING key"
)


class SQLiteStateBackend(BaseStateBackend):
    """Cooldown and dedup keys in a SQLite table, atomic across processes."""

    loop_bound = False

    def __init__(self, url: str, clock: Clock) -> None:
        self._db = SQLiteDatabase.open(sqlite_path(url), sqlite_synchronous(url))
        self._clock = clock

    async def acquire(self, key: str, ttl: float) -> bool:
        """Set ``key`` for ``ttl`` seconds unless it is live; True if this call set it."""
        taken: list[bool] = await self._db.run(_AcquireCall([key], ttl, self._clock.now()))
        return taken[0]

    async def acquire_many(self, keys: Sequence[str], ttl: float) -> list[bool]:
        """:meth:`acquire` for each key, in one transaction."""
        if not keys:
            return []
        return await self._db.run(_AcquireCall(list(keys), ttl, self._clock.now()))

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

    async def is_set(self, key: str) -> bool:
        """True if ``key`` is live (set by ``acquire`` or ``put``); changes nothing."""
        now = self._clock.now()

        def run(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT 1 FROM state WHERE key = ? AND expires > ?", (key, now)
            ).fetchone()
            return row is not None

        return await self._db.run(run)

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


_WAITING = "('pending', 'retrying', 'held')"
_DUE_SHOWN = ("retrying", "held")
_FINAL = frozenset({"sent", "failed", "suppressed", "skipped"})


#: A lock file nobody holds is removed once it is this old (seconds): by then its
#: owner's leases have long run out.
_STALE_LOCK = 24 * 3600.0


class _OwnerLocks:
    """Owner liveness for one database file: an OS lock (``flock``) per live owner.

    Each owner holds an exclusive lock on ``<db>-owners/<hash>.lock`` for as
    long as it runs; the OS drops the lock when the process dies, however it
    dies. Another process that can take the lock knows the owner is gone.
    Where ``fcntl`` is missing (Windows), or for in-memory databases, nothing
    is known and leases decide.
    """

    def __init__(self, db_path: str) -> None:
        self.enabled = _fcntl is not None and db_path != ":memory:"
        self.directory = Path(db_path + "-owners")
        self.held: dict[str, int] = {}

    def _file(self, owner: str) -> Path:
        return self.directory / (hashlib.sha1(owner.encode()).hexdigest()[:24] + ".lock")

    def take(self, owner: str) -> None:
        if not self.enabled or owner in self.held:
            return
        assert _fcntl is not None
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._prune()
        fd = os.open(self._file(owner), os.O_CREAT | os.O_RDWR, 0o600)
        try:
            _fcntl.flock(fd, _fcntl.LOCK_EX | _fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise
        self.held[owner] = fd

    def _prune(self) -> None:
        """Remove lock files of owners that died long ago (their leases ran out since)."""
        cutoff = time.time() - _STALE_LOCK
        for path in self.directory.glob("*.lock"):
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < cutoff and self._free(path):
                    path.unlink()

    @staticmethod
    def _free(path: Path) -> bool:
        """True if nobody holds the lock on ``path`` (False if it cannot be opened)."""
        assert _fcntl is not None
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError:
            return False
        try:
            _fcntl.flock(fd, _fcntl.LOCK_EX | _fcntl.LOCK_NB)
        except OSError:
            return False
        else:
            return True
        finally:
            os.close(fd)

    def drop(self, owner: str) -> None:
        fd = self.held.pop(owner, None)
        if fd is None:
            return
        with contextlib.suppress(OSError):
            self._file(owner).unlink()
        os.close(fd)

    def drop_all(self) -> None:
        """Let go of every lock without cleaning up (as a dying process would)."""
        for fd in self.held.values():
            os.close(fd)
        self.held.clear()

    def gone(self, owner: str) -> bool:
        """True if ``owner`` announced itself here and no process holds its lock now."""
        if not self.enabled or owner in self.held:
            return False
        return self._free(self._file(owner))


def _claimable(
    conn: sqlite3.Connection, locks: _OwnerLocks, table: str, now: float, alias: str = ""
) -> str:
    """The SQL condition (one ``?`` for now) for rows of ``table`` that nobody live holds,
    owners found gone included; ``alias`` prefixes the columns (``"d."``)."""
    owner, lease = f"{alias}owner", f"{alias}lease_until"
    condition = f"({owner} IS NULL OR {lease} <= ?)"
    if not locks.enabled:
        return condition
    waiting = f" AND status IN {_WAITING}" if table == "deliveries" else ""
    holders = [
        row[0]
        for row in conn.execute(
            f"SELECT DISTINCT owner FROM {table} WHERE owner IS NOT NULL AND lease_until > ?"
            + waiting,
            (now,),
        )
    ]
    gone = [owner for owner in holders if locks.gone(owner)]
    if not gone:
        return condition
    quoted = ", ".join("'" + name.replace("'", "''") + "'" for name in gone)
    return f"({owner} IS NULL OR {lease} <= ? OR {owner} IN ({quoted}))"


class SQLiteHistoryStore(BaseHistoryStore):
    """History and the delivery timeline in SQLite, shared by every process using the file.

    A claim's owner is known to be alive while it holds its lock file (see
    :meth:`open_owner`), so the work of a process that died is taken over by
    the next sweep of any other, without waiting for the lease.
    """

    loop_bound = False

    def __init__(self, url: str, clock: Clock) -> None:
        self._db = SQLiteDatabase.open(sqlite_path(url), sqlite_synchronous(url))
        self._clock = clock
        self._locks = _OwnerLocks(self._db.path)

    @property
    def path(self) -> str:
        """The database file's path (``:memory:`` for an in-memory database)."""
        return self._db.path

    # -- owners ----------------------------------------------------------

    async def open_owner(self, owner: str) -> None:
        """Hold ``owner``'s lock file (beside the database) until :meth:`close_owner`."""
        await self._db.run(lambda _: self._locks.take(owner))

    async def close_owner(self, owner: str) -> None:
        """Give back ``owner``'s unfinished claims, then drop its lock."""

        def run(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE deliveries SET owner = NULL, token = NULL, lease_until = NULL "
                f"WHERE owner = ? AND status IN {_WAITING}",
                (owner,),
            )
            conn.execute(
                "UPDATE jobs SET owner = NULL, token = NULL, lease_until = NULL WHERE owner = ?",
                (owner,),
            )

        try:
            await self._db.run(lambda c: _tx(c, run))
        finally:
            await self._db.run(lambda _: self._locks.drop(owner))

    # -- alerts and deliveries --------------------------------------------

    async def record(
        self, alert: Alert, channels: Sequence[str | Planned], *, owner: str, lease: float
    ) -> Recorded:
        """Store ``alert`` with a delivery per channel: claimed by ``owner``, or held."""
        return (await self.record_many([alert], [channels], owner=owner, lease=lease))[0]

    async def record_many(
        self,
        alerts: Sequence[Alert],
        channels: Sequence[Sequence[str | Planned]],
        *,
        owner: str,
        lease: float,
    ) -> list[Recorded]:
        """:meth:`record` for each alert, in one transaction."""
        if len(alerts) != len(channels):
            raise ValueError("record_many: expected one channel list per alert")
        now = self._clock.now()
        plans = [
            (alert, planned(names), _alert_row(alert))
            for alert, names in zip(alerts, channels, strict=True)
        ]
        return await self._db.run(_RecordCall(plans, owner, now, now + lease))

    async def settle(self, outcomes: Sequence[tuple[Claim, DeliveryResult]]) -> Settled:
        """Write each outcome whose claim is still held, in one transaction (with the
        settles made at the same time: a few statements for all of them)."""
        for claim, result in outcomes:
            check_outcome(claim, result)
        return await self._db.run(_SettleCall(list(outcomes)))

    async def claim_due(self, *, owner: str, lease: float, limit: int = 100) -> list[Claim]:
        """Claim due deliveries held by no live owner, soonest first."""
        now = self._clock.now()

        def run(conn: sqlite3.Connection) -> list[Claim]:
            free = _claimable(conn, self._locks, "deliveries", now, "d.")
            rows = conn.execute(
                "SELECT d.alert_id, d.channel, d.attempts, d.queued_at, a.body "
                "FROM deliveries d JOIN alerts a ON a.id = d.alert_id "
                f"WHERE d.status IN {_WAITING} AND d.grp IS NULL AND d.due_at <= ? AND {free} "
                "ORDER BY d.due_at LIMIT ?",
                (now, now, limit),
            ).fetchall()
            return _claim_rows(conn, rows, owner, now + lease)

        return await self._db.run(lambda c: _tx(c, run))

    async def claim_group(
        self, group: str, *, owner: str, lease: float, limit: int | None = None
    ) -> list[Claim]:
        """Claim the group's due waiting members held by no live owner, oldest first."""
        now = self._clock.now()

        def run(conn: sqlite3.Connection) -> list[Claim]:
            free = _claimable(conn, self._locks, "deliveries", now, "d.")
            rows = conn.execute(
                "SELECT d.alert_id, d.channel, d.attempts, d.queued_at, a.body "
                "FROM deliveries d JOIN alerts a ON a.id = d.alert_id "
                f"WHERE d.grp = ? AND d.status IN {_WAITING} AND d.due_at <= ? AND {free} "
                "ORDER BY d.created_at, d.rowid LIMIT ?",
                (group, now, now, -1 if limit is None else limit),
            ).fetchall()
            return _claim_rows(conn, rows, owner, now + lease)

        return await self._db.run(lambda c: _tx(c, run))

    async def renew(self, claims: Sequence[Claim], lease: float) -> None:
        """Extend the claims still held (the lease runs from when the worker writes it)."""
        until, queued = self._clock.now() + lease, time.monotonic()
        keys = [(c.alert.id, c.channel, c.token) for c in claims]

        def run(conn: sqlite3.Connection) -> None:
            late = until + max(0.0, time.monotonic() - queued)
            conn.executemany(
                "UPDATE deliveries SET lease_until = ? "
                "WHERE alert_id = ? AND channel = ? AND token = ?",
                [(late, *key) for key in keys],
            )

        if keys:
            await self._db.run(lambda conn: _tx(conn, run))

    async def release(self, claims: Sequence[Claim]) -> None:
        """Give back claims still held: due again now."""
        rows = [(c.alert.id, c.channel, c.token) for c in claims]
        if rows:
            await self._db.run(
                lambda conn: _tx(
                    conn,
                    lambda c: c.executemany(
                        "UPDATE deliveries SET owner = NULL, token = NULL, lease_until = NULL "
                        "WHERE alert_id = ? AND channel = ? AND token = ?",
                        rows,
                    ),
                )
            )

    # -- jobs --------------------------------------------------------------

    async def schedule(self, jobs: Sequence[Job], *, replace: bool = True) -> list[bool]:
        """Put jobs on the timeline."""
        rows = [
            (
                job.kind,
                job.ref,
                float(job.due),
                json.dumps(dict(job.payload), separators=(",", ":")),
            )
            for job in jobs
        ]
        sql = "INSERT INTO jobs (kind, ref, due_at, payload) VALUES (?, ?, ?, ?) ON CONFLICT "
        sql += (
            "(kind, ref) DO UPDATE SET due_at = excluded.due_at, payload = excluded.payload, "
            "owner = NULL, token = NULL, lease_until = NULL"
            if replace
            else "(kind, ref) DO NOTHING"
        )

        def run(conn: sqlite3.Connection) -> list[bool]:
            return [conn.execute(sql, row).rowcount == 1 for row in rows]

        return await self._db.run(lambda c: _tx(c, run))

    async def cancel_jobs(self, kind: str, refs: Sequence[str]) -> int:
        """Remove these jobs."""

        def run(conn: sqlite3.Connection) -> int:
            return sum(
                conn.execute("DELETE FROM jobs WHERE kind = ? AND ref = ?", (kind, ref)).rowcount
                for ref in refs
            )

        return await self._db.run(lambda c: _tx(c, run))

    async def claim_jobs(self, *, owner: str, lease: float, limit: int = 100) -> list[JobClaim]:
        """Claim due jobs held by no live owner, soonest first."""
        now = self._clock.now()

        def run(conn: sqlite3.Connection) -> list[JobClaim]:
            free = _claimable(conn, self._locks, "jobs", now)
            rows = conn.execute(
                f"SELECT kind, ref, due_at, payload FROM jobs WHERE due_at <= ? AND {free} "
                "ORDER BY due_at LIMIT ?",
                (now, now, limit),
            ).fetchall()
            claims = []
            for kind, ref, due, payload in rows:
                token = _new_id()
                conn.execute(
                    "UPDATE jobs SET owner = ?, token = ?, lease_until = ? "
                    "WHERE kind = ? AND ref = ?",
                    (owner, token, now + lease, kind, ref),
                )
                claims.append(JobClaim(Job(kind, ref, due, json.loads(payload)), token))
            return claims

        return await self._db.run(lambda c: _tx(c, run))

    async def finish_job(
        self,
        claim: JobClaim,
        *,
        next_due: float | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> bool:
        """Remove or reschedule a claimed job, if the claim is still held."""
        job = claim.job

        def run(conn: sqlite3.Connection) -> bool:
            due = next_due
            if job.kind == GROUP_JOB:
                (first,) = conn.execute(
                    f"SELECT MIN(due_at) FROM deliveries WHERE grp = ? AND status IN {_WAITING}",
                    (job.ref,),
                ).fetchone()
                if first is not None:
                    due = first if due is None else min(due, first)
            if due is None:
                sql = "DELETE FROM jobs WHERE kind = ? AND ref = ? AND token = ?"
                params: tuple[Any, ...] = (job.kind, job.ref, claim.token)
            else:
                body = json.dumps(dict(job.payload if payload is None else payload))
                sql = (
                    "UPDATE jobs SET due_at = ?, payload = ?, owner = NULL, token = NULL, "
                    "lease_until = NULL WHERE kind = ? AND ref = ? AND token = ?"
                )
                params = (float(due), body, job.kind, job.ref, claim.token)
            return bool(conn.execute(sql, params).rowcount == 1)

        return await self._db.run(lambda c: _tx(c, run))

    async def jobs(self, kind: str | None = None) -> list[Job]:
        """Scheduled jobs, soonest first."""

        def run(conn: sqlite3.Connection) -> list[Job]:
            sql = "SELECT kind, ref, due_at, payload FROM jobs"
            params: tuple[Any, ...] = ()
            if kind is not None:
                sql += " WHERE kind = ?"
                params = (kind,)
            rows = conn.execute(sql + " ORDER BY due_at", params).fetchall()
            return [Job(k, r, d, json.loads(p)) for k, r, d, p in rows]

        return await self._db.run(run)

    # -- events and queries ---------------------------------------------------

    async def add_events(self, events: Sequence[AlertEvent]) -> None:
        """Keep events with their alerts."""
        rows = [
            (e.alert_id, e.at.timestamp(), e.kind, e.by, e.via, e.note, e.alert_id) for e in events
        ]
        if rows:
            await self._db.run(
                lambda conn: _tx(
                    conn,
                    lambda c: c.executemany(
                        "INSERT INTO events (alert_id, at, kind, actor, via, note) "
                        "SELECT ?, ?, ?, ?, ?, ? WHERE EXISTS "
                        "(SELECT 1 FROM alerts WHERE id = ?)",
                        rows,
                    ),
                )
            )

    async def results_for(self, alert_id: str) -> list[DeliveryResult]:
        """The alert's deliveries."""
        return await self._db.run(lambda c: _results(c, [alert_id]).get(alert_id, []))

    async def last_receipt(self, key: str, channel: str) -> Mapping[str, str] | None:
        """Receipt of the newest successful send of ``key`` on ``channel``."""

        def run(conn: sqlite3.Connection) -> Mapping[str, str] | None:
            row = conn.execute(
                "SELECT receipt FROM deliveries WHERE key = ? AND channel = ? "
                "AND receipt IS NOT NULL AND status = 'sent' ORDER BY created_at DESC LIMIT 1",
                (key, channel),
            ).fetchone()
            return json.loads(row[0]) if row else None

        return await self._db.run(run)

    async def entries(self, query: HistoryQuery) -> list[HistoryEntry]:
        """The alerts ``query`` selects, newest first."""
        where, params = _where(query)
        sql = f"SELECT id, body, state FROM alerts a WHERE {where} ORDER BY created_at DESC"
        if query.limit is not None:
            sql += " LIMIT ?"
            params.append(query.limit)

        def run(conn: sqlite3.Connection) -> list[HistoryEntry]:
            rows = conn.execute(sql, params).fetchall()
            return _entries(conn, rows)

        return await self._db.run(run)

    async def entry(self, alert_id: str) -> HistoryEntry | None:
        """One alert by id."""

        def run(conn: sqlite3.Connection) -> HistoryEntry | None:
            rows = conn.execute(
                "SELECT id, body, state FROM alerts WHERE id = ?", (alert_id,)
            ).fetchall()
            found = _entries(conn, rows)
            return found[0] if found else None

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
            # Through the alerts' created_at index (a delivery's created_at is its
            # alert's): deliveries have no index on it, and a scan of them is slow.
            for channel, status, latency in conn.execute(
                "SELECT d.channel, d.status, d.latency FROM alerts a "
                "JOIN deliveries d ON d.alert_id = a.id "
                "WHERE a.created_at >= ? AND a.created_at < ? "
                "AND d.status IN ('sent', 'failed', 'suppressed', 'skipped')",
                (start, (first + 1) * 60),
            ):
                _add(counts, histograms, channel, status, _bucket(status, latency), 1)
            # The first IN repeats the partial index's WHERE, so SQLite reads the
            # waiting deliveries from it instead of scanning every delivery.
            for channel, status, n in conn.execute(
                f"SELECT channel, status, COUNT(*) FROM deliveries WHERE status IN {_WAITING} "
                "AND status IN ('retrying', 'held') AND created_at >= ? GROUP BY channel, status",
                (start,),
            ):
                _add(counts, histograms, channel, status, -1, n)
            (alerts,) = conn.execute(
                "SELECT COALESCE(SUM(n), 0) FROM alert_minutes WHERE minute > ?", (first,)
            ).fetchone()
            (partial,) = conn.execute(
                "SELECT COUNT(*) FROM alerts WHERE created_at >= ? AND created_at < ?",
                (start, (first + 1) * 60),
            ).fetchone()
            return build_stats(since, int(alerts) + int(partial), counts, histograms)

        return await self._db.run(run)

    async def stats_by(self, since: datetime, until: datetime | None, by: str) -> dict[str, Any]:
        """Counts per channel, priority, source or hour of the alerts created in
        ``[since, until)``, grouped in SQL over the window's alerts and deliveries."""
        group = _STATS_GROUPS[check_stats_by(by)]
        where, params = _where(HistoryQuery(since=since, until=until, limit=None))
        join = (
            f"FROM alerts a JOIN deliveries d ON d.alert_id = a.id AND d.channel != '{ROUTE_LATER}'"
        )
        per_group = (
            f"SELECT d.channel, COUNT(DISTINCT d.alert_id) {join} WHERE {where} GROUP BY 1"
            if by == "channel"
            else f"SELECT {group}, COUNT(*) FROM alerts a WHERE {where} GROUP BY 1"
        )
        bucket = "CASE WHEN d.status = 'sent' AND d.latency IS NOT NULL "
        bucket += "THEN pixalert_bucket(d.latency) ELSE -1 END"
        per_status = (
            f"SELECT {group}, d.status, {bucket}, COUNT(*) {join} WHERE {where} GROUP BY 1, 2, 3"
        )

        def name(value: Any) -> str:
            if by == "priority":
                return Priority(int(value)).name
            if by == "hour":
                return hour_key(int(value) * 3600)
            return str(value)

        def run(conn: sqlite3.Connection) -> dict[str, Any]:
            (alerts,) = conn.execute(
                f"SELECT COUNT(*) FROM alerts a WHERE {where}", params
            ).fetchone()
            groups = {name(g): int(n) for g, n in conn.execute(per_group, params)}
            counts: dict[tuple[str, str], int] = {}
            histograms: dict[str, dict[int, int]] = {}
            for g, status, bucket, n in conn.execute(per_status, params):
                _add(counts, histograms, name(g), status, bucket, n)
            return build_stats_by(since, until, by, int(alerts), groups, counts, histograms)

        return await self._db.run(run)

    async def purge(self, before: datetime) -> int:
        """Delete finished alerts (with their deliveries, events and rollups) created before
        ``before``, and expired state keys."""
        cutoff = before.timestamp()
        old = "SELECT id FROM alerts WHERE created_at < ? AND state = 'done'"

        def run(conn: sqlite3.Connection) -> int:
            conn.execute(f"DELETE FROM deliveries WHERE alert_id IN ({old})", (cutoff,))
            conn.execute(f"DELETE FROM events WHERE alert_id IN ({old})", (cutoff,))
            conn.execute("DELETE FROM rollup WHERE minute < ?", (_minute(cutoff),))
            conn.execute("DELETE FROM alert_minutes WHERE minute < ?", (_minute(cutoff),))
            conn.execute("DELETE FROM state WHERE expires < ?", (self._clock.now(),))
            return conn.execute(
                "DELETE FROM alerts WHERE created_at < ? AND state = 'done'", (cutoff,)
            ).rowcount

        return await self._db.run(lambda c: _tx(c, run))

    async def health(self) -> Mapping[str, Any]:
        """ok, with the file path, the alerts not finished and the deliveries retrying."""

        def run(conn: sqlite3.Connection) -> tuple[int, int]:
            (pending,) = conn.execute(
                "SELECT COUNT(*) FROM alerts WHERE state = 'pending'"
            ).fetchone()
            (retrying,) = conn.execute(
                f"SELECT COUNT(*) FROM deliveries WHERE status IN {_WAITING} "
                "AND status = 'retrying'"
            ).fetchone()
            return int(pending), int(retrying)

        try:
            pending, retrying = await self._db.run(run)
        except (sqlite3.Error, OSError) as exc:
            return {
                "status": "degraded",
                "backend": "sqlite",
                "path": self._db.path,
                "error": str(exc),
            }
        return {
            "status": "ok",
            "backend": "sqlite",
            "path": self._db.path,
            "pending": pending,
            "retrying": retrying,
        }

    async def aclose(self) -> None:
        """Close this handle: owners still open through it let go of their locks
        (their unfinished claims are taken over by the next sweep elsewhere)."""
        await self._db.run(lambda _: self._locks.drop_all())
        await self._db.release()


def _claim_rows(
    conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]], owner: str, until: float
) -> list[Claim]:
    """Claim the delivery rows ``(alert_id, channel, attempts, queued_at, body)`` for ``owner``."""
    claims = []
    updates = []
    alerts: dict[str, Alert] = {}
    for alert_id, channel, attempts, queued_at, body in rows:
        alert = alerts.get(alert_id)
        if alert is None:
            alert = alerts[alert_id] = Alert.from_dict(json.loads(body))
        token = _new_id()
        claims.append(Claim(alert, channel, token, attempts, queued_at))
        updates.append((owner, token, until, alert_id, channel))
    conn.executemany(
        "UPDATE deliveries SET owner = ?, token = ?, lease_until = ? "
        "WHERE alert_id = ? AND channel = ?",
        updates,
    )
    return claims


def _alert_row(alert: Alert) -> tuple[Any, ...]:
    return (
        alert.id,
        alert.key,
        alert.created_at.timestamp(),
        json.dumps(alert.to_dict(), separators=(",", ":")),
        int(alert.priority),
        alert.status,
        alert.source,
        alert.title,
        alert.message,
    )


def _record(
    conn: sqlite3.Connection,
    alert: Alert,
    plans: list[Planned],
    row: tuple[Any, ...],
    *,
    owner: str,
    now: float,
    until: float,
) -> Recorded:
    """Insert one alert with its deliveries (claimed), superseding waiting firing ones."""
    created = row[2]
    new = (
        conn.execute(
            "INSERT INTO alerts (id, key, created_at, body, state, priority, status, source, "
            "title, message) VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO NOTHING",
            row,
        ).rowcount
        == 1
    )
    if new:
        conn.execute(
            "INSERT INTO alert_minutes (minute, n) VALUES (?, 1) "
            "ON CONFLICT (minute) DO UPDATE SET n = n + 1",
            (_minute(created),),
        )
    channels = [plan.channel for plan in plans]
    superseded = _supersede(conn, alert, channels, now) if alert.resolved and channels else set()
    claims = []
    final: set[str] = set()
    rollups: collections.Counter[tuple[int, str, str, int]] = collections.Counter()
    for plan in plans:
        channel = plan.channel
        if channel in superseded:
            inserted = conn.execute(
                "INSERT INTO deliveries (alert_id, channel, key, status, error, created_at, "
                "queued_at, due_at) VALUES (?, ?, ?, 'suppressed', ?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (alert.id, channel, alert.key, NEVER_NOTIFIED, created, now, now),
            ).rowcount
            if inserted:
                rollups[(_minute(created), channel, "suppressed", -1)] += 1
            continue
        if plan.final is not None:
            status = plan.final.value
            inserted = conn.execute(
                "INSERT INTO deliveries (alert_id, channel, key, status, error, created_at, "
                "queued_at, due_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (alert.id, channel, alert.key, status, plan.note, created, now, now),
            ).rowcount
            if inserted:
                final.add(channel)
                rollups[(_minute(created), channel, status, -1)] += 1
            continue
        if plan.held(now):
            due = now if plan.due is None else float(plan.due)
            inserted = conn.execute(
                "INSERT INTO deliveries (alert_id, channel, key, status, error, created_at, "
                "queued_at, due_at, grp) VALUES (?, ?, ?, 'held', ?, ?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (alert.id, channel, alert.key, plan.note, created, now, due, plan.group),
            ).rowcount
            if inserted and plan.group is not None:
                flush = due if plan.flush_by is None else float(plan.flush_by)
                conn.execute(
                    "INSERT INTO jobs (kind, ref, due_at, payload) VALUES (?, ?, ?, '{}') "
                    "ON CONFLICT (kind, ref) DO UPDATE SET due_at = excluded.due_at "
                    "WHERE excluded.due_at < jobs.due_at",
                    (GROUP_JOB, plan.group, flush),
                )
            continue
        token = _new_id()
        inserted = conn.execute(
            "INSERT INTO deliveries (alert_id, channel, key, status, created_at, queued_at, "
            "due_at, owner, token, lease_until) VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            (alert.id, channel, alert.key, created, now, now, owner, token, until),
        ).rowcount
        if inserted:
            claims.append(Claim(alert, channel, token, 0, now))
    if not new:  # routed again: the '*' row of an alert that was never routed goes
        conn.execute(
            "DELETE FROM deliveries WHERE alert_id = ? AND channel = ?", (alert.id, ROUTE_LATER)
        )
    _add_rollups(conn, rollups)
    if not new or not claims:  # nothing to deliver (no channel, or every one superseded)
        _complete(conn, [alert.id])
    return Recorded(alert, tuple(claims), superseded, final)


class _RecordCall(_Mergeable):
    """One ``record_many`` call; the records of one batch are written together."""

    __slots__ = ("now", "owner", "plans", "queued", "until")

    def __init__(
        self,
        plans: list[tuple[Alert, list[Planned], tuple[Any, ...]]],
        owner: str,
        now: float,
        until: float,
    ) -> None:
        self.plans = plans
        self.owner = owner
        self.now = now
        self.until = until
        self.queued = time.monotonic()

    def lease_until(self) -> float:
        """``until``, moved on by the time this call waited for the worker: a claim's
        lease runs from when it is written, so a long queue in a burst cannot use it
        up before the claim is even tracked (and a sweep take it over, a duplicate)."""
        return self.until + max(0.0, time.monotonic() - self.queued)

    def _simple(self) -> bool:
        """Firing alerts whose deliveries are all due now (no resolve, nothing held)."""
        return all(
            not alert.resolved and not any(plan.held(self.now) for plan in plans)
            for alert, plans, _ in self.plans
        )

    @classmethod
    def many(cls, conn: sqlite3.Connection, calls: Sequence[Any]) -> list[list[Recorded]]:
        ids = [alert.id for call in calls for alert, _, _ in call.plans]
        if (
            not _RETURNING
            or len(ids) < 2
            or len(set(ids)) < len(ids)
            or not all(call._simple() for call in calls)
        ):
            return [
                [
                    _record(
                        conn, a, p, row, owner=call.owner, now=call.now, until=call.lease_until()
                    )
                    for a, p, row in call.plans
                ]
                for call in calls
            ]
        return _record_simple(conn, calls)


def _record_simple(conn: sqlite3.Connection, calls: Sequence[_RecordCall]) -> list[list[Recorded]]:
    """What :func:`_record` does for each alert of ``calls``, in a few statements for all
    of them: firing alerts, each once, every delivery due now."""
    rows = [row for call in calls for _, _, row in call.plans]
    new = {
        row[0]
        for row in _returning(
            conn,
            "INSERT INTO alerts (id, key, created_at, body, state, priority, status, "
            "source, title, message) VALUES {values} ON CONFLICT (id) DO NOTHING RETURNING id",
            rows,
            "(?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?)",
        )
    }
    minutes = collections.Counter(_minute(row[2]) for row in rows if row[0] in new)
    if minutes:
        conn.executemany(
            "INSERT INTO alert_minutes (minute, n) VALUES (?, ?) "
            "ON CONFLICT (minute) DO UPDATE SET n = n + excluded.n",
            sorted(minutes.items()),
        )
    # (alert_id, channel, key, status, error, created_at, queued_at, due_at, owner, token,
    # lease_until): pending and claimed, or final as planned
    wanted: list[tuple[Any, ...]] = []
    for call in calls:
        now, owner, until = call.now, call.owner, call.lease_until()
        for alert, plans, row in call.plans:
            for plan in plans:
                claim: tuple[str | None, str | None, float | None]
                if plan.final is None:
                    status, error, claim = "pending", None, (owner, _new_id(), until)
                else:
                    status, error, claim = plan.final.value, plan.note, (None, None, None)
                wanted.append(
                    (alert.id, plan.channel, alert.key, status, error, row[2], now, now, *claim)
                )
    inserted = set(
        _returning(
            conn,
            "INSERT INTO deliveries (alert_id, channel, key, status, error, created_at, "
            "queued_at, due_at, owner, token, lease_until) VALUES {values} "
            "ON CONFLICT DO NOTHING RETURNING alert_id, channel",
            wanted,
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
    )
    out: list[list[Recorded]] = []
    tokens = iter(row[9] for row in wanted)
    finished: list[str] = []
    routed_again: list[str] = []
    rollups: collections.Counter[tuple[int, str, str, int]] = collections.Counter()
    for call in calls:
        recorded = []
        for alert, plans, row in call.plans:
            claims = []
            final = set()
            for plan in plans:
                token = next(tokens)
                if (alert.id, plan.channel) not in inserted:
                    continue
                inserted.discard((alert.id, plan.channel))  # its first occurrence only
                if plan.final is None:
                    claims.append(Claim(alert, plan.channel, token, 0, call.now))
                else:
                    final.add(plan.channel)
                    rollups[(_minute(row[2]), plan.channel, plan.final.value, -1)] += 1
            if alert.id not in new:
                routed_again.append(alert.id)
            if alert.id not in new or not claims:
                finished.append(alert.id)
            recorded.append(Recorded(alert, tuple(claims), (), final))
        out.append(recorded)
    _add_rollups(conn, rollups)
    for marks, ids in _chunks(routed_again):
        conn.execute(
            f"DELETE FROM deliveries WHERE channel = ? AND alert_id IN ({marks})",
            (ROUTE_LATER, *ids),
        )
    if finished:
        _complete(conn, finished)
    return out


#: Rows written by one multi-row statement (at most 11 parameters each, far below
#: SQLite's limit of 32,766).
_ROWS_PER_STATEMENT = 500


def _returning(
    conn: sqlite3.Connection, sql: str, rows: Sequence[Sequence[Any]], marks: str, *extra: Any
) -> list[Any]:
    """Run ``sql`` (a multi-row statement with ``RETURNING``; ``{values}`` is where the
    rows go, each as ``marks``, then the ``extra`` parameters) for ``rows``, a few
    hundred at a time; every row it returned."""
    out: list[Any] = []
    for start in range(0, len(rows), _ROWS_PER_STATEMENT):
        chunk = rows[start : start + _ROWS_PER_STATEMENT]
        values = ",".join([marks] * len(chunk))
        params = [*(value for row in chunk for value in row), *extra]
        out.extend(conn.execute(sql.format(values=values), params).fetchall())
    return out


def _supersede(conn: sqlite3.Connection, alert: Alert, channels: list[str], now: float) -> set[str]:
    marks = ",".join("?" * len(channels))
    rows = conn.execute(
        "SELECT d.alert_id, d.channel, d.created_at FROM deliveries d "
        "JOIN alerts a ON a.id = d.alert_id "
        f"WHERE d.key = ? AND d.channel IN ({marks}) AND d.status IN {_WAITING} "
        "AND a.status = 'firing' AND a.id != ? AND (d.owner IS NULL OR d.lease_until <= ?)",
        (alert.key, *channels, alert.id, now),
    ).fetchall()
    if not rows:
        return set()
    conn.executemany(
        "UPDATE deliveries SET status = 'suppressed', error = ?, owner = NULL, token = NULL, "
        "lease_until = NULL WHERE alert_id = ? AND channel = ?",
        [(SUPERSEDED, alert_id, channel) for alert_id, channel, _ in rows],
    )
    _add_rollups(
        conn,
        collections.Counter(
            (_minute(created), channel, "suppressed", -1) for _, channel, created in rows
        ),
    )
    _complete(conn, list(dict.fromkeys(alert_id for alert_id, _, _ in rows)))
    return {channel for _, channel, _ in rows}


def _complete(conn: sqlite3.Connection, alert_ids: Sequence[str]) -> list[str]:
    """Mark done the alerts among ``alert_ids`` with no delivery waiting; return those."""
    if _RETURNING and len(alert_ids) > 1:
        found: set[str] = set()
        for marks, chunk in _chunks(alert_ids):
            found.update(
                row[0]
                for row in conn.execute(
                    # ``+state``: look the ids up by primary key. Without it SQLite
                    # plans the partial index of pending alerts and reads every
                    # pending alert per call (8 ms per call with 50,000 in a backlog).
                    f"UPDATE alerts SET state = 'done' WHERE id IN ({marks}) "
                    "AND +state = 'pending' AND NOT EXISTS (SELECT 1 FROM deliveries "
                    f"WHERE alert_id = alerts.id AND status IN {_WAITING}) RETURNING id",
                    chunk,
                )
            )
        return [alert_id for alert_id in dict.fromkeys(alert_ids) if alert_id in found]
    done = []
    for alert_id in alert_ids:
        cur = conn.execute(
            "UPDATE alerts SET state = 'done' WHERE id = ? AND state = 'pending' AND NOT EXISTS "
            f"(SELECT 1 FROM deliveries WHERE alert_id = ? AND status IN {_WAITING})",
            (alert_id, alert_id),
        )
        if cur.rowcount == 1:
            done.append(alert_id)
    return done


#: UPDATE ... RETURNING (SQLite 3.35): many rows written, and told which, in one statement.
_RETURNING = sqlite3.sqlite_version_info >= (3, 35, 0)
_SETTLE_ONE = (
    "UPDATE deliveries SET status = ?, attempts = ?, error = ?, latency = ?, "
    "receipt = ?, due_at = COALESCE(?, due_at), owner = NULL, token = NULL, "
    "lease_until = NULL "
    f"WHERE alert_id = ? AND channel = ? AND token = ? AND status IN {_WAITING}"
)
_SETTLE_MANY = (
    "WITH o (status, attempts, error, latency, receipt, due, alert_id, channel, token) "
    "AS (VALUES {values}) "
    "UPDATE deliveries SET status = o.status, attempts = o.attempts, error = o.error, "
    "latency = o.latency, receipt = o.receipt, due_at = COALESCE(o.due, deliveries.due_at), "
    "owner = NULL, token = NULL, lease_until = NULL FROM o "
    "WHERE deliveries.alert_id = o.alert_id AND deliveries.channel = o.channel "
    f"AND deliveries.token = o.token AND deliveries.status IN {_WAITING} "
    "RETURNING deliveries.alert_id, deliveries.channel"
)


class _SettleCall(_Mergeable):
    """One ``settle`` call; the settles of one batch are written together."""

    __slots__ = ("outcomes",)

    def __init__(self, outcomes: list[tuple[Claim, DeliveryResult]]) -> None:
        self.outcomes = outcomes

    @classmethod
    def many(cls, conn: sqlite3.Connection, calls: Sequence[Any]) -> list[Settled]:
        pairs = [pair for call in calls for pair in call.outcomes]
        accepted = _write_outcomes(conn, pairs)
        # Per alert, the last outcome written: the call that has it reports it done.
        last: dict[str, int] = {}
        rollups: collections.Counter[tuple[int, str, str, int]] = collections.Counter()
        for n, ((claim, result), ok) in enumerate(zip(pairs, accepted, strict=True)):
            if ok:
                last[claim.alert.id] = n
                status = result.status.value
                if status in _FINAL:
                    minute = _minute(claim.alert.created_at.timestamp())
                    rollups[(minute, claim.channel, status, _bucket(status, result.latency))] += 1
        _add_rollups(conn, rollups)
        done = set(_complete(conn, list(last)))
        out = []
        start = 0
        for call in calls:
            end = start + len(call.outcomes)
            ids = dict.fromkeys(claim.alert.id for claim, _ in call.outcomes)
            completed = tuple(i for i in ids if i in done and start <= last[i] < end)
            out.append(Settled(tuple(accepted[start:end]), completed))
            start = end
        return out


def _write_outcomes(
    conn: sqlite3.Connection, pairs: Sequence[tuple[Claim, DeliveryResult]]
) -> list[bool]:
    """Write each outcome whose claim is still held; whether each was written."""
    rows = [
        (
            result.status.value,
            result.attempts,
            result.error,
            result.latency,
            json.dumps(dict(result.receipt)) if result.receipt else None,
            result.next_attempt_at.timestamp() if result.next_attempt_at else None,
            claim.alert.id,
            claim.channel,
            claim.token,
        )
        for claim, result in pairs
    ]
    keys = [(claim.alert.id, claim.channel) for claim, _ in pairs]
    if not _RETURNING or len(rows) < 2 or len(set(keys)) < len(keys):
        # One by one (also when a delivery comes twice: the first outcome wins).
        return [conn.execute(_SETTLE_ONE, row).rowcount == 1 for row in rows]
    written = set(_returning(conn, _SETTLE_MANY, rows, "(?, ?, ?, ?, ?, ?, ?, ?, ?)"))
    return [key in written for key in keys]


def _add_rollups(
    conn: sqlite3.Connection, rollups: Mapping[tuple[int, str, str, int], int]
) -> None:
    if rollups:
        conn.executemany(
            "INSERT INTO rollup (minute, channel, status, bucket, n) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (minute, channel, status, bucket) DO UPDATE SET n = n + excluded.n",
            [(*key, n) for key, n in rollups.items()],
        )


#: ``stats_by``'s grouping expressions (on ``alerts a`` joined with ``deliveries d``).
_STATS_GROUPS = {
    "channel": "d.channel",
    "priority": "a.priority",
    "source": "a.source",
    "hour": "CAST(a.created_at / 3600 AS INTEGER)",
}


def _where(query: HistoryQuery) -> tuple[str, list[Any]]:
    """The WHERE clause (on ``alerts a``) and parameters of a history query."""
    clauses = ["1 = 1"]
    params: list[Any] = []
    if query.since is not None:
        clauses.append("a.created_at >= ?")
        params.append(query.since.timestamp())
    if query.until is not None:
        clauses.append("a.created_at < ?")
        params.append(query.until.timestamp())
    if query.priorities is not None:
        clauses.append(f"a.priority IN ({','.join('?' * len(query.priorities))})")
        params.extend(sorted(int(p) for p in query.priorities))
    if query.status == ACKNOWLEDGED:
        clauses.append("EXISTS (SELECT 1 FROM events e WHERE e.alert_id = a.id AND e.kind = ?)")
        params.append(ACKNOWLEDGED)
    for column in ("status", "source", "key"):
        value = getattr(query, column)
        if value is not None and not (column == "status" and value == ACKNOWLEDGED):
            clauses.append(f"a.{column} = ?")
            params.append(value)
    if query.search is not None:
        clauses.append(
            "(instr(pixalert_fold(a.title), ?) > 0 OR instr(pixalert_fold(a.message), ?) > 0)"
        )
        params.extend([query.search.casefold()] * 2)
    if query.channel is not None or query.result is not None:
        inner = ["d.alert_id = a.id"]
        if query.channel is not None:
            inner.append("d.channel = ?")
            params.append(query.channel)
        if query.result is not None:
            inner.append("d.status = ?")
            params.append(query.result)
        clauses.append(f"EXISTS (SELECT 1 FROM deliveries d WHERE {' AND '.join(inner)})")
    return " AND ".join(clauses), params


def _entries(conn: sqlite3.Connection, rows: Sequence[tuple[str, str, str]]) -> list[HistoryEntry]:
    ids = [row[0] for row in rows]
    results = _results(conn, ids)
    events = _events(conn, ids)
    return [
        HistoryEntry(
            Alert.from_dict(json.loads(body)),
            state,
            tuple(results.get(alert_id, ())),
            tuple(events.get(alert_id, ())),
        )
        for alert_id, body, state in rows
    ]


def _chunks(ids: Sequence[str]) -> Iterator[tuple[str, Sequence[str]]]:
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        yield ",".join("?" * len(chunk)), chunk


def _results(conn: sqlite3.Connection, ids: Sequence[str]) -> dict[str, list[DeliveryResult]]:
    out: dict[str, list[DeliveryResult]] = {}
    for marks, chunk in _chunks(ids):
        for row in conn.execute(
            "SELECT alert_id, channel, status, attempts, error, latency, receipt, due_at "
            f"FROM deliveries WHERE alert_id IN ({marks}) AND channel != '*' "
            "ORDER BY rowid",
            chunk,
        ):
            out.setdefault(row[0], []).append(_result(row[1:]))
    return out


def _events(conn: sqlite3.Connection, ids: Sequence[str]) -> dict[str, list[AlertEvent]]:
    out: dict[str, list[AlertEvent]] = {}
    for marks, chunk in _chunks(ids):
        for alert_id, at, kind, actor, via, note in conn.execute(
            "SELECT alert_id, at, kind, actor, via, note FROM events "
            f"WHERE alert_id IN ({marks}) ORDER BY at, rowid",
            chunk,
        ):
            out.setdefault(alert_id, []).append(
                AlertEvent(alert_id, kind, to_datetime(at), actor, via, note)
            )
    return out


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


def _result(row: Sequence[Any]) -> DeliveryResult:
    channel, status, attempts, error, latency, receipt, due = row
    return DeliveryResult(
        channel=channel,
        status=status,
        attempts=attempts,
        error=error,
        latency=latency,
        receipt=json.loads(receipt) if receipt else None,
        next_attempt_at=to_datetime(due) if status in _DUE_SHOWN else None,
    )
