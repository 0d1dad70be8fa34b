"""The store conformance suite: what every history store promises the core, checked.

A store plugin runs it from its own tests. Subclass :class:`StoreContract`
(pytest collects one test per check)::

    from pixalert.testing import StoreContract


    class TestMyStoreContract(StoreContract):
        def make_store(self, clock, name):
            # A handle on database `name` (the same name: the same database).
            return MyHistoryStore(f"mystore://localhost/{name}", clock)

or call :func:`check_store_contract` from an async test. Each check opens
handles on a database of its own (a fresh ``name``), drives time with a
:class:`~pixalert.testing.FakeClock`, and closes every handle it opened.

The checks (names as in :data:`STORE_CHECKS`):

``record``
    An alert and its deliveries are stored in one call and come back claimed
    by the caller; nobody else can claim them while the caller lives; a record
    of the same alert id again adds only the channels it lacked; ``record_many``
    records every alert of a batch.
``settle``
    A final result ends a delivery; the alert is finished (``state`` done,
    listed in ``Settled.completed``) once every delivery is final.
``retry``
    A ``retrying`` result puts the delivery back on the timeline: not due
    before its ``next_attempt_at``, then claimable with its attempts, error
    and ``queued_at`` kept; ``results_for`` shows it waiting.
``stale``
    After a claim's lease runs out, another owner claims it; the first
    holder's late result is refused (``accepted`` False) and changes nothing.
``liveness``
    An owner whose store handle closes without :meth:`close_owner` (a process
    that died) has its claims taken over at once, before the lease ends
    (``liveness=False`` for stores that rely on leases: then after the lease).
``give_back``
    ``close_owner`` and ``release`` make claims due again at once; ``renew``
    keeps a claim past its first lease.
``supersede``
    A resolve recorded while a firing delivery of the same key waits
    supersedes it on that channel: both are ``suppressed``, the firing alert is
    finished, and ``Recorded.superseded`` names the channel.
``jobs``
    Jobs are scheduled (replaced or kept), claimed only when due and by one
    owner, finished or rescheduled by their holder only, cancelled, and listed.
``events``
    Events are kept with their alert and come back in its history entry.
``queries``
    ``entries`` filters by time, priority, status (``acknowledged`` included:
    the alerts with an acknowledgement event), channel, result, search text,
    source and key, newest first, up to ``limit``; ``entry`` and
    ``last_receipt`` find what they should.
``stats``
    ``stats`` counts each channel's results (retrying included) with success
    rates.
``stats_by``
    ``stats_by`` counts the alerts and deliveries of a window (``until``
    exclusive, or open) per channel, priority (in priority order), source and
    UTC hour, with success rates and latency percentiles; an unknown grouping
    is a ``ValueError``.
``retention``
    ``purge`` removes finished alerts older than the cutoff and keeps the rest,
    unfinished ones included.
``held``
    A :class:`~pixalert.storage.Planned` delivery due later is recorded
    ``held`` (with its note as the error and its due time), not claimed, not
    due before its time, then claimed like any; ``settle`` with a ``held``
    result holds it again; a resolve supersedes a held firing delivery.
``final``
    A :class:`~pixalert.storage.Planned` delivery with ``final`` is recorded
    with that status and its note as the error, no attempt, not claimed and
    never due; ``Recorded.final`` names it (not when the alert already had
    it); an alert whose deliveries are all final is done when recorded; stats
    count them; the batch form and a resolve do the same.
``groups``
    Held members of a group put their group's job on the timeline in the same
    write (a sooner member moves it sooner, even while it is claimed, its
    payload kept); ``claim_due`` never hands members out; ``claim_group``
    hands the due ones out, once; finishing the group's job keeps it due no
    later than its earliest waiting member, and removes it once none waits.
"""

from __future__ import annotations

import asyncio
import inspect
import unittest
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from typing import Any, ClassVar

import attrs

from ._clock import Clock, to_datetime
from ._conformance import CheckResult, ContractReport, ContractViolation
from ._storage import (
    NEVER_NOTIFIED,
    SUPERSEDED,
    AlertEvent,
    Claim,
    HistoryQuery,
    HistoryStore,
    Job,
    Planned,
)
from ._types import Alert, DeliveryResult, DeliveryStatus

__all__ = ["STORE_CHECKS", "StoreContract", "check_store_contract"]

STORE_CHECKS = (
    "record",
    "settle",
    "retry",
    "stale",
    "liveness",
    "give_back",
    "supersede",
    "jobs",
    "events",
    "queries",
    "stats",
    "stats_by",
    "retention",
    "held",
    "final",
    "groups",
    "concurrency",
)
"""The names of the store conformance checks, in the order they run."""

#: Builds a handle on database ``name`` with ``clock``; the same name, the same database.
MakeStore = Callable[[Clock, str], "HistoryStore | Awaitable[HistoryStore]"]

_LEASE = 60.0


class _Clock:
    """A clock of the suite's own (it must not depend on pixalert.testing)."""

    def __init__(self) -> None:
        self._now = 1_800_000_000.0

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds

    async def sleep(self, seconds: float) -> None:
        self._now += max(0.0, seconds)
        await asyncio.sleep(0)


@attrs.define
class _Run:
    make: MakeStore
    liveness: bool
    clock: _Clock = attrs.Factory(_Clock)
    name: str = attrs.Factory(lambda: f"contract_{uuid.uuid4().hex[:12]}")
    handles: list[HistoryStore] = attrs.Factory(list)
    problems: list[str] = attrs.Factory(list)

    async def open(self) -> HistoryStore:
        store = self.make(self.clock, self.name)
        if inspect.isawaitable(store):
            store = await store
        self.handles.append(store)
        return store

    def expect(self, ok: bool, problem: str) -> None:
        if not ok:
            self.problems.append(problem)

    def alert(self, title: str = "Disk full", **kwargs: Any) -> Alert:
        kwargs.setdefault("created_at", to_datetime(self.clock.now()))
        kwargs.setdefault("source", "contract")
        return Alert(title, kwargs.pop("message", "95% on db-1"), **kwargs)

    async def close(self) -> None:
        for store in self.handles:
            try:
                await store.aclose()
            except Exception as exc:
                self.problems.append(f"aclose raised {type(exc).__name__}: {exc}")


