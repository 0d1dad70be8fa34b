"""Acknowledging and resolving incidents, from any way in (Python, CLI, API, Slack, email).

An *incident* is what one alert key has been through since its last
resolve: the firing alerts of that key after the newest resolved one. An
acknowledgement is of an incident: it is recorded (who, when, through what)
on the alert it was given for, stops the incident's escalation, and is told
to the channels that announced it and can show it (the optional channel
method ``acknowledge``: PagerDuty's ``acknowledge`` event, Slack's message
updated in place). A resolve from an operator is recorded the same way and
sends the alert's resolve through the normal pipeline.

Both are idempotent: a second ack or resolve of the same incident changes
nothing and says so.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from ._actions import Interaction
from ._clock import to_datetime
from ._errors import AlertNotFound, DeliveryError
from ._redact import redact
from ._storage import AlertEvent, HistoryEntry, HistoryQuery, HistoryStore, Job, JobClaim
from ._types import Alert, DeliveryResult, DeliveryStatus

if TYPE_CHECKING:
    from ._manager import NotificationManager

__all__ = [
    "ACK_KIND",
    "AckOutcome",
    "Incident",
    "Lifecycle",
    "ResolveOutcome",
    "find_incident",
]

log = logging.getLogger("pixalert")

#: The job kind that retries telling a channel about an acknowledgement.
ACK_KIND = "ack-notify"
#: How many times a channel is told about an acknowledgement before giving up.
ACK_ATTEMPTS = 6
#: Seconds before the first retry of that (doubling after).
ACK_RETRY = 30.0
#: How far back an incident is looked for (alerts of one key, newest first).
INCIDENT_LOOKBACK = 200


@attrs.frozen
class Incident:
    """The alerts of one key since its last resolve.

    ``alerts`` are the firing alerts, newest first; ``resolved`` is the
    resolve that ended the incident (None while it is open).
    """

    key: str
    alerts: tuple[HistoryEntry, ...] = ()
    resolved: HistoryEntry | None = None

    @property
    def acknowledged(self) -> AlertEvent | None:
        """The first acknowledgement of the incident, or None."""
        acks = [e for entry in self.alerts for e in entry.events if e.kind == "acknowledged"]
        return min(acks, key=lambda e: e.at) if acks else None

    def sent(self) -> dict[str, HistoryEntry]:
        """Each channel the incident reached, with the newest alert sent there."""
        out: dict[str, HistoryEntry] = {}
        for entry in self.alerts:  # newest first: the first seen per channel wins
            for result in entry.results:
                if result.status is DeliveryStatus.SENT:
                    out.setdefault(str(result.channel), entry)
        return out

    @property
    def escalated(self) -> bool:
        """True if an escalation step ran for the incident."""
        return any(e.kind == "escalated" for entry in self.alerts for e in entry.events)


async def find_incident(store: HistoryStore, entry: HistoryEntry) -> Incident:
    """The incident ``entry`` belongs to.

    For a firing alert: the firing alerts of its key between the resolves
    around it, and the resolve that ended it if one came after it. For a
    resolve: the firing alerts it ended.
    """
    key = entry.alert.key
    found = await store.entries(HistoryQuery(key=key, limit=INCIDENT_LOOKBACK))
    # Newest first; alerts made in one instant keep the order they were made in.
    items = sorted(found, key=lambda e: (e.alert.created_at, e.alert.id), reverse=True)
    index = next((i for i, e in enumerate(items) if e.alert.id == entry.alert.id), None)
    if index is None:  # beyond the lookback: the entry alone
        if entry.alert.resolved:
            return Incident(key, (), entry)
        return Incident(key, (entry,), None)
    older: list[HistoryEntry] = []
    for item in items[index + 1 :]:
        if item.alert.resolved:
            break
        older.append(item)
    if entry.alert.resolved:
        return Incident(key, tuple(older), entry)
    newer: list[HistoryEntry] = []
    ended: HistoryEntry | None = None
    for item in reversed(items[:index]):  # oldest first, from the entry on
        if item.alert.resolved:
            ended = item
            break
        newer.append(item)
    return Incident(key, (*reversed(newer), entry, *older), ended)


@attrs.frozen
class AckOutcome:
    """What ``manager.ack`` did.

    ``changed`` is False when the incident was acknowledged or resolved
    already (``by``, ``at`` and ``via`` are then the earlier ones), and
    ``detail`` says so in a sentence. ``channels`` says what each channel
    that announced the incident made of it: ``acknowledged``, ``not
    updated`` (it has nothing to update, such as a Slack webhook message),
    ``retrying: ...`` or ``failed: ...``. ``escalation_stopped`` is True if
    an escalation was under way.
    """

    alert_id: str
    key: str
    changed: bool
    state: str
    detail: str
    by: str | None = None
    at: datetime | None = None
    via: str | None = None
    note: str | None = None
    channels: Mapping[str, str] = attrs.field(factory=dict)
    escalation_stopped: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return {
            **_outcome_dict(self),
            "channels": dict(self.channels),
            "escalation_stopped": self.escalation_stopped,
        }


@attrs.frozen
class ResolveOutcome:
    """What ``manager.resolve`` did.

    ``changed`` is False when the incident was resolved already. Otherwise
    ``resolve_id`` is the id of the resolve sent through the pipeline and
    ``results`` what each channel made of it.
    """

    alert_id: str
    key: str
    changed: bool
    state: str
    detail: str
    by: str | None = None
    at: datetime | None = None
    via: str | None = None
    note: str | None = None
    resolve_id: str | None = None
    results: Mapping[Any, DeliveryResult] = attrs.field(factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return {
            **_outcome_dict(self),
            "resolve_id": self.resolve_id,
            "results": {str(k): v.to_dict() for k, v in self.results.items()},
        }


def _outcome_dict(outcome: AckOutcome | ResolveOutcome) -> dict[str, Any]:
    """The fields an ack's and a resolve's outcome share, JSON-safe."""
    return {
        "alert_id": outcome.alert_id,
        "key": outcome.key,
        "changed": outcome.changed,
        "state": outcome.state,
        "detail": outcome.detail,
        "by": outcome.by,
        "at": outcome.at.isoformat() if outcome.at else None,
        "via": outcome.via,
        "note": outcome.note,
    }


def _is_notice(alert: Alert) -> bool:
    """True for an escalation step's notification (explicit channels, marked so)."""
    return alert.channels is not None and isinstance(alert.metadata.get("escalation"), str)


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")


