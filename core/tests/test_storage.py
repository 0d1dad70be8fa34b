"""Storage first: an alert is durable before any channel is tried, and finished later."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pixalert import Alert, DeliveryResult
from pixalert._clock import to_datetime
from pixalert._sqlite import SQLiteHistoryStore, SQLiteStateBackend
from pixalert.storage import MemoryHistoryStore
from pixalert.testing import FakeClock, RecordingChannel, make_manager


async def test_cancelled_delivery_leaves_alert_pending_and_resume_delivers_it(
    tmp_path: Path, clock: FakeClock
) -> None:
    url = f"sqlite:///{tmp_path}/h.db"
    stuck = RecordingChannel("slack", hang=True)
    manager = make_manager([stuck], clock=clock, history=url)
    task = asyncio.create_task(manager.send_alert("Disk full", "95%", "low"))
    while stuck.calls == 0:
        await asyncio.sleep(0)
    task.cancel()  # the process "dies" mid-delivery
    with pytest.raises(asyncio.CancelledError):
        await task
    await manager.aclose()

    fresh = RecordingChannel("slack")
    async with make_manager([fresh], clock=clock, history=url) as second:
        pending = [e for e in await second.history() if e["state"] == "pending"]
        assert [e["title"] for e in pending] == ["Disk full"]
        assert await second.resume_pending() == 0  # the dead holder's lease still runs
        clock.advance(121)
        assert await second.resume_pending() == 1
        assert [a.title for a in fresh.sent] == ["Disk full"]
        entry = (await second.history())[0]
        assert entry["state"] == "done" and entry["results"]["slack"]["status"] == "sent"


async def test_resume_skips_channels_that_already_succeeded(clock: FakeClock) -> None:
    slack, email = RecordingChannel("slack"), RecordingChannel("email")
    store = MemoryHistoryStore(clock)
    alert = Alert("t", "m", "medium")
    lease = await store.record(alert, owner="dead", lease=10)
    await store.record_result(lease, DeliveryResult("slack", "sent", 1))
    clock.advance(11)
    async with make_manager([slack, email], clock=clock, history=store) as manager:
        await manager.drain()  # the manager took the dead holder's work over on start
        assert await manager.resume_pending() == 0
    assert slack.sent == [] and [a.id for a in email.sent] == [alert.id]


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock):  # type: ignore[no-untyped-def]
    if request.param == "memory":
        return MemoryHistoryStore(clock)
    return SQLiteHistoryStore(f"sqlite:///{tmp_path}/h.db", clock)


async def test_stale_lease_holder_cannot_overwrite_the_new_one(store, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    alert = Alert("t", "m", "low")
    old = await store.record(alert, owner="a", lease=10)
    clock.advance(11)
    [new] = await store.claim_pending(owner="b", lease=10)
    assert new.alert == alert
    assert not await store.record_result(old, DeliveryResult("slack", "failed", 1, "late"))
    assert not await store.complete(old)
    assert await store.record_result(new, DeliveryResult("slack", "sent", 1))
    assert await store.complete(new)
    assert await store.claim_pending(owner="c", lease=10) == []
    await store.aclose()


async def test_renew_keeps_a_lease_alive(store, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    lease = await store.record(Alert("t"), owner="a", lease=10)
    clock.advance(8)
    await store.renew([lease], 10)
    clock.advance(8)
    assert await store.claim_pending(owner="b", lease=10) == []
    await store.aclose()


async def test_history_stats_receipts_and_retention(store, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    now = to_datetime(clock.now())
    for i, latency in enumerate([0.010, 0.020, 0.030, 0.040]):
        alert = Alert(f"a{i}", key="k", created_at=now)
        lease = await store.record(alert, owner="me", lease=10)
        await store.record_result(
            lease, DeliveryResult("slack", "sent", 1, None, latency, {"ts": str(i)})
        )
        await store.record_result(lease, DeliveryResult("email", "failed", 3, "down"))
        await store.complete(lease)
    stats = await store.stats(now.replace(hour=0, minute=0))
    assert stats["alerts"] == 4
    assert stats["channels"]["slack"]["sent"] == 4
    assert stats["channels"]["email"]["failed"] == 4
    assert stats["channels"]["email"]["success_rate"] == 0.0
    p50 = stats["channels"]["slack"]["latency"]["p50"]
    assert 0.020 <= p50 <= 0.021  # within the 5 % buckets
    assert await store.last_receipt("k", "slack") in (
        {"ts": "3"},
        {"ts": "0"},
        {"ts": "1"},
        {"ts": "2"},
    )
    entries = await store.entries(now.replace(hour=0, minute=0), limit=2)
    assert len(entries) == 2
    assert await store.purge(to_datetime(clock.now() + 1)) == 4
    assert await store.entries(now.replace(hour=0, minute=0)) == []
    await store.aclose()


async def test_sqlite_state_is_atomic_and_expires(tmp_path: Path, clock: FakeClock) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    a, b = SQLiteStateBackend(url, clock), SQLiteStateBackend(url, clock)
    decisions = await asyncio.gather(*(s.acquire("k", 60) for s in [a, b] * 10))
    assert decisions.count(True) == 1
    clock.advance(61)
    assert await b.acquire("k", 60)
    await b.release("k")
    assert await a.acquire("k", 60)
    await a.aclose()
    await b.aclose()


async def test_resolved_alert_gets_the_receipt_of_the_firing_one(clock: FakeClock) -> None:
    slack = RecordingChannel("slack", receipt=lambda a: {"ts": f"ts-{a.id}"})
    async with make_manager([slack], clock=clock) as manager:
        await manager.send_alert("db down", "m", "low", key="db")
        await manager.send_alert("db down", "ok", "low", key="db", status="resolved")
    assert slack.previous[0] is None
    assert slack.previous[1] == {"ts": f"ts-{slack.sent[0].id}"}


async def test_submit_answers_once_stored_and_drain_waits(clock: FakeClock) -> None:
    slack = RecordingChannel("slack")
    async with make_manager([slack], clock=clock) as manager:
        alert_id = await manager.submit(Alert("t", "m", "low"))
        assert [e["id"] for e in await manager.history()] == [alert_id]
        await manager.drain()
        assert len(slack.sent) == 1
        assert await manager.first_seen("group:fp:firing", 60)
        assert not await manager.first_seen("group:fp:firing", 60)
        await manager.forget_seen("group:fp:firing")
        assert await manager.first_seen("group:fp:firing", 60)


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:////var/lib/pixalert/h.db", "/var/lib/pixalert/h.db"),
        ("sqlite:///h.db", "h.db"),
        ("sqlite://", ":memory:"),
    ],
)
def test_sqlite_urls_read_as_sqlalchemy_does(url: str, path: str) -> None:
    from pixalert._sqlite import sqlite_path

    assert sqlite_path(url) == path


def test_backend_url_helpers_keep_the_password_out_of_sight() -> None:
    from pixalert.channels import redact
    from pixalert.storage import mask_url, positive_option, split_url_options

    url = "postgresql://alerts:pa55w0rd-x@db:5432/ops?schema=pix&sslmode=require"
    assert mask_url(url) == "postgresql://alerts:***@db:5432/ops?schema=pix&sslmode=require"
    client_url, own = split_url_options(url, ["schema"])
    assert own == {"schema": "pix"} and client_url.endswith("/ops?sslmode=require")
    assert redact("login failed for pa55w0rd-x") == "login failed for **********"
    assert positive_option("pool_size", "4", url, integer=True) == 4
    with pytest.raises(ValueError, match=r"\*\*\*@db.*pool_size expected a whole number > 0"):
        positive_option("pool_size", "lots", url, integer=True)


async def test_finish_records_all_results_and_completes_once(store, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    alert = Alert("t", "m", "low")
    old = await store.record(alert, owner="a", lease=10)
    clock.advance(11)
    [new] = await store.claim_pending(owner="b", lease=10)
    results = [
        DeliveryResult("slack", "sent", 1, None, 0.01),
        DeliveryResult("email", "failed", 3, "x"),
    ]
    assert not await store.finish(old, results)  # the stale holder is refused
    assert await store.results_for(alert.id) == []
    assert await store.finish(new, results)
    assert sorted(r.channel for r in await store.results_for(alert.id)) == ["email", "slack"]
    assert await store.claim_pending(owner="c", lease=10) == []
    stats = await store.stats(to_datetime(clock.now() - 3600))
    assert stats["channels"]["slack"]["sent"] == 1 and stats["channels"]["email"]["failed"] == 1
    await store.aclose()


async def test_a_failing_call_in_a_group_commit_fails_alone(
    tmp_path: Path, clock: FakeClock
) -> None:
    url = f"sqlite:///{tmp_path}/h.db"
    store, state = SQLiteHistoryStore(url, clock), SQLiteStateBackend(url, clock)
    taken = Alert("taken", "m", "low")
    await store.record(taken, owner="a", lease=10)
    fresh = [Alert(f"fresh {i}", "m", "low") for i in range(5)]
    # Queued together, these share one transaction; the duplicate id makes one call fail.
    outcomes = await asyncio.gather(
        store.record(fresh[0], owner="a", lease=10),
        state.acquire("k1", 60),
        store.record(Alert("dup", "m", "low", id=taken.id), owner="a", lease=10),
        store.record_many(fresh[1:], owner="a", lease=10),
        state.acquire("k2", 60),
        return_exceptions=True,
    )
    assert isinstance(outcomes[2], Exception) and "UNIQUE" in str(outcomes[2])
    assert [type(o).__name__ for i, o in enumerate(outcomes) if i != 2] == [
        "Lease",
        "bool",
        "list",
        "bool",
    ]
    assert outcomes[1] is True and outcomes[4] is True
    since = to_datetime(clock.now() - 60)
    assert sorted(e.alert.title for e in await store.entries(since)) == sorted(
        ["taken", *(a.title for a in fresh)]
    )
    assert not await state.acquire("k1", 60)  # the others were committed once, not twice
    await store.aclose()
    await state.aclose()


@pytest.mark.parametrize("history", ["memory://", "sqlite"])
async def test_submit_many_stores_every_alert_then_delivers(
    history: str, tmp_path: Path, clock: FakeClock
) -> None:
    slack = RecordingChannel("slack")
    url = history if history == "memory://" else f"sqlite:///{tmp_path}/h.db"
    async with make_manager([slack], clock=clock, history=url) as manager:
        alerts = [Alert(f"t{i}", "m", "low") for i in range(3)]
        ids = await manager.submit_many(alerts, cooldown=[None, 0, 60])
        assert ids == [a.id for a in alerts]
        assert {e["id"] for e in await manager.history()} == set(ids)
        await manager.drain()
        assert sorted(a.title for a in slack.sent) == ["t0", "t1", "t2"]
        with pytest.raises(ValueError, match="cooldown: expected one value or 2 values, got 3"):
            await manager.submit_many(alerts[:2], cooldown=[1, 2, 3])
        with pytest.raises(ValueError, match="unknown channel 'nope'"):
            await manager.submit_many([Alert("t", "m", "low"), Alert("u", channels=["nope"])])
        assert len(await manager.history()) == 3  # a bad alert stops the batch before storing
        assert await manager.first_seen_many(["a", "b", "a"], 60) == [True, True, False]
        assert await manager.first_seen_many(["b", "c"], 60) == [False, True]
        await manager.forget_seen("b")
        assert await manager.first_seen("b", 60)
