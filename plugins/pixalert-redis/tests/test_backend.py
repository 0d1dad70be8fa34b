"""RedisStateBackend against a real Redis: the StateBackend contract, key layout, URL options."""

from __future__ import annotations

import asyncio
import importlib.metadata
import time
from collections.abc import Callable

import pixalert_redis
import pytest
from pixalert.storage import StateBackend
from pixalert_redis import RedisStateBackend

pytestmark = pytest.mark.services


async def test_hook_handles_redis_urls_only() -> None:
    for url in ("postgresql://127.0.0.1/test", "memory://", "sqlite:///x.db"):
        assert pixalert_redis.pixalert_state_backend(url=url, clock=None) is None
    for url in ("redis://127.0.0.1:6379/0", "rediss://127.0.0.1:6380/1", "REDIS://h"):
        backend = pixalert_redis.pixalert_state_backend(url=url, clock=None)
        assert isinstance(backend, RedisStateBackend)
        assert isinstance(backend, StateBackend)
        await backend.aclose()


def test_entry_point_is_registered() -> None:
    points = importlib.metadata.entry_points(group="pixalert")
    assert any(p.name == "redis" and p.value == "pixalert_redis" for p in points)


async def test_first_acquire_wins_until_released(backend: RedisStateBackend) -> None:
    assert await backend.acquire("cooldown:a", 60) is True
    assert await backend.acquire("cooldown:a", 60) is False
    assert await backend.acquire("cooldown:b", 60) is True
    await backend.release("cooldown:a")
    assert await backend.acquire("cooldown:a", 60) is True
    await backend.release("never-set")  # forgetting an unknown key is fine


async def test_keys_are_namespaced_and_expire_in_redis(
    backend: RedisStateBackend, redis_url: str, prefix: str
) -> None:
    from redis.asyncio import Redis

    assert await backend.acquire("cooldown:disk", 30) is True
    client = Redis.from_url(redis_url)
    try:
        assert await client.exists("cooldown:disk") == 0
        assert await client.exists(f"{prefix}cooldown:disk") == 1
        ttl_ms = await client.pttl(f"{prefix}cooldown:disk")
        assert 0 < ttl_ms <= 30_000
    finally:
        await client.aclose()


async def test_default_prefix_is_pixalert(redis_url: str) -> None:
    backend = RedisStateBackend.from_url(redis_url)
    try:
        assert backend.prefix == "pixalert:"
    finally:
        await backend.aclose()


async def test_key_can_be_taken_again_after_its_ttl(backend: RedisStateBackend) -> None:
    assert await backend.acquire("dedup:short", 0.05) is True
    # Expiry runs on Redis's own clock: wait for it, with a generous bound.
    deadline = time.monotonic() + 10
    while not await backend.acquire("dedup:short", 0.05):
        assert time.monotonic() < deadline, "the key never expired"
        await asyncio.sleep(0.02)


async def test_tiny_and_zero_ttls_are_accepted(backend: RedisStateBackend) -> None:
    # PX must be >= 1 ms: a sub-millisecond or zero ttl is rounded up, not an error.
    assert await backend.acquire("tiny", 0.0001) is True
    assert await backend.acquire("zero", 0) is True


async def test_concurrent_acquires_in_one_process(backend: RedisStateBackend) -> None:
    results = await asyncio.gather(*(backend.acquire("race", 60) for _ in range(100)))
    assert results.count(True) == 1


async def test_acquire_many_decides_a_batch_in_one_round_trip(
    backend: RedisStateBackend, make_backend: Callable[..., RedisStateBackend]
) -> None:
    other = make_backend()
    assert await other.acquire("cooldown:b", 60) is True
    sent: list[int] = []
    pipeline = backend._client.pipeline

    def counted(*args: object, **kwargs: object) -> object:
        sent.append(1)
        return pipeline(*args, **kwargs)  # type: ignore[arg-type]

    backend._client.pipeline = counted  # type: ignore[method-assign]
    keys = ["cooldown:a", "cooldown:b", "cooldown:a", "cooldown:c"] + [f"k{i}" for i in range(200)]
    won = await backend.acquire_many(keys, 60)
    assert len(sent) == 1
    # Like acquire() for each key in order: a repeated key gets False after its first time.
    assert won[:4] == [True, False, False, True]
    assert all(won[4:])
    assert await backend.acquire_many([], 60) == []
    assert await other.acquire_many(["cooldown:a", "cooldown:z"], 60) == [False, True]


async def test_racing_batches_agree_key_by_key(
    make_backend: Callable[..., RedisStateBackend],
) -> None:
    backends = [make_backend() for _ in range(4)]
    keys = [f"dedup:{i}" for i in range(50)]
    orders = [keys, keys[::-1], keys, keys[::-1]]
    results = await asyncio.gather(
        *(b.acquire_many(order, 60) for b, order in zip(backends, orders, strict=True))
    )
    wins: dict[str, int] = {}
    for order, won in zip(orders, results, strict=True):
        for key, ok in zip(order, won, strict=True):
            wins[key] = wins.get(key, 0) + ok
    assert wins == dict.fromkeys(keys, 1)


async def test_health_ok(backend: RedisStateBackend) -> None:
    health = await backend.health()
    assert health["status"] == "ok"
    assert health["backend"] == "redis"
    assert health["fail_open_total"] == 0


@pytest.mark.parametrize(
    ("query", "named"),
    [("timeout=abc", "timeout"), ("timeout=0", "timeout"), ("retry_interval=-1", "retry_interval")],
)
def test_bad_url_options_are_clear_errors(query: str, named: str) -> None:
    with pytest.raises(ValueError, match=named) as info:
        RedisStateBackend.from_url(f"redis://:hunter2secret@127.0.0.1:6379/0?{query}")
    assert "hunter2secret" not in str(info.value)


def test_empty_prefix_is_rejected() -> None:
    with pytest.raises(ValueError, match="prefix"):
        RedisStateBackend.from_url("redis://127.0.0.1:6379/0?prefix=")


async def test_redis_py_query_options_still_work(
    make_backend: Callable[..., RedisStateBackend],
) -> None:
    backend = make_backend("timeout=1&health_check_interval=5")
    assert await backend.acquire("x", 10) is True


async def test_is_set_reads_a_key_without_taking_it(backend: RedisStateBackend) -> None:
    assert await backend.is_set("cooldown:peek") is False
    assert await backend.acquire("cooldown:peek", 60) is True
    assert await backend.is_set("cooldown:peek") is True
    await backend.put("silence:peek", "v", 60)
    assert await backend.is_set("silence:peek") is True
    await backend.release("cooldown:peek")
    assert await backend.is_set("cooldown:peek") is False
    assert await backend.acquire("cooldown:peek", 60) is True  # is_set took nothing
