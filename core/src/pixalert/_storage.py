"""The storage contracts: a state backend (cooldown, dedup) and a history store
that also holds the delivery timeline.

The core ships an in-memory and a SQLite implementation of each; plugins add
others (Redis, PostgreSQL) through the ``pixalert_state_backend`` and
``pixalert_history_store`` hooks, which the core's own stores answer too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, Protocol, runtime_checkable

import attrs

from ._errors import SubmitError
from ._types import Alert, DeliveryResult, DeliveryStatus, Priority

__all__ = [
    "GROUP_JOB",
    "NEVER_NOTIFIED",
    "RESULTS",
    "ROUTE_LATER",
    "STATS_BY",
    "STATUSES",
    "SUPERSEDED",
    "AlertEvent",
    "BaseHistoryStore",
    "BaseStateBackend",
    "Claim",
    "HistoryEntry",
    "HistoryQuery",
    "HistoryStore",
    "Job",
    "JobClaim",
    "Planned",
    "Recorded",
    "Settled",
    "StateBackend",
    "check_outcome",
    "check_stats_by",
    "bucket_upper",
    "hour_key",
    "planned",
    "build_stats",
    "build_stats_by",
    "latency_bucket",
    "percentiles",
    "stats_by_from_entries",
    "stats_from_results",
]


# ---------------------------------------------------------------------------
# State backend
# ---------------------------------------------------------------------------


@runtime_checkable
class StateBackend(Protocol):
    """Short-lived shared state: cooldown and dedup decisions, silences, inhibitions.

    Every key lives for a time-to-live in seconds, and every instance sharing
    the backend sees the same keys:

    - ``acquire(key, ttl)`` is the one decision every instance must agree on:
      it sets ``key`` for ``ttl`` seconds and returns True only if the key was
      not set already, atomically (``SET key NX PX ttl`` in Redis terms).
    - ``acquire_many(keys, ttl)`` is ``acquire`` for each key in order, in one
      step where the backend can (a repeated key gets False after its first time).
    - ``release(key)`` forgets a key, whichever method set it.
    - ``put(key, value, ttl)`` sets ``key`` to the string ``value`` for ``ttl``
      seconds unconditionally (``SET key value PX ttl``); ``ttl <= 0`` forgets it.
    - ``get(key)`` is the value of a live key set by ``put``, else None.
    - ``items(prefix)`` is ``{key: value}`` of every live key set by ``put``
      whose name starts with ``prefix`` (silences are read as
      ``items("silence:")``).

    ``acquire`` and ``put`` share one key space; a key set by ``acquire``
    carries no value to rely on, so keep the two under different prefixes
    (the core uses ``cooldown:``/``dedup:`` with ``acquire``, ``silence:``
    and ``inhibit:`` with ``put``). :class:`BaseStateBackend` gives
    ``acquire_many`` a one-by-one default.

    Optional: ``async is_set(key) -> bool``, True if ``key`` is live whichever
    method set it, changing nothing. Previews (``NotificationManager.render``)
    use it to tell whether an alert is in its cooldown without taking it; a
    backend without it is asked ``get(key)``, which misses keys set by
    ``acquire`` (a preview then says an alert in cooldown would be sent).
    """

    #: True if the backend's connections belong to the event loop that opened them
    #: (the manager then reopens it on a new loop).
    loop_bound: bool

    async def acquire(self, key: str, ttl: float) -> bool:
        """Set ``key`` for ``ttl`` seconds unless it is set; True if this call set it."""
        ...

    async def acquire_many(self, keys: Sequence[str], ttl: float) -> list[bool]:
        """:meth:`acquire` for each key in order, in one step where the backend can."""
        ...

    async def release(self, key: str) -> None:
        """Forget ``key`` (a cooldown is lifted when its alert could not be sent)."""
        ...

    async def put(self, key: str, value: str, ttl: float) -> None:
        """Set ``key`` to ``value`` for ``ttl`` seconds, whether it was set or not."""
        ...

    async def get(self, key: str) -> str | None:
        """The value of ``key`` if it is live, else None."""
        ...

    async def items(self, prefix: str) -> dict[str, str]:
        """Every live key starting with ``prefix``, with its value."""
        ...

    async def health(self) -> Mapping[str, Any]:
        """``{"status": "ok" | "degraded", ...}`` for ``NotificationManager.health()``."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class BaseStateBackend:
    """A base for state backends: the batch form done one key at a time.

    Subclass it and implement the single-key methods of :class:`StateBackend`;
    override :meth:`acquire_many` where the backend can decide several keys
    in one round trip.
    """

    loop_bound = True

    async def acquire(self, key: str, ttl: float) -> bool:  # pragma: no cover - abstract
        """Set ``key`` for ``ttl`` seconds unless it is set; True if this call set it."""
        raise NotImplementedError

    async def acquire_many(self, keys: Sequence[str], ttl: float) -> list[bool]:
        """:meth:`acquire` for each key, one after the other."""
        return [await self.acquire(key, ttl) for key in keys]