def _who(by: str | None, via: str | None) -> str:
    who = f" by {by}" if by else ""
    return who + (f" via {via}" if via else "")


class Lifecycle:
    """Acks and resolves for one manager, and what follows an accepted alert."""

    def __init__(self, manager: NotificationManager) -> None:
        self._m = manager

    @property
    def _store(self) -> HistoryStore:
        return self._m.history_store

    async def _entry(self, alert_id: str) -> HistoryEntry:
        if not isinstance(alert_id, str) or not alert_id.strip():
            raise AlertNotFound(str(alert_id))
        entry = await self._store.entry(alert_id.strip())
        if entry is None:
            raise AlertNotFound(alert_id)
        return entry

    # -- acknowledge -----------------------------------------------------------

    async def ack(
        self, alert_id: str, *, by: str | None, note: str | None, via: str | None
    ) -> AckOutcome:
        """Acknowledge the incident of ``alert_id`` (see the module docs)."""
        entry = await self._entry(alert_id)
        alert = entry.alert
        incident = await find_incident(self._store, entry)
        if incident.resolved is not None:
            ended = incident.resolved.alert.created_at
            return AckOutcome(
                alert.id,
                alert.key,
                False,
                "resolved",
                f"already resolved at {_when(ended)}: nothing to acknowledge",
                at=ended,
            )
        earlier = incident.acknowledged
        if earlier is None and not await self._first(f"ack:{alert.key}", incident):
            earlier = AlertEvent(alert.id, "acknowledged", to_datetime(self._m.clock.now()))
        if earlier is not None:
            return AckOutcome(
                alert.id,
                alert.key,
                False,
                "acknowledged",
                f"already acknowledged{_who(earlier.by, earlier.via)} at {_when(earlier.at)}",
                by=earlier.by,
                at=earlier.at,
                via=earlier.via,
                note=earlier.note,
            )
        event = AlertEvent(
            alert.id, "acknowledged", to_datetime(self._m.clock.now()), by, via, note
        )
        try:
            await self._store.add_events([event])
        except BaseException:
            await self._forget(f"ack:{alert.key}", incident)
            raise
        stopped = False
        try:
            stopped = await self._m.escalation_book.acknowledged(alert, event)
        except Exception as exc:
            log.warning("ack of %s: could not stop its escalation: %s", alert.id, redact(str(exc)))
        channels = await self._tell(incident, event)
        return AckOutcome(
            alert.id,
            alert.key,
            True,
            "acknowledged",
            f"acknowledged{_who(by, via)} at {_when(event.at)}",
            by=by,
            at=event.at,
            via=via,
            note=note,
            channels=channels,
            escalation_stopped=stopped,
        )

    async def _first(self, what: str, incident: Incident) -> bool:
        """True if this instance is the first to act on ``incident`` (two clicks at once)."""
        oldest = incident.alerts[-1].alert.id if incident.alerts else incident.key
        try:
            return await self._m.state_backend.acquire(f"{what}:{oldest}", 3600)
        except Exception as exc:  # no shared state: the history check alone decides
            log.warning("could not take the %s mark: %s", what, redact(str(exc)))
            return True

    async def _forget(self, what: str, incident: Incident) -> None:
        oldest = incident.alerts[-1].alert.id if incident.alerts else incident.key
        try:
            await self._m.state_backend.release(f"{what}:{oldest}")
        except Exception as exc:
            log.warning("could not release the %s mark: %s", what, redact(str(exc)))

    async def _tell(self, incident: Incident, event: AlertEvent) -> dict[str, str]:
        """Tell each channel that announced the incident and can show an
        acknowledgement; what each said. Retryable failures go on the timeline."""
        jobs: list[Job] = []
        told: dict[str, str] = {}
        calls = []
        for channel, entry in incident.sent().items():
            slot = self._m.registry.slots.get(channel)  # type: ignore[call-overload]
            if slot is None or not callable(getattr(slot.channel, "acknowledge", None)):
                continue
            calls.append((channel, entry))
        outcomes = await asyncio.gather(
            *(self._acknowledge(channel, entry.alert, event) for channel, entry in calls)
        )
        for (channel, entry), (status, retry) in zip(calls, outcomes, strict=True):
            told[channel] = status
            if retry:
                jobs.append(
                    Job(
                        ACK_KIND,
                        f"{entry.alert.id}:{channel}",
                        self._m.clock.now() + ACK_RETRY,
                        {
                            "alert_id": entry.alert.id,
                            "channel": channel,
                            "attempt": 1,
                            "event": {**event.to_dict(), "alert_id": event.alert_id},
                        },
                    )
                )
        if jobs:
            try:
                await self._m.timeline.schedule(jobs)
            except Exception as exc:
                log.warning("could not schedule acknowledgement retries: %s", redact(str(exc)))
        return told

    async def _acknowledge(self, channel: str, alert: Alert, event: AlertEvent) -> tuple[str, bool]:
        """``(what the channel made of it, whether to retry)``."""
        slot = self._m.registry.slots.get(channel)  # type: ignore[call-overload]
        if slot is None:
            return "not configured", False
        try:
            previous = await self._store.last_receipt(alert.key, channel)
            await slot.pace(alert)  # as for a send: the turn is waited for before the timeout
            done = await asyncio.wait_for(
                # The message it updates was sent with its template: shown with it again.
                slot.channel.acknowledge(
                    self._m.pipeline.prepare(alert, channel), event=event, previous=previous
                ),
                float(self._m.settings.delivery.timeout),
            )
        except DeliveryError as exc:
            reason = redact(exc.message)
            if exc.retryable:
                return f"retrying: {reason}", True
            return f"failed: {reason}", False
        except asyncio.TimeoutError:
            return f"retrying: timed out after {self._m.settings.delivery.timeout:g}s", True
        except Exception as exc:
            return f"retrying: {redact(f'{type(exc).__name__}: {exc}')}", True
        return ("not updated" if done is False else "acknowledged"), False

    async def run_ack_job(self, claim: JobClaim) -> tuple[float, dict[str, Any] | None] | None:
        """Tell a channel about an acknowledgement once more (the timeline handler)."""
        payload = dict(claim.job.payload)
        entry = await self._store.entry(str(payload.get("alert_id")))
        if entry is None:
            return None
        raw = dict(payload.get("event") or {})
        event = AlertEvent(
            str(raw.get("alert_id", entry.alert.id)),
            "acknowledged",
            datetime.fromisoformat(str(raw.get("at"))),
            raw.get("by"),
            raw.get("via"),
            raw.get("note"),
        )
        channel = str(payload.get("channel"))
        status, retry = await self._acknowledge(channel, entry.alert, event)
        attempt = int(payload.get("attempt", 1)) + 1
        if retry and attempt < ACK_ATTEMPTS:
            payload["attempt"] = attempt
            return self._m.clock.now() + ACK_RETRY * 2 ** (attempt - 1), payload
        if retry:
            log.warning(
                "alert %s: gave up telling %s about the acknowledgement: %s",
                entry.alert.id,
                channel,
                status,
            )
        return None

    # -- resolve ---------------------------------------------------------------

    async def resolve(
        self, alert_id: str, *, by: str | None, note: str | None, via: str | None
    ) -> ResolveOutcome:
        """Resolve the incident of ``alert_id``: record who did it, send the resolve."""
        entry = await self._entry(alert_id)
        alert = entry.alert
        incident = await find_incident(self._store, entry)
        if incident.resolved is not None or not incident.alerts:
            ended = incident.resolved or entry
            return ResolveOutcome(
                alert.id,
                alert.key,
                False,
                "resolved",
                f"already resolved at {_when(ended.alert.created_at)}",
                at=ended.alert.created_at,
                resolve_id=ended.alert.id,
            )
        if not await self._first(f"resolve:{alert.key}", incident):
            return ResolveOutcome(
                alert.id, alert.key, False, "resolved", "already being resolved (at this moment)"
            )
        now = to_datetime(self._m.clock.now())
        event = AlertEvent(alert.id, "resolved", now, by, via, note)
        try:
            await self._store.add_events([event])
        except BaseException:
            await self._forget(f"resolve:{alert.key}", incident)
            raise
        # The resolve goes as the incident's alerts were routed: not as an escalation
        # notice (explicit channels), whose channels get it anyway (see _resolved).
        origin = next(
            (e.alert for e in incident.alerts if not _is_notice(e.alert)),
            incident.alerts[-1].alert,
        )
        text = f"Resolved{_who(by, via)}" + (f": {note}" if note else ".")
        message = f"{origin.message}\n\n{text}" if origin.message.strip() else text
        resolved = attrs.evolve(origin.resolve(message), created_at=now)
        results = await self._m.send_notification(resolved)
        return ResolveOutcome(
            alert.id,
            alert.key,
            True,
            "resolved",
            f"resolved{_who(by, via)} at {_when(now)}",
            by=by,
            at=now,
            via=via,
            note=note,
            resolve_id=resolved.id,
            results=results,
        )

    # -- after an alert was accepted ------------------------------------------------

    async def accepted(
        self,
        alerts: Sequence[Alert],
        results: Sequence[Mapping[Any, DeliveryResult] | None] | None,
    ) -> None:
        """What follows accepted alerts: escalations start for firing ones; a resolve
        ends its incident's escalation, and reaches the channels escalation told."""
        if not self._m.escalation_book.policies:
            return  # no escalation policy: nothing follows
        outcomes: Sequence[Mapping[Any, DeliveryResult] | None] = (
            results if results is not None else [None] * len(alerts)
        )
        firing = [
            (a, r)
            for a, r in zip(alerts, outcomes, strict=True)
            if not a.resolved and not self._m.heartbeat_book.is_signal(a)
        ]
        resolved = [a for a in alerts if a.resolved]
        if firing:
            try:
                await self._m.escalation_book.start([a for a, _ in firing], [r for _, r in firing])
            except Exception as exc:
                log.warning("could not start escalations: %s", redact(str(exc)))
        for alert in resolved:
            try:
                await self._resolved(alert)
            except Exception as exc:
                log.warning(
                    "resolve %s: could not end its escalation: %s", alert.id, redact(str(exc))
                )

    async def _resolved(self, alert: Alert) -> None:
        if not await self._m.escalation_book.cancel([alert.key]):
            return
        entry = await self._store.entry(alert.id)
        if entry is None:
            return
        incident = await find_incident(self._store, entry)  # the firing alerts it ended
        if not incident.escalated:
            return
        routed = {str(r.channel) for r in entry.results} | set(self._m.pipeline.route(alert))
        extra = sorted(set(incident.sent()) - routed)
        if extra:
            # The channels only escalation told get the resolve too.
            more = attrs.evolve(alert.resolve(), created_at=alert.created_at, channels=tuple(extra))
            await self._m.pipeline.submit_many([more], [0.0])

    # -- interactions --------------------------------------------------------------

    async def interact(self, channel: str, interaction: Interaction) -> None:
        """Do what someone did from ``channel`` (logged, never raised: it runs after
        the service got its answer)."""
        try:
            if interaction.action == "ack":
                outcome: AckOutcome | ResolveOutcome = await self.ack(
                    interaction.alert_id, by=interaction.by, note=interaction.note, via=channel
                )
            else:
                outcome = await self.resolve(
                    interaction.alert_id, by=interaction.by, note=interaction.note, via=channel
                )
            log.info("%s from %s: %s", interaction.action, channel, outcome.detail)
        except AlertNotFound as exc:
            log.warning("%s from %s: %s", interaction.action, channel, exc)
        except Exception as exc:
            reason = redact(f"{type(exc).__name__}: {exc}")
            log.error("%s from %s failed: %s", interaction.action, channel, reason)
