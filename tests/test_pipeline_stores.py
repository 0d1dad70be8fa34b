"""One pipeline, one order, on every store: memory, SQLite and PostgreSQL.

Each scenario runs on a manager whose history is ``memory://``, a temporary
SQLite file, and PostgreSQL (``postgresql://...?schema=<fresh>``, with the
``services`` marker: it skips without a reachable PostgreSQL at
127.0.0.1:5432, database ``test``, and fails instead when
PIXALERT_REQUIRE_SERVICES=1):

- the order of the hooks and the channel's send for an alert that is sent,
  one that is suppressed, and one that is retried and later delivered by a sweep;
- retries on the timeline until ``give_up_after``, then ``failed`` with why;
- a resolve that supersedes its firing delivery still waiting: neither is sent;
- work whose owner stopped answering is taken over at the end of its lease,
  and the old owner's late result is ignored.

Time is a :class:`pixalert.testing.FakeClock`; nothing waits for real time.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
import pixalert
import pytest
from pixalert import Alert, DeliveryError
from pixalert.storage import MemoryDatabase, MemoryHistoryStore
from pixalert.testing import FakeClock, RecordingChannel, make_manager

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _postgres_problem() -> str | None:
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install -e plugins/pixalert-postgres)"
    try:
        with psycopg.connect(PG_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL not reachable at {PG_URL} ({type(exc).__name__})"
    return None


def _unavailable(reason: str) -> None:
    if os.environ.get("PIXALERT_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (PIXALERT_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(f"{reason}; set PIXALERT_REQUIRE_SERVICES=1 to fail instead")


@attrs.define
class Store:
    """Where the managers of one test keep their history (all of them share it)."""

    kind: str
    url: str
    clock: FakeClock
    memory: MemoryDatabase | None = None

    def manager(
        self,
        channels: Iterable[Any],
        *,
        config: Mapping[str, Any] | None = None,
        plugins: Iterable[object] = (),
    ) -> Any:
        """A manager on this history (memory: one database shared by the managers)."""
        history: Any = self.url
        if self.memory is not None:
            history = MemoryHistoryStore(self.clock, database=self.memory)
        merged = {"cooldown_minutes": 0, **(config or {})}
        if self.kind == "postgresql":
            import pixalert_postgres

            plugins = [*plugins, pixalert_postgres]
        return make_manager(
            channels, clock=self.clock, config=merged, plugins=plugins, history=history
        )


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """A history of each kind: memory://, a SQLite file, a fresh PostgreSQL schema."""
    clock = FakeClock()
    if request.param == "memory":
        yield Store("memory", "memory://", clock, MemoryDatabase())
    elif request.param == "sqlite":
        yield Store("sqlite", f"sqlite:///{tmp_path / 'history.db'}", clock)
    else:
        pytest.importorskip("pixalert_postgres")
        problem = _postgres_problem()
        if problem:
            _unavailable(problem)
        import psycopg
        from psycopg import sql

        schema = f"pixalert_pipeline_{uuid.uuid4().hex[:12]}"
        yield Store("postgresql", f"{PG_URL}?schema={schema}", clock)
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


# ---------------------------------------------------------------------------
# The hook order
# ---------------------------------------------------------------------------


