"""Noise control on PostgreSQL: the store passes the held and groups checks of the store
contract, and two instances sharing one history flush a group once.

Needs the machine's PostgreSQL (127.0.0.1:5432, database ``test``) and a
pixalert-postgres store with held deliveries (``claim_group``); skips otherwise
(fails when PIXALERT_REQUIRE_SERVICES=1 and the server is missing).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from pixalert.channels import Group, Receipt
from pixalert.testing import FakeClock, RecordingChannel, check_store_contract, make_manager

pytestmark = [pytest.mark.services]

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _unavailable(reason: str) -> None:
    if os.environ.get("PIXALERT_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (PIXALERT_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(f"{reason}; set PIXALERT_REQUIRE_SERVICES=1 to fail instead")


@pytest.fixture
def schema() -> Iterator[str]:
    """A schema of this test's own on a PostgreSQL store that can hold deliveries."""
    try:
        from pixalert_postgres import PostgresHistoryStore
    except ImportError as exc:  # not installed, or written for another core contract
        pytest.skip(f"pixalert-postgres cannot be used here: {exc}")
    psycopg = pytest.importorskip("psycopg")
    from psycopg import sql

    if not callable(getattr(PostgresHistoryStore, "claim_group", None)):
        pytest.skip("the PostgreSQL store does not hold deliveries yet (no claim_group)")
    try:
        with psycopg.connect(PG_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        _unavailable(f"PostgreSQL not reachable at {PG_URL} ({type(exc).__name__})")
    name = f"pixalert_noise_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


async def test_the_store_holds_and_groups(schema: str) -> None:
    import psycopg
    from pixalert_postgres import PostgresHistoryStore
    from psycopg import sql

    made: set[str] = set()

    def make(clock: Any, name: str) -> Any:
        made.add(f"{schema}_{name[-6:]}")
        return PostgresHistoryStore(f"{PG_URL}?schema={schema}_{name[-6:]}", clock=clock)

    try:
        await check_store_contract(make, checks=["held", "groups"])
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            for name in made:  # the schema fixture drops only its own
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name))
                )


class GroupChannel(RecordingChannel):
    def __init__(self) -> None:
        super().__init__("slack")
        self.groups: list[Group] = []

    async def send_group(self, group: Group, *, previous: Receipt | None = None) -> Receipt:
        self.groups.append(group)
        return {"n": str(len(self.groups))}


async def test_two_instances_flush_one_group_once(schema: str) -> None:
    import pixalert_postgres

    clock = FakeClock()
    slack = GroupChannel()
    config = {
        "grouping": {"group_by": ["source"], "group_wait": "30s"},
        "state": "memory://",
    }
    url = f"{PG_URL}?schema={schema}"
    first = make_manager(
        [slack], clock=clock, config=config, history=url, plugins=[pixalert_postgres]
    )
    second = make_manager(
        [slack], clock=clock, config=config, history=url, plugins=[pixalert_postgres]
    )
    async with first, second:
        for i in range(6):
            manager = first if i % 2 else second
            await manager.send_alert(f"a{i}", "m", "high", source="db", channels=["slack"])
        clock.advance(30)
        await asyncio.gather(first.resume_pending(), second.resume_pending())
        await asyncio.gather(first.resume_pending(), second.resume_pending())
    assert [len(g.alerts) for g in slack.groups] == [6]