# ---------------------------------------------------------------------------
# History store: alerts, their deliveries on the timeline, jobs, events
# ---------------------------------------------------------------------------


@attrs.frozen(eq=False)
class Claim:
    """A claim on one delivery (one alert on one channel) that is due.

    Only the holder of ``token`` may settle it: a store ignores a result
    given with a token that no longer holds the claim (its holder was taken
    for dead and the work was given to another instance). ``attempts`` is how
    many attempts were made before this claim; ``queued_at`` (epoch seconds)
    is when the delivery was first recorded (``delivery.give_up_after``
    counts from it).
    """

    alert: Alert
    channel: str
    token: str
    attempts: int = 0
    queued_at: float = 0.0


GROUP_JOB = "group"
"""The kind of the :class:`Job` that flushes a group of held deliveries."""


def _final_status(instance: Any, attribute: Any, value: DeliveryStatus | None) -> None:
    if value is not None and value not in _FINAL_AT_RECORD:
        allowed = ", ".join(status.value for status in _FINAL_AT_RECORD)
        raise ValueError(f"Planned.final: expected one of {allowed} or None, got {value!r}")


#: The statuses a :class:`Planned` delivery may be recorded with as ``final``.
_FINAL_AT_RECORD = (DeliveryStatus.SKIPPED, DeliveryStatus.SUPPRESSED)


@attrs.frozen
class Planned:
    """How one delivery of an alert is to be recorded (see :meth:`HistoryStore.record`).

    A plain channel name means "due now": the delivery is *pending* and comes
    back claimed. With ``due`` in the future, or with a ``group``, it is
    recorded *held* (:attr:`~pixalert.DeliveryStatus.HELD`), unclaimed, due at
    ``due`` (None: now), with ``note`` (why it is held) as its ``error``.

    A held delivery with a ``group`` belongs to the group job
    ``Job(GROUP_JOB, group, ...)``: :meth:`HistoryStore.claim_due` never hands
    it out; :meth:`HistoryStore.claim_group` does, to the holder of that job,
    once the member is due. ``flush_by`` is when the group should be notified
    at the latest because of this member (``due`` when None): recording it
    puts the group's job on the timeline then, or moves it there if sooner.

    With ``final`` (``skipped`` or ``suppressed``: an outcome known before any
    channel is tried, such as a channel that is not configured), the delivery
    is recorded final with that status, ``note`` as its error and no attempt:
    never claimed, never on the timeline. :attr:`Recorded.final` names the
    channels recorded so.
    """

    channel: str
    due: float | None = None
    group: str | None = None
    note: str | None = None
    flush_by: float | None = None
    final: DeliveryStatus | None = attrs.field(default=None, validator=_final_status)

    def held(self, now: float) -> bool:
        """True if this delivery is recorded held rather than pending."""
        if self.final is not None:
            return False
        return self.group is not None or (self.due is not None and self.due > now)


def planned(channels: Sequence[str | Planned]) -> list[Planned]:
    """``channels`` as :class:`Planned` records, one per channel (the first one wins)."""
    out: dict[str, Planned] = {}
    for item in channels:
        plan = item if isinstance(item, Planned) else Planned(str(item))
        out.setdefault(plan.channel, plan)
    return list(out.values())


_NO_NAMES: frozenset[str] = frozenset()


def _names(names: Iterable[str]) -> frozenset[str]:
    """``names`` as a frozenset; the empty ones share one (an alert in flight keeps its
    :class:`Recorded`, and most have nothing superseded and nothing final)."""
    return frozenset(names) if names else _NO_NAMES


