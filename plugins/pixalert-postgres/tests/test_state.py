"""PostgresStateBackend: cooldown and dedup keys with an expiry, one statement per decision."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import Callable

import pixalert_postgres
import psycopg
import pytest
from pixalert.storage import StateBackend
from pixalert.testing import FakeClock
from pixalert_postgres import PostgresStateBackend
from psycopg import sql

pytestmark = pytest.mark.services


async def test_hook_handles_postgres_urls_only() -> None:
    hook = pixalert_postgres.pixalert_state_backend
    assert hook(url="redis://127.0.0.1:6379/0", clock=None) is None
    backend = hook(url="postgresql://127.0.0.1/test", clock=None)
    assert isinstance(backend, PostgresStateBackend)
    assert isinstance(backend, StateBackend)
    await backend.aclose()


async def test_first_acquire_wins_until_expiry_or_release(
    make_state: Callable[..., PostgresStateBackend], clock: FakeClock
) -> None:
    backend = make_state()
    assert await backend.acquire("cooldown:a", 60) is True
    assert await backend.acquire("cooldown:a", 60) is False
    assert await backend.acquire("cooldown:b", 60) is True
    clock.advance(59)
    assert await backend.acquire("cooldown:a", 60) is False
    clock.advance(1)
    assert await backend.acquire("cooldown:a", 60) is True  # expired: taken again
    await backend.release("cooldown:a")
    assert await backend.acquire("cooldown:a", 60) is True
    await backend.release("never-set")
    assert await backend.acquire("zero", 0) is True
    assert await backend.acquire("zero", 0) is True


async def test_acquire_many_decides_a_batch_in_one_statement(
    make_state: Callable[..., PostgresStateBackend], clock: FakeClock
) -> None:
    backend, other = make_state(), make_state()
    assert await other.acquire("cooldown:b", 60) is True
    calls = 0
    fetch = backend.database.fetch

    async def counted(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        return await fetch(*args, **kwargs)  # type: ignore[arg-type]

    backend.database.fetch = counted  # type: ignore[method-assign]
    keys = ["cooldown:a", "cooldown:b", "cooldown:a", "cooldown:c"] + [f"k{i}" for i in range(200)]
    won = await backend.acquire_many(keys, 60)
    assert calls == 1
    # Like acquire() for each key in order: a repeated key gets False after its first time.
    assert won[:4] == [True, False, False, True]
    assert all(won[4:])
    assert await backend.acquire_many([], 60) == []
    clock.advance(60)
    assert await other.acquire_many(["cooldown:a", "cooldown:b"], 60) == [True, True]


async def test_racing_batches_agree_key_by_key(
    make_state: Callable[..., PostgresStateBackend],
) -> None:
    backends = [make_state() for _ in range(4)]
    keys = [f"dedup:{i}" for i in range(50)]
    steps = (1, -1, 1, -1)
    results = await asyncio.gather(
        *(b.acquire_many(keys[::step], 60) for b, step in zip(backends, steps, strict=True))
    )
    wins: dict[str, int] = {}
    for backend_keys, won in zip((keys, keys[::-1], keys, keys[::-1]), results, strict=True):
        for key, ok in zip(backend_keys, won, strict=True):
            wins[key] = wins.get(key, 0) + ok
    assert wins == dict.fromkeys(keys, 1)


async def test_instances_share_keys(make_state: Callable[..., PostgresStateBackend]) -> None:
    a, b = make_state(), make_state()
    assert await a.acquire("dedup:x", 60) is True
    assert await b.acquire("dedup:x", 60) is False
    await a.release("dedup:x")
    assert await b.acquire("dedup:x", 60) is True


async def test_racing_on_an_expired_key_one_wins(
    make_state: Callable[..., PostgresStateBackend], clock: FakeClock
) -> None:
    backends = [make_state() for _ in range(4)]
    assert await backends[0].acquire("k", 10) is True
    clock.advance(11)
    won = await asyncio.gather(*(b.acquire("k", 10) for b in backends for _ in range(25)))
    assert won.count(True) == 1


async def test_values_are_shared_and_expire(
    make_state: Callable[..., PostgresStateBackend], clock: FakeClock
) -> None:
    a, b = make_state(), make_state()
    await a.put("silence:s1", '{"id": "s1"}', 60)
    await a.put("inhibit:cpu:api", "critical_cpu_usage", 30)
    await a.put("silence_not:x", "other prefix", 60)
    assert await b.get("silence:s1") == '{"id": "s1"}'
    assert await b.items("silence:") == {"silence:s1": '{"id": "s1"}'}
    assert await b.items("silence_") == {"silence_not:x": "other prefix"}  # no LIKE wildcards
    clock.advance(30)
    assert await b.get("inhibit:cpu:api") is None
    assert await b.acquire("inhibit:cpu:api", 10) is True  # an expired value is free again
    assert await b.items("inhibit:") == {}  # and carries no value once acquired
    await b.release("silence:s1")
    assert await a.items("silence:") == {}


async def test_health(make_state: Callable[..., PostgresStateBackend]) -> None:
    health = await make_state().health()
    assert health["status"] == "ok"
    assert health["backend"] == "postgresql"


_CHILD = r"""
import asyncio, sys
from pixalert_postgres import PostgresStateBackend

async def main():
    backend = PostgresStateBackend(sys.argv[1])
    assert (await backend.health())["status"] == "ok"
    print("ready", flush=True)
    sys.stdin.readline()
    won = await asyncio.gather(*(backend.acquire(sys.argv[2], 60) for _ in range(50)))
    print(sum(won), flush=True)
    await backend.aclose()

asyncio.run(main())
"""


def test_100_acquires_from_two_processes_give_exactly_one_win(schema_url: str) -> None:
    key = f"cooldown:{uuid.uuid4().hex}"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, schema_url, key],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        outputs = [child.communicate(timeout=60)[0] for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    assert [child.returncode for child in children] == [0, 0]
    assert sum(int(out) for out in outputs) == 1


async def test_expired_keys_are_cleaned_up(
    make_state: Callable[..., PostgresStateBackend],
    clock: FakeClock,
    pg_url: str,
    schema: str,
) -> None:
    from pixalert_postgres import _state

    backend = make_state()
    for i in range(3):
        await backend.acquire(f"old:{i}", 1)
    backend._acquires = _state.CLEANUP_EVERY - 1  # as if many decisions had been taken
    clock.advance(5)
    await backend.acquire("new", 60)  # the 1000th decision sweeps expired keys
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            sql.SQL("SELECT key FROM {}.state_keys").format(sql.Identifier(schema))
        ).fetchall()
    assert [row[0] for row in rows] == ["new"]


async def test_is_set_reads_a_key_without_taking_it(
    make_state: Callable[..., PostgresStateBackend], clock: FakeClock
) -> None:
    backend = make_state()
    assert await backend.is_set("cooldown:peek") is False
    assert await backend.is_set("cooldown:peek") is False
    assert await backend.acquire("cooldown:peek", 60) is True  # is_set took nothing
    assert await backend.is_set("cooldown:peek") is True
    clock.advance(61)
    assert await backend.is_set("cooldown:peek") is False
