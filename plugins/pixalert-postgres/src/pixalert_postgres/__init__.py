"""pixalert-postgres: history, leased deliveries and cooldown state in PostgreSQL.

Select it with ``history = "postgresql://host/db"`` (and, for cooldown and
dedup without Redis, ``state = "postgresql://host/db"``). This module only
declares the hooks; psycopg is imported when a store is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pixalert import hookimpl

if TYPE_CHECKING:
    from ._store import PostgresHistoryStore, PostgresStateBackend

__all__ = [
    "PostgresHistoryStore",
    "PostgresStateBackend",
    "pixalert_history_store",
    "pixalert_state_backend",
]

SCHEMES = ("postgresql://", "postgres://")


@hookimpl
def pixalert_history_store(url: str, clock: Any) -> PostgresHistoryStore | None:
    """Return a :class:`PostgresHistoryStore` for ``postgresql://`` / ``postgres://`` URLs."""
    if not url.lower().startswith(SCHEMES):
        return None
    from ._store import PostgresHistoryStore

    return PostgresHistoryStore(url, clock=clock)


@hookimpl
def pixalert_state_backend(url: str, clock: Any) -> PostgresStateBackend | None:
    """Return a :class:`PostgresStateBackend` for ``postgresql://`` / ``postgres://`` URLs."""
    if not url.lower().startswith(SCHEMES):
        return None
    from ._store import PostgresStateBackend

    return PostgresStateBackend(url, clock=clock)


def __getattr__(name: str) -> Any:
    if name in ("PostgresHistoryStore", "PostgresStateBackend"):
        from . import _store

        return getattr(_store, name)
    raise AttributeError(f"module 'pixalert_postgres' has no attribute {name!r}")