@attrs.frozen
class Recorded:
    """What :meth:`HistoryStore.record` stored for one alert.

    ``claims`` are the deliveries this call created due now, claimed by the
    caller (held deliveries are not claimed). ``superseded`` names the
    channels on which a firing delivery of the same ``key`` was still waiting
    when this resolve was recorded: the store has marked that delivery and
    this resolve's own delivery there ``suppressed`` (nothing is sent for an
    incident that ended before anyone was told). ``final`` names the channels
    this call recorded final as their :class:`Planned` record said (not those
    the alert already had, nor superseded ones).
    """

    alert: Alert
    claims: tuple[Claim, ...] = ()
    superseded: frozenset[str] = attrs.field(default=frozenset(), converter=_names)
    final: frozenset[str] = attrs.field(default=frozenset(), converter=_names)


@attrs.frozen
class Settled:
    """What :meth:`HistoryStore.settle` did: for each outcome, whether it was
    accepted (its claim was still held), and the ids of the alerts whose
    every delivery became final in this call."""

    accepted: tuple[bool, ...] = ()
    completed: tuple[str, ...] = ()


@attrs.frozen
class Job:
    """Timed work on the timeline other than a delivery.

    ``kind`` names the handler (``"group"``, ``"escalation"``,
    ``"heartbeat"``...), ``ref`` identifies the job within its kind (one job
    per ``(kind, ref)``), ``due`` is when it should run (epoch seconds), and
    ``payload`` is a JSON-safe dict the handler reads.
    """

    kind: str
    ref: str
    due: float
    payload: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen(eq=False)
class JobClaim:
    """A claim on a due :class:`Job`; only the holder of ``token`` may finish it."""

    job: Job
    token: str


@attrs.frozen
class AlertEvent:
    """Something that happened to an alert besides a delivery: an acknowledgement,
    a resolve from an operator, an escalation step, a note.

    ``at`` is an aware UTC datetime; ``by`` who did it (a user name, ``None``
    for pixalert itself); ``via`` through what (``"cli"``, ``"api"``,
    ``"slack"``, ``"email"``, ``"python"``...).
    """

    alert_id: str
    kind: str
    at: datetime
    by: str | None = None
    via: str | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return {
            "kind": self.kind,
            "at": self.at.isoformat(),
            "by": self.by,
            "via": self.via,
            "note": self.note,
        }


