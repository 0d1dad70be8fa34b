"""One PostgreSQL schema behind a pool of connections that recovers fast from outages.

psycopg_pool, left alone, retries a failed connection with an exponential
backoff (1, 2, 4 ... 64 s), so after a long outage the pool may take half a
minute or more to notice that the server is back. Here the pool gives up on a
connection after :data:`RECONNECT_TIMEOUT` and says so; the database is then
*down*: every call fails at once with :class:`~pixalert.StoreUnavailable`
naming the (masked) URL, after waiting at most :data:`PROBE_INTERVAL` seconds
for the next try of a new connection (one at a time, its answer shared by
every call waiting). The first try that gets through opens a fresh pool, so
calls succeed again within ``PROBE_INTERVAL`` of the server coming back,
however long it was away.
"""

from __future__ import annotations

import asyncio
import logging
import re
import select
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote, urlsplit

from pixalert import StoreUnavailable
from pixalert.channels import redact, register_secret
from pixalert.storage import SystemClock, mask_url, positive_option, split_url_options

from ._migrations import MIGRATIONS, migrate

__all__ = [
    "LATEST",
    "PROBE_INTERVAL",
    "RECONNECT_TIMEOUT",
    "Database",
    "binary",
    "dt",
    "parse_url",
]

log = logging.getLogger("pixalert.postgres")

DEFAULT_SCHEMA = "pixalert"
DEFAULT_POOL_SIZE = 10
DEFAULT_POOL_TIMEOUT = 10.0
DEFAULT_CONNECT_TIMEOUT = 5
#: Seconds between connection attempts while the server is unreachable: calls
#: succeed again at most this long after it is back.
PROBE_INTERVAL = 0.5
#: Seconds the pool keeps trying to replace a lost connection before it gives up
#: and the database counts as down (psycopg_pool's ``reconnect_timeout``).
RECONNECT_TIMEOUT = 0.5
#: Transactions that lose a deadlock or a serialization race are run again this often.
_TX_RETRIES = 5

_OWN_PARAMS = ("schema", "pool_size", "pool_timeout")
_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def parse_url(url: str) -> tuple[str, dict[str, Any]]:
    """Split a ``postgresql://`` URL into the libpq URL and pixalert's own options.

    pixalert reads ``schema`` (default ``pixalert``), ``pool_size`` (default 10)
    and ``pool_timeout`` (seconds to wait for a free connection, default 10) from
    the query string; libpq gets the rest (``sslmode``, ``connect_timeout``, ...).
    Raises ``ValueError`` naming the bad part, without the password.
    """
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        scheme = ""
    if scheme not in ("postgresql", "postgres"):
        raise ValueError(f"{mask_url(url)}: expected a postgresql:// URL")
    try:
        password = urlsplit(url).password
        urlsplit(url).port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise ValueError(f"{mask_url(url)}: {exc}") from None
    if password:
        register_secret(unquote(password))  # as libpq would show it, decoded
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


_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def binary(text: str) -> str:
    """``text`` with its ``%(name)s`` placeholders made ``%(name)b``: the parameters
    are sent in PostgreSQL's binary format, which psycopg writes several times
    faster than text for the arrays of a batch (no quoting of each element). Only
    for statements that give every parameter a type (a cast or a typed column):
    psycopg sends a binary ``str`` as ``text``, not as a literal of unknown type.
    """
    return _PLACEHOLDER.sub(r"%(\1)b", text)


#: The latest time a datetime can hold (the end of year 9999, UTC).
LATEST = datetime.max.replace(tzinfo=timezone.utc)
_LATEST_SECONDS = LATEST.timestamp()


def dt(seconds: float) -> datetime:
    """An aware UTC datetime for epoch ``seconds``; times after year 9999 (a due time
    that never comes, as escalations keep a finished one) become :data:`LATEST`."""
    if seconds >= _LATEST_SECONDS:
        return LATEST
    return datetime.fromtimestamp(seconds, timezone.utc)


async def check_connection(conn: Any) -> None:
    """The pool's check of a connection it hands out: a round trip only when needed.

    psycopg_pool's own check (``AsyncConnectionPool.check_connection``) sends an
    empty query every time, a round trip per pooled call. An idle connection has
    nothing to read, so its socket is looked at first, without waiting: a closed
    or broken connection, or one the server has written to while it was idle (a
    server that shut down or was restarted closes it or sends its reason), gets
    psycopg_pool's check, which raises for a dead one, and the pool replaces it.
    A connection lost without a word (the network gone) fails on its next
    statement instead, which :meth:`Database.connection` reports as unavailable.
    """
    if not (conn.closed or conn.broken) and not _readable(conn.pgconn.socket):
        return
    from psycopg_pool import AsyncConnectionPool

    await AsyncConnectionPool.check_connection(conn)


