"""Owner liveness: a session advisory lock per live owner, on a connection of its own.

Each owner (a manager's instance id) gets a row in ``owners`` with a lock key
(from a sequence, unique in the schema) and holds
``pg_advisory_lock(<namespace>, <key>)`` on a dedicated connection for as long
as it runs. The server drops a session's locks when the session ends, however
it ends (the process killed, the host gone, the connection cut), so any
instance can tell from ``pg_locks`` that an owner died and take its claims at
once (:data:`DEAD_OWNERS`).

Two cases fall back to the lease: a claim whose owner has no row (an owner of
a store that does not take locks), and an owner that took its lock before the
server last started (after a PostgreSQL restart every session is new, and an
owner that is alive takes its lock again within moments; until it does, its
claims are only taken once their lease runs out, so a restart does not make
every instance look dead).

A watchdog pings the connection every :data:`WATCH_INTERVAL` seconds; when it
is lost, it reconnects (every :data:`~pixalert_postgres._database.PROBE_INTERVAL`
seconds until the server answers) and takes every lock again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import zlib
from typing import Any

from pixalert import StoreUnavailable
from pixalert.channels import redact

from ._database import PROBE_INTERVAL, Database

__all__ = ["DEAD_OWNERS", "WATCH_INTERVAL", "OwnerLocks", "namespace"]

log = logging.getLogger("pixalert.postgres")

#: Seconds between checks that the lock connection is still there.
WATCH_INTERVAL = 1.0
#: Seconds a check may take before the connection counts as lost.
_PING_TIMEOUT = 5.0
#: Fresh keys tried when an owner's key is held by another session.
_REKEYS = 5

#: A CTE ``dead (owner)``: owners known to be gone: they took their lock since the
#: server started, hold it no more, and are not one of ``%(mine)s`` (the owners of
#: the asking handle). Parameters: ``ns`` (the lock namespace), ``mine`` (text[]).
DEAD_OWNERS = """
dead AS (
    SELECT o.owner FROM {s}.owners o
    WHERE o.locked_at >= pg_catalog.pg_postmaster_start_time()
      AND o.owner <> ALL (%(mine)s::text[])
      AND NOT EXISTS (
          SELECT 1 FROM pg_catalog.pg_locks l
          WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
            AND l.database = (SELECT oid FROM pg_catalog.pg_database
                              WHERE datname = current_database())
            AND l.classid = %(ns)s::oid AND l.objid = o.lock_key::oid)
)
"""

_TAKE = """
INSERT INTO {s}.owners (owner, lock_key, locked_at, host, pid)
VALUES (%(owner)s, nextval('{s}.owner_keys'), now(), %(host)s, %(pid)s)
ON CONFLICT (owner) DO UPDATE SET
    locked_at = now(), host = EXCLUDED.host, pid = EXCLUDED.pid,
    lock_key = CASE WHEN %(rekey)s THEN EXCLUDED.lock_key ELSE {s}.owners.lock_key END
RETURNING lock_key
"""

_PRUNE = (
    "WITH "
    + DEAD_OWNERS.strip()
    + """
DELETE FROM {s}.owners o USING dead
WHERE o.owner = dead.owner
  AND NOT EXISTS (SELECT 1 FROM {s}.deliveries d
                  WHERE d.owner = o.owner AND d.status IN ('pending', 'retrying', 'held'))
  AND NOT EXISTS (SELECT 1 FROM {s}.jobs j WHERE j.owner = o.owner)