@attrs.frozen
class HistoryEntry:
    """One alert as the history holds it: its deliveries (final or waiting) and events."""

    alert: Alert
    state: str  # "pending" while any delivery is not final, then "done"
    results: tuple[DeliveryResult, ...] = ()
    events: tuple[AlertEvent, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict: the alert's fields, ``state``, ``results`` by channel, ``events``."""
        data = self.alert.to_dict()
        data["state"] = self.state
        data["results"] = {str(r.channel): r.to_dict() for r in self.results}
        data["events"] = [event.to_dict() for event in self.events]
        return data


def _priorities(value: Any) -> frozenset[Priority] | None:
    if value is None:
        return None
    if isinstance(value, (str, int, Priority)):
        value = [value]
    return frozenset(Priority.parse(item) for item in value)


def _choice(name: str, allowed: Sequence[str]) -> Any:
    def check(instance: Any, attribute: Any, value: str | None) -> None:
        if value is not None and value not in allowed:
            raise ValueError(f"{name}: expected one of {', '.join(allowed)}, got {value!r}")

    return check


RESULTS = ("sent", "failed", "retrying", "pending", "held", "suppressed", "skipped")
"""The values :attr:`HistoryQuery.result` accepts."""

STATUSES = ("firing", "resolved", "acknowledged")
"""The values :attr:`HistoryQuery.status` accepts: the alert's own status
(``firing``, ``resolved``), or ``acknowledged``: alerts an acknowledgement was
recorded on (an :class:`AlertEvent` of kind ``acknowledged``, as ``manager.ack``
records on the alert it is given)."""

ACKNOWLEDGED = "acknowledged"


@attrs.frozen
class HistoryQuery:
    """Which alerts :meth:`HistoryStore.entries` returns, newest first.

    Every field left ``None`` does not filter. ``since``/``until`` bound the
    alert's ``created_at`` (``since`` inclusive, ``until`` exclusive);
    ``priorities`` is a set of priorities; ``status`` is ``"firing"`` or
    ``"resolved"``; ``channel`` keeps alerts with a delivery on that channel,
    and ``result`` alerts with a delivery in that state (on ``channel`` when
    both are given); ``search`` is a case-insensitive substring of the title
    or the message. ``limit`` caps the number of entries (None: all).
    ``status`` may also be ``"acknowledged"`` (see :data:`STATUSES`).
    """

    since: datetime | None = None
    until: datetime | None = None
    limit: int | None = 1000
    priorities: frozenset[Priority] | None = attrs.field(default=None, converter=_priorities)
    status: str | None = attrs.field(default=None, validator=_choice("status", STATUSES))
    channel: str | None = None
    result: str | None = attrs.field(default=None, validator=_choice("result", RESULTS))
    search: str | None = None
    source: str | None = None
    key: str | None = None

    def matches(self, entry: HistoryEntry) -> bool:
        """True if ``entry`` passes every filter but ``limit`` (the reference semantics)."""
        alert = entry.alert
        if self.since is not None and alert.created_at < self.since:
            return False
        if self.until is not None and alert.created_at >= self.until:
            return False
        if self.priorities is not None and alert.priority not in self.priorities:
            return False
        if self.status == ACKNOWLEDGED:
            if not any(event.kind == ACKNOWLEDGED for event in entry.events):
                return False
        elif self.status is not None and alert.status != self.status:
            return False
        if self.source is not None and alert.source != self.source:
            return False
        if self.key is not None and alert.key != self.key:
            return False
        if self.search is not None:
            needle = self.search.casefold()
            if needle not in alert.title.casefold() and needle not in alert.message.casefold():
                return False
        if self.channel is not None or self.result is not None:
            return any(
                (self.channel is None or str(r.channel) == self.channel)
                and (self.result is None or r.status.value == self.result)
                for r in entry.results
            )
        return True


@runtime_checkable
class HistoryStore(Protocol):
    """Durable history and the delivery timeline, shared by every instance using it.

    **Alerts and deliveries.** :meth:`record` stores an alert together with
    one delivery row per channel it is routed to, in one write, before any
    channel is tried; the deliveries due now come back claimed by the caller.
    A delivery is *pending* (due now), *retrying* (due at its next attempt),
    *held* (kept back by noise control until its due time, maybe as a member
    of a group; see :class:`Planned`) or final (sent, failed, suppressed,
    skipped). :meth:`settle` writes what an attempt came to: a final result,
    or ``retrying``/``held`` with the next due time.

    **Groups.** A held delivery recorded with a ``group`` also puts the group
    job ``Job(GROUP_JOB, group, flush_by)`` on the timeline in the same write
    (or moves an existing one sooner, its payload and claim untouched). Only the
    holder of that job takes the members, with :meth:`claim_group`; a group
    job is never removed while its group has waiting members: finishing it
    (with or without ``next_due``) leaves it due no later than the earliest.

    **Claims and owners.** Every manager is an *owner* (its instance id), and
    announces itself with :meth:`open_owner`. :meth:`claim_due` hands out due
    deliveries that nobody holds, or whose holder is gone: a store that can
    tell that an owner died (the SQLite store: an OS file lock the owner holds
    for its lifetime; PostgreSQL: a session advisory lock) frees its claims at
    once; for owners it cannot check, the claim's lease (seconds, renewed by
    :meth:`renew`) is the fallback. A result given with a token that no longer
    holds its claim is ignored. :meth:`close_owner` gives back what the owner
    still holds.

    **Jobs.** Other timed work (group flushes, escalation steps, heartbeat
    deadlines) is a :class:`Job`, one per ``(kind, ref)``,
    claimed the same way with :meth:`claim_jobs`.

    **Events.** :meth:`add_events` keeps what happened to an alert besides its
    deliveries (acknowledgements, escalations, notes).

    :class:`BaseHistoryStore` gives the batch forms one-by-one defaults.
    ``pixalert.testing.check_store_contract`` checks a store against all of
    this. Times are the manager's clock (epoch seconds) unless said otherwise.
    """

    #: True if the store's connections belong to the event loop that opened
    #: them (the manager then reopens it on a new loop).
    loop_bound: bool

    async def open_owner(self, owner: str) -> None:
        """Announce ``owner`` as live for as long as it runs (take its liveness lock)."""
        ...

    async def close_owner(self, owner: str) -> None:
        """Give back every claim ``owner`` still holds, and drop its liveness lock."""
        ...

    async def record(
        self, alert: Alert, channels: Sequence[str | Planned], *, owner: str, lease: float
    ) -> Recorded:
        """Store ``alert`` and a delivery per channel: pending and claimed by ``owner``,
        or held or final as its :class:`Planned` record says.

        Recording an alert id again adds deliveries for channels it lacks
        (and claims only those). For a resolved alert, waiting (pending,
        retrying or held) firing deliveries of the same key on the same
        channels that nobody holds are superseded (see :class:`Recorded`).
        """
        ...

    async def record_many(
        self,
        alerts: Sequence[Alert],
        channels: Sequence[Sequence[str | Planned]],
        *,
        owner: str,
        lease: float,
    ) -> list[Recorded]:
        """:meth:`record` for each alert (``channels[i]`` for ``alerts[i]``), all or none
        where the store has transactions."""
        ...

    async def settle(self, outcomes: Sequence[tuple[Claim, DeliveryResult]]) -> Settled:
        """Write what each claimed delivery came to, if its claim is still held.

        A final status ends the delivery; ``retrying`` (or ``held``) puts it
        back on the timeline at ``result.next_attempt_at`` with the attempts
        and error so far, in its group if it has one. Either way the claim is
        released.
        """
        ...

    async def claim_due(self, *, owner: str, lease: float, limit: int = 100) -> list[Claim]:
        """Claim up to ``limit`` due deliveries held by no live owner, soonest first
        (members of a group excepted: see :meth:`claim_group`)."""
        ...

    async def claim_group(
        self, group: str, *, owner: str, lease: float, limit: int | None = None
    ) -> list[Claim]:
        """Claim the due waiting members of ``group`` held by no live owner, oldest first
        (the caller holds the group's job)."""
        ...

    async def renew(self, claims: Sequence[Claim], lease: float) -> None:
        """Extend the given claims (still held) by ``lease`` seconds from now."""
        ...

    async def release(self, claims: Sequence[Claim]) -> None:
        """Give back claims without a result: the deliveries are due again at once."""
        ...

    async def schedule(self, jobs: Sequence[Job], *, replace: bool = True) -> list[bool]:
        """Put jobs on the timeline; True for each one written.

        A job whose ``(kind, ref)`` exists already is overwritten when
        ``replace`` (its current claim, if any, is voided), else kept as it is.
        """
        ...

    async def cancel_jobs(self, kind: str, refs: Sequence[str]) -> int:
        """Remove these jobs of ``kind``; return how many there were."""
        ...

    async def claim_jobs(self, *, owner: str, lease: float, limit: int = 100) -> list[JobClaim]:
        """Claim up to ``limit`` due jobs held by no live owner, soonest first."""
        ...

    async def finish_job(
        self,
        claim: JobClaim,
        *,
        next_due: float | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> bool:
        """Finish a claimed job: remove it, or with ``next_due`` put it back
        (with ``payload`` if given). False if the claim was no longer held.

        A group job whose group still has waiting members is kept, due no
        later than the earliest of them.
        """
        ...

    async def jobs(self, kind: str | None = None) -> list[Job]:
        """The scheduled jobs (of ``kind``), soonest first."""
        ...

    async def add_events(self, events: Sequence[AlertEvent]) -> None:
        """Keep these events with their alerts."""
        ...

    async def results_for(self, alert_id: str) -> list[DeliveryResult]:
        """The alert's deliveries as results: final ones and those still waiting."""
        ...

    async def last_receipt(self, key: str, channel: str) -> Mapping[str, str] | None:
        """The receipt of the last successful send of ``key`` on ``channel``."""
        ...

    async def entries(self, query: HistoryQuery) -> list[HistoryEntry]:
        """The alerts ``query`` selects, newest first (see :class:`HistoryQuery`)."""
        ...

    async def entry(self, alert_id: str) -> HistoryEntry | None:
        """One alert by id, or None."""
        ...

    async def stats(self, since: datetime) -> dict[str, Any]:
        """Per-channel counts and latency percentiles since ``since`` (see :func:`build_stats`)."""
        ...

    async def stats_by(self, since: datetime, until: datetime | None, by: str) -> dict[str, Any]:
        """Counts per group of the alerts created in ``[since, until)`` (``until``
        None: no end), ``by`` one of :data:`STATS_BY`: the shape of
        :func:`build_stats_by`. ``ValueError`` for another ``by``."""
        ...

    async def purge(self, before: datetime) -> int:
        """Delete finished alerts created before ``before``; return how many.

        Alerts with a delivery still pending or retrying are kept.
        """
        ...

    async def health(self) -> Mapping[str, Any]:
        """``{"status": "ok" | "degraded", ...}``."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class BaseHistoryStore:
    """A base for history stores: owners unchecked (leases only) and the batch
    forms done one at a time.

    Subclass it and implement the rest of :class:`HistoryStore`; override a
    batch method (:meth:`record_many`) where the store can do it in one step,
    and :meth:`open_owner`/:meth:`close_owner` where it can tell that an owner
    died.
    """

    loop_bound = True

    async def open_owner(self, owner: str) -> None:
        """Nothing to do: this store relies on leases alone."""

    async def close_owner(self, owner: str) -> None:
        """Nothing to give back here: unfinished claims run out with their lease."""

    async def record(
        self, alert: Alert, channels: Sequence[str | Planned], *, owner: str, lease: float
    ) -> Recorded:  # pragma: no cover - abstract
        """Store ``alert`` and its deliveries (see :meth:`HistoryStore.record`)."""
        raise NotImplementedError

    async def record_many(
        self,
        alerts: Sequence[Alert],
        channels: Sequence[Sequence[str | Planned]],
        *,
        owner: str,
        lease: float,
    ) -> list[Recorded]:
        """:meth:`record` for each alert in turn (not all-or-none: a failure part way
        raises :class:`~pixalert.SubmitError` naming the alerts stored before it)."""
        if len(alerts) != len(channels):
            raise ValueError("record_many: expected one channel list per alert")
        done: list[Recorded] = []
        for alert, names in zip(alerts, channels, strict=True):
            try:
                done.append(await self.record(alert, names, owner=owner, lease=lease))
            except Exception as exc:
                error = SubmitError(
                    f"could not store alert {len(done) + 1} of {len(alerts)}: {exc}",
                    stored=[r.alert.id for r in done],
                )
                error.recorded = done
                raise error from exc
        return done

    async def entry(self, alert_id: str) -> HistoryEntry | None:  # pragma: no cover - abstract
        """One alert by id, or None."""
        raise NotImplementedError

    async def entries(self, query: HistoryQuery) -> list[HistoryEntry]:  # pragma: no cover
        """The alerts ``query`` selects, newest first (see :class:`HistoryQuery`)."""
        raise NotImplementedError

    async def stats_by(self, since: datetime, until: datetime | None, by: str) -> dict[str, Any]:
        """Grouped counts (see :meth:`HistoryStore.stats_by`) computed from
        :meth:`entries` of the window: correct for any store, but it reads every
        alert of the window; a store with a query language should override it."""
        check_stats_by(by)
        found = await self.entries(HistoryQuery(since=since, until=until, limit=None))
        return stats_by_from_entries(since, until, by, found)


def check_outcome(claim: Claim, result: DeliveryResult) -> None:
    """Raise ``ValueError`` unless ``result`` can settle ``claim`` (the channels
    match, and a ``retrying`` result says when)."""
    if str(result.channel) != claim.channel:
        raise ValueError(
            f"settle: a result for {str(result.channel)!r} given for a claim on {claim.channel!r}"
        )
    if result.status is DeliveryStatus.PENDING:
        raise ValueError("settle: expected a final or retrying result, got pending (use release)")
    if result.status in (DeliveryStatus.RETRYING, DeliveryStatus.HELD) and (
        result.next_attempt_at is None
    ):
        raise ValueError(f"settle: a {result.status.value} result needs next_attempt_at")


ROUTE_LATER = "*"
"""The channel of a delivery row that stands for an alert not routed yet (a store
moved forward from an older schema keeps its unfinished alerts so): the pipeline
routes the alert when it claims the row, and records it again."""

SUPERSEDED = "superseded: the alert resolved before this could be delivered"
"""The reason written on a firing delivery a resolve superseded."""

NEVER_NOTIFIED = "not sent: the firing notification was never delivered on this channel"
"""The reason written on the resolve's own delivery on such a channel."""


_BUCKET_BASE = 1e-4  # 0.1 ms
_BUCKET_GROWTH = 1.05  # each bucket 5 % wider: percentiles within 5 %
_STATUSES = ("sent", "failed", "suppressed", "skipped", "retrying", "held")


def latency_bucket(seconds: float) -> int:
    """The histogram bucket of a latency: bucket ``b`` holds values up to ``0.1 ms * 1.05**b``."""
    if seconds <= _BUCKET_BASE:
        return 0
    return math.ceil(math.log(seconds / _BUCKET_BASE, _BUCKET_GROWTH) - 1e-9)


def bucket_upper(bucket: int) -> float:
    """The largest latency in seconds that falls in ``bucket``."""
    return _BUCKET_BASE * _BUCKET_GROWTH**bucket


def percentiles(histogram: Mapping[int, int]) -> dict[str, float | None]:
    """p50/p95/p99 (nearest rank, seconds, within 5 %) from ``{bucket: count}``."""
    total = sum(histogram.values())
    if not total:
        return {"p50": None, "p95": None, "p99": None}
    out: dict[str, float | None] = {}
    for name, q in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99)):
        rank = max(1, math.ceil(q * total))
        seen = 0
        for bucket in sorted(histogram):
            seen += histogram[bucket]
            if seen >= rank:
                out[name] = round(bucket_upper(bucket), 6)
                break
    return out


