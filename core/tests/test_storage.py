"""Storage first: an alert is durable before any channel is tried, and finished later,
by this process or by whichever process sweeps the timeline next.

The store contract itself (claims, liveness, retries, jobs, queries) is checked by
``test_store_contract.py``; this module checks the manager and the SQLite file.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pixalert
import pytest
from pixalert import Alert, DeliveryError, DeliveryResult
from pixalert._clock import to_datetime
from pixalert._sqlite import SQLiteHistoryStore, SQLiteStateBackend
from pixalert.storage import HistoryQuery, MemoryDatabase, MemoryHistoryStore
from pixalert.testing import FakeClock, RecordingChannel, make_manager


async def test_cancelled_delivery_leaves_alert_pending_and_the_next_manager_delivers_it(
    tmp_path: Path, clock: FakeClock
) -> None:
    url = f"sqlite:///{tmp_path}/h.db"
    stuck = RecordingChannel("slack", hang=True)
    manager = make_manager([stuck], clock=clock, history=url)
    task = asyncio.create_task(manager.send_alert("Disk full", "95%", "low"))
    while stuck.calls == 0:
        await asyncio.sleep(0)
    task.cancel()  # the caller gives up mid-delivery
    with pytest.raises(asyncio.CancelledError):
        await task
    await manager.aclose()  # gives back what it still held

    fresh = RecordingChannel("slack")
    async with make_manager([fresh], clock=clock, history=url) as second:
        pending = [e for e in await second.history() if e["state"] == "pending"]
        assert [e["title"] for e in pending] == ["Disk full"]
        assert await second.resume_pending() == 1  # no lease to wait for
        assert [a.title for a in fresh.sent] == ["Disk full"]
        entry = (await second.history())[0]
        assert entry["state"] == "done" and entry["results"]["slack"]["status"] == "sent"


async def test_resume_skips_channels_that_already_succeeded(clock: FakeClock) -> None:
    slack, email = RecordingChannel("slack"), RecordingChannel("email")
    database = MemoryDatabase()
    dead = MemoryHistoryStore(clock, database=database)
    await dead.open_owner("dead")
    alert = Alert("t", "m", "medium")
    recorded = await dead.record(alert, ["slack", "email"], owner="dead", lease=120)
    (slack_claim,) = [c for c in recorded.claims if c.channel == "slack"]
    await dead.settle([(slack_claim, DeliveryResult("slack", "sent", 1))])
    await dead.aclose()  # the process died with email still in flight
    store = MemoryHistoryStore(clock, database=database)
    async with make_manager([slack, email], clock=clock, history=store) as manager:
        assert await manager.resume_pending() == 1
        assert await manager.resume_pending() == 0
        (entry,) = await manager.history()
    assert slack.sent == [] and [a.id for a in email.sent] == [alert.id]
    assert entry["state"] == "done"
    assert {c: r["status"] for c, r in entry["results"].items()} == {
        "slack": "sent",
        "email": "sent",
    }


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


@pytest.mark.parametrize("returning", [True, False], ids=["sqlite", "sqlite-before-3.35"])
async def test_sqlite_acquires_of_one_batch_decide_as_one_by_one(
    returning: bool, tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Acquires queued together are written by one upsert (one by one before SQLite
    3.35); each key goes to its first ask in order, a live key to nobody, an expired
    one to its first ask again."""
    import threading

    monkeypatch.setattr("pixalert._sqlite._RETURNING", returning)

    state = SQLiteStateBackend(f"sqlite:///{tmp_path}/s.db", clock)
    assert await state.acquire("live", 60) is True
    assert await state.acquire("old", 10) is True
    clock.advance(30)
    statements: list[str] = []
    busy, release = threading.Event(), threading.Event()

    def hold(conn: sqlite3.Connection) -> None:
        busy.set()
        release.wait(10)
        conn.set_trace_callback(statements.append)

    held = asyncio.ensure_future(state._db.run(hold))
    assert await asyncio.to_thread(busy.wait, 10)
    calls = [
        state.acquire("a", 60),
        state.acquire_many(["b", "a", "old", "b"], 60),
        state.acquire("live", 60),
        state.acquire("old", 60),
        state.acquire_many([], 60),
    ]
    tasks = [asyncio.ensure_future(c) for c in calls]
    while len(state._db._pending) < 4:  # acquire_many([]) asks nothing of the worker
        await asyncio.sleep(0)
    release.set()
    await held
    decided = await asyncio.gather(*tasks)
    await state._db.run(lambda conn: conn.set_trace_callback(None))
    assert decided == [True, [True, False, True, False], False, False, []]
    upserts = [s for s in statements if s.startswith("INSERT INTO state")]
    assert len(upserts) == (1 if returning else 7)
    clock.advance(61)
    assert await state.acquire_many(["a", "live"], 60) == [True, True]
    await state.aclose()


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
        ("sqlite:///h.db?synchronous=full", "h.db"),
    ],
)
def test_sqlite_urls_read_as_sqlalchemy_does(url: str, path: str) -> None:
    from pixalert._sqlite import sqlite_path

    assert sqlite_path(url) == path