class Order:
    """Records each hook call, and the channel's sends, in one list."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    @pixalert.hookimpl
    def pixalert_route(self, alert: Alert, channels: list[str]) -> None:
        self.calls.append((alert.title, f"route {','.join(channels)}"))

    @pixalert.hookimpl
    def pixalert_suppress(self, alert: Alert) -> str | None:
        self.calls.append((alert.title, "suppress"))
        return "told to" if alert.title == "suppressed" else None

    @pixalert.hookimpl
    def pixalert_after_delivery(self, alert: Alert, results: Mapping[str, Any]) -> None:
        outcome = ",".join(f"{c}={r.status.value}" for c, r in results.items())
        self.calls.append((alert.title, f"after_delivery {outcome}"))


class OrderedChannel(RecordingChannel):
    """A channel that notes each send in the :class:`Order`; ``retried`` fails once."""

    def __init__(self, order: Order) -> None:
        super().__init__("hook", fail=[DeliveryError("503 once")])
        self.order = order

    async def send(self, alert: Alert, *, previous: Any = None) -> Any:
        self.order.calls.append((alert.title, "send"))
        if alert.title != "retried":
            return None
        return await super().send(alert, previous=previous)


async def test_the_hook_order_is_the_same_on_every_store(store: Store) -> None:
    order = Order()
    config = {"delivery": {"max_attempts": 1, "retry_schedule": ["10s"]}}
    async with store.manager([OrderedChannel(order)], config=config, plugins=[order]) as manager:
        sent = await manager.send_alert("sent", "m", "low", channels=["hook"])
        suppressed = await manager.send_alert("suppressed", "m", "low", channels=["hook"])
        retried = await manager.send_alert("retried", "m", "low", channels=["hook"])
        assert [r["hook"].status.value for r in (sent, suppressed, retried)] == [
            "sent",
            "suppressed",
            "retrying",
        ]
        assert await manager.resume_pending() == 0  # not due yet
        store.clock.advance(12)
        assert await manager.resume_pending() == 1  # the sweep delivers it
        entries = {e["title"]: e for e in await manager.history()}
    assert order.calls == [
        ("sent", "route hook"),
        ("sent", "suppress"),
        ("sent", "send"),
        ("sent", "after_delivery hook=sent"),
        ("suppressed", "route hook"),
        ("suppressed", "suppress"),
        ("suppressed", "after_delivery hook=suppressed"),
        ("retried", "route hook"),
        ("retried", "suppress"),
        ("retried", "send"),  # fails: back on the timeline, no after_delivery yet
        ("retried", "send"),  # the sweep: not routed nor suppressed again
        ("retried", "after_delivery hook=sent"),
    ]
    assert entries["retried"]["results"]["hook"]["attempts"] == 2
    assert entries["suppressed"]["results"]["hook"]["error"] == "told to"
    assert {e["state"] for e in entries.values()} == {"done"}


# ---------------------------------------------------------------------------
# Retries, give-up, resolves, takeover
# ---------------------------------------------------------------------------


async def test_retries_on_the_timeline_then_it_gives_up_saying_why(store: Store) -> None:
    down = RecordingChannel("hook", fail=[DeliveryError("HTTP 503") for _ in range(50)])
    config = {
        "delivery": {
            "max_attempts": 2,
            "backoff": 0,
            "retry_schedule": ["1m", "5m"],
            "give_up_after": "20m",
            "circuit_failures": 1000,
        }
    }
    async with store.manager([down], config=config) as manager:
        first = (await manager.send_alert("down", "m", "low", channels=["hook"]))["hook"]
        assert (first.status.value, first.attempts) == ("retrying", 2)
        assert first.next_attempt_at is not None
        (entry,) = await manager.history(result="retrying")
        waiting = entry["results"]["hook"]
        assert waiting["status"] == "retrying" and waiting["next_attempt_at"]
        rounds = 0
        while entry["results"]["hook"]["status"] == "retrying":
            store.clock.advance(5 * 60 * 1.1)
            rounds += await manager.resume_pending()
            (entry,) = await manager.history()
        assert rounds >= 3  # 1m, 6m, 11m, 16m... until 20 minutes have passed
    final = entry["results"]["hook"]
    assert final["status"] == "failed"
    assert final["attempts"] == down.calls == 2 * (rounds + 1)
    assert final["error"].startswith(f"gave up after {down.calls} attempts over 20m")
    assert "HTTP 503" in final["error"]
    assert entry["state"] == "done"


async def test_a_resolve_supersedes_its_firing_delivery_still_waiting(store: Store) -> None:
    flaky = RecordingChannel("hook", fail=[DeliveryError("HTTP 503")])
    config = {"delivery": {"max_attempts": 1, "retry_schedule": ["1m"]}}
    async with store.manager([flaky], config=config) as manager:
        firing = await manager.send_alert("db down", "m", "high", channels=["hook"], key="db")
        assert firing["hook"].status.value == "retrying"
        resolved = await manager.send_alert(
            "db down", "m", "high", channels=["hook"], key="db", status="resolved"
        )
        store.clock.advance(3600)
        assert await manager.resume_pending() == 0  # nothing left to send
        entries = {e["status"]: e for e in await manager.history()}
    # Neither goes out: the incident ended before anyone was told of it.
    assert flaky.sent == []
    assert resolved["hook"].status.value == "suppressed"
    assert "never delivered" in (resolved["hook"].error or "")
    superseded = entries["firing"]["results"]["hook"]
    assert superseded["status"] == "suppressed"
    assert "superseded" in superseded["error"]
    assert entries["resolved"]["results"]["hook"]["error"] == resolved["hook"].error
    assert {e["status"]: e["state"] for e in entries.values()} == {
        "firing": "done",
        "resolved": "done",
    }


async def test_work_of_an_owner_that_stopped_answering_is_taken_over(store: Store) -> None:
    """The lease is the fallback every store has: past it, another manager's sweep
    delivers the work, and the first owner's late result does not count."""
    gate, started = asyncio.Event(), asyncio.Event()

    class Stuck(RecordingChannel):
        async def send(self, alert: Alert, *, previous: Any = None) -> Any:
            started.set()
            await gate.wait()
            return await super().send(alert, previous=previous)

    stuck, healthy = Stuck("hook"), RecordingChannel("hook")
    config = {"delivery": {"lease": 60}}
    async with store.manager([stuck], config=config) as first:
        alert_id = await first.submit(Alert("stuck", "m", "low", channels=["hook"]))
        await started.wait()  # delivery under way
        async with store.manager([healthy], config=config) as second:
            assert await second.resume_pending() == 0  # the claim is held
            store.clock.advance(61)  # the lease ran out without a renewal
            assert await second.resume_pending() == 1
            assert [a.id for a in healthy.sent] == [alert_id]
            gate.set()  # the first owner finishes late
            await first.drain()
            entry = await second.get_alert(alert_id)
    assert entry is not None and entry["state"] == "done"
    result = entry["results"]["hook"]
    assert result["status"] == "sent" and result["attempts"] == 1