def build_stats(
    since: datetime,
    alerts: int,
    counts: Mapping[tuple[str, str], int],
    histograms: Mapping[str, Mapping[int, int]],
) -> dict[str, Any]:
    """The ``stats()`` dict from per-(channel, status) counts and per-channel latency histograms.

    Shape::

        {"since": "...", "alerts": 12,
         "totals": {"sent": 20, "failed": 1, "suppressed": 3, "skipped": 2, "retrying": 1,
                    "held": 0},
         "channels": {"slack": {"sent": 10, "failed": 1, "suppressed": 2, "skipped": 0,
                                "retrying": 1, "held": 0,
                                "success_rate": 0.909,
                                "latency": {"p50": 0.012, "p95": 0.05, "p99": 0.08}}}}

    ``success_rate`` is sent / (sent + failed), None when nothing was tried;
    ``retrying`` counts deliveries waiting for their next attempt, ``held``
    deliveries noise control keeps back.
    Latencies are in seconds, for sent deliveries.
    """
    channels: dict[str, dict[str, Any]] = {}
    totals = dict.fromkeys(_STATUSES, 0)
    for (channel, status), n in counts.items():
        row = channels.setdefault(channel, dict.fromkeys(_STATUSES, 0))
        if status in row:
            row[status] += n
            totals[status] += n
    for channel, row in channels.items():
        tried = row["sent"] + row["failed"]
        row["success_rate"] = round(row["sent"] / tried, 4) if tried else None
        row["latency"] = percentiles(histograms.get(channel, {}))
    return {
        "since": since.isoformat(),
        "alerts": alerts,
        "totals": totals,
        "channels": dict(sorted(channels.items())),
    }


