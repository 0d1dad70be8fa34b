"""In-memory state backend and history store: for tests and short-lived scripts."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from ._clock import Clock, to_datetime
from ._storage import (
    GROUP_JOB,
    NEVER_NOTIFIED,
    SUPERSEDED,
    AlertEvent,
    BaseHistoryStore,
    BaseStateBackend,
    Claim,
    HistoryEntry,
    HistoryQuery,
    Job,
    JobClaim,
    Planned,
    Recorded,
    Settled,
    check_outcome,
    planned,
    stats_from_results,
)
from ._types import Alert, DeliveryResult, DeliveryStatus, _new_id

__all__ = ["MemoryDatabase", "MemoryHistoryStore", "MemoryStateBackend"]


#: Keys held before expired ones are dropped (then twice the live keys).
_PRUNE_AT = 10_000


class MemoryStateBackend(BaseStateBackend):
    """Cooldown and dedup keys (and put values) in dicts, expiring on the given clock."""

    loop_bound = False

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._keys: dict[str, float] = {}
        self._values: dict[str, str] = {}  # keys set by put (their expiry is in _keys)
        self._prune_at = _PRUNE_AT

    async def acquire(self, key: str, ttl: float) -> bool:
        """Set ``key`` for ``ttl`` seconds unless it is live; True if this call set it."""
        now = self._clock.now()
        expires = self._keys.get(key)
        if expires is not None and expires > now:
            return False
        self._keys[key] = now + ttl
        if self._values:
            self._values.pop(key, None)
        if len(self._keys) > self._prune_at:
            self._prune(now)
        return True

    def _prune(self, now: float) -> None:
        """Drop expired keys. The next prune waits until the live keys have doubled, so
        many live keys cost a scan now and then, not one per call."""
        self._keys = {k: v for k, v in self._keys.items() if v > now}
        self._values = {k: v for k, v in self._values.items() if k in self._keys}
        self._prune_at = max(_PRUNE_AT, 2 * len(self._keys))

    async def release(self, key: str) -> None:
        """Forget ``key``."""
        self._keys.pop(key, None)
        self._values.pop(key, None)

    async def put(self, key: str, value: str, ttl: float) -> None:
        """Set ``key`` to ``value`` for ``ttl`` seconds (``ttl <= 0`` forgets it)."""
        if ttl <= 0:
            await self.release(key)
            return
        now = self._clock.now()
        self._keys[key] = now + ttl
        self._values[key] = value
        if len(self._keys) > self._prune_at:
            self._prune(now)

    async def is_set(self, key: str) -> bool:
        """True if ``key`` is live (set by ``acquire`` or ``put``); changes nothing."""
        return self._keys.get(key, 0.0) > self._clock.now()

    async def get(self, key: str) -> str | None:
        """The value of ``key`` if it is live."""
        value = self._values.get(key)
        if value is None or self._keys.get(key, 0.0) <= self._clock.now():
            return None
        return value

    async def items(self, prefix: str) -> dict[str, str]:
        """Every live key set by ``put`` that starts with ``prefix``."""
        now = self._clock.now()
        return {
            k: v
            for k, v in self._values.items()
            if k.startswith(prefix) and self._keys.get(k, 0.0) > now
        }

    async def health(self) -> Mapping[str, Any]:
        """Always ok."""
        return {"status": "ok", "backend": "memory"}

    async def aclose(self) -> None:
        """Nothing to release."""


_WAITING = (DeliveryStatus.PENDING, DeliveryStatus.RETRYING, DeliveryStatus.HELD)
_DUE_SHOWN = (DeliveryStatus.RETRYING, DeliveryStatus.HELD)


class _Delivery:
    __slots__ = (
        "attempts",
        "channel",
        "due",
        "error",
        "group",
        "latency",
        "lease_until",
        "owner",
        "queued_at",
        "receipt",
        "status",
        "token",
    )

    def __init__(self, channel: str, now: float) -> None:
        self.channel = channel
        self.status = DeliveryStatus.PENDING
        self.attempts = 0
        self.error: str | None = None
        self.latency: float | None = None
        self.receipt: dict[str, str] | None = None
        self.due = now
        self.queued_at = now
        self.group: str | None = None
        self.owner: str | None = None
        self.token: str | None = None
        self.lease_until = 0.0

    def result(self) -> DeliveryResult:
        return DeliveryResult(
            self.channel,
            self.status,
            self.attempts,
            self.error,
            self.latency,
            self.receipt,
            to_datetime(self.due) if self.status in _DUE_SHOWN else None,
        )


class _AlertRow:
    __slots__ = ("alert", "deliveries", "events", "seq")

    def __init__(self, alert: Alert, seq: int) -> None:
        self.alert = alert
        self.seq = seq
        self.deliveries: dict[str, _Delivery] = {}
        self.events: list[AlertEvent] = []

    @property
    def state(self) -> str:
        waiting = any(d.status in _WAITING for d in self.deliveries.values())
        return "pending" if waiting else "done"

    def entry(self) -> HistoryEntry:
        return HistoryEntry(
            self.alert,
            self.state,
            tuple(d.result() for d in self.deliveries.values()),
            tuple(self.events),
        )


class _JobRow:
    __slots__ = ("job", "lease_until", "owner", "token")

    def __init__(self, job: Job) -> None:
        self.job = job
        self.owner: str | None = None
        self.token: str | None = None
        self.lease_until = 0.0


class MemoryDatabase:
    """The data behind :class:`MemoryHistoryStore` handles: share one between
    stores (``MemoryHistoryStore(clock, database=db)``) to have several managers
    of one process act as instances sharing a history."""

    def __init__(self) -> None:
        self.alerts: dict[str, _AlertRow] = {}
        self.jobs: dict[tuple[str, str], _JobRow] = {}
        self.live: set[str] = set()  # owners opened and not yet gone
        self.gone: set[str] = set()  # owners whose handle closed without giving back
        self.seq = itertools.count()


class MemoryHistoryStore(BaseHistoryStore):
    """History and timeline in dicts: the same semantics as the SQLite store, nothing durable.

    An owner is live from :meth:`open_owner` until :meth:`close_owner`, or
    until the store handle it was opened through is closed (which stands for
    the process dying: its claims are free at once).
    """

    loop_bound = False

    def __init__(self, clock: Clock, *, database: MemoryDatabase | None = None) -> None:
        self._clock = clock
        self._db = database if database is not None else MemoryDatabase()
        self._mine: set[str] = set()

    # -- owners ----------------------------------------------------------

    async def open_owner(self, owner: str) -> None:
        """Mark ``owner`` live."""
        self._db.live.add(owner)
        self._db.gone.discard(owner)
        self._mine.add(owner)

    async def close_owner(self, owner: str) -> None:
        """Give back ``owner``'s claims and mark it gone."""
        for row in self._db.alerts.values():
            for d in row.deliveries.values():
                if d.owner == owner and d.status in _WAITING:
                    d.owner = d.token = None
        for job_row in self._db.jobs.values():
            if job_row.owner == owner:
                job_row.owner = job_row.token = None
        self._db.live.discard(owner)
        self._mine.discard(owner)

    def _free(self, owner: str | None, lease_until: float, now: float) -> bool:
        """True if a claim held by ``owner`` until ``lease_until`` may be taken now."""
        return owner is None or owner in self._db.gone or lease_until <= now

    # -- alerts and deliveries --------------------------------------------

    async def record(
        self, alert: Alert, channels: Sequence[str | Planned], *, owner: str, lease: float
    ) -> Recorded:
        """Store ``alert`` with a delivery per channel: claimed by ``owner``, or held."""
        now = self._clock.now()
        plans = planned(channels)
        row = self._db.alerts.get(alert.id)
        if row is None:
            row = self._db.alerts[alert.id] = _AlertRow(alert, next(self._db.seq))
        names = [p.channel for p in plans]
        superseded = self._supersede(alert, names, now) if alert.resolved else set()
        claims = []
        final: set[str] = set()
        for plan in plans:
            name = plan.channel
            if name in row.deliveries:
                continue
            d = row.deliveries[name] = _Delivery(name, now)
            if name in superseded:
                d.status = DeliveryStatus.SUPPRESSED
                d.error = NEVER_NOTIFIED
                continue
            if plan.final is not None:
                d.status, d.error = plan.final, plan.note
                final.add(name)
                continue
            if plan.held(now):
                d.status, d.error, d.group = DeliveryStatus.HELD, plan.note, plan.group
                d.due = now if plan.due is None else plan.due
                if plan.group is not None:
                    self._join(plan.group, d.due if plan.flush_by is None else plan.flush_by)
                continue
            d.owner, d.token, d.lease_until = owner, _new_id(), now + lease
            claims.append(Claim(alert, name, d.token, 0, now))
        return Recorded(alert, tuple(claims), superseded, final)

    def _join(self, group: str, due: float) -> None:
        """Put the group's job on the timeline, or move it to ``due`` if that is sooner."""
        job_row = self._db.jobs.get((GROUP_JOB, group))
        if job_row is None:
            self._db.jobs[(GROUP_JOB, group)] = _JobRow(Job(GROUP_JOB, group, due, {}))
        elif due < job_row.job.due:
            job = job_row.job
            job_row.job = Job(job.kind, job.ref, due, job.payload)

    def _members(self, group: str) -> list[tuple[_AlertRow, _Delivery]]:
        return [
            (row, d)
            for row in self._db.alerts.values()
            for d in row.deliveries.values()
            if d.group == group and d.status in _WAITING
        ]

    def _supersede(self, alert: Alert, channels: Sequence[str], now: float) -> set[str]:
        wanted = {str(c) for c in channels}
        done: set[str] = set()
        for row in self._db.alerts.values():
            if row.alert.key != alert.key or row.alert.resolved or row.alert.id == alert.id:
                continue
            for name, d in row.deliveries.items():
                if (
                    name in wanted
                    and d.status in _WAITING
                    and self._free(d.owner, d.lease_until, now)
                ):
                    d.status, d.error = DeliveryStatus.SUPPRESSED, SUPERSEDED
                    d.owner = d.token = None
                    done.add(name)
        return done

    async def record_many(
        self,
        alerts: Sequence[Alert],
        channels: Sequence[Sequence[str | Planned]],
        *,
        owner: str,
        lease: float,
    ) -> list[Recorded]:
        """:meth:`record` for each alert."""
        return await super().record_many(alerts, channels, owner=owner, lease=lease)

    def _held(self, claim: Claim) -> _Delivery | None:
        row = self._db.alerts.get(claim.alert.id)
        d = row.deliveries.get(claim.channel) if row else None
        if d is None or d.token != claim.token or d.status not in _WAITING:
            return None
        return d

    async def settle(self, outcomes: Sequence[tuple[Claim, DeliveryResult]]) -> Settled:
        """Write each outcome whose claim is still held."""
        accepted = []
        touched: dict[str, None] = {}
        for claim, result in outcomes:
            check_outcome(claim, result)
            d = self._held(claim)
            if d is None:
                accepted.append(False)
                continue
            d.status, d.attempts, d.error = result.status, result.attempts, result.error
            d.latency = result.latency
            d.receipt = dict(result.receipt) if result.receipt else None
            if result.status in _DUE_SHOWN:
                assert result.next_attempt_at is not None
                d.due = result.next_attempt_at.timestamp()
            d.owner = d.token = None
            accepted.append(True)
            touched[claim.alert.id] = None
        completed = tuple(
            alert_id for alert_id in touched if self._db.alerts[alert_id].state == "done"
        )
        return Settled(tuple(accepted), completed)

    async def claim_due(self, *, owner: str, lease: float, limit: int = 100) -> list[Claim]:
        """Claim due deliveries held by no live owner, soonest first."""
        now = self._clock.now()
        due = [
            (d.due, row.seq, row, d)
            for row in self._db.alerts.values()
            for d in row.deliveries.values()
            if d.status in _WAITING
            and d.group is None
            and d.due <= now
            and self._free(d.owner, d.lease_until, now)
        ]
        due.sort(key=lambda item: (item[0], item[1]))
        claims = []
        for _, _, row, d in due[:limit]:
            d.owner, d.token, d.lease_until = owner, _new_id(), now + lease
            claims.append(Claim(row.alert, d.channel, d.token, d.attempts, d.queued_at))
        return claims

    async def claim_group(
        self, group: str, *, owner: str, lease: float, limit: int | None = None
    ) -> list[Claim]:
        """Claim the group's due waiting members held by no live owner, oldest first."""
        now = self._clock.now()
        members = [
            (row, d)
            for row, d in self._members(group)
            if d.due <= now and self._free(d.owner, d.lease_until, now)
        ]
        members.sort(key=lambda item: (item[0].alert.created_at, item[0].seq))
        claims = []
        for row, d in members[:limit]:
            d.owner, d.token, d.lease_until = owner, _new_id(), now + lease
            claims.append(Claim(row.alert, d.channel, d.token, d.attempts, d.queued_at))
        return claims

    async def renew(self, claims: Sequence[Claim], lease: float) -> None:
        """Extend the claims still held."""
        until = self._clock.now() + lease
        for claim in claims:
            d = self._held(claim)
            if d is not None:
                d.lease_until = until

    async def release(self, claims: Sequence[Claim]) -> None:
        """Give back claims still held: due again now."""
        for claim in claims:
            d = self._held(claim)
            if d is not None:
                d.owner = d.token = None

    # -- jobs --------------------------------------------------------------

    async def schedule(self, jobs: Sequence[Job], *, replace: bool = True) -> list[bool]:
        """Put jobs on the timeline."""
        written = []
        for job in jobs:
            key = (job.kind, job.ref)
            if key in self._db.jobs and not replace:
                written.append(False)
                continue
            self._db.jobs[key] = _JobRow(Job(job.kind, job.ref, job.due, dict(job.payload)))
            written.append(True)
        return written

    async def cancel_jobs(self, kind: str, refs: Sequence[str]) -> int:
        """Remove these jobs."""
        return sum(self._db.jobs.pop((kind, ref), None) is not None for ref in refs)

    async def claim_jobs(self, *, owner: str, lease: float, limit: int = 100) -> list[JobClaim]:
        """Claim due jobs held by no live owner, soonest first."""
        now = self._clock.now()
        due = sorted(
            (r for r in self._db.jobs.values() if r.job.due <= now),
            key=lambda r: r.job.due,
        )
        claims: list[JobClaim] = []
        for job_row in due:
            if len(claims) >= limit:
                break
            if not self._free(job_row.owner, job_row.lease_until, now):
                continue
            job_row.owner, job_row.token, job_row.lease_until = owner, _new_id(), now + lease
            claims.append(JobClaim(job_row.job, job_row.token))
        return claims

    async def finish_job(
        self,
        claim: JobClaim,
        *,
        next_due: float | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> bool:
        """Remove or reschedule a claimed job."""
        key = (claim.job.kind, claim.job.ref)
        job_row = self._db.jobs.get(key)
        if job_row is None or job_row.token != claim.token:
            return False
        if claim.job.kind == GROUP_JOB:
            waiting = [d.due for _, d in self._members(claim.job.ref)]
            if waiting:
                next_due = min(waiting) if next_due is None else min(next_due, *waiting)
        if next_due is None:
            del self._db.jobs[key]
            return True
        job = job_row.job
        job_row.job = Job(
            job.kind, job.ref, next_due, dict(job.payload if payload is None else payload)
        )
        job_row.owner = job_row.token = None
        return True

    async def jobs(self, kind: str | None = None) -> list[Job]:
        """Scheduled jobs, soonest first."""
        rows = [r.job for r in self._db.jobs.values() if kind is None or r.job.kind == kind]
        return sorted(rows, key=lambda job: job.due)

    # -- events and queries ---------------------------------------------------

    async def add_events(self, events: Sequence[AlertEvent]) -> None:
        """Keep events with their alerts (events of unknown alerts are dropped)."""
        for event in events:
            row = self._db.alerts.get(event.alert_id)
            if row is not None:
                row.events.append(event)

    async def results_for(self, alert_id: str) -> list[DeliveryResult]:
        """The alert's deliveries."""
        row = self._db.alerts.get(alert_id)
        return [d.result() for d in row.deliveries.values()] if row else []

    async def last_receipt(self, key: str, channel: str) -> Mapping[str, str] | None:
        """Receipt of the newest successful send of ``key`` on ``channel``."""
        rows = sorted(
            self._db.alerts.values(), key=lambda r: (r.alert.created_at, r.seq), reverse=True
        )
        for row in rows:
            if row.alert.key != key:
                continue
            d = row.deliveries.get(channel)
            if d is not None and d.status is DeliveryStatus.SENT and d.receipt:
                return d.receipt
        return None

    async def entries(self, query: HistoryQuery) -> list[HistoryEntry]:
        """The alerts ``query`` selects, newest first."""
        rows = sorted(
            self._db.alerts.values(), key=lambda r: (r.alert.created_at, r.seq), reverse=True
        )
        out = []
        for row in rows:
            entry = row.entry()
            if query.matches(entry):
                out.append(entry)
                if query.limit is not None and len(out) >= query.limit:
                    break
        return out

    async def entry(self, alert_id: str) -> HistoryEntry | None:
        """One alert by id."""
        row = self._db.alerts.get(alert_id)
        return row.entry() if row else None

    async def stats(self, since: datetime) -> dict[str, Any]:
        """Per-channel counts and latency percentiles since ``since``."""
        rows = [r for r in self._db.alerts.values() if r.alert.created_at >= since]
        return stats_from_results(
            since, len(rows), [d.result() for r in rows for d in r.deliveries.values()]
        )

    async def purge(self, before: datetime) -> int:
        """Drop finished alerts created before ``before``."""
        old = [
            k
            for k, r in self._db.alerts.items()
            if r.alert.created_at < before and r.state == "done"
        ]
        for k in old:
            del self._db.alerts[k]
        return len(old)

    async def health(self) -> Mapping[str, Any]:
        """Always ok."""
        pending = sum(r.state == "pending" for r in self._db.alerts.values())
        return {
            "status": "ok",
            "backend": "memory",
            "alerts": len(self._db.alerts),
            "pending": pending,
        }

    async def aclose(self) -> None:
        """Close this handle: owners opened through it count as gone (their claims free)."""
        self._db.gone.update(self._mine)
        self._db.live.difference_update(self._mine)
        self._mine.clear()
