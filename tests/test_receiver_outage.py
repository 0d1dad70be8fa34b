"""``pixalert serve``'s receiver over a PostgreSQL history that goes away and comes back.

PostgreSQL (127.0.0.1:5432, database ``test``) is reached through a TCP proxy
on 127.0.0.1 (``pixalert_postgres.testing.TcpProxy``) that the test cuts
(listener closed, connections dropped) and restores on the same port: to the
receiver the database is gone, then back. While it is gone ``/health`` answers
503 with the reason and a webhook gets a quick 503 (which Alertmanager
retries); once it is back both answer 200 again, within 2 s however long the
outage lasted.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.services]

PG_HOST, PG_PORT = "127.0.0.1", 5432
PG_URL = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/test"
ROUTE_ALL = {"routing": {p: ["*"] for p in ("low", "medium", "high", "critical")}}
# A bound against a hang, not an assertion on speed.
WAIT = 60.0


def _postgres_problem() -> str | None:
    try:
        import pixalert_postgres  # noqa: F401
        import psycopg
    except ImportError as exc:
        return f"pixalert-postgres is not installed ({exc})"
    try:
        with psycopg.connect(PG_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL not reachable at {PG_URL} ({type(exc).__name__})"
    return None


@pytest.fixture
def schema() -> Iterator[str]:
    """A schema of this test's own, dropped afterwards."""
    problem = _postgres_problem()
    if problem:
        if os.environ.get("PIXALERT_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{problem} (PIXALERT_REQUIRE_SERVICES=1)", pytrace=False)
        pytest.skip(f"{problem}; set PIXALERT_REQUIRE_SERVICES=1 to fail instead")
    import psycopg
    from psycopg import sql

    name = f"pixalert_test_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
async def proxy() -> AsyncIterator[Any]:
    """A proxy to the machine's PostgreSQL."""
    from pixalert_postgres.testing import TcpProxy

    proxy = TcpProxy(PG_HOST, PG_PORT)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.aclose()


async def _until(client: httpx.AsyncClient, url: str, status: int) -> httpx.Response:
    """GET ``url`` until it answers ``status`` (each answer comes from a real check)."""

    async def poll() -> httpx.Response:
        while True:
            response = await client.get(url)
            if response.status_code == status:
                return response
            await asyncio.sleep(0.1)

    return await asyncio.wait_for(poll(), WAIT)


async def test_health_is_503_while_postgres_is_gone_and_200_when_back(
    proxy: Any, schema: str
) -> None:
    import pixalert_postgres
    from pixalert.testing import RecordingChannel, make_manager
    from pixalert_monitoring.testing import running_receiver

    sink = RecordingChannel("recording")
    history = f"postgresql://postgres@127.0.0.1:{proxy.port}/test?schema={schema}&pool_timeout=1"
    manager = make_manager([sink], config=ROUTE_ALL, history=history, plugins=[pixalert_postgres])
    try:
        async with running_receiver(manager) as base, httpx.AsyncClient(timeout=30) as client:
            health = f"{base}/health"
            assert (await client.get(health)).status_code == 200
            first = await client.post(f"{base}/webhook/alerts", json={"title": "before"})
            assert first.status_code == 200
            await manager.drain()

            await proxy.cut()
            down = await _until(client, health, 503)
            body = down.json()
            assert body["status"] == "unavailable"
            assert body["reason"].startswith("history store unavailable: ")
            assert "PostgreSQL" in body["reason"]
            refused = await client.post(f"{base}/webhook/alerts", json={"title": "during"})
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "1"

            await proxy.restore()
            back = await _until(client, health, 200)
            assert back.json()["history"]["status"] == "ok"
            again = await client.post(f"{base}/webhook/alerts", json={"title": "after"})
            assert again.status_code == 200
            await manager.drain()
        assert [a.title for a in sink.sent] == ["before", "after"]
    finally:
        await manager.aclose()


SECRET = "outage-s3cret"  # trust auth: never asked for, and shown nowhere


@pytest.mark.slow
async def test_alerts_are_taken_again_within_2_s_of_postgres_coming_back(
    proxy: Any, schema: str
) -> None:
    """A 20 s outage (long enough for psycopg_pool's own backoff to reach 16 s): every
    retry meanwhile is a quick 503, and the first alert after the server is back is
    accepted within 2 s of it."""
    import pixalert_postgres
    from pixalert.testing import RecordingChannel, make_manager
    from pixalert_monitoring.testing import running_receiver

    sink = RecordingChannel("recording")
    history = f"postgresql://postgres:{SECRET}@127.0.0.1:{proxy.port}/test?schema={schema}"
    config = {**ROUTE_ALL, "delivery": {"recover_interval": 1}}  # sweeping, as serve does
    manager = make_manager([sink], config=config, history=history, plugins=[pixalert_postgres])
    try:
        async with running_receiver(manager) as base, httpx.AsyncClient(timeout=30) as client:
            alerts = f"{base}/webhook/alerts"
            assert (await client.post(alerts, json={"title": "before"})).status_code == 200
            await manager.drain()

            await proxy.cut()
            codes: list[int] = []
            slowest = 0.0
            until = time.monotonic() + 20
            while time.monotonic() < until:  # Alertmanager retrying, twice a second
                started = time.monotonic()
                codes.append((await client.post(alerts, json={"title": "during"})).status_code)
                if len(codes) > 1:  # the first one finds out
                    slowest = max(slowest, time.monotonic() - started)
                await asyncio.sleep(0.5)
            assert set(codes) == {503}
            assert slowest < 3.0  # far below the 10 s pool timeout: nothing waits for a dead server
            down = await client.get(f"{base}/health")
            assert down.status_code == 503
            reason = down.json()["reason"]
            assert "PostgreSQL at postgresql://postgres:***@127.0.0.1:" in reason
            assert SECRET not in down.text

            restored = time.monotonic()
            await proxy.restore()
            deadline = restored + WAIT
            while True:  # the first retry that is accepted, and when
                reply = await client.post(alerts, json={"title": "after"})
                if reply.status_code == 200:
                    accepted = time.monotonic()
                    break
                assert reply.status_code == 503, reply.text
                assert time.monotonic() < deadline, "alerts were never accepted again"
                await asyncio.sleep(0.1)
            assert accepted - restored < 2.0, f"accepted {accepted - restored:.2f} s after"
            assert (await client.get(f"{base}/health")).status_code == 200
            await manager.drain()
        assert [a.title for a in sink.sent] == ["before", "after"]
    finally:
        await manager.aclose()