async def test_a_sqlite_url_can_ask_for_synchronous_full(tmp_path: Path) -> None:
    """``?synchronous=full``: each commit reaches the disk before it returns (a power
    cut loses no stored alert); the default is WAL's ``normal``."""
    from pixalert._sqlite import SQLiteHistoryStore
    from pixalert.storage import SystemClock

    clock = SystemClock()

    def setting(conn: sqlite3.Connection) -> int:
        return int(conn.execute("PRAGMA synchronous").fetchone()[0])

    default = SQLiteHistoryStore(f"sqlite:///{tmp_path / 'a.db'}", clock)
    full = SQLiteHistoryStore(f"sqlite:///{tmp_path / 'b.db'}?synchronous=FULL", clock)
    try:
        assert await default._db.run(setting) == 1  # NORMAL
        assert await full._db.run(setting) == 2  # FULL
        # A second store on the same file asking for full makes the shared connection full.
        stricter = SQLiteHistoryStore(f"sqlite:///{tmp_path / 'a.db'}?synchronous=full", clock)
        assert await default._db.run(setting) == 2
        await stricter.aclose()
    finally:
        await default.aclose()
        await full.aclose()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("synchronous=off", "synchronous: expected normal or full, got 'off'"),
        ("journal=delete", "unknown option 'journal' (expected: synchronous)"),
    ],
)
def test_sqlite_url_options_are_checked(tmp_path: Path, query: str, message: str) -> None:
    from pixalert._sqlite import SQLiteHistoryStore
    from pixalert.storage import SystemClock

    with pytest.raises(ValueError, match=re.escape(message)):
        SQLiteHistoryStore(f"sqlite:///{tmp_path / 'h.db'}?{query}", SystemClock())


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


async def test_a_failing_call_in_a_group_commit_fails_alone(
    tmp_path: Path, clock: FakeClock
) -> None:
    url = f"sqlite:///{tmp_path}/h.db"
    store, state = SQLiteHistoryStore(url, clock), SQLiteStateBackend(url, clock)
    await store.open_owner("a")
    fresh = [Alert(f"fresh {i}", "m", "low") for i in range(5)]

    def broken(conn: Any) -> None:
        conn.execute("INSERT INTO no_such_table VALUES (1)")

    # Queued together, these share one transaction; the broken call makes it fail.
    outcomes = await asyncio.gather(
        store.record(fresh[0], ["slack"], owner="a", lease=10),
        state.acquire("k1", 60),
        store._db.run(broken),
        store.record_many(fresh[1:], [["slack"]] * 4, owner="a", lease=10),
        state.acquire("k2", 60),
        return_exceptions=True,
    )
    assert isinstance(outcomes[2], sqlite3.OperationalError)
    assert [type(o).__name__ for i, o in enumerate(outcomes) if i != 2] == [
        "Recorded",
        "bool",
        "list",
        "bool",
    ]
    assert outcomes[1] is True and outcomes[4] is True
    entries = await store.entries(HistoryQuery())
    assert sorted(e.alert.title for e in entries) == sorted(a.title for a in fresh)
    assert not await state.acquire("k1", 60)  # the others were committed once, not twice
    await store.aclose()
    await state.aclose()