"""
)


def namespace(schema: str) -> int:
    """The first key of every owner lock of ``schema`` (a positive int4)."""
    return zlib.crc32(f"pixalert owners {schema}".encode()) & 0x7FFFFFFF


class OwnerLocks:
    """The advisory locks of the owners opened through one store handle."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.ns = namespace(db.schema)
        self._conn: Any = None
        self._keys: dict[str, int] = {}
        self._lock: asyncio.Lock | None = None
        self._watch: asyncio.Task[None] | None = None
        self.lost: str | None = None  # why the lock connection is gone, while it is
        self._lost_at: float | None = None
        self.retaken = 0  # times the locks were taken again after a lost connection

    @property
    def owners(self) -> list[str]:
        """The owners opened here and not closed."""
        return list(self._keys)

    def _guard(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def open(self, owner: str) -> None:
        """Take ``owner``'s lock (connecting first if needed) and keep it.

        If the server cannot be reached now, the owner is kept as *lost* and the
        watchdog takes its lock as soon as the server answers (meanwhile its claims
        have no lock to check, so only their lease counts): a manager can start
        during an outage.
        """
        import psycopg

        async with self._guard():
            try:
                if self.lost is not None or self._conn is None or self._conn.closed:
                    await self._reconnect()
                    self.lost = None
                if not self._keys.get(owner):
                    self._keys[owner] = await self._take(owner)
                with contextlib.suppress(psycopg.Error):  # tidying up only
                    await self._conn.execute(
                        self._db.sql(_PRUNE), {"ns": self.ns, "mine": self.owners}
                    )
            except (psycopg.Error, OSError, StoreUnavailable) as exc:
                self._keys.setdefault(owner, 0)  # 0: not locked yet
                if self.lost is None:
                    self._lost_at = time.monotonic()
                self.lost = _reason(exc)
                log.warning(
                    "postgres at %s: cannot take the liveness lock of %s yet (%s); "
                    "taking it once the server answers",
                    self._db.display_url,
                    owner,
                    self.lost,
                )
        if self._watch is None or self._watch.done():
            self._watch = asyncio.ensure_future(self._watchdog())

    async def _reconnect(self) -> None:
        """A new lock connection, with the locks of every owner taken again on it."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()
        await self._db.open()  # the schema is migrated: the owners table exists
        self._conn = await self._db.connect(application_name="pixalert owners")
        try:
            for owner in list(self._keys):
                self._keys[owner] = await self._take(owner)
        except BaseException:
            conn, self._conn = self._conn, None
            with contextlib.suppress(Exception):
                await conn.close()
            raise

    async def _take(self, owner: str) -> int:
        """Record ``owner`` and take its lock on the lock connection; its key."""
        from psycopg import errors

        conn = self._conn
        for attempt in range(_REKEYS):
            try:
                async with conn.transaction():
                    cursor = await conn.execute(
                        self._db.sql(_TAKE),
                        {
                            "owner": owner,
                            "host": socket.gethostname(),
                            "pid": os.getpid(),
                            "rekey": attempt > 0,
                        },
                    )
                    row = await cursor.fetchone()
                    assert row is not None
                    key = int(row[0])
                    cursor = await conn.execute(
                        "SELECT pg_try_advisory_lock(%s::int4, %s::int4)", (self.ns, key)
                    )
                    got = await cursor.fetchone()
                    if got is not None and got[0]:
                        return key
                    raise _Held()  # roll back: nobody should see this key unlocked
            except _Held:
                continue
            except errors.UniqueViolation:
                continue  # another owner took that key first: try the next one
        raise StoreUnavailable(
            f"PostgreSQL at {self._db.display_url}: could not take the liveness lock of "
            f"owner {owner!r} (its key is held by another session)"
        )

    async def close(self, owner: str) -> None:
        """Let go of ``owner``'s lock (its claims were given back already)."""
        async with self._guard():
            key = self._keys.pop(owner, None)
            if not key or self._conn is None or self._conn.closed:
                return
            with contextlib.suppress(Exception):  # gone with the connection otherwise
                await self._conn.execute(
                    "SELECT pg_advisory_unlock(%s::int4, %s::int4)", (self.ns, key)
                )

    async def aclose(self) -> None:
        """Drop every lock and the connection, as a process that dies would."""
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)
        async with self._guard():
            self._keys.clear()
            conn, self._conn = self._conn, None
            if conn is not None and not conn.closed:
                # Unlock before closing: the server ends a closed session a moment
                # after the client has gone, and others should see the locks free now.
                with contextlib.suppress(Exception):
                    await conn.execute("SELECT pg_advisory_unlock_all()")
                with contextlib.suppress(Exception):
                    await conn.close()

    # -- keeping the locks ----------------------------------------------------

    async def _watchdog(self) -> None:
        while self._keys:
            await asyncio.sleep(PROBE_INTERVAL if self.lost else WATCH_INTERVAL)
            async with self._guard():
                if not self._keys:
                    return
                await self._check()

    async def _check(self) -> None:
        """Ping the lock connection; reconnect and take the locks again if it is gone."""
        if self.lost is None:
            try:
                if self._conn is None or self._conn.closed:
                    raise ConnectionError("the lock connection is closed")
                await asyncio.wait_for(self._conn.execute("SELECT 1"), _PING_TIMEOUT)
                return
            except Exception as exc:  # lost, whatever went wrong: start over
                self.lost = _reason(exc)
                self._lost_at = time.monotonic()
                log.warning(
                    "postgres at %s: lost the liveness connection (%s); until it is back, "
                    "other instances may take this instance's claims",
                    self._db.display_url,
                    self.lost,
                )
        try:
            await self._reconnect()
        except Exception as exc:
            self.lost = _reason(exc)
            return
        self.retaken += 1
        log.warning(
            "postgres at %s: liveness locks taken again after %.1f s",
            self._db.display_url,
            time.monotonic() - (self._lost_at or time.monotonic()),
        )
        self.lost = None
        self._lost_at = None

    def report(self) -> dict[str, Any]:
        """For ``health()``: the owners held here and the lock connection's state."""
        out: dict[str, Any] = {"owners": len(self._keys)}
        if self._keys:
            out["liveness"] = "lost" if self.lost else "locked"
            if self.lost:
                out["liveness_error"] = self.lost
        return out


class _Held(Exception):
    """The key is locked by another session."""


def _reason(exc: BaseException) -> str:
    return redact(f"{type(exc).__name__}: {exc}".strip())[:300]