def _sent(channel: str, attempts: int = 1, receipt: dict[str, str] | None = None) -> DeliveryResult:
    return DeliveryResult(channel, DeliveryStatus.SENT, attempts, None, 0.01, receipt)


def _retrying(run: _Run, channel: str, delay: float, attempts: int = 3) -> DeliveryResult:
    return DeliveryResult(
        channel,
        DeliveryStatus.RETRYING,
        attempts,
        "HTTP 503",
        next_attempt_at=to_datetime(run.clock.now() + delay),
    )


async def _result(store: HistoryStore, alert_id: str, channel: str) -> DeliveryResult | None:
    """The result ``store`` has for ``alert_id`` on ``channel``, or None."""
    found = [r for r in await store.results_for(alert_id) if str(r.channel) == channel]
    return found[0] if found else None


def _channels(claims: Iterable[Claim]) -> list[str]:
    return sorted(c.channel for c in claims)


async def _check_record(run: _Run) -> None:
    store = await run.open()
    await store.open_owner("a")
    await store.open_owner("b")
    alert = run.alert()
    recorded = await store.record(alert, ["slack", "email"], owner="a", lease=_LEASE)
    run.expect(
        _channels(recorded.claims) == ["email", "slack"],
        f"record claimed {_channels(recorded.claims)}, expected ['email', 'slack']",
    )
    run.expect(recorded.superseded == frozenset(), "a firing alert superseded something")
    run.expect(
        all(c.attempts == 0 and c.alert.id == alert.id for c in recorded.claims),
        "new claims should have 0 attempts and the recorded alert",
    )
    stolen = await store.claim_due(owner="b", lease=_LEASE)
    run.expect(not stolen, f"owner b claimed {len(stolen)} deliveries that live owner a holds")
    entry = await store.entry(alert.id)
    run.expect(entry is not None and entry.state == "pending", "a recorded alert is not pending")
    if entry is not None:
        run.expect(entry.alert == alert, "the stored alert differs from the recorded one")
    again = await store.record(alert, ["slack", "email", "webhook"], owner="b", lease=_LEASE)
    run.expect(
        _channels(again.claims) == ["webhook"],
        f"recording an alert again claimed {_channels(again.claims)}, expected ['webhook']",
    )
    batch = [run.alert(f"batch {i}") for i in range(3)]
    many = await store.record_many(
        batch, [["slack"], ["slack", "email"], []], owner="a", lease=_LEASE
    )
    run.expect(
        [len(r.claims) for r in many] == [1, 2, 0],
        f"record_many claimed {[len(r.claims) for r in many]}, expected [1, 2, 0]",
    )
    empty = await store.entry(batch[2].id)
    run.expect(
        empty is not None and empty.state == "done",
        "an alert recorded with no channel should be finished at once",
    )


async def _check_settle(run: _Run) -> None:
    store = await run.open()
    await store.open_owner("a")
    alert = run.alert()
    recorded = await store.record(alert, ["slack", "email"], owner="a", lease=_LEASE)
    slack, email = sorted(recorded.claims, key=lambda c: c.channel != "slack")
    first = await store.settle([(slack, _sent("slack", receipt={"ts": "1.2"}))])
    run.expect(first.accepted == (True,), f"settle accepted {first.accepted}, expected (True,)")
    run.expect(not first.completed, "the alert completed with a delivery still pending")
    second = await store.settle(
        [(email, DeliveryResult("email", DeliveryStatus.FAILED, 1, "550 no such user"))]
    )
    run.expect(second.completed == (alert.id,), f"completed {second.completed}, expected the alert")
    entry = await store.entry(alert.id)
    if entry is None:
        run.problems.append("entry() lost a settled alert")
        return
    run.expect(entry.state == "done", f"a finished alert has state {entry.state!r}")
    by_channel = {str(r.channel): r for r in entry.results}
    run.expect(
        by_channel.get("slack") == _sent("slack", receipt={"ts": "1.2"}),
        f"slack result stored as {by_channel.get('slack')!r}",
    )
    run.expect(
        by_channel.get("email") is not None
        and by_channel["email"].status is DeliveryStatus.FAILED
        and by_channel["email"].error == "550 no such user",
        f"email result stored as {by_channel.get('email')!r}",
    )
    again = await store.settle([(slack, _sent("slack"))])
    run.expect(again.accepted == (False,), "settling a final delivery twice was accepted")
    run.expect(not await store.claim_due(owner="a", lease=_LEASE), "final deliveries were claimed")


async def _check_retry(run: _Run) -> None:
    store = await run.open()
    await store.open_owner("a")
    alert = run.alert()
    (claim,) = (await store.record(alert, ["webhook"], owner="a", lease=_LEASE)).claims
    queued = claim.queued_at
    settled = await store.settle([(claim, _retrying(run, "webhook", 10))])
    run.expect(settled.accepted == (True,) and not settled.completed, "a retry was not kept")
    (waiting,) = await store.results_for(alert.id)
    run.expect(
        waiting.status is DeliveryStatus.RETRYING
        and waiting.attempts == 3
        and waiting.error == "HTTP 503"
        and waiting.next_attempt_at == to_datetime(run.clock.now() + 10),
        f"results_for shows {waiting!r} for a delivery waiting to be retried",
    )
    early = await store.claim_due(owner="a", lease=_LEASE)
    run.expect(not early, "a retry was claimed before it was due")
    run.clock.advance(10)
    due = await store.claim_due(owner="a", lease=_LEASE)
    run.expect(len(due) == 1, f"claim_due gave {len(due)} claims for one due retry")
    if due:
        run.expect(
            due[0].attempts == 3 and due[0].queued_at == queued and due[0].alert == alert,
            f"the claimed retry lost its attempts or queued_at: {due[0]!r}",
        )
        await store.settle([(due[0], _sent("webhook", attempts=4))])
    entry = await store.entry(alert.id)
    run.expect(entry is not None and entry.state == "done", "a delivered retry is not done")