def stats_from_results(
    since: datetime, alerts: int, results: Iterable[DeliveryResult]
) -> dict[str, Any]:
    """:func:`build_stats` from result objects (the in-memory store)."""
    counts: dict[tuple[str, str], int] = {}
    histograms: dict[str, dict[int, int]] = {}
    for result in results:
        key = (str(result.channel), result.status.value)
        counts[key] = counts.get(key, 0) + 1
        if result.status.value == "sent" and result.latency is not None:
            hist = histograms.setdefault(str(result.channel), {})
            bucket = latency_bucket(result.latency)
            hist[bucket] = hist.get(bucket, 0) + 1
    return build_stats(since, alerts, counts, histograms)


STATS_BY = ("channel", "priority", "source", "hour")
"""The groupings :meth:`HistoryStore.stats_by` knows: each delivery's channel, the
alert's priority, its source, or the UTC hour it was created in."""


def check_stats_by(by: object) -> str:
    """``by`` if it is one of :data:`STATS_BY`, else ``ValueError`` naming them."""
    if not isinstance(by, str) or by not in STATS_BY:
        raise ValueError(f"by: expected one of {', '.join(STATS_BY)}, got {by!r}")
    return by


def hour_key(moment: datetime | float) -> str:
    """The ``stats_by(by="hour")`` group of a time: the start of its UTC hour, ISO 8601."""
    seconds = moment.timestamp() if isinstance(moment, datetime) else float(moment)
    start = math.floor(seconds / 3600) * 3600
    return datetime.fromtimestamp(start, timezone.utc).isoformat()


