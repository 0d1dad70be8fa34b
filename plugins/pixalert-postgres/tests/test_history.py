"""PostgresHistoryStore against a real PostgreSQL: the HistoryStore contract.

Where the core's in-memory store (the reference) can answer the same
question, the answers are compared.
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
from pixalert.storage import HistoryStore, Lease, MemoryHistoryStore
from pixalert.testing import FakeClock
from pixalert_postgres import PostgresHistoryStore
from pixalert_postgres._migrations import MIGRATIONS

pytestmark = pytest.mark.services

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)
EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)


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


async def test_record_then_results_then_complete(store: PostgresHistoryStore) -> None:
    a = alert(metadata={"host": "db-1", "n": [1, 2]}, channels=["slack", "email"])
    lease = await store.record(a, owner="i1", lease=60)
    (entry,) = await store.entries(EPOCH)
    assert entry.state == "pending"
    assert entry.alert == a
    assert entry.results == ()

    assert await store.record_result(lease, sent("slack", 0.25, {"ts": "1.2"}))
    assert await store.record_result(lease, DeliveryResult("email", "failed", 3, "timeout"))
    results = await store.results_for(a.id)
    assert [(str(r.channel), r.status.value) for r in results] == [
        ("slack", "sent"),
        ("email", "failed"),
    ]
    assert results[0].receipt == {"ts": "1.2"}
    assert results[0].latency == 0.25

    # A channel retried later replaces its result, keeping its place.
    assert await store.record_result(lease, DeliveryResult("email", "sent", 1, None, 0.5))
    assert [r.status.value for r in await store.results_for(a.id)] == ["sent", "sent"]

    assert await store.complete(lease)
    (entry,) = await store.entries(EPOCH)
    assert entry.state == "done"
    assert entry.to_dict()["results"]["email"]["attempts"] == 1
    # Done: the lease is gone, so nothing more can be written with it.
    assert not await store.record_result(lease, sent("slack"))
    assert not await store.complete(lease)


async def test_recording_an_id_twice_is_a_clear_error(store: PostgresHistoryStore) -> None:
    a = alert()
    await store.record(a, owner="i1", lease=60)
    with pytest.raises(ValueError, match="already recorded"):
        await store.record(a, owner="i2", lease=60)


async def test_unknown_alert_has_no_results(store: PostgresHistoryStore) -> None:
    assert await store.results_for("nope") == []
    assert not await store.complete(Lease(alert(), "token"))
    assert not await store.record_result(Lease(alert(), "token"), sent("slack"))


async def test_entries_newest_first_with_since_and_limit(store: PostgresHistoryStore) -> None:
    alerts = [alert(i, minutes=i) for i in range(5)]
    for a in alerts:
        await store.record(a, owner="i1", lease=60)
    titles = [e.alert.title for e in await store.entries(EPOCH)]
    assert titles == [f"alert {i}" for i in (4, 3, 2, 1, 0)]
    assert [e.alert.title for e in await store.entries(EPOCH, limit=2)] == ["alert 4", "alert 3"]
    since = T0 + timedelta(minutes=3)
    assert [e.alert.title for e in await store.entries(since)] == ["alert 4", "alert 3"]


async def test_last_receipt_is_the_newest_successful_send(store: PostgresHistoryStore) -> None:
    older = alert(1, key="disk", minutes=0)
    newer = alert(2, key="disk", minutes=5)
    failed = alert(3, key="disk", minutes=10)
    for a, result in (
        (older, sent("pagerduty", receipt={"dedup_key": "old"})),
        (newer, sent("pagerduty", receipt={"dedup_key": "new"})),
        (failed, DeliveryResult("pagerduty", "failed", 3, "503")),
    ):
        lease = await store.record(a, owner="i1", lease=60)
        await store.record_result(lease, result)
    assert await store.last_receipt("disk", "pagerduty") == {"dedup_key": "new"}
    assert await store.last_receipt("disk", "slack") is None
    assert await store.last_receipt("other", "pagerduty") is None


async def test_purge_deletes_old_alerts_with_their_results(store: PostgresHistoryStore) -> None:
    old, new = alert(1, minutes=-120), alert(2)
    for a in (old, new):
        lease = await store.record(a, owner="i1", lease=60)
        await store.record_result(lease, sent("slack"))
    assert await store.purge(T0 - timedelta(minutes=60)) == 1
    assert [e.alert.id for e in await store.entries(EPOCH)] == [new.id]
    assert await store.results_for(old.id) == []
    assert await store.purge(T0 - timedelta(minutes=60)) == 0


async def test_health(store: PostgresHistoryStore, schema: str) -> None:
    await store.record(alert(), owner="i1", lease=60)
    health = await store.health()
    assert health["status"] == "ok"
    assert health["backend"] == "postgresql"
    assert health["pending"] == 1
    assert health["schema"] == schema
    assert health["schema_version"] == MIGRATIONS[-1].version


# ---------------------------------------------------------------------------
# Leases: takeover after expiry, stale holders rejected
# ---------------------------------------------------------------------------


async def test_live_lease_is_not_claimed(store: PostgresHistoryStore, clock: FakeClock) -> None:
    await store.record(alert(), owner="i1", lease=30)
    assert await store.claim_pending(owner="i2", lease=30) == []
    clock.advance(29)
    assert await store.claim_pending(owner="i2", lease=30) == []


async def test_expired_lease_is_taken_over_and_the_stale_holder_rejected(
    make_store: Callable[..., PostgresHistoryStore], clock: FakeClock
) -> None:
    first, second = make_store(), make_store()  # two instances, two pools
    a = alert(channels=["slack", "email"])
    stale = await first.record(a, owner="i1", lease=30)
    assert await first.record_result(stale, sent("slack"))

    clock.advance(31)
    (taken,) = await second.claim_pending(owner="i2", lease=30)
    assert taken.alert == a
    assert taken.token != stale.token
    # The new holder sees what the old one finished, to skip it.
    assert [str(r.channel) for r in await second.results_for(a.id)] == ["slack"]

    # The old holder wakes up late: everything it tries is refused.
    assert not await first.record_result(stale, DeliveryResult("email", "failed", 3, "late"))
    assert not await first.complete(stale)
    await first.renew([stale], 300)  # does not steal the lease back
    clock.advance(31)
    (again,) = await first.claim_pending(owner="i1", lease=30)  # i2 died too
    assert not await second.record_result(taken, sent("email"))

    assert await first.record_result(again, sent("email"))
    assert await first.complete(again)
    (entry,) = await first.entries(EPOCH)
    assert entry.state == "done"
    assert {str(r.channel): r.status.value for r in entry.results} == {
        "slack": "sent",
        "email": "sent",
    }


async def test_renew_is_a_heartbeat(store: PostgresHistoryStore, clock: FakeClock) -> None:
    lease = await store.record(alert(), owner="i1", lease=30)
    for _ in range(5):
        clock.advance(20)
        await store.renew([lease], 30)
        assert await store.claim_pending(owner="i2", lease=30) == []
    clock.advance(31)  # the heartbeat stopped: the holder died
    (taken,) = await store.claim_pending(owner="i2", lease=30)
    assert taken.alert.id == lease.alert.id
    await store.renew([], 30)  # nothing to renew is fine


async def test_claim_is_oldest_first_and_limited(
    store: PostgresHistoryStore, clock: FakeClock
) -> None:
    for i in range(5):
        await store.record(alert(i, minutes=-i), owner="dead", lease=1)
    clock.advance(2)
    claimed = await store.claim_pending(owner="i2", lease=30, limit=3)
    assert [c.alert.title for c in claimed] == ["alert 4", "alert 3", "alert 2"]
    rest = await store.claim_pending(owner="i2", lease=30)
    assert [c.alert.title for c in rest] == ["alert 1", "alert 0"]


async def test_done_alerts_are_never_claimed(store: PostgresHistoryStore, clock: FakeClock) -> None:
    lease = await store.record(alert(), owner="i1", lease=1)
    await store.complete(lease)
    clock.advance(60)
    assert await store.claim_pending(owner="i2", lease=30) == []


async def test_concurrent_claims_never_hand_out_one_alert_twice(
    make_store: Callable[..., PostgresHistoryStore], clock: FakeClock
) -> None:
    writer = make_store()
    ids = set()
    for i in range(60):
        lease = await writer.record(alert(i), owner="dead", lease=1)
        ids.add(lease.alert.id)
    clock.advance(2)
    claimers = [make_store() for _ in range(4)]

    async def drain(store: PostgresHistoryStore, owner: str) -> list[str]:
        got: list[str] = []
        while batch := await store.claim_pending(owner=owner, lease=300, limit=4):
            got.extend(c.alert.id for c in batch)
        return got

    taken = await asyncio.gather(*(drain(s, f"i{n}") for n, s in enumerate(claimers)))
    everything = [alert_id for batch in taken for alert_id in batch]
    assert len(everything) == len(set(everything)) == 60
    assert set(everything) == ids


# ---------------------------------------------------------------------------
# stats(): the core's shape, compared with the reference store
# ---------------------------------------------------------------------------


ALERTS = [alert(i, minutes=i % 10, title=f"a{i}") for i in range(40)]


async def _fill(store: Any) -> None:
    for i, a in enumerate(ALERTS):
        lease = await store.record(a, owner="i1", lease=60)
        await store.record_result(lease, sent("slack", 0.01 * (i + 1)))
        if i % 4 == 0:
            await store.record_result(lease, DeliveryResult("email", "failed", 3, "boom"))
        elif i % 4 == 1:
            await store.record_result(lease, DeliveryResult("email", "suppressed", 0, "cooldown"))
        elif i % 4 == 2:
            await store.record_result(lease, DeliveryResult("pagerduty", "skipped", 0, "no"))
        else:
            await store.record_result(lease, sent("email", 2.0))
        await store.complete(lease)


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
    assert stats["totals"] == {"sent": 50, "failed": 10, "suppressed": 10, "skipped": 10}
    slack = stats["channels"]["slack"]
    assert slack["sent"] == 40
    assert slack["success_rate"] == 1.0
    # Nearest rank over 0.01 .. 0.40: p50 is the 20th value, p95 the 38th, p99 the 40th.
    assert slack["latency"] == {"p50": 0.2, "p95": 0.38, "p99": 0.4}
    email = stats["channels"]["email"]
    assert (email["sent"], email["failed"], email["suppressed"]) == (10, 10, 10)
    assert email["success_rate"] == 0.5
    assert stats["channels"]["pagerduty"]["latency"] == {"p50": None, "p95": None, "p99": None}


async def test_entries_match_the_reference_store(store: PostgresHistoryStore) -> None:
    reference = MemoryHistoryStore(FakeClock())
    await _fill(store)
    await _fill(reference)
    ours = [e.to_dict() for e in await store.entries(EPOCH)]
    theirs = [e.to_dict() for e in await reference.entries(EPOCH)]
    # Same alerts and results; ties in created_at may come in any order.
    key = lambda d: d["title"]  # noqa: E731
    assert sorted(ours, key=key) == sorted(theirs, key=key)
    assert [d["created_at"] for d in ours] == [d["created_at"] for d in theirs]