async def _check_stale(run: _Run) -> None:
    store = await run.open()
    await store.open_owner("a")
    await store.open_owner("b")
    (claim,) = (await store.record(run.alert(), ["slack"], owner="a", lease=_LEASE)).claims
    run.clock.advance(_LEASE + 1)
    taken = await store.claim_due(owner="b", lease=_LEASE)
    run.expect(len(taken) == 1, f"an expired claim was taken {len(taken)} times, expected once")
    late = await store.settle([(claim, _sent("slack"))])
    run.expect(late.accepted == (False,), "the stale holder's result was accepted")
    if taken:
        (result,) = await store.results_for(claim.alert.id)
        run.expect(result.status is DeliveryStatus.PENDING, "the stale result changed the delivery")
        fresh = await store.settle([(taken[0], _sent("slack"))])
        run.expect(fresh.accepted == (True,), "the new holder's result was refused")


async def _check_liveness(run: _Run) -> None:
    dying = await run.open()
    other = await run.open()
    await dying.open_owner("dead")
    await other.open_owner("alive")
    recorded = await dying.record(run.alert(), ["slack", "email"], owner="dead", lease=_LEASE)
    await dying.schedule([Job("test", "j1", run.clock.now())])
    claimed_job = await dying.claim_jobs(owner="dead", lease=_LEASE)
    run.expect(len(claimed_job) == 1, "the dying owner could not claim its job")
    run.handles.remove(dying)
    await dying.aclose()  # the process dies: no close_owner
    if not run.liveness:
        run.clock.advance(_LEASE + 1)
    taken = await other.claim_due(owner="alive", lease=_LEASE)
    when = "at once" if run.liveness else "after the lease"
    run.expect(
        _channels(taken) == _channels(recorded.claims),
        f"a dead owner's deliveries were not taken over {when} (got {_channels(taken)})",
    )
    jobs = await other.claim_jobs(owner="alive", lease=_LEASE)
    run.expect(len(jobs) == 1, f"a dead owner's job was not taken over {when}")


async def _check_give_back(run: _Run) -> None:
    store = await run.open()
    for owner in ("a", "b"):
        await store.open_owner(owner)
    first = await store.record(run.alert("one"), ["slack"], owner="a", lease=_LEASE)
    await store.close_owner("a")
    taken = await store.claim_due(owner="b", lease=_LEASE)
    run.expect(
        [c.alert.id for c in taken] == [first.alert.id],
        "close_owner did not give back the owner's claims",
    )
    await store.release(taken)
    again = await store.claim_due(owner="b", lease=_LEASE)
    run.expect(len(again) == 1, "release did not make the claim due again")
    await store.open_owner("a")
    run.clock.advance(_LEASE * 0.9)
    await store.renew(again, _LEASE)
    run.clock.advance(_LEASE * 0.9)
    stolen = await store.claim_due(owner="a", lease=_LEASE)
    run.expect(not stolen, "a renewed claim was taken before its renewed lease ended")


async def _check_supersede(run: _Run) -> None:
    store = await run.open()
    await store.open_owner("a")
    firing = run.alert(key="db-1")
    claims = (await store.record(firing, ["pagerduty", "slack"], owner="a", lease=_LEASE)).claims
    pd = next(c for c in claims if c.channel == "pagerduty")
    slack = next(c for c in claims if c.channel == "slack")
    await store.settle([(pd, _retrying(run, "pagerduty", 30)), (slack, _sent("slack"))])
    run.clock.advance(1)
    resolve = firing.resolve()
    recorded = await store.record(resolve, ["pagerduty", "slack"], owner="a", lease=_LEASE)
    run.expect(
        recorded.superseded == frozenset({"pagerduty"}),
        f"superseded {sorted(recorded.superseded)}, expected ['pagerduty']",
    )
    run.expect(
        _channels(recorded.claims) == ["slack"],
        f"the resolve claimed {_channels(recorded.claims)}, expected ['slack']",
    )
    old = await store.entry(firing.id)
    if old is not None:
        by_channel = {str(r.channel): r for r in old.results}
        run.expect(
            old.state == "done"
            and by_channel["pagerduty"].status is DeliveryStatus.SUPPRESSED
            and by_channel["pagerduty"].error == SUPERSEDED,
            f"the superseded firing delivery is {by_channel.get('pagerduty')!r}",
        )
    new = await store.entry(resolve.id)
    if new is not None:
        mine = {str(r.channel): r for r in new.results}
        run.expect(
            mine.get("pagerduty") is not None
            and mine["pagerduty"].status is DeliveryStatus.SUPPRESSED
            and mine["pagerduty"].error == NEVER_NOTIFIED,
            f"the resolve's own pagerduty delivery is {mine.get('pagerduty')!r}",
        )


async def _check_jobs(run: _Run) -> None:
    store = await run.open()
    for owner in ("a", "b"):
        await store.open_owner(owner)
    now = run.clock.now()
    written = await store.schedule(
        [Job("group", "g1", now + 30, {"n": 1}), Job("hb", "x", now + 5)]
    )
    run.expect(written == [True, True], f"schedule wrote {written}")
    kept = await store.schedule([Job("group", "g1", now + 1, {"n": 2})], replace=False)
    run.expect(kept == [False], "schedule(replace=False) overwrote a job")
    listed = await store.jobs()
    run.expect([j.ref for j in listed] == ["x", "g1"], f"jobs() listed {[j.ref for j in listed]}")
    run.expect(
        [j.ref for j in await store.jobs("group")] == ["g1"], "jobs(kind) did not filter by kind"
    )
    run.expect(not await store.claim_jobs(owner="a", lease=_LEASE), "a job was claimed early")
    run.clock.advance(5)
    hb = next(iter(await store.claim_jobs(owner="a", lease=_LEASE)), None)
    run.expect(hb is not None and hb.job.ref == "x", "a due job was not claimed")
    run.expect(not await store.claim_jobs(owner="b", lease=_LEASE), "a held job was claimed twice")
    if hb is not None:
        ok = await store.finish_job(hb, next_due=now + 60, payload={"missed": 1})
        run.expect(ok, "finish_job(next_due=...) was refused for the holder")
        run.expect(not await store.finish_job(hb), "a finished claim was accepted again")
    replaced = await store.schedule([Job("group", "g1", now + 2, {"n": 3})])
    run.expect(replaced == [True], "schedule did not replace a job")
    run.clock.advance(25)
    claims = await store.claim_jobs(owner="b", lease=_LEASE)
    run.expect(
        [(c.job.ref, dict(c.job.payload)) for c in claims] == [("g1", {"n": 3})],
        f"claimed {[(c.job.ref, dict(c.job.payload)) for c in claims]}, expected g1 with n=3",
    )
    for claim in claims:
        run.expect(await store.finish_job(claim), "finish_job refused the holder")
    run.clock.advance(30)
    again = next(iter(await store.claim_jobs(owner="a", lease=_LEASE)), None)
    run.expect(
        again is not None and dict(again.job.payload) == {"missed": 1},
        "a rescheduled job did not come back with its new payload",
    )
    await store.schedule([Job("group", "g2", now)])
    run.expect(await store.cancel_jobs("group", ["g2", "nope"]) == 1, "cancel_jobs miscounted")
    run.expect(not await store.jobs("group"), "finished and cancelled jobs are still listed")