def _group_order(by: str, name: str) -> tuple[int, str]:
    if by == "priority":
        member = Priority.__members__.get(name)
        return (int(member) if member is not None else 99, name)
    return (0, name)


def build_stats_by(
    since: datetime,
    until: datetime | None,
    by: str,
    alerts: int,
    group_alerts: Mapping[str, int],
    counts: Mapping[tuple[str, str], int],
    histograms: Mapping[str, Mapping[int, int]],
) -> dict[str, Any]:
    """The ``stats_by()`` dict from the window's alert count, the alerts per group,
    per-(group, status) delivery counts and per-group latency histograms.

    Shape::

        {"since": "...", "until": "..." or None, "by": "priority", "alerts": 12,
         "totals": {"sent": 20, "failed": 1, "suppressed": 3, "skipped": 2,
                    "retrying": 1, "held": 0},
         "groups": {"HIGH": {"alerts": 4, "sent": 7, "failed": 1, "suppressed": 0,
                             "skipped": 0, "retrying": 0, "held": 0,
                             "success_rate": 0.875,
                             "latency": {"p50": 0.012, "p95": 0.05, "p99": 0.08}}}}

    Groups are channel names, priority names (``LOW`` to ``CRITICAL``, in that
    order), sources, or hours (the start of each UTC hour, ISO 8601, oldest
    first; see :func:`hour_key`); only groups with an alert appear. A group's
    ``alerts`` counts its alerts (by channel: the alerts with a delivery on that
    channel, so those add up to more than ``alerts`` when alerts go to several).
    ``success_rate`` and latencies are as in :func:`build_stats`, over the group's
    deliveries.
    """
    check_stats_by(by)
    names = set(group_alerts) | {group for group, _ in counts}
    totals = dict.fromkeys(_STATUSES, 0)
    groups: dict[str, dict[str, Any]] = {}
    for name in sorted(names, key=lambda n: _group_order(by, n)):
        row: dict[str, Any] = {"alerts": int(group_alerts.get(name, 0))}
        row.update(dict.fromkeys(_STATUSES, 0))
        groups[name] = row
    for (name, status), n in counts.items():
        if status in totals:
            groups[name][status] += n
            totals[status] += n
    for name, row in groups.items():
        tried = row["sent"] + row["failed"]
        row["success_rate"] = round(row["sent"] / tried, 4) if tried else None
        row["latency"] = percentiles(histograms.get(name, {}))
    return {
        "since": since.isoformat(),
        "until": until.isoformat() if until is not None else None,
        "by": by,
        "alerts": alerts,
        "totals": totals,
        "groups": groups,
    }


