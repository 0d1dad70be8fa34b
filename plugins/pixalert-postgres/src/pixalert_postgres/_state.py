"""Cooldown and dedup keys, silences and inhibitions in PostgreSQL, for teams with no Redis."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any, cast

from pixalert.storage import BaseStateBackend

from ._batch import Batcher
from ._database import Database, binary, dt

__all__ = ["PostgresStateBackend"]

#: Decisions between deletions of expired keys (the history's purge deletes them too).
CLEANUP_EVERY = 1000

# One statement decides, for a batch of keys: insert each key, or take it over
# only if it expired. Two instances racing on one key serialise on the row; the
# second sees the first's new expiry and gets no row back. Each key once, in key
# order (two batches racing lock their rows in one order, so they never deadlock).
_ACQUIRE_MANY = binary("""
INSERT INTO {s}.state_keys (key, expires_at)
SELECT k.key, %(until)s FROM (SELECT DISTINCT unnest(%(keys)s::text[]) AS key) AS k
ORDER BY k.key
ON CONFLICT (key) DO UPDATE SET expires_at = EXCLUDED.expires_at, value = NULL
WHERE {s}.state_keys.expires_at <= %(now)s
RETURNING key
""")

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

_IS_SET = "SELECT 1 FROM {s}.state_keys WHERE key = %(key)s AND expires_at > %(now)s"

_ITEMS = """
SELECT key, value FROM {s}.state_keys
WHERE starts_with(key, %(prefix)s) AND expires_at > %(now)s AND value IS NOT NULL
"""

_PURGE_STATE = "DELETE FROM {s}.state_keys WHERE expires_at < %(now)s"


class PostgresStateBackend(BaseStateBackend):
    """Cooldown and dedup keys, silences and inhibitions in PostgreSQL.

    A key is a row with an expiry; :meth:`acquire` is one ``INSERT ... ON
    CONFLICT DO UPDATE ... WHERE expires_at <= now RETURNING`` and
    :meth:`acquire_many` the same for a whole batch. Unlike the Redis backend it
    does not fail open: if PostgreSQL is down, the history is down too.
    """

    def __init__(self, url: str, *, clock: Any = None) -> None:
        self._db = Database(url, clock=clock)
        self._acquires = 0
        self._acquires_of = Batcher(self._acquire_batch)  # grouped by the ttl

    def __repr__(self) -> str:
        return f"PostgresStateBackend({self._db.display_url!r}, schema={self._db.schema!r})"

    __str__ = __repr__

    @property
    def database(self) -> Database:
        """The connection pool and schema this backend uses."""
        return self._db

    async def _counted(self, decisions: int, now: float) -> None:
        before = self._acquires
        self._acquires += decisions
        if self._acquires // CLEANUP_EVERY != before // CLEANUP_EVERY:
            await self._db.fetch(_PURGE_STATE, {"now": dt(now)})

    async def acquire(self, key: str, ttl: float) -> bool:
        """Set ``key`` for ``ttl`` seconds unless it is set; True if this call set it."""
        (won,) = await self._acquires_of([key], ttl)
        return won

    async def acquire_many(self, keys: Sequence[str], ttl: float) -> list[bool]:
        """:meth:`acquire` for each key in order, in one statement (a key repeated in
        ``keys`` gets False after its first time). Calls made while one runs share the
        next statement (group commit)."""
        return await self._acquires_of(keys, ttl)

    async def _acquire_batch(self, keys: list[str], group: Hashable) -> list[bool]:
        ttl = cast(float, group)
        now = self._db.clock.now()
        rows = await self._db.fetch(
            _ACQUIRE_MANY, {"keys": list(keys), "until": dt(now + ttl), "now": dt(now)}
        )
        await self._counted(len(keys), now)
        won = {row[0] for row in rows}
        out = []
        for key in keys:
            out.append(key in won)
            won.discard(key)
        return out

    async def release(self, key: str) -> None:
        """Forget ``key``."""
        await self._db.fetch(_RELEASE, {"key": key})

    async def put(self, key: str, value: str, ttl: float) -> None:
        """Set ``key`` to ``value`` for ``ttl`` seconds (``ttl <= 0`` forgets it)."""
        if ttl <= 0:
            await self.release(key)
            return
        until = dt(self._db.clock.now() + ttl)
        await self._db.fetch(_PUT, {"key": key, "until": until, "value": value})

    async def is_set(self, key: str) -> bool:
        """True if ``key`` is live (set by ``acquire`` or ``put``); changes nothing."""
        rows = await self._db.fetch(_IS_SET, {"key": key, "now": self._db.now()})
        return bool(rows)

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
        await self._acquires_of.aclose()
        await self._db.aclose()
