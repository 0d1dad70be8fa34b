"""pixalert-postgres: history, the delivery timeline and cooldown state in PostgreSQL.

Select it with ``history = "postgresql://host/db"`` (and, for cooldown and
dedup without Redis, ``state = "postgresql://host/db"``). Every instance using
one schema shares one history and one timeline; an instance that dies has its
work taken over at once (its advisory lock goes with its session). This module
only declares the hooks; psycopg is imported when a store is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pixalert import hookimpl

if TYPE_CHECKING:
    from ._database import parse_url
    from ._history import PostgresHistoryStore
    from ._state import PostgresStateBackend

__all__ = [
    "PostgresHistoryStore",
    "PostgresStateBackend",
    "parse_url",
    "pixalert_history_store",
    "pixalert_state_backend",
]

SCHEMES = ("postgresql://", "postgres://")


@hookimpl
def pixalert_history_store(url: str, clock: Any) -> PostgresHistoryStore | None:
    """Return a :class:`PostgresHistoryStore` for ``postgresql://`` / ``postgres://`` URLs."""
    if not url.lower().startswith(SCHEMES):
        return None
    from ._history import PostgresHistoryStore

    return PostgresHistoryStore(url, clock=clock)


@hookimpl
def pixalert_state_backend(url: str, clock: Any) -> PostgresStateBackend | None:
    """Return a :class:`PostgresStateBackend` for ``postgresql://`` / ``postgres://`` URLs."""
    if not url.lower().startswith(SCHEMES):
        return None
    from ._state import PostgresStateBackend

    return PostgresStateBackend(url, clock=clock)


def __getattr__(name: str) -> Any:
    if name == "PostgresHistoryStore":
        from ._history import PostgresHistoryStore

        return PostgresHistoryStore
    if name == "PostgresStateBackend":
        from ._state import PostgresStateBackend

        return PostgresStateBackend
    if name == "parse_url":
        from ._database import parse_url

        return parse_url
    raise AttributeError(f"module 'pixalert_postgres' has no attribute {name!r}")
