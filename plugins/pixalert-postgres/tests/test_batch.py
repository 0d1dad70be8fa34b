"""Group commit: concurrent calls share one statement, and a fault stays with its call."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import Any

import pytest
from pixalert import Alert, DeliveryResult, StoreUnavailable
from pixalert_postgres import PostgresHistoryStore, PostgresStateBackend
from pixalert_postgres._batch import Batcher
from pixalert_postgres._database import Database


def count(database: Database, statements: list[str]) -> None:
    """Record the statements ``database`` runs (each transaction counted once)."""
    fetch, transaction = database.fetch, database.transaction

    async def counted_fetch(text: str, params: Any = None) -> list[tuple[Any, ...]]:
        statements.append(text)
        return await fetch(text, params)

    async def counted_transaction(steps: Any, **kw: Any) -> list[list[tuple[Any, ...]]]:
        statements.append(steps[0][0])
        return await transaction(steps, **kw)

    database.fetch = counted_fetch  # type: ignore[method-assign]
    database.transaction = counted_transaction  # type: ignore[method-assign]


async def until(condition: Callable[[], object]) -> None:
    """Let the other tasks run until ``condition()`` holds (no time is waited for)."""
    for _ in range(100):
        if condition():
            return
        await asyncio.sleep(0)  # one turn of the event loop
    raise AssertionError("the condition never held")


def queued(batcher: Batcher[str, str]) -> int:
    """Calls waiting for the next batch of the default group."""
    group = batcher._groups.get(None)
    return len(group.queue) if group is not None else 0


class Runs:
    """A batch function that records its batches and can be held or made to fail."""

    def __init__(self) -> None:
        self.batches: list[tuple[list[str], Hashable]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.bad: set[str] = set()
        self.down = False

    async def __call__(self, items: list[str], group: Hashable) -> list[str]:
        self.batches.append((list(items), group))
        await self.gate.wait()
        if self.down:
            raise StoreUnavailable("PostgreSQL at postgresql://x: gone")
        if self.bad & set(items):
            raise ValueError(f"bad item in {items}")
        return [f"{item}!" for item in items]


async def test_calls_made_while_a_batch_runs_share_the_next() -> None:
    runs = Runs()
    batcher = Batcher(runs, concurrency=1)
    runs.gate.clear()
    first = asyncio.ensure_future(batcher(["a"]))
    await until(lambda: runs.batches)  # the first batch starts, and is held
    later = [asyncio.ensure_future(batcher([f"b{i}", f"c{i}"])) for i in range(3)]
    await until(lambda: queued(batcher) == 3)
    runs.gate.set()
    assert await first == ["a!"]
    assert [await call for call in later] == [[f"b{i}!", f"c{i}!"] for i in range(3)]
    assert [items for items, _ in runs.batches] == [["a"], ["b0", "c0", "b1", "c1", "b2", "c2"]]


async def test_groups_never_share_a_batch() -> None:
    runs = Runs()
    batcher = Batcher(runs)
    calls = (batcher(["a"], 60.0), batcher(["b"], 300.0), batcher(["c"], 60.0))
    results = await asyncio.gather(*calls)
    assert results == [["a!"], ["b!"], ["c!"]]
    assert sorted((items, group) for items, group in runs.batches) == [
        (["a", "c"], 60.0),
        (["b"], 300.0),
    ]


async def test_an_error_of_one_call_fails_that_call_only() -> None:
    runs = Runs()
    runs.bad = {"bad"}
    batcher = Batcher(runs)
    good, bad, other = await asyncio.gather(
        batcher(["x"]), batcher(["bad"]), batcher(["y"]), return_exceptions=True
    )
    assert good == ["x!"] and other == ["y!"]
    assert isinstance(bad, ValueError)


async def test_an_unavailable_server_fails_every_call_of_the_batch() -> None:
    runs = Runs()
    runs.down = True
    batcher = Batcher(runs)
    errors = await asyncio.gather(batcher(["x"]), batcher(["y"]), return_exceptions=True)
    assert all(isinstance(e, StoreUnavailable) for e in errors)
    assert errors[0] is not errors[1]  # each call raises its own
    assert len(runs.batches) == 1  # not tried again one by one


async def test_a_cancelled_call_leaves_the_batch_to_the_others() -> None:
    runs = Runs()
    batcher = Batcher(runs, concurrency=1)
    runs.gate.clear()
    running = asyncio.ensure_future(batcher(["a"]))
    await until(lambda: runs.batches)  # its batch is under way, and held
    dropped = asyncio.ensure_future(batcher(["b"]))
    kept = asyncio.ensure_future(batcher(["c"]))
    await until(lambda: queued(batcher) == 2)
    running.cancel()  # its batch is under way: it goes on
    dropped.cancel()  # not started: dropped
    runs.gate.set()
    assert await kept == ["c!"]
    with pytest.raises(asyncio.CancelledError):
        await running
    assert [items for items, _ in runs.batches] == [["a"], ["c"]]
    await batcher.aclose()


@pytest.mark.services
async def test_concurrent_store_calls_share_statements(
    store: PostgresHistoryStore, make_state: Callable[..., PostgresStateBackend]
) -> None:
    """Ten alerts recorded, keyed and settled at once: a few statements, not thirty."""
    history, state = store, make_state()
    statements: list[str] = []
    for database in (history.database, state.database):
        count(database, statements)
    await history.open_owner("me")
    alerts = [Alert(f"t{i}", "m") for i in range(10)]
    recorded = await asyncio.gather(
        *(history.record_many([a], [["slack"]], owner="me", lease=60) for a in alerts)
    )
    won = await asyncio.gather(*(state.acquire(f"cooldown:{i}", 60) for i in range(10)))
    again = await asyncio.gather(*(state.acquire(f"cooldown:{i}", 60) for i in range(10)))
    assert won == [True] * 10 and again == [False] * 10
    claims = [r[0].claims[0] for r in recorded]
    settled = await asyncio.gather(
        *(history.settle([(c, DeliveryResult("slack", "sent", 1, None, 0.1))]) for c in claims)
    )
    assert [s.accepted for s in settled] == [(True,)] * 10
    assert [s.completed for s in settled] == [(a.id,) for a in alerts]
    # At most two batches of each kind at a time: a call runs at once, the rest join
    # the next (acquire twice, then record and settle: 4 kinds of 10 calls each).
    assert len(statements) <= 8, statements
    # Settling one claim twice at once: written once, and the alert reported done once.
    (again_recorded,) = await history.record_many(
        [Alert("twice", "m")], [["slack", "email"]], owner="me", lease=60
    )
    slack, email = sorted(again_recorded.claims, key=lambda c: c.channel)[::-1]
    outcomes = await asyncio.gather(
        history.settle([(slack, DeliveryResult("slack", "sent", 1, None, 0.1))]),
        history.settle([(email, DeliveryResult("email", "sent", 1, None, 0.1))]),
        history.settle([(slack, DeliveryResult("slack", "sent", 1, None, 0.1))]),
    )
    assert sum(len(s.completed) for s in outcomes) == 1
    assert sorted(s.accepted for s in outcomes) == [(False,), (True,), (True,)]
