"""PostgresHistoryStore against a real PostgreSQL, beyond the conformance suite.

Batch forms are one statement (or one pipelined transaction) whatever the
batch size; claims are handed out once among racing instances; stats and
history agree with the core's in-memory store (the reference); text that
PostgreSQL cannot hold (NUL) is stored rather than refused.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pixalert_postgres
import pytest
from pixalert import Alert, DeliveryResult
from pixalert.storage import HistoryQuery, HistoryStore, MemoryHistoryStore, Planned
from pixalert.testing import FakeClock
from pixalert_postgres import PostgresHistoryStore

from .conftest import Calls

pytestmark = pytest.mark.services

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)
EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)
ALL = HistoryQuery(since=EPOCH, limit=None)


def alert(n: int = 0, *, minutes: float = 0, **kwargs: Any) -> Alert:
    kwargs.setdefault("title", f"alert {n}")
    kwargs.setdefault("priority", "high")
    return Alert(created_at=T0 + timedelta(minutes=minutes), **kwargs)


def sent(channel: str, latency: float = 0.1, receipt: dict[str, str] | None = None) -> Any:
    return DeliveryResult(channel, "sent", 1, None, latency, receipt)


async def test_hook_handles_postgres_urls_only() -> None:
    hook = pixalert_postgres.pixalert_history_store
    for url in ("redis://127.0.0.1", "memory://", "sqlite:///x.db"):
        assert hook(url=url, clock=None) is None
    for url in ("postgresql://127.0.0.1/test", "postgres://u@h/db"):
        store = hook(url=url, clock=None)
        assert isinstance(store, PostgresHistoryStore)
        assert isinstance(store, HistoryStore)
        await store.aclose()


def test_entry_point_is_registered() -> None:
    points = importlib.metadata.entry_points(group="pixalert")
    assert any(p.name == "postgres" and p.value == "pixalert_postgres" for p in points)


async def test_batch_forms_take_one_round_trip_whatever_the_batch_size(
    store: PostgresHistoryStore, clock: FakeClock
) -> None:
    await store.open_owner("i1")
    calls = Calls(store)
    alerts = [alert(i, minutes=i) for i in range(300)]
    recorded = await store.record_many(
        alerts, [["slack", "email", "webhook"]] * 300, owner="i1", lease=60
    )
    assert calls.take() == 1
    claims = [c for r in recorded for c in r.claims]
    assert len(claims) == 900

    await store.renew(claims, 60)
    assert calls.take() == 1
    await store.release(claims[:450])
    assert calls.take() == 1
    again = await store.claim_due(owner="i1", lease=60, limit=1000)
    assert calls.take() == 1
    assert len(again) == 450
    outcomes = [(c, sent(c.channel)) for c in claims[450:]] + [(c, sent(c.channel)) for c in again]
    settled = await store.settle(outcomes)
    assert calls.take() == 1
    assert all(settled.accepted)
    assert sorted(settled.completed) == sorted(a.id for a in alerts)

    resolves = [a.resolve() for a in alerts[:100]]  # the supersede path is one statement too
    await store.record_many(resolves, [["slack"]] * 100, owner="i1", lease=60)
    assert calls.take() == 1
    assert len(await store.entries(ALL)) == 400
    assert calls.take() == 1


async def test_a_batch_is_stored_all_or_none(
    store: PostgresHistoryStore, pg_url: str, schema: str
) -> None:
    import psycopg
    from psycopg import sql

    await store.open_owner("i1")
    good = alert(1)
    duplicate_channel = alert(2)
    recorded = await store.record_many(
        [good, duplicate_channel, good],
        [["slack"], ["slack", "slack", "email"], ["slack", "webhook"]],
        owner="i1",
        lease=60,
    )
    # A repeated channel or alert in one batch is stored once and claimed once.
    assert [sorted(c.channel for c in r.claims) for r in recorded] == [
        ["slack"],
        ["email", "slack"],
        ["webhook"],
    ]
    # The server refuses the last delivery of the next batch: none of it is kept.
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "CREATE FUNCTION {s}.refuse() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$; "
                "CREATE TRIGGER refuse BEFORE INSERT ON {s}.deliveries FOR EACH ROW "
                "WHEN (NEW.channel = 'refused') EXECUTE FUNCTION {s}.refuse()"
            ).format(s=sql.Identifier(schema))
        )
    with pytest.raises(psycopg.errors.RaiseException, match="refused by the test"):
        await store.record_many(
            [alert(3), alert(4), alert(5)],
            [["slack"], ["slack", "email"], ["email", "refused"]],
            owner="i1",
            lease=60,
        )
    assert {e.alert.id for e in await store.entries(ALL)} == {good.id, duplicate_channel.id}
    assert len(await store.claim_due(owner="i2", lease=60)) == 0


async def test_text_postgresql_cannot_hold_is_stored_not_refused(
    store: PostgresHistoryStore,
) -> None:
    await store.open_owner("i1")
    odd = alert(title="nul\x00here", metadata={"k\x00": "v\x00", "n": [1, "\x00"]})
    (recorded,) = await store.record_many([odd], [["slack"]], owner="i1", lease=60)
    (claim,) = recorded.claims
    await store.settle([(claim, DeliveryResult("slack", "failed", 1, "bad \x00 byte"))])
    (entry,) = await store.entries(ALL)
    assert entry.alert.id == odd.id
    assert entry.alert.title == "nul\ufffdhere"
    assert entry.alert.metadata == {"k\ufffd": "v\ufffd", "n": [1, "\ufffd"]}
    assert entry.results[0].error == "bad \ufffd byte"
    assert [e.alert.id for e in await store.entries(HistoryQuery(search="nul"))] == [odd.id]


async def test_concurrent_claims_never_hand_out_one_delivery_twice(
    make_store: Callable[..., PostgresHistoryStore], clock: FakeClock
) -> None:
    writer = make_store()
    await writer.open_owner("dead")
    recorded = await writer.record_many(
        [alert(i) for i in range(60)], [["slack", "email"]] * 60, owner="dead", lease=1
    )
    wanted = {(c.alert.id, c.channel) for r in recorded for c in r.claims}
    clock.advance(2)
    claimers = [make_store() for _ in range(4)]

    async def drain(store: PostgresHistoryStore, owner: str) -> list[tuple[str, str]]:
        await store.open_owner(owner)
        got: list[tuple[str, str]] = []
        while batch := await store.claim_due(owner=owner, lease=300, limit=7):
            got.extend((c.alert.id, c.channel) for c in batch)
        return got

    taken = await asyncio.gather(*(drain(s, f"i{n}") for n, s in enumerate(claimers)))
    everything = [item for batch in taken for item in batch]
    assert len(everything) == len(set(everything)) == 120
    assert set(everything) == wanted


async def test_claims_come_soonest_due_first(store: PostgresHistoryStore, clock: FakeClock) -> None:
    await store.open_owner("i1")
    now = clock.now()
    alerts = [alert(i) for i in range(5)]
    claims = [
        c
        for r in await store.record_many(alerts, [["slack"]] * 5, owner="i1", lease=60)
        for c in r.claims
    ]
    # Due in the order 4, 3, 2, 1, 0.
    await store.settle(
        [
            (
                c,
                DeliveryResult(
                    "slack",
                    "retrying",
                    1,
                    "503",
                    next_attempt_at=datetime.fromtimestamp(now + 10 - n, timezone.utc),
                ),
            )
            for n, c in enumerate(claims)
        ]
    )
    clock.advance(10)
    first = await store.claim_due(owner="i1", lease=60, limit=3)
    assert [c.alert.title for c in first] == ["alert 4", "alert 3", "alert 2"]
    rest = await store.claim_due(owner="i1", lease=60)
    assert [c.alert.title for c in rest] == ["alert 1", "alert 0"]


async def test_health_counts_waiting_work(
    store: PostgresHistoryStore, schema: str, clock: FakeClock
) -> None:
    await store.open_owner("i1")
    (recorded,) = await store.record_many([alert()], [["slack", "email"]], owner="i1", lease=60)
    slack, email = sorted(recorded.claims, key=lambda c: c.channel != "slack")
    await store.settle(
        [
            (slack, sent("slack")),
            (
                email,
                DeliveryResult(
                    "email",
                    "retrying",
                    1,
                    "421",
                    next_attempt_at=datetime.fromtimestamp(clock.now() + 60, timezone.utc),
                ),
            ),
        ]
    )
    later = Planned("slack", clock.now() + 60, group="slack|db", note="group_wait")
    await store.record_many([alert(2)], [[later]], owner="i1", lease=60)
    health = await store.health()
    assert health["status"] == "ok"
    assert health["backend"] == "postgresql"
    assert (health["pending"], health["retrying"], health["held"]) == (2, 1, 1)
    assert health["schema"] == schema
    assert (health["owners"], health["liveness"]) == (1, "locked")


# ---------------------------------------------------------------------------
# stats() and entries(): the core's shape, compared with the reference store
# ---------------------------------------------------------------------------


ALERTS = [alert(i, minutes=i % 10, title=f"a{i}") for i in range(40)]


async def _fill(store: Any) -> None:
    """40 alerts on slack and one other channel, settled; every fifth one also held on
    the webhook (half of those in a group)."""
    await store.open_owner("i1")
    for i, a in enumerate(ALERTS):
        channels: list[str | Planned] = ["slack", ("email", "email", "pagerduty", "email")[i % 4]]
        if i % 5 == 0:
            due = (T0 + timedelta(hours=1 + i % 2)).timestamp()
            group = "webhook|db" if i % 10 == 0 else None
            channels.append(Planned("webhook", due, group=group, note=f"held {i}"))
        (recorded,) = await store.record_many([a], [channels], owner="i1", lease=60)
        by = {c.channel: c for c in recorded.claims}
        outcomes = [(by["slack"], sent("slack", 0.01 * (i + 1)))]
        if i % 4 == 0:
            outcomes.append((by["email"], DeliveryResult("email", "failed", 3, "boom")))
        elif i % 4 == 1:
            outcomes.append((by["email"], DeliveryResult("email", "suppressed", 0, "cooldown")))
        elif i % 4 == 2:
            outcomes.append((by["pagerduty"], DeliveryResult("pagerduty", "skipped", 0, "no")))
        else:
            outcomes.append((by["email"], sent("email", 2.0)))
        await store.settle(outcomes)


async def test_stats_match_the_reference_store(store: PostgresHistoryStore) -> None:
    reference = MemoryHistoryStore(FakeClock())
    await _fill(store)
    await _fill(reference)
    for since in (EPOCH, T0 + timedelta(minutes=5)):
        ours, theirs = await store.stats(since), await reference.stats(since)
        assert ours.keys() == theirs.keys()
        assert ours["alerts"] == theirs["alerts"]
        assert ours["totals"] == theirs["totals"]
        assert ours["channels"].keys() == theirs["channels"].keys()
        for name, row in ours["channels"].items():
            ref = theirs["channels"][name]
            assert {k: v for k, v in row.items() if k != "latency"} == {
                k: v for k, v in ref.items() if k != "latency"
            }
            for q in ("p50", "p95", "p99"):
                # Ours are exact nearest-rank values; the reference's are
                # histogram bounds within 5 % above them.
                if ref["latency"][q] is None:
                    assert row["latency"][q] is None
                else:
                    assert row["latency"][q] <= ref["latency"][q] <= row["latency"][q] * 1.051


async def test_stats_numbers(store: PostgresHistoryStore) -> None:
    await _fill(store)
    stats = await store.stats(EPOCH)
    assert stats["since"] == EPOCH.isoformat()
    assert stats["alerts"] == 40
    assert stats["totals"] == {
        "sent": 50,
        "failed": 10,
        "suppressed": 10,
        "skipped": 10,
        "retrying": 0,
        "held": 8,
    }
    slack = stats["channels"]["slack"]
    assert slack["sent"] == 40
    assert slack["success_rate"] == 1.0
    # Nearest rank over 0.01 .. 0.40: p50 is the 20th value, p95 the 38th, p99 the 40th.
    assert slack["latency"] == {"p50": 0.2, "p95": 0.38, "p99": 0.4}
    email = stats["channels"]["email"]
    assert (email["sent"], email["failed"], email["suppressed"]) == (10, 10, 10)
    assert email["success_rate"] == 0.5
    assert stats["channels"]["pagerduty"]["latency"] == {"p50": None, "p95": None, "p99": None}
    webhook = stats["channels"]["webhook"]
    assert (webhook["held"], webhook["sent"], webhook["success_rate"]) == (8, 0, None)


async def test_entries_match_the_reference_store(store: PostgresHistoryStore) -> None:
    reference = MemoryHistoryStore(FakeClock())
    await _fill(store)
    await _fill(reference)
    queries = [
        ALL,
        HistoryQuery(since=EPOCH, limit=7),
        HistoryQuery(since=EPOCH, channel="email", result="failed"),
        HistoryQuery(since=EPOCH, result="skipped"),
        HistoryQuery(since=EPOCH, result="held"),
        HistoryQuery(since=EPOCH, channel="webhook", result="held", limit=3),
        HistoryQuery(since=EPOCH, search="A1"),
        HistoryQuery(since=T0 + timedelta(minutes=3), until=T0 + timedelta(minutes=6)),
    ]
    for query in queries:
        ours = [e.to_dict() for e in await store.entries(query)]
        theirs = [e.to_dict() for e in await reference.entries(query)]
        # Same alerts and results; ties in created_at may come in any order.
        key = lambda d: d["title"]  # noqa: E731
        if query.limit is None:
            assert sorted(ours, key=key) == sorted(theirs, key=key), query
        assert [d["created_at"] for d in ours] == [d["created_at"] for d in theirs], query


async def test_last_receipt_is_the_newest_successful_send(store: PostgresHistoryStore) -> None:
    await store.open_owner("i1")
    for a, result in (
        (alert(1, key="disk", minutes=0), sent("pagerduty", receipt={"dedup_key": "old"})),
        (alert(2, key="disk", minutes=5), sent("pagerduty", receipt={"dedup_key": "new"})),
        (alert(3, key="disk", minutes=10), DeliveryResult("pagerduty", "failed", 3, "503")),
    ):
        (recorded,) = await store.record_many([a], [["pagerduty"]], owner="i1", lease=60)
        await store.settle([(recorded.claims[0], result)])
    assert await store.last_receipt("disk", "pagerduty") == {"dedup_key": "new"}
    assert await store.last_receipt("disk", "slack") is None
    assert await store.last_receipt("other", "pagerduty") is None


async def test_a_row_this_version_cannot_read_fails_alone(
    store: PostgresHistoryStore, clock: FakeClock, pg_url: str, schema: str
) -> None:
    import psycopg
    from psycopg import sql

    await store.open_owner("i1")
    readable, odd = alert(1), alert(2)
    for a in (readable, odd):
        await store.record_many([a], [["slack"]], owner="i1", lease=1)
    with psycopg.connect(pg_url, autocommit=True) as conn:  # as a newer pixalert might write it
        conn.execute(
            sql.SQL(
                "UPDATE {}.alerts SET body = body || '{{\"field_from_the_future\": 1}}' "
                "WHERE id = %s"
            ).format(sql.Identifier(schema)),
            (odd.id,),
        )
    clock.advance(2)
    (claim,) = await store.claim_due(owner="i1", lease=60)
    assert claim.alert == readable
    (result,) = await store.results_for(odd.id)
    assert result.status.value == "failed"
    assert result.error is not None and result.error.startswith("unreadable alert: TypeError")
    clock.advance(120)
    assert [c.alert.id for c in await store.claim_due(owner="i1", lease=60)] == [readable.id]


async def test_a_job_due_after_year_9999_is_kept_and_never_due(
    store: PostgresHistoryStore, clock: FakeClock
) -> None:
    """Escalations keep a finished incident's state in a job due at a time that never
    comes (``1e15``, beyond what PostgreSQL and Python can hold): it is kept, due at
    the end of year 9999, and never claimed."""
    from pixalert.storage import Job
    from pixalert_postgres._database import LATEST

    await store.open_owner("i1")
    assert await store.schedule([Job("escalation", "db", 1e15, {"state": "done"})]) == [True]
    assert [(j.ref, j.due, dict(j.payload)) for j in await store.jobs()] == [
        ("db", LATEST.timestamp(), {"state": "done"})
    ]
    await store.schedule([Job("escalation", "db", clock.now(), {"state": "active"})])
    (claim,) = await store.claim_jobs(owner="i1", lease=60)
    assert await store.finish_job(claim, next_due=1e15, payload={"state": "acknowledged"})
    clock.advance(10 * 365 * 86400)
    assert await store.claim_jobs(owner="i1", lease=60) == []
    assert [dict(j.payload) for j in await store.jobs("escalation")] == [{"state": "acknowledged"}]