async def test_an_old_file_keeps_its_unfinished_alerts_and_delivers_them(
    tmp_path: Path, clock: FakeClock
) -> None:
    """A history file of the previous schema, left with an alert half-delivered,
    is moved forward on open: the channels it had not reached are delivered."""
    path = tmp_path / "old.db"
    alert = Alert("half done", "m", "medium", created_at=to_datetime(clock.now()))
    conn = sqlite3.connect(path)
    conn.executescript(V2_SCHEMA)
    conn.execute(
        "INSERT INTO alerts VALUES (?, ?, ?, ?, 'pending', 'dead', 'tok', ?)",
        (alert.id, alert.key, alert.created_at.timestamp(), json.dumps(alert.to_dict()), 0.0),
    )
    conn.execute(
        "INSERT INTO results VALUES (?, 'slack', ?, 'sent', 1, NULL, 0.01, NULL, ?)",
        (alert.id, alert.key, alert.created_at.timestamp()),
    )
    conn.execute("PRAGMA user_version=2")
    conn.commit()
    conn.close()
    slack, email = RecordingChannel("slack"), RecordingChannel("email")
    async with make_manager([slack, email], clock=clock, history=f"sqlite:///{path}") as manager:
        assert await manager.resume_pending() == 1  # the alert is routed again
        (entry,) = await manager.history()
    assert slack.sent == [] and [a.id for a in email.sent] == [alert.id]
    assert entry["state"] == "done" and set(entry["results"]) == {"slack", "email"}


async def test_a_version_4_file_gains_the_index_of_alerts_by_key(
    tmp_path: Path, clock: FakeClock
) -> None:
    """Version 5 adds ``alerts (key, created_at)``: acknowledgements, resolves and
    heartbeats look the newest alerts of a key up without scanning the history."""
    from pixalert._sqlite import _SCHEMA

    path = tmp_path / "v4.db"
    alert = Alert("old", "m", "high", key="db", created_at=to_datetime(clock.now()))
    conn = sqlite3.connect(path)
    conn.executescript(_SCHEMA)
    conn.execute("DROP INDEX alerts_key_created")
    conn.execute(
        "INSERT INTO alerts (id, key, created_at, body, state, priority, status, source, title,"
        " message) VALUES (?, 'db', ?, ?, 'done', 3, 'firing', '', 'old', 'm')",
        (alert.id, alert.created_at.timestamp(), json.dumps(alert.to_dict())),
    )
    conn.execute("PRAGMA user_version=4")
    conn.commit()
    conn.close()
    store = SQLiteHistoryStore(f"sqlite:///{path}", clock)
    try:
        found = await store.entries(HistoryQuery(key="db", limit=5))
    finally:
        await store.aclose()
    assert [e.alert for e in found] == [alert]
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 5
        plan = " ".join(
            str(row[-1])
            for row in conn.execute(
                "EXPLAIN QUERY PLAN SELECT id FROM alerts a WHERE a.key = ? "
                "ORDER BY created_at DESC LIMIT 5",
                ("db",),
            )
        )
    finally:
        conn.close()
    assert "alerts_key_created" in plan


V2_SCHEMA = """
CREATE TABLE alerts (id TEXT PRIMARY KEY, key TEXT NOT NULL, created_at REAL NOT NULL,
    body TEXT NOT NULL, state TEXT NOT NULL, owner TEXT, token TEXT, lease_until REAL);
CREATE INDEX alerts_created ON alerts (created_at);
CREATE INDEX alerts_pending ON alerts (lease_until) WHERE state = 'pending';
CREATE TABLE results (alert_id TEXT NOT NULL, channel TEXT NOT NULL, key TEXT NOT NULL,
    status TEXT NOT NULL, attempts INTEGER NOT NULL, error TEXT, latency REAL, receipt TEXT,
    created_at REAL NOT NULL, PRIMARY KEY (alert_id, channel));
CREATE INDEX results_receipt ON results (key, channel, created_at) WHERE receipt IS NOT NULL;
CREATE TABLE rollup (minute INTEGER NOT NULL, channel TEXT NOT NULL, status TEXT NOT NULL,
    bucket INTEGER NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (minute, channel, status, bucket));
CREATE TABLE alert_minutes (minute INTEGER PRIMARY KEY, n INTEGER NOT NULL);
CREATE TABLE state (key TEXT PRIMARY KEY, expires REAL NOT NULL, value TEXT);
"""


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


class _AfterDelivery:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []

    @pixalert.hookimpl
    def pixalert_after_delivery(self, alert: Alert, results: Any) -> None:
        self.seen.append((alert.title, {str(c): r.status.value for c, r in results.items()}))


