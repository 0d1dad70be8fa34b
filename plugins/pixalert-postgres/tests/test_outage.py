"""PostgreSQL going away and coming back, through a TCP proxy the test cuts.

While it is gone every call fails fast with StoreUnavailable naming the
masked URL (no waiting out the pool's timeout each time); once it is back,
calls succeed again within moments however long it was away (psycopg_pool's
own backoff would wait up to a minute), and the liveness lock is taken again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from pixalert import Alert, DeliveryResult, StoreUnavailable
from pixalert.storage import HistoryQuery
from pixalert.testing import FakeClock
from pixalert_postgres import PostgresHistoryStore
from pixalert_postgres._database import PROBE_INTERVAL, RECONNECT_TIMEOUT
from pixalert_postgres.testing import TcpProxy

pytestmark = [pytest.mark.services, pytest.mark.slow]

SECRET = "pg-outage-s3cret"  # trust auth: sent to nobody, and must show nowhere
# Bounds against a hang, not measurements.
WAIT = 60.0


@pytest.fixture
async def proxy(pg_url: str) -> AsyncIterator[TcpProxy]:
    """A proxy to the machine's PostgreSQL."""
    proxy = TcpProxy("127.0.0.1", 5432)
    await proxy.start()
    yield proxy
    await proxy.aclose()


def test_the_pool_gives_up_on_a_lost_server_quickly_by_configuration() -> None:
    # Without this psycopg_pool retries with a doubling backoff (1, 2, 4 ... 64 s):
    # after a 90 s outage its next attempt could be half a minute away.
    assert RECONNECT_TIMEOUT <= 1.0
    assert PROBE_INTERVAL <= 1.0


async def _until_it_works(store: PostgresHistoryStore) -> float:
    """Call the store until a call succeeds; the monotonic time it did."""
    deadline = time.monotonic() + WAIT
    while True:
        try:
            await store.entries(HistoryQuery(limit=1))
        except StoreUnavailable:
            assert time.monotonic() < deadline, "the store never came back"
            await asyncio.sleep(0.05)  # polling for the first success, not waiting it out
        else:
            return time.monotonic()


async def test_an_outage_fails_fast_and_the_store_is_back_soon_after_the_server(
    proxy: TcpProxy, schema: str, clock: FakeClock
) -> None:
    url = f"postgresql://postgres:{SECRET}@127.0.0.1:{proxy.port}/test?schema={schema}"
    store = PostgresHistoryStore(url, clock=clock)
    try:
        await store.open_owner("me")
        await store.record_many([Alert("before", "m")], [["slack"]], owner="me", lease=60)
        assert store.database._pool.reconnect_timeout == RECONNECT_TIMEOUT

        await proxy.cut()
        errors: list[str] = []
        slowest = 0.0
        down_until = time.monotonic() + 6  # long enough for the pool's own backoff to grow
        while time.monotonic() < down_until:
            started = time.monotonic()
            with pytest.raises(StoreUnavailable) as info:
                await store.record_many([Alert("during", "m")], [["slack"]], owner="me", lease=60)
            if errors:  # the first call is the one that finds out
                slowest = max(slowest, time.monotonic() - started)
            errors.append(str(info.value))
            await asyncio.sleep(0.2)
        health = await store.health()
        assert health["status"] == "degraded"
        assert health["reason"].startswith("PostgreSQL at postgresql://postgres:***@127.0.0.1:")
        assert all(e.startswith("PostgreSQL at postgresql://postgres:***@") for e in errors)
        assert not any(SECRET in text for text in [*errors, str(health), repr(store)])
        # Far below the pool timeout (10 s): a call does not wait for a server that is gone.
        assert slowest < 3.0

        restored = time.monotonic()
        await proxy.restore()
        back = await _until_it_works(store)
        assert back - restored < 2.0
        health = await store.health()
        assert health["status"] == "ok"
        assert health["reconnects"] >= 1

        deadline = time.monotonic() + WAIT
        while store.owner_locks.retaken == 0:
            assert time.monotonic() < deadline, "the liveness lock was not taken again"
            await asyncio.sleep(0.05)
        assert (await store.health())["liveness"] == "locked"
        titles = [e.alert.title for e in await store.entries(HistoryQuery())]
        assert titles == ["before"]
    finally:
        await store.aclose()


async def test_claims_whose_result_could_not_be_written_are_free_again_once_it_is_back(
    proxy: TcpProxy, schema: str, clock: FakeClock
) -> None:
    url = f"postgresql://postgres@127.0.0.1:{proxy.port}/test?schema={schema}"
    store = PostgresHistoryStore(url, clock=clock)
    try:
        await store.open_owner("me")
        (recorded,) = await store.record_many(
            [Alert("in flight", "m")], [["slack", "email"]], owner="me", lease=120
        )
        slack, email = sorted(recorded.claims, key=lambda c: c.channel != "slack")
        await proxy.cut()  # the channel was tried; its result cannot be written
        with pytest.raises(StoreUnavailable):
            await store.settle([(slack, DeliveryResult("slack", "sent", 1, None, 0.1))])
        with pytest.raises(StoreUnavailable):
            await store.release([email])
        assert store.unwritten == 2
        await proxy.restore()
        await _until_it_works(store)
        # This owner is alive and the lease has 120 s to run, yet the work is due
        # again at the next sweep instead of being stuck until the lease ends.
        again = await store.claim_due(owner="me", lease=120)
        assert sorted(c.channel for c in again) == ["email", "slack"]
        assert store.unwritten == 0
    finally:
        await store.aclose()


async def test_an_owner_opened_during_an_outage_takes_its_lock_when_the_server_is_back(
    proxy: TcpProxy, schema: str, clock: FakeClock
) -> None:
    url = f"postgresql://postgres@127.0.0.1:{proxy.port}/test?schema={schema}"
    await proxy.cut()
    store = PostgresHistoryStore(url, clock=clock)  # a manager starting while it is down
    try:
        await store.open_owner("me")
        assert (await store.health())["liveness"] == "lost"
        await proxy.restore()
        deadline = time.monotonic() + WAIT
        while store.owner_locks.lost is not None:
            assert time.monotonic() < deadline, "the lock was never taken"
            await asyncio.sleep(0.05)  # polling the watchdog's progress
        health = await store.health()
        assert (health["status"], health["liveness"]) == ("ok", "locked")
        await store.record_many([Alert("after", "m")], [["slack"]], owner="me", lease=60)
        other = PostgresHistoryStore(url, clock=clock)
        try:
            await other.open_owner("other")
            assert await other.claim_due(owner="other", lease=60) == []  # "me" is alive
        finally:
            await other.aclose()
    finally:
        await store.aclose()
