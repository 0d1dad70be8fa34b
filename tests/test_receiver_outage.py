"""``pixalert serve``'s receiver over a PostgreSQL history that goes away and comes back.

PostgreSQL (127.0.0.1:5432, database ``test``) is reached through a TCP proxy
on 127.0.0.1 that the test cuts (listener closed, connections dropped) and
restores on the same port: to the receiver the database is gone, then back.
While it is gone ``/health`` answers 503 with the reason and a webhook gets
503 (which Alertmanager retries); once it is back both answer 200 again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

pytestmark = [pytest.mark.services]

PG_HOST, PG_PORT = "127.0.0.1", 5432
PG_URL = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/test"
ROUTE_ALL = {"routing": {p: ["*"] for p in ("low", "medium", "high", "critical")}}
# A bound against a hang, not an assertion on speed.
WAIT = 60.0


class TcpProxy:
    """Forwards connections from a loopback port to ``target``; :meth:`cut` and
    :meth:`restore` take it away and bring it back on the same port."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen (on a free port the first time, on the same one after a cut)."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Stop listening and drop every open connection."""
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        self._server = None
        for writer in list(self._pipes):
            writer.transport.abort()
        self._pipes.clear()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    restore = start

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._pipes.update((writer, up_writer))
        await asyncio.gather(
            self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True
        )

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            self._pipes.discard(writer)
            writer.transport.abort()


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
async def proxy() -> AsyncIterator[TcpProxy]:
    """A proxy to the machine's PostgreSQL."""
    proxy = TcpProxy(PG_HOST, PG_PORT)
    await proxy.start()
    try:
        yield proxy
    finally:
        with contextlib.suppress(AssertionError):
            await proxy.cut()


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
    proxy: TcpProxy, schema: str
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