def _alert_group(by: str, alert: Alert) -> str:
    if by == "priority":
        return alert.priority.name
    if by == "source":
        return alert.source
    return hour_key(alert.created_at)


def stats_by_from_entries(
    since: datetime, until: datetime | None, by: str, entries: Iterable[HistoryEntry]
) -> dict[str, Any]:
    """:func:`build_stats_by` from the history entries of the window (the in-memory
    store, and :class:`BaseHistoryStore`'s default)."""
    check_stats_by(by)
    alerts = 0
    group_alerts: dict[str, int] = {}
    counts: dict[tuple[str, str], int] = {}
    histograms: dict[str, dict[int, int]] = {}
    for entry in entries:
        alerts += 1
        fixed = None if by == "channel" else _alert_group(by, entry.alert)
        if fixed is not None:
            group_alerts[fixed] = group_alerts.get(fixed, 0) + 1
        seen: set[str] = set()
        for result in entry.results:
            name = fixed if fixed is not None else str(result.channel)
            if fixed is None and name not in seen:
                seen.add(name)
                group_alerts[name] = group_alerts.get(name, 0) + 1
            key = (name, result.status.value)
            counts[key] = counts.get(key, 0) + 1
            if result.status is DeliveryStatus.SENT and result.latency is not None:
                hist = histograms.setdefault(name, {})
                bucket = latency_bucket(result.latency)
                hist[bucket] = hist.get(bucket, 0) + 1
    return build_stats_by(since, until, by, alerts, group_alerts, counts, histograms)
