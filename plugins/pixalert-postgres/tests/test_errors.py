"""Unreachable PostgreSQL and bad URLs: clear errors, degraded health, no password anywhere."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import pytest
from pixalert import StoreUnavailable
from pixalert.storage import HistoryQuery, mask_url
from pixalert.testing import FakeClock
from pixalert_postgres import PostgresHistoryStore, PostgresStateBackend, parse_url

SECRET = "pg-s3cret-passw0rd"


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_unreachable_database_is_degraded_and_errors_carry_no_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"postgresql://alerts:{SECRET}@127.0.0.1:{_closed_port()}/alerts?pool_timeout=2"
    store = PostgresHistoryStore(url, clock=FakeClock())
    state = PostgresStateBackend(url, clock=FakeClock())
    try:
        health = await store.health()
        assert health["status"] == "degraded"
        assert "PostgreSQL at postgresql://alerts:***@127.0.0.1" in health["reason"]
        with pytest.raises(StoreUnavailable) as info:
            await store.entries(HistoryQuery(since=datetime.now(timezone.utc)))
        assert info.value.__cause__ is None
        assert (await state.health())["status"] == "degraded"
        with pytest.raises(StoreUnavailable):
            await state.acquire("k", 60)
        await store.open_owner("i1")  # a manager starts during an outage: no error
        owner_health = await store.health()
        assert (owner_health["owners"], owner_health["liveness"]) == (1, "lost")
        with pytest.raises(StoreUnavailable):
            await state.acquire_many(["a", "b"], 60)
        texts = [
            str(health),
            str(info.value),
            str(owner_health),
            repr(store),
            str(store),
            repr(state),
            str(state),
            repr(store.database),
            caplog.text,
        ]
        masked = url.replace(SECRET, "***")
        assert repr(store) == str(store) == f"PostgresHistoryStore({masked!r}, schema='pixalert')"
        assert repr(state) == f"PostgresStateBackend({masked!r}, schema='pixalert')"
    finally:
        await store.aclose()
        await state.aclose()
    for text in texts:
        assert SECRET not in text


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("schema=1bad", "schema"),
        ("schema=a;drop", "schema"),
        ("pool_size=0", "pool_size"),
        ("pool_size=x", "pool_size"),
        ("pool_timeout=-1", "pool_timeout"),
        ("pool_timeout=nan", "pool_timeout"),
    ],
)
def test_bad_url_options_are_clear_errors(query: str, named: str) -> None:
    with pytest.raises(ValueError, match=named) as info:
        PostgresHistoryStore(f"postgresql://u:{SECRET}@127.0.0.1/test?{query}")
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://u:{SECRET}@127.0.0.1:notaport/test",
        f"postgresql://u:{SECRET}@[::1/test",
        f"mysql://u:{SECRET}@127.0.0.1/test",
    ],
)
def test_a_rejected_url_shows_no_secret(url: str) -> None:
    with pytest.raises(ValueError) as info:
        PostgresHistoryStore(url)
    assert SECRET not in str(info.value)


async def test_a_manager_with_a_bad_history_url_is_a_config_error_without_the_secret() -> None:
    import pixalert_postgres
    from pixalert.testing import make_manager

    manager = make_manager(
        history=f"postgresql://u:{SECRET}@127.0.0.1:notaport/test", plugins=[pixalert_postgres]
    )
    assert SECRET not in repr(manager)
    with pytest.raises(ValueError) as info:
        await manager.start()
    assert SECRET not in str(info.value)
    assert "postgresql://u:***@127.0.0.1:notaport/test" in str(info.value)
    await manager.aclose()


def test_url_options_are_split_from_libpq_ones() -> None:
    conninfo, options = parse_url(
        "postgres://u@db:5433/alerts?schema=ops&sslmode=require&pool_size=3"
    )
    assert conninfo == "postgres://u@db:5433/alerts?sslmode=require"
    assert options["schema"] == "ops"
    assert options["pool_size"] == 3
    assert options["connect_timeout"] == 5
    _, options = parse_url("postgresql://db/alerts?connect_timeout=1")
    assert options["connect_timeout"] is None  # the URL's own wins


def test_mask_url() -> None:
    assert mask_url(f"postgresql://u:{SECRET}@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert mask_url("postgresql://h/db") == "postgresql://h/db"


async def test_a_transaction_that_loses_a_race_is_run_again(store: PostgresHistoryStore) -> None:
    """A deadlock or serialization failure reruns the transaction; the steps here
    lose twice, then commit."""
    await store.open()
    db = store.database
    await db.fetch("CREATE SEQUENCE {s}.tries")
    lose_twice = (
        "DO $$ BEGIN IF nextval('{s}.tries') < 3 THEN "
        "RAISE EXCEPTION 'lost a race' USING ERRCODE = '40001'; END IF; END $$"
    )
    rows = await db.transaction([(lose_twice, None), ("SELECT currval('{s}.tries')", None)])
    assert rows == [[], [(3,)]]


async def test_a_transaction_that_keeps_losing_is_unavailable_naming_why(
    store: PostgresHistoryStore,
) -> None:
    await store.open()
    always = "DO $$ BEGIN RAISE EXCEPTION 'lost a race' USING ERRCODE = '40P01'; END $$"
    with pytest.raises(StoreUnavailable, match="DeadlockDetected: lost a race"):
        await store.database.transaction([(always, None)])
