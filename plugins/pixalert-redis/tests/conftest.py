"""Fixtures: the machine's Redis (skipped when absent, unless PIXALERT_REQUIRE_SERVICES=1)
and private redis-server processes that tests may stop and restart."""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from pixalert_redis import RedisStateBackend
from pixalert_redis.testing import RedisServer

REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379
REDIS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"


def _unavailable(reason: str) -> None:
    """Skip, or fail when the services are required (as ``.ci/run`` requires them)."""
    if os.environ.get("PIXALERT_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (PIXALERT_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(f"{reason}; set PIXALERT_REQUIRE_SERVICES=1 to fail instead")


def redis_problem(host: str = REDIS_HOST, port: int = REDIS_PORT) -> str | None:
    """Why Redis at host:port cannot be used, or None when it answers PING."""
    try:
        with socket.create_connection((host, port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
    except OSError as exc:
        return f"Redis not reachable at {host}:{port} ({type(exc).__name__})"
    if not reply.startswith(b"+PONG"):
        return f"Redis at {host}:{port} did not answer PING ({reply[:40]!r})"
    return None


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The machine's shared Redis (never stopped by these tests)."""
    problem = redis_problem()
    if problem:
        _unavailable(problem)
    return REDIS_URL


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    """A key namespace unique to this test, so parallel runs never collide; emptied after."""
    value = f"pixalert-test:{uuid.uuid4().hex[:12]}:"
    yield value
    await delete_prefix(redis_url, value)


@pytest.fixture
async def make_backend(
    redis_url: str, prefix: str
) -> AsyncIterator[Callable[..., RedisStateBackend]]:
    """Build backends on the shared Redis under this test's prefix; all closed and cleaned after."""
    made: list[RedisStateBackend] = []

    def make(query: str = "", **kwargs: Any) -> RedisStateBackend:
        extra = f"&{query}" if query else ""
        state = RedisStateBackend.from_url(f"{redis_url}?prefix={prefix}{extra}", **kwargs)
        made.append(state)
        return state

    yield make
    for state in made:
        await state.aclose()


@pytest.fixture
async def backend(make_backend: Callable[..., RedisStateBackend]) -> RedisStateBackend:
    """A backend on the shared Redis under a fresh prefix; its keys are deleted afterwards."""
    return make_backend()


async def delete_prefix(url: str, prefix: str) -> None:
    """Delete every key under ``prefix``."""
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own on a free loopback port, to stop and restart."""
    if shutil.which("redis-server") is None:
        _unavailable("redis-server not found on PATH")
    with RedisServer() as server:
        yield server
