"""PostgresHistoryStore passes the store conformance suite, against the real PostgreSQL.

Each check works in a schema of its own (one per database ``name`` the suite
asks for), dropped afterwards. Owner liveness is checked for real: a handle
closed without ``close_owner`` lets go of its advisory locks, and the other
handle takes its claims at once (``liveness = True``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pixalert.storage import Clock
from pixalert.testing import StoreContract
from pixalert_postgres import PostgresHistoryStore

pytestmark = pytest.mark.services


class TestPostgresStoreContract(StoreContract):
    """Handles on one schema per name, each with its own pool and lock connection."""

    liveness = True
    url: str
    schemas: set[str]

    def make_store(self, clock: Clock, name: str) -> PostgresHistoryStore:
        self.schemas.add(name)
        return PostgresHistoryStore(f"{self.url}?schema={name}", clock=clock)

    @pytest.fixture(autouse=True)
    def _schemas(self, pg_url: str) -> Iterator[None]:
        self.url = pg_url
        self.schemas = set()
        yield
        import psycopg
        from psycopg import sql

        with psycopg.connect(pg_url, autocommit=True) as conn:
            for name in self.schemas:
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name))
                )
