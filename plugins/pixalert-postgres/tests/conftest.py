"""Fixtures: the machine's PostgreSQL (database ``test``), one fresh schema per test.

Tests skip with the reason when PostgreSQL is not reachable, and fail instead
when ``PIXALERT_REQUIRE_SERVICES=1``. Each test works in a schema of its own
(``pixalert_test_<random>``), dropped afterwards, so parallel runs never collide.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pixalert.testing import FakeClock
from pixalert_postgres import PostgresHistoryStore, PostgresStateBackend

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _unavailable(reason: str) -> None:
    """Skip, or fail when the services are required (as ``.ci/run`` requires them)."""
    if os.environ.get("PIXALERT_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (PIXALERT_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(f"{reason}; set PIXALERT_REQUIRE_SERVICES=1 to fail instead")


def postgres_problem(url: str = PG_URL) -> str | None:
    """Why PostgreSQL at ``url`` cannot be used, or None when it answers."""
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return f"PostgreSQL not reachable at {url} ({type(exc).__name__}: {first})"
    return None


@pytest.fixture(scope="session")
def pg_url() -> str:
    """The machine's PostgreSQL, database ``test`` (trust auth)."""
    problem = postgres_problem()
    if problem:
        _unavailable(problem)
    return PG_URL


def drop_schema(url: str, schema: str) -> None:
    """Drop ``schema`` and everything in it."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def schema(pg_url: str) -> Any:
    """A schema name unique to this test; dropped afterwards."""
    name = f"pixalert_test_{uuid.uuid4().hex[:12]}"
    yield name
    drop_schema(pg_url, name)


@pytest.fixture
def clock() -> FakeClock:
    """The time the stores read (leases, cooldown expiry)."""
    return FakeClock()


@pytest.fixture
def schema_url(pg_url: str, schema: str) -> str:
    """``postgresql://.../test?schema=<this test's schema>``."""
    return f"{pg_url}?schema={schema}"


@pytest.fixture
async def make_store(
    schema_url: str, clock: FakeClock
) -> AsyncIterator[Callable[..., PostgresHistoryStore]]:
    """Build history stores on this test's schema (each with its own pool); closed after."""
    made: list[Any] = []

    def make(url: str | None = None, **kwargs: Any) -> PostgresHistoryStore:
        kwargs.setdefault("clock", clock)
        store = PostgresHistoryStore(url or schema_url, **kwargs)
        made.append(store)
        return store

    yield make
    for store in made:
        await store.aclose()


@pytest.fixture
async def store(make_store: Callable[..., PostgresHistoryStore]) -> PostgresHistoryStore:
    """A history store on this test's schema."""
    return make_store()


@pytest.fixture
async def make_state(
    schema_url: str, clock: FakeClock
) -> AsyncIterator[Callable[..., PostgresStateBackend]]:
    """Build state backends on this test's schema; closed after."""
    made: list[Any] = []

    def make(url: str | None = None, **kwargs: Any) -> PostgresStateBackend:
        kwargs.setdefault("clock", clock)
        backend = PostgresStateBackend(url or schema_url, **kwargs)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        await backend.aclose()


class Calls:
    """Counts the statements and transactions a store sends (each one round trip)."""

    def __init__(self, store: PostgresHistoryStore) -> None:
        self.count = 0
        db = store.database
        fetch, transaction = db.fetch, db.transaction

        async def counted_fetch(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return await fetch(*args, **kwargs)

        async def counted_transaction(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return await transaction(*args, **kwargs)

        db.fetch = counted_fetch  # type: ignore[method-assign]
        db.transaction = counted_transaction  # type: ignore[method-assign]

    def take(self) -> int:
        count, self.count = self.count, 0
        return count