async def _check_events(run: _Run) -> None:
    store = await run.open()
    await store.open_owner("a")
    alert = run.alert()
    await store.record(alert, ["slack"], owner="a", lease=_LEASE)
    at = to_datetime(run.clock.now())
    events = [
        AlertEvent(alert.id, "acknowledged", at, "alice", "slack", "looking"),
        AlertEvent(alert.id, "note", at + timedelta(seconds=1)),
    ]
    await store.add_events(events)
    entry = await store.entry(alert.id)
    run.expect(
        entry is not None and list(entry.events) == events,
        f"events came back as {entry.events if entry else None!r}",
    )


async def _check_queries(run: _Run) -> None:
    store = await run.open()
    await store.open_owner("a")
    made = [
        {"title": "Disk full on db-1", "priority": "high", "source": "db", "key": "k1"},
        {"title": "CPU hot", "message": "Ünïcode text", "priority": "low", "source": "api"},
        {
            "title": "Disk full on db-2",
            "priority": "critical",
            "source": "db",
            "status": "resolved",
        },
    ]
    alerts = []
    for kwargs in made:
        alert = run.alert(**kwargs)
        alerts.append(alert)
        recorded = await store.record(alert, ["slack", "email"], owner="a", lease=_LEASE)
        outcomes = []
        for claim in recorded.claims:
            ok = claim.channel == "slack" or alert.priority.name == "LOW"
            receipt: dict[str, str] | None = (
                {"ts": alert.title} if claim.channel == "slack" else None
            )
            result = (
                _sent(claim.channel, receipt=receipt)
                if ok
                else DeliveryResult(claim.channel, DeliveryStatus.FAILED, 3, "550")
            )
            outcomes.append((claim, result))
        await store.settle(outcomes)
        run.clock.advance(60)
    ids = [a.id for a in alerts]
    acked = to_datetime(run.clock.now())
    await store.add_events([AlertEvent(ids[0], "acknowledged", acked, "alice", "cli")])
    await store.add_events([AlertEvent(ids[1], "note", acked, "bob", "cli", "acknowledged?")])

    async def titles(**kwargs: Any) -> list[str]:
        found = await store.entries(HistoryQuery(**kwargs))
        return [e.alert.id for e in found]

    cases: list[tuple[dict[str, Any], list[str]]] = [
        ({}, ids[::-1]),
        ({"limit": 2}, ids[:0:-1]),
        ({"since": alerts[1].created_at}, ids[:0:-1]),
        ({"until": alerts[1].created_at}, ids[:1]),
        ({"priorities": ["high", "critical"]}, [ids[2], ids[0]]),
        ({"status": "resolved"}, [ids[2]]),
        ({"status": "firing"}, [ids[1], ids[0]]),
        ({"status": "acknowledged"}, [ids[0]]),
        ({"status": "acknowledged", "priorities": ["low"]}, []),
        ({"source": "api"}, [ids[1]]),
        ({"key": "k1"}, [ids[0]]),
        ({"search": "disk FULL"}, [ids[2], ids[0]]),
        ({"search": "ünï"}, [ids[1]]),
        ({"channel": "email", "result": "failed"}, [ids[2], ids[0]]),
        ({"result": "sent"}, ids[::-1]),
        ({"channel": "webhook"}, []),
    ]
    for kwargs, expected in cases:
        got = await titles(**kwargs)
        run.expect(got == expected, f"entries({kwargs}) gave {got}, expected {expected}")
    found = await store.last_receipt(alerts[0].key, "slack")
    run.expect(found == {"ts": alerts[0].title}, f"last_receipt gave {found!r}")
    run.expect(await store.last_receipt(alerts[0].key, "email") is None, "a receipt from nowhere")
    run.expect(await store.entry("0" * 32) is None, "entry() of an unknown id is not None")


async def _check_stats(run: _Run) -> None:
    store = await run.open()
    await store.open_owner("a")
    start = to_datetime(run.clock.now())
    for i in range(4):
        recorded = await store.record(
            run.alert(f"a{i}"), ["slack", "webhook"], owner="a", lease=_LEASE
        )
        outcomes = []
        for claim in recorded.claims:
            if claim.channel == "slack":
                outcomes.append((claim, _sent("slack")))
            elif i == 0:
                outcomes.append((claim, _retrying(run, "webhook", 10)))
            else:
                outcomes.append(
                    (claim, DeliveryResult("webhook", DeliveryStatus.FAILED, 3, "HTTP 500"))
                )
        await store.settle(outcomes)
        run.clock.advance(90)
    stats = await store.stats(start)
    run.expect(stats.get("alerts") == 4, f"stats counted {stats.get('alerts')} alerts, expected 4")
    channels = stats.get("channels", {})
    slack, webhook = channels.get("slack", {}), channels.get("webhook", {})
    run.expect(
        slack.get("sent") == 4 and slack.get("success_rate") == 1.0,
        f"slack stats are {slack}",
    )
    run.expect(
        webhook.get("failed") == 3
        and webhook.get("retrying") == 1
        and webhook.get("success_rate") == 0.0,
        f"webhook stats are {webhook}",
    )
    run.expect(slack.get("latency", {}).get("p50") is not None, "no latency percentiles for sent")