@pytest.mark.parametrize("way", ["submit", "send_alert"])
async def test_results_the_store_could_not_take_are_written_by_the_next_sweep(
    clock: FakeClock, way: str
) -> None:
    """A store error while writing results (SQLite busy, a full disk, PostgreSQL gone):
    the delivery went out, so it is not sent again; its claim stays held, and the
    next sweep writes the result."""
    slack, observer = RecordingChannel("slack"), _AfterDelivery()
    async with make_manager([slack], clock=clock, plugins=[observer]) as manager:
        store = manager.history_store
        real_settle = store.settle
        failures = [sqlite3.OperationalError("disk I/O error")]

        async def settle(outcomes: Any) -> Any:
            if failures:
                raise failures.pop()
            return await real_settle(outcomes)

        store.settle = settle  # type: ignore[method-assign]
        if way == "submit":
            await manager.submit(Alert("Disk full", "95%", "low"))
            await manager.drain()
        else:
            results = await manager.send_alert("Disk full", "95%", "low")
            assert results["slack"].status == "sent"  # it went out: the caller is told so
        assert [a.title for a in slack.sent] == ["Disk full"]
        (entry,) = await manager.history()
        assert entry["state"] == "pending" and observer.seen == []
        clock.advance(3600)  # longer than the lease: still this manager's to write
        assert await manager.resume_pending() == 0
        (entry,) = await manager.history()
    assert entry["state"] == "done" and entry["results"]["slack"]["status"] == "sent"
    assert [a.title for a in slack.sent] == ["Disk full"]  # sent once
    assert observer.seen == [("Disk full", {"slack": "sent"})]


async def test_a_resolve_that_supersedes_every_delivery_is_done_and_observed(
    clock: FakeClock,
) -> None:
    """Its every routed channel is final at once (suppressed: never notified), so the
    alert is done in the history (not pending for ever, kept from retention) and the
    after-delivery hooks see it."""
    flaky, observer = RecordingChannel("slack", fail=[DeliveryError("HTTP 503")]), _AfterDelivery()
    config = {"cooldown_minutes": 0, "delivery": {"max_attempts": 1}}
    async with make_manager([flaky], clock=clock, config=config, plugins=[observer]) as manager:
        await manager.send_alert("db down", "m", "low", key="db")  # retrying
        await manager.send_alert("db down", "m", "low", key="db", status="resolved")
        states = {e["status"]: e["state"] for e in await manager.history()}
        health = await manager.health()
    assert states == {"firing": "done", "resolved": "done"}
    assert health["history"]["pending"] == 0
    assert observer.seen == [("db down", {"slack": "suppressed"})]
    assert flaky.sent == []