def _readable(fd: int) -> bool:
    """Whether socket ``fd`` has something to read now (or was closed), without waiting."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([fd], [], [], 0)[0])  # pragma: no cover - Windows


class Database:
    """One pool of connections to one schema, opened and migrated on first use.

    Driver errors that mean the server cannot be used (connection refused or
    lost, pool exhausted, server shutting down) come out as
    :class:`~pixalert.StoreUnavailable` with the masked URL and the reason.
    """

    def __init__(self, url: str, *, clock: Any = None) -> None:
        self.conninfo, options = parse_url(url)
        self.display_url = mask_url(url)
        self.schema: str = options["schema"]
        self.clock = clock if clock is not None else SystemClock()
        self.version: int | None = None
        self.pool_size: int = options["pool_size"]
        self.pool_timeout: float = options["pool_timeout"]
        self._connect_timeout: int | None = options["connect_timeout"]
        self._pool: Any = None
        self._lock: asyncio.Lock | None = None
        self._sql: dict[str, Any] = {}
        # While the server is unreachable: why, and when to try it again (monotonic).
        self.down: str | None = None
        self._retry_at = 0.0
        self._probed_at = 0.0
        self._closing: set[asyncio.Task[None]] = set()
        self.reconnects = 0  # pools opened after an outage (reported by health())

    def __repr__(self) -> str:
        return f"Database({self.display_url!r}, schema={self.schema!r})"

    def now(self) -> datetime:
        """The clock's time as an aware datetime."""
        return dt(self.clock.now())

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

    def unavailable(self, exc: BaseException) -> StoreUnavailable:
        """The :class:`StoreUnavailable` for driver error ``exc`` (URL masked, secrets redacted)."""
        text = str(exc).strip()
        detail = redact(text.splitlines()[0] if text else "")
        return StoreUnavailable(
            f"PostgreSQL at {self.display_url}: {type(exc).__name__}"
            + (f": {detail[:300]}" if detail else "")
        )

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of every connection this database opens."""
        kwargs: dict[str, Any] = {"autocommit": True}
        if self._connect_timeout is not None:
            kwargs["connect_timeout"] = self._connect_timeout
        return kwargs

    async def connect(self, **extra: Any) -> Any:
        """A new connection of its own, outside the pool (the caller closes it).

        Raises :class:`StoreUnavailable` if the server cannot be reached.
        """
        import psycopg

        try:
            return await psycopg.AsyncConnection.connect(
                self.conninfo, **{**self.connect_kwargs(), **extra}
            )
        except (psycopg.Error, OSError) as exc:
            raise self.unavailable(exc) from None

    # -- the pool ------------------------------------------------------------

    async def open(self) -> Any:
        """The pool: opened (and the schema migrated) on first use, or again after an
        outage. While the server is down, calls take turns to try it again, at most
        every :data:`PROBE_INTERVAL` seconds: a call waits for the next try (or the
        one under way) and gets its answer, a new pool or :class:`StoreUnavailable`."""
        pool = self._pool
        if pool is not None:
            return pool
        if self._lock is None:
            self._lock = asyncio.Lock()
        asked = time.monotonic()
        async with self._lock:
            if self._pool is not None:
                return self._pool
            if self.down is not None:
                if self._probed_at >= asked:  # tried while this call waited: that answer
                    raise StoreUnavailable(self.down)
                wait = self._retry_at - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)  # the next try is due then
            self._retry_at = time.monotonic() + PROBE_INTERVAL
            try:
                pool = await self._new_pool()
            finally:
                self._probed_at = time.monotonic()
            if self.down is not None:
                self.reconnects += 1
                log.warning("postgres at %s is reachable again", self.display_url)
            self.down = None
            self._pool = pool
            return pool

    async def _new_pool(self) -> Any:
        import psycopg
        from psycopg_pool import AsyncConnectionPool

        # Migrate on a connection of its own first: an unreachable server fails
        # here at once, rather than after the pool's wait.
        try:
            async with await psycopg.AsyncConnection.connect(
                self.conninfo, **self.connect_kwargs()
            ) as conn:
                version, applied = await migrate(conn, self.schema)
        except (psycopg.Error, OSError) as exc:
            error = self.unavailable(exc)
            if self.down is None:
                log.warning("%s", error)
            self.down = str(error)
            raise error from None
        pool = AsyncConnectionPool(
            self.conninfo,
            min_size=1,
            max_size=self.pool_size,
            timeout=self.pool_timeout,
            kwargs=self.connect_kwargs(),
            open=False,
            name="pixalert",
            check=check_connection,
            reconnect_timeout=RECONNECT_TIMEOUT,
            reconnect_failed=self._pool_gave_up,
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
                "knows (%s); carrying on",
                self.schema,
                version,
                newest,
            )
        self.version = version
        return pool

    def _pool_gave_up(self, pool: Any) -> None:
        """psycopg_pool's ``reconnect_failed``: the server did not take a new connection.

        The pool is closed (from a task of its own: this runs in the pool's worker),
        which fails every call waiting for one of its connections at once with
        ``PoolClosed``; they then try the server through :meth:`open`.
        """
        if pool is self._pool:
            self._drop_pool()

    def _drop_pool(self) -> None:
        """Forget the current pool (closing it in the background)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            task = asyncio.ensure_future(pool.close(timeout=1.0))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def _getconn(self) -> tuple[Any, Any]:
        """A pooled connection and its pool, waiting up to ``pool_timeout`` while the
        server is up, failing fast once the pool gave up on it."""
        from psycopg_pool import PoolClosed, PoolTimeout

        deadline = time.monotonic() + self.pool_timeout
        while True:
            pool = await self.open()
            try:
                left = max(0.01, deadline - time.monotonic())
                # In short waits: a client that joined the pool's queue just as the
                # pool was closed (its last connection found dead) would otherwise
                # wait out the whole pool_timeout.
                while True:
                    try:
                        return await pool.getconn(timeout=min(left, PROBE_INTERVAL)), pool
                    except PoolTimeout:
                        if pool is not self._pool or pool.closed:
                            raise PoolClosed() from None
                        left = deadline - time.monotonic()
                        if left <= 0:
                            raise
            except PoolClosed:
                if pool is self._pool:
                    self._drop_pool()
                if time.monotonic() >= deadline:
                    raise StoreUnavailable(
                        f"PostgreSQL at {self.display_url}: the connection pool is closed"
                    ) from None
                # Loop: open() tries the server, giving a new pool or StoreUnavailable.
            except PoolTimeout as exc:
                raise self.unavailable(
                    PoolTimeout(f"no free connection after {self.pool_timeout:g} s")
                ) from exc

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        """A pooled connection (autocommit); driver errors that mean the server cannot
        be used become :class:`StoreUnavailable`."""
        import psycopg

        conn, pool = await self._getconn()
        try:
            yield conn
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise self.unavailable(exc) from None
        finally:
            await pool.putconn(conn)

    async def fetch(self, text: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Run one statement (autocommit) and return its rows."""
        async with self.connection() as conn:
            cursor = await conn.execute(self.sql(text), params)
            return await cursor.fetchall() if cursor.description else []

    async def transaction(
        self, steps: Sequence[tuple[str, Any]], *, snapshot: bool = False
    ) -> list[list[tuple[Any, ...]]]:
        """Run ``steps`` (statement, params) in one transaction, sent together in one
        round trip (pipeline mode); return each statement's rows.

        ``snapshot``: a read-only transaction in which every statement sees the same
        snapshot (REPEATABLE READ). A transaction that loses a deadlock or a
        serialization race is run again.
        """
        from psycopg import errors

        async with self.connection() as conn:
            for attempt in range(_TX_RETRIES):
                try:
                    cursors = []
                    async with conn.pipeline(), conn.transaction():
                        if snapshot:
                            await conn.execute(
                                "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"
                            )
                        for text, params in steps:
                            cursors.append(await conn.execute(self.sql(text), params))
                    return [
                        await cursor.fetchall() if cursor.description else [] for cursor in cursors
                    ]
                except (errors.SerializationFailure, errors.DeadlockDetected):
                    if attempt == _TX_RETRIES - 1:
                        raise
                    await asyncio.sleep(0.005 * (attempt + 1))  # let the winner commit
        raise AssertionError("unreachable")  # pragma: no cover

    async def health(self, backend: str) -> dict[str, Any]:
        """A health report for ``backend`` ("history" or "state")."""
        report: dict[str, Any] = {"backend": "postgresql", "url": self.display_url}
        report["schema"] = self.schema
        try:
            if backend == "history":
                rows = await self.fetch(
                    "SELECT count(DISTINCT alert_id), count(*) FILTER (WHERE status = 'retrying'), "
                    "count(*) FILTER (WHERE status = 'held') "
                    "FROM {s}.deliveries WHERE status IN ('pending', 'retrying', 'held')"
                )
                report["pending"] = int(rows[0][0])
                report["retrying"] = int(rows[0][1])
                report["held"] = int(rows[0][2])
            else:
                await self.fetch("SELECT 1")
        except StoreUnavailable as exc:
            report["status"] = "degraded"
            report["reason"] = str(exc)
            return report
        report["status"] = "ok"
        report["schema_version"] = self.version
        if self.reconnects:
            report["reconnects"] = self.reconnects
        return report

    async def aclose(self) -> None:
        """Close the pool (and any being closed after an outage)."""
        self._drop_pool()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