async def _check_stats_by(run: _Run) -> None:
    store = await run.open()
    await store.open_owner("a")
    start = to_datetime(run.clock.now())  # the start of a UTC hour
    # (priority, source, {channel: sent?}, seconds after start)
    made = [
        ("high", "db", {"slack": True, "email": False}, 0),
        ("low", "api", {"slack": True}, 60),
        ("critical", "db", {"slack": False, "email": True}, 3660),
        ("low", "db", {"slack": True}, 7300),  # after `until`
    ]
    for i, (priority, source, channels, at) in enumerate(made):
        run.clock.advance(at - (run.clock.now() - start.timestamp()))
        alert = run.alert(f"s{i}", priority=priority, source=source)
        recorded = await store.record(alert, list(channels), owner="a", lease=_LEASE)
        await store.settle(
            [
                (
                    claim,
                    _sent(claim.channel)
                    if channels[claim.channel]
                    else DeliveryResult(claim.channel, DeliveryStatus.FAILED, 3, "HTTP 500"),
                )
                for claim in recorded.claims
            ]
        )
    until = start + timedelta(seconds=7200)
    hour0, hour1 = start.isoformat(), (start + timedelta(hours=1)).isoformat()
    hour2 = (start + timedelta(hours=2)).isoformat()

    def counts(groups: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
        return {
            name: (g.get("alerts"), g.get("sent"), g.get("failed"), g.get("success_rate"))
            for name, g in groups.items()
        }

    expected: dict[str, dict[str, tuple[Any, ...]]] = {
        "channel": {"email": (2, 1, 1, 0.5), "slack": (3, 2, 1, 0.6667)},
        "priority": {"LOW": (1, 1, 0, 1.0), "HIGH": (1, 1, 1, 0.5), "CRITICAL": (1, 1, 1, 0.5)},
        "source": {"api": (1, 1, 0, 1.0), "db": (2, 2, 2, 0.5)},
        "hour": {hour0: (2, 2, 1, 0.6667), hour1: (1, 1, 1, 0.5)},
    }
    for by, groups in expected.items():
        stats = await store.stats_by(start, until, by)
        got = counts(stats.get("groups", {}))
        run.expect(
            got == groups and list(got) == list(groups),
            f"stats_by({by!r}) groups are {got}, expected {groups} in that order",
        )
        run.expect(
            stats.get("alerts") == 3 and stats.get("by") == by,
            f"stats_by({by!r}) counted {stats.get('alerts')} alerts, expected 3",
        )
        run.expect(
            stats.get("until") == until.isoformat() and stats.get("since") == start.isoformat(),
            f"stats_by({by!r}) gave the window {stats.get('since')} to {stats.get('until')}",
        )
        totals = stats.get("totals", {})
        run.expect(
            totals.get("sent") == 3 and totals.get("failed") == 2,
            f"stats_by({by!r}) totals are {totals}",
        )
        sent = [g for g in stats.get("groups", {}).values() if g.get("sent")]
        run.expect(
            all(g.get("latency", {}).get("p50") is not None for g in sent),
            f"stats_by({by!r}) has no latency percentiles for a group that sent",
        )
    open_ended = await store.stats_by(start, None, "hour")
    got = counts(open_ended.get("groups", {}))
    run.expect(
        list(got) == [hour0, hour1, hour2] and got[hour2] == (1, 1, 0, 1.0),
        f"stats_by without until gave the hours {got}",
    )
    run.expect(open_ended.get("until") is None, "stats_by without until shows an until")
    later = await store.stats_by(start + timedelta(hours=5), None, "channel")
    run.expect(
        later.get("alerts") == 0 and later.get("groups") == {},
        f"stats_by of an empty window gave {later}",
    )
    try:
        await store.stats_by(start, until, "colour")
    except ValueError:
        pass
    else:
        run.expect(False, "stats_by('colour') did not raise ValueError")


async def _check_retention(run: _Run) -> None:
    store = await run.open()
    await store.open_owner("a")
    old_done = run.alert("old")
    old_waiting = run.alert("old, retrying")
    for alert in (old_done, old_waiting):
        (claim,) = (await store.record(alert, ["slack"], owner="a", lease=_LEASE)).claims
        result = _sent("slack") if alert is old_done else _retrying(run, "slack", 3600)
        await store.settle([(claim, result)])
    run.clock.advance(86400)
    new = run.alert("new")
    (claim,) = (await store.record(new, ["slack"], owner="a", lease=_LEASE)).claims
    await store.settle([(claim, _sent("slack"))])
    removed = await store.purge(to_datetime(run.clock.now() - 3600))
    run.expect(removed == 1, f"purge removed {removed} alerts, expected 1")
    left = {e.alert.id for e in await store.entries(HistoryQuery())}
    run.expect(
        left == {old_waiting.id, new.id},
        "purge must keep unfinished alerts and newer ones, and remove old finished ones",
    )


async def _check_final(run: _Run) -> None:
    store = await run.open()
    for owner in ("a", "b"):
        await store.open_owner(owner)
    start = to_datetime(run.clock.now())
    skip = Planned("slack", final=DeliveryStatus.SKIPPED, note="not configured")
    mute = Planned("email", final=DeliveryStatus.SUPPRESSED, note="muted")
    mixed, nothing = run.alert("mixed", key="final-1"), run.alert("nothing", key="final-2")
    first, second = await store.record_many(
        [mixed, nothing], [[skip, "webhook"], [skip, mute]], owner="a", lease=_LEASE
    )
    run.expect(
        _channels(first.claims) == ["webhook"] and first.final == {"slack"},
        f"record claimed {_channels(first.claims)} and recorded {set(first.final)} final, "
        "expected ['webhook'] claimed and {'slack'} final",
    )
    run.expect(
        not second.claims and second.final == {"slack", "email"},
        f"an alert planned all final was claimed {_channels(second.claims)}, "
        f"recorded {set(second.final)} final",
    )
    slack = await _result(store, mixed.id, "slack")
    run.expect(
        slack is not None
        and slack.status is DeliveryStatus.SKIPPED
        and slack.error == "not configured"
        and slack.attempts == 0
        and slack.next_attempt_at is None,
        f"a delivery planned skipped reads back as {slack!r}",
    )
    email = await _result(store, nothing.id, "email")
    run.expect(
        email is not None and email.status is DeliveryStatus.SUPPRESSED and email.error == "muted",
        f"a delivery planned suppressed reads back as {email!r}",
    )
    entry = await store.entry(nothing.id)
    run.expect(
        entry is not None and entry.state == "done",
        f"an alert planned all final is {entry and entry.state!r} when recorded, expected 'done'",
    )
    for claim in first.claims:
        settled = await store.settle([(claim, _sent(claim.channel))])
        run.expect(settled.completed == (mixed.id,), "the alert did not finish with its claim")
    run.clock.advance(3600)
    due = await store.claim_due(owner="b", lease=_LEASE)
    run.expect(not due, f"claim_due handed out final deliveries: {_channels(due)}")
    again = await store.record(mixed, [skip], owner="a", lease=_LEASE)
    run.expect(
        not again.final and not again.claims,
        f"recording an alert again reported {set(again.final)} final, expected none",
    )
    gone = await store.record(nothing.resolve(), [skip], owner="a", lease=_LEASE)
    run.expect(
        gone.final == {"slack"} and not gone.claims,
        f"a resolve planned final recorded {set(gone.final)} final",
    )
    stats = await store.stats(start)  # the resolve is not counted: created before start
    counted = stats.get("channels", {}).get("slack", {})
    run.expect(
        counted.get("skipped") == 2,
        f"stats counted slack as {counted}, expected 2 skipped",
    )


async def _check_held(run: _Run) -> None:
    store = await run.open()
    for owner in ("a", "b"):
        await store.open_owner(owner)
    now = run.clock.now()
    alert = run.alert(key="held-1")
    plans: list[str | Planned] = [Planned("slack", now + 60, note="for 1m"), "email"]
    recorded = await store.record(alert, plans, owner="a", lease=_LEASE)
    run.expect(
        _channels(recorded.claims) == ["email"],
        f"record claimed {_channels(recorded.claims)}, expected only the due ['email']",
    )
    slack = await _result(store, alert.id, "slack")
    run.expect(
        slack is not None
        and slack.status is DeliveryStatus.HELD
        and slack.error == "for 1m"
        and slack.next_attempt_at == to_datetime(now + 60),
        f"a held delivery reads back as {slack!r}",
    )
    await store.settle([(c, _sent(c.channel)) for c in recorded.claims])
    entry = await store.entry(alert.id)
    run.expect(
        entry is not None and entry.state == "pending", "an alert with a held delivery is done"
    )
    found = [e.alert.id for e in await store.entries(HistoryQuery(result="held"))]
    run.expect(found == [alert.id], f"entries(result='held') gave {found}")
    run.expect(not await store.claim_due(owner="b", lease=_LEASE), "a held delivery was due early")
    run.clock.advance(60)
    due = await store.claim_due(owner="b", lease=_LEASE)
    run.expect(_channels(due) == ["slack"], f"claim_due gave {_channels(due)} for a due hold")
    if due:
        again = DeliveryResult(
            "slack",
            DeliveryStatus.HELD,
            0,
            "muted",
            next_attempt_at=to_datetime(run.clock.now() + 30),
        )
        settled = await store.settle([(due[0], again)])
        run.expect(settled.accepted == (True,) and not settled.completed, "a re-hold was refused")
        (result,) = [r for r in await store.results_for(alert.id) if str(r.channel) == "slack"]
        run.expect(
            result.status is DeliveryStatus.HELD and result.error == "muted",
            f"a re-held delivery reads back as {result!r}",
        )
        run.expect(not await store.claim_due(owner="b", lease=_LEASE), "a re-hold was due early")
        run.clock.advance(30)
        last = await store.claim_due(owner="b", lease=_LEASE)
        if not last:
            run.problems.append("a re-held delivery was not due at its time")
        else:
            done = await store.settle([(last[0], _sent("slack"))])
            run.expect(done.completed == (alert.id,), "the alert did not finish with its hold")
    firing = run.alert("Held then resolved", key="held-2")
    hold = Planned("pagerduty", run.clock.now() + 120, note="for 2m")
    await store.record(firing, [hold], owner="a", lease=_LEASE)
    resolve = firing.resolve()
    gone = await store.record(resolve, ["pagerduty"], owner="a", lease=_LEASE)
    run.expect(
        gone.superseded == frozenset({"pagerduty"}) and not gone.claims,
        "a resolve did not supersede a held firing delivery "
        f"(superseded {sorted(gone.superseded)})",
    )
    old = await store.entry(firing.id)
    run.expect(
        old is not None
        and old.state == "done"
        and old.results[0].status is DeliveryStatus.SUPPRESSED
        and old.results[0].error == SUPERSEDED,
        f"the superseded held delivery is {old.results if old else None!r}",
    )


async def _check_groups(run: _Run) -> None:
    store = await run.open()
    for owner in ("a", "b"):
        await store.open_owner(owner)
    t0 = run.clock.now()

    def member(title: str, due: float, group: str = "g1", flush: float | None = None) -> Planned:
        return Planned("slack", due, group=group, note=f"waiting in {group}", flush_by=flush)

    first, second = run.alert("m1"), run.alert("m2")
    many = await store.record_many(
        [first, second],
        [[member("m1", t0 + 30)], [member("m2", t0 + 20, flush=t0 + 30)]],
        owner="a",
        lease=_LEASE,
    )
    run.expect(all(not r.claims for r in many), "group members came back claimed")
    jobs = await store.jobs("group")
    run.expect(
        [(j.ref, j.due, dict(j.payload)) for j in jobs] == [("g1", t0 + 30, {})],
        f"recording members put {[(j.ref, j.due, dict(j.payload)) for j in jobs]} on the "
        "timeline, expected the group's job due with its first member",
    )
    third = run.alert("m3")
    await store.record(third, [member("m3", t0 + 5)], owner="a", lease=_LEASE)
    other = run.alert("other group")
    await store.record(other, [member("o", t0, group="g2")], owner="a", lease=_LEASE)
    dues = {j.ref: j.due for j in await store.jobs("group")}
    run.expect(dues == {"g1": t0 + 5, "g2": t0}, f"group jobs are due at {dues}")
    run.clock.advance(40)
    run.expect(not await store.claim_due(owner="b", lease=_LEASE), "claim_due gave group members")
    await store.cancel_jobs("group", ["g2"])
    run.clock.advance(-35)  # back to t0 + 5
    claims = await store.claim_jobs(owner="a", lease=_LEASE)
    job = next((c for c in claims if c.job.ref == "g1"), None)
    if job is None:
        run.problems.append("the group's job was not claimed when due")
        return
    late = run.alert("m4")
    await store.record(late, [member("m4", t0 + 6)], owner="b", lease=_LEASE)
    run.expect(
        not await store.claim_jobs(owner="b", lease=_LEASE),
        "a member joining a claimed group job freed its claim",
    )
    taken = await store.claim_group("g1", owner="a", lease=_LEASE)
    run.expect(
        [c.alert.id for c in taken] == [third.id],
        f"claim_group gave {[c.alert.title for c in taken]}, expected the one due member m3",
    )
    run.expect(
        not await store.claim_group("g1", owner="b", lease=_LEASE),
        "claim_group gave a member another live owner holds",
    )
    await store.settle([(c, _sent("slack")) for c in taken])
    ok = await store.finish_job(job, next_due=t0 + 3600, payload={"flushed": 1})
    run.expect(ok, "finish_job refused the group job's holder")
    jobs_now = await store.jobs("group")
    run.expect(
        [(j.due, dict(j.payload)) for j in jobs_now] == [(t0 + 6, {"flushed": 1})],
        f"the group's job is {[(j.due, dict(j.payload)) for j in jobs_now]} after a flush, "
        "expected due with its earliest waiting member (t0+6) and the new payload",
    )
    run.clock.advance(25)  # t0 + 30: every member is due
    job = next(iter(await store.claim_jobs(owner="b", lease=_LEASE)), None)
    if job is None:
        run.problems.append("the group's job was not claimed again")
        return
    rest = await store.claim_group("g1", owner="b", lease=_LEASE)
    run.expect(
        [c.alert.id for c in rest] == [first.id, second.id, late.id],
        f"claim_group gave {[c.alert.title for c in rest]}, expected m1, m2, m4 oldest first",
    )
    if rest:
        back = DeliveryResult(
            "slack", DeliveryStatus.HELD, 0, "not yet", next_attempt_at=to_datetime(t0 + 90)
        )
        await store.settle([(rest[0], back)] + [(c, _sent("slack")) for c in rest[1:]])
    kept = await store.finish_job(job)
    run.expect(kept, "finish_job refused the holder")
    jobs_now = await store.jobs("group")
    run.expect(
        [j.due for j in jobs_now] == [t0 + 90],
        f"a group job with a member held back was {[j.due for j in jobs_now]}, "
        "expected kept, due with that member",
    )
    run.clock.advance(60)
    job = next(iter(await store.claim_jobs(owner="a", lease=_LEASE)), None)
    again = await store.claim_group("g1", owner="a", lease=_LEASE)
    run.expect(
        [c.alert.id for c in again] == [first.id],
        "a member settled held did not come back to its group",
    )
    await store.settle([(c, _sent("slack")) for c in again])
    if job is not None:
        await store.finish_job(job)
    run.expect(not await store.jobs("group"), "a group job without members was not removed")
    entry = await store.entry(first.id)
    run.expect(entry is not None and entry.state == "done", "a flushed member is not done")


async def _check_concurrency(run: _Run) -> None:
    store = await run.open()
    await store.open_owner("a")
    alerts = [run.alert(f"at once {i}") for i in range(12)]
    recorded = await asyncio.gather(
        *(store.record(alert, ["slack"], owner="a", lease=_LEASE) for alert in alerts)
    )
    run.expect(
        [_channels(r.claims) for r in recorded] == [["slack"]] * len(alerts),
        "concurrent records did not each claim their own delivery",
    )
    run.expect(
        [r.alert.id for r in recorded] == [a.id for a in alerts],
        "concurrent records returned another call's alert",
    )
    settled = await asyncio.gather(
        *(store.settle([(r.claims[0], _sent("slack"))]) for r in recorded if r.claims)
    )
    run.expect(
        [s.accepted for s in settled] == [(True,)] * len(alerts),
        f"concurrent settles accepted {[s.accepted for s in settled]}",
    )
    run.expect(
        [s.completed for s in settled] == [(a.id,) for a in alerts],
        "each concurrent settle should report its own alert done",
    )
    # Two channels of one alert and a second result for one of them, at once: the
    # delivery is written once and the alert reported done by exactly one call.
    both = await store.record(run.alert("two at once"), ["slack", "email"], owner="a", lease=_LEASE)
    by_channel = {c.channel: c for c in both.claims}
    if sorted(by_channel) != ["email", "slack"]:
        run.problems.append(f"record claimed {sorted(by_channel)}, expected ['email', 'slack']")
        return
    outcomes = await asyncio.gather(
        store.settle([(by_channel["slack"], _sent("slack"))]),
        store.settle([(by_channel["email"], _sent("email"))]),
        store.settle([(by_channel["slack"], _sent("slack", attempts=2))]),
    )
    run.expect(
        sorted(o.accepted for o in outcomes) == [(False,), (True,), (True,)],
        f"a delivery settled twice at once: accepted {[o.accepted for o in outcomes]}",
    )
    done = [i for o in outcomes for i in o.completed]
    run.expect(done == [both.alert.id], f"the alert was reported done {len(done)} times")
    # One alert recorded twice at once gets its delivery once; one recorded before
    # gets only the channel it lacked, beside a new one.
    twice = run.alert("twice at once")
    first, second, again, fresh = await asyncio.gather(
        store.record(twice, ["slack"], owner="a", lease=_LEASE),
        store.record(twice, ["slack"], owner="a", lease=_LEASE),
        store.record(alerts[0], ["slack", "pager"], owner="a", lease=_LEASE),
        store.record(run.alert("fresh"), ["slack"], owner="a", lease=_LEASE),
    )
    claimed = len(first.claims) + len(second.claims)
    run.expect(claimed == 1, f"an alert recorded twice at once was claimed {claimed} times")
    run.expect(
        _channels(again.claims) == ["pager"] and _channels(fresh.claims) == ["slack"],
        f"records at once claimed {_channels(again.claims)} and {_channels(fresh.claims)}, "
        "expected ['pager'] and ['slack']",
    )
    stats = await store.stats(to_datetime(run.clock.now() - 3600))
    sent = stats.get("channels", {}).get("slack", {}).get("sent")
    run.expect(
        sent == len(alerts) + 1, f"stats count {sent} sent on slack, expected {len(alerts) + 1}"
    )


_RUNNERS: dict[str, Callable[[_Run], Awaitable[None]]] = {
    "record": _check_record,
    "settle": _check_settle,
    "retry": _check_retry,
    "stale": _check_stale,
    "liveness": _check_liveness,
    "give_back": _check_give_back,
    "supersede": _check_supersede,
    "jobs": _check_jobs,
    "events": _check_events,
    "queries": _check_queries,
    "stats": _check_stats,
    "stats_by": _check_stats_by,
    "retention": _check_retention,
    "held": _check_held,
    "final": _check_final,
    "groups": _check_groups,
    "concurrency": _check_concurrency,
}


async def _run_check(make: MakeStore, check: str, liveness: bool) -> CheckResult:
    if check not in _RUNNERS:
        raise ValueError(f"unknown check {check!r}: expected one of {', '.join(STORE_CHECKS)}")
    run = _Run(make, liveness)
    try:
        await _RUNNERS[check](run)
    except Exception as exc:
        run.problems.append(f"raised {type(exc).__name__}: {exc}")
    finally:
        await run.close()
    if run.problems:
        return CheckResult(check, "failed", "; ".join(dict.fromkeys(run.problems)))
    return CheckResult(check, "passed")


async def check_store_contract(
    make_store: MakeStore,
    *,
    liveness: bool = True,
    checks: Iterable[str] = STORE_CHECKS,
) -> ContractReport:
    """Run the store conformance checks; raise :class:`ContractViolation` if any fails.

    :param make_store: ``make_store(clock, name)`` returns (or returns an
        awaitable of) a store handle on database ``name``, using ``clock``;
        called twice with one name, it must give two handles on the same
        database (as two processes would have). Each check uses a new name.
    :param liveness: the store tells a dead owner at once (False: only by lease).
    :param checks: which checks to run (default :data:`STORE_CHECKS`).
    :return: the :class:`ContractReport`.
    """
    results = [await _run_check(make_store, check, liveness) for check in checks]
    report = ContractReport(tuple(results))
    if report.failed:
        raise ContractViolation("store", [f"[{r.name}] {r.detail}" for r in report.failed])
    return report


class StoreContract:
    """Subclass it in a test module (``class TestContract(StoreContract)``) to get one
    test per store check. Override :meth:`make_store`; set :attr:`liveness` to
    False for a store that relies on leases alone. The tests run their own
    event loop: do not mark them ``asyncio``."""

    #: Whether the store tells at once that an owner died.
    liveness: ClassVar[bool] = True

    def make_store(self, clock: Clock, name: str) -> HistoryStore | Awaitable[HistoryStore]:
        """A handle on database ``name`` (required; see :func:`check_store_contract`)."""
        raise NotImplementedError(f"{type(self).__name__}.make_store(clock, name) is required")

    def run_check(self, check: str) -> CheckResult:
        """Run one check in a fresh event loop; fail the test as it says."""
        result = asyncio.run(_run_check(self.make_store, check, self.liveness))
        if result.outcome == "failed":
            raise ContractViolation(check, [result.detail])
        if result.outcome == "skipped":  # pragma: no cover - no check skips today
            raise unittest.SkipTest(result.detail)
        return result

    def test_record(self) -> None:
        """Alerts and deliveries are stored in one call, claimed by the caller."""
        self.run_check("record")

    def test_settle(self) -> None:
        """Final results end deliveries; the alert finishes with the last one."""
        self.run_check("settle")

    def test_retry(self) -> None:
        """A retrying delivery waits for its due time and keeps its attempts."""
        self.run_check("retry")

    def test_stale(self) -> None:
        """A stale holder's late result is refused."""
        self.run_check("stale")

    def test_liveness(self) -> None:
        """A dead owner's claims are taken over (at once, where the store can tell)."""
        self.run_check("liveness")

    def test_give_back(self) -> None:
        """close_owner and release free claims; renew keeps them."""
        self.run_check("give_back")

    def test_supersede(self) -> None:
        """A resolve supersedes a firing delivery still waiting on that channel."""
        self.run_check("supersede")

    def test_jobs(self) -> None:
        """Jobs are scheduled, claimed when due, finished or rescheduled, cancelled."""
        self.run_check("jobs")

    def test_events(self) -> None:
        """Events are kept with their alert."""
        self.run_check("events")

    def test_queries(self) -> None:
        """History queries filter as documented."""
        self.run_check("queries")

    def test_stats(self) -> None:
        """Stats count each channel's results, retrying included."""
        self.run_check("stats")

    def test_stats_by(self) -> None:
        """stats_by groups a window's counts by channel, priority, source and hour."""
        self.run_check("stats_by")

    def test_retention(self) -> None:
        """purge removes old finished alerts only."""
        self.run_check("retention")

    def test_held(self) -> None:
        """Held deliveries wait for their due time; a resolve supersedes them."""
        self.run_check("held")

    def test_final(self) -> None:
        """Deliveries planned final are recorded final, never claimed."""
        self.run_check("final")

    def test_groups(self) -> None:
        """Group members belong to their group's job and are claimed through it."""
        self.run_check("groups")

    def test_concurrency(self) -> None:
        """Calls made at once each get their own answer; a result is written once."""
        self.run_check("concurrency")