async def test_memory_state_drops_expired_keys_without_a_scan_per_call(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above 10,000 live keys (cooldowns of distinct alerts) the memory state backend
    scanned every key on every acquire; now a scan waits for the live keys to double,
    and expired keys are still dropped."""
    from pixalert._memory import MemoryStateBackend

    state = MemoryStateBackend(clock)
    scans = 0
    prune = state._prune

    def counted(now: float) -> None:
        nonlocal scans
        scans += 1
        prune(now)

    monkeypatch.setattr(state, "_prune", counted)
    for i in range(30_000):
        assert await state.acquire(f"cooldown:{i}", 300) is True
    assert scans <= 3  # at 10,001, 20,003 (twice 10,001 live) keys
    assert await state.acquire("cooldown:29999", 300) is False
    clock.advance(301)
    for i in range(40_000):
        await state.acquire(f"cooldown:new{i}", 300)
    assert len(state._keys) <= 40_000  # the 30,000 expired ones are gone
    assert await state.acquire("cooldown:0", 300) is True


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_is_set_reads_a_key_without_taking_it(
    kind: str, tmp_path: Path, clock: FakeClock
) -> None:
    from pixalert._memory import MemoryStateBackend

    state: Any = (
        MemoryStateBackend(clock)
        if kind == "memory"
        else SQLiteStateBackend(f"sqlite:///{tmp_path}/s.db", clock)
    )
    assert await state.is_set("cooldown:k") is False
    assert await state.acquire("cooldown:k", 60) is True  # is_set took nothing
    assert await state.is_set("cooldown:k") is True
    await state.put("silence:s", "v", 60)
    assert await state.is_set("silence:s") is True
    clock.advance(61)
    assert await state.is_set("cooldown:k") is False
    await state.aclose()


def _query_plans(path: Path, statements: list[str]) -> dict[str, str]:
    """Each statement's query plan on the file at ``path``, its steps joined by `` | ``."""
    conn = sqlite3.connect(path)
    try:
        return {
            sql: " | ".join(str(row[-1]) for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
            for sql in statements
        }
    finally:
        conn.close()


async def test_stats_reads_through_indexes_not_every_delivery(
    tmp_path: Path, clock: FakeClock
) -> None:
    """Each statement ``stats()`` runs is planned on an index: a scan of the deliveries
    table grows with the whole history (375 ms at 1M alerts) instead of the window."""
    path = tmp_path / "history.db"
    store = SQLiteHistoryStore(f"sqlite:///{path}", clock)
    statements: list[str] = []
    try:
        await store.open_owner("a")
        for i in range(3):
            alert = Alert(f"t{i}", "m", "high", created_at=to_datetime(clock.now()))
            recorded = await store.record(alert, ["slack", "email"], owner="a", lease=60)
            sent = [(c, DeliveryResult(c.channel, "sent", 1, None, 0.01)) for c in recorded.claims]
            await store.settle(sent)
            clock.advance(90)
        await store._db.run(lambda conn: conn.set_trace_callback(statements.append))
        stats = await store.stats(to_datetime(clock.now() - 3600))
        await store._db.run(lambda conn: conn.set_trace_callback(None))
    finally:
        await store.aclose()
    assert stats["channels"]["slack"]["sent"] == 3
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) >= 3
    plans = _query_plans(path, selects)
    scans = {
        sql: plan
        for sql, plan in plans.items()
        if re.search(r"SCAN (d|deliveries)\b(?! USING)", plan)
    }
    assert not scans


async def test_record_and_settle_look_alerts_up_by_id_in_a_backlog(
    tmp_path: Path, clock: FakeClock
) -> None:
    """With alerts pending (a backlog in an outage), the statements of record and
    settle find their rows by key: none reads every pending alert (SQLite planned the
    partial index of pending alerts for ``id IN (...)``: 8 ms per call at 50,000)."""
    path = tmp_path / "history.db"
    store = SQLiteHistoryStore(f"sqlite:///{path}", clock)
    statements: list[str] = []
    try:
        await store.open_owner("a")
        backlog = [Alert(f"b{i}", "m", "high") for i in range(50)]
        await store.record_many(backlog, [["slack"]] * len(backlog), owner="a", lease=60)
        await store._db.run(lambda conn: conn.set_trace_callback(statements.append))
        alerts = [Alert(f"t{i}", "m", "high") for i in range(3)]
        recorded = await store.record_many(alerts, [["slack", "email"]] * 3, owner="a", lease=60)
        settled = await store.settle(
            [
                (c, DeliveryResult(c.channel, "sent", 1, None, 0.01))
                for r in recorded
                for c in r.claims
            ]
        )
        await store._db.run(lambda conn: conn.set_trace_callback(None))
    finally:
        await store.aclose()
    assert sorted(settled.completed) == sorted(a.id for a in alerts)
    writes = [s for s in statements if s.lstrip().upper().startswith(("UPDATE", "DELETE"))]
    assert any("UPDATE alerts" in s for s in writes)
    plans = _query_plans(path, writes)
    wide = {
        sql: plan
        for sql, plan in plans.items()
        if "alerts_waiting" in plan or re.search(r"SCAN (alerts|deliveries|a|d)\b", plan)
    }
    assert not wide


async def test_a_claims_lease_runs_from_when_the_worker_writes_it(
    tmp_path: Path, clock: FakeClock
) -> None:
    """In a burst, records wait in the SQLite worker's queue; the time they wait does
    not use up their claims' lease (else a sweep takes live work over: a duplicate)."""
    import threading
    import time

    store = SQLiteHistoryStore(f"sqlite:///{tmp_path / 'history.db'}", clock)
    busy, release = threading.Event(), threading.Event()

    def hold_the_worker(conn: sqlite3.Connection) -> None:
        busy.set()
        release.wait(10)

    try:
        await store.open_owner("a")
        await store.open_owner("b")
        blocked = asyncio.ensure_future(store._db.run(hold_the_worker))
        assert await asyncio.to_thread(busy.wait, 10)
        recording = asyncio.ensure_future(
            store.record(Alert("t", "m", "high"), ["slack"], owner="a", lease=0.5)
        )
        waited = time.monotonic()
        # The worker stays busy for 1 s more; the record is queued behind it meanwhile.
        await asyncio.to_thread(time.sleep, 1.0)
        release.set()
        await blocked
        (claim,) = (await recording).claims
        waited = time.monotonic() - waited
        assert waited >= 1.0
        clock.advance(0.6)  # past the lease counted from the call, not from the write
        assert await store.claim_due(owner="b", lease=60) == []
        clock.advance(waited)
        assert [c.alert.id for c in await store.claim_due(owner="b", lease=60)] == [claim.alert.id]
    finally:
        release.set()
        await store.aclose()
