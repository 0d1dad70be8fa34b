"""The stores a benchmark runs pixalert on: memory, SQLite (a new file) and PostgreSQL.

PostgreSQL is the server at ``PIXALERT_BENCH_PG`` (default
``postgresql://postgres@127.0.0.1:5432/test``); each trial gets a schema of its
own (``?schema=bench_...``), dropped afterwards, so every trial starts from an
empty store and nothing else in that database is touched. When the server
cannot be reached, :func:`pg_unreachable` says why and the PostgreSQL rows are
skipped with that reason printed.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

PG_DSN = os.environ.get("PIXALERT_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
_numbers = itertools.count()


def pg_unreachable() -> str | None:
    """None when PostgreSQL answers, else a one-line reason."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install ./plugins/pixalert-postgres)"
    try:
        with psycopg.connect(PG_DSN, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"PostgreSQL at {PG_DSN} is not reachable: {first}"
    return None


@contextlib.contextmanager
def pg_schema() -> Iterator[tuple[str, str]]:
    """A fresh schema name and the history URL that uses it; the schema is dropped after."""
    import psycopg

    name = f"bench_{os.getpid()}_{next(_numbers)}"
    try:
        yield name, f"{PG_DSN}?schema={name}"
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def pg_count(schema: str, table: str = "alerts") -> int:
    """Rows in ``schema.table`` (0 when the table does not exist yet)."""
    import psycopg

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        try:
            row = conn.execute(f'SELECT COUNT(*) FROM "{schema}".{table}').fetchone()
        except psycopg.errors.UndefinedTable:
            return 0
    return int(row[0]) if row else 0


def sqlite_count(path: Path, table: str = "alerts") -> int:
    """Rows in ``table`` of the SQLite file at ``path`` (read through a second connection)."""
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as conn:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
