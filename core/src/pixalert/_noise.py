"""Noise control: what happens to each delivery of an alert before it is tried.

For each channel an alert is routed to, :meth:`NoiseControl.decide` says one of:

- *now*: deliver as usual;
- *held* until a time: ``for`` (notified only if still firing then), a mute
  time interval (or outside an active one) until it ends; a resolve recorded
  meanwhile supersedes the held delivery, so nothing is sent and the history
  says why;
- *grouped*: held as a member of a group (``group_by`` values, or the group
  Alertmanager already made); the group's job sends one notification per
  channel for all its members (:meth:`NoiseControl.flush_group`);
- *not sent*, with a note: fewer than ``occurrences`` firings within the
  window, or a flapping key.

Everything held is a delivery row with its due time, written with the alert
in one write, so it survives a restart and runs once across instances.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from ._clock import Clock, to_datetime
from ._durations import format_duration
from ._groups import Group, group_title
from ._intervals import TimeIntervalSet, muted, next_change
from ._routes import GroupingConfig, RouteMatch, label_value
from ._storage import (
    NEVER_NOTIFIED,
    Claim,
    HistoryQuery,
    HistoryStore,
    Job,
    JobClaim,
    Planned,
    StateBackend,
)
from ._types import Alert, ChannelName, DeliveryResult, DeliveryStatus, Priority, _new_id

if TYPE_CHECKING:
    from ._config import Settings
    from ._pipeline import Pipeline

__all__ = ["FLAPPING_JOB", "Decision", "NoiseControl"]

log = logging.getLogger("pixalert")

#: The job kind that notifies a flapping key's last state once it settles.
FLAPPING_JOB = "flapping"
#: The metadata key of the note on an alert notified as flapping (or settled).
FLAPPING_NOTE = "flapping"
_OCCURRENCE = "not notified yet: occurrence"
#: Groups that take their members from the store at once.
CLAIMING = 2
#: Times this close (seconds) count as reached: clocks summed in different orders differ.
_EPSILON = 0.001
#: Messages longer than this are cut in a group's saved state.
_KEEP_MESSAGE = 2000


def _when(ts: float) -> str:
    return to_datetime(ts).strftime("%Y-%m-%d %H:%M:%S UTC")


@attrs.frozen
class Decision:
    """What noise control decided for one delivery (see the module docstring)."""

    channel: str
    due: float | None = None
    group: str | None = None
    flush_by: float | None = None
    note: str | None = None
    drop: str | None = None

    @property
    def held(self) -> bool:
        """True if the delivery is recorded held (not claimed now)."""
        return self.drop is None and (self.group is not None or self.due is not None)

    def planned(self) -> Planned | str:
        """The store's record of this delivery."""
        if not self.held:
            return self.channel
        return Planned(self.channel, self.due, self.group, self.note, self.flush_by)


@attrs.frozen
class _GroupRef:
    ref: str
    labels: dict[str, str]
    external: str | None = None


class NoiseControl:
    """Decides holds, groups and notes; flushes groups; notifies settled flapping keys."""

    def __init__(
        self,
        settings: Settings,
        pipeline: Pipeline,
        *,
        clock: Clock,
        store: Callable[[], HistoryStore],
        state: Callable[[], StateBackend],
    ) -> None:
        self._settings = settings
        self._pipeline = pipeline
        self._clock = clock
        self._store = store
        self._state = state
        self._intervals = settings.time_intervals
        self._claiming: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None
        self._mute_cache: dict[
            tuple[tuple[str, ...], tuple[str, ...]], tuple[float, float, bool]
        ] = {}
        routes = settings.routes
        self.enabled = bool(
            settings.grouping is not None
            or settings.flapping is not None
            or any(
                r.effective_grouping(None) is not None
                or r.for_
                or r.occurrences
                or r.mute_time_intervals
                or r.active_time_intervals
                for r in routes
            )
        )
        self.has_intervals = any(r.mute_time_intervals or r.active_time_intervals for r in routes)

    def check_store(self, store: HistoryStore) -> None:
        """``ConfigError`` if noise control is configured and ``store`` cannot hold
        deliveries (a store written before held deliveries and groups)."""
        if self.enabled and not callable(getattr(store, "claim_group", None)):
            from ._errors import ConfigError

            raise ConfigError(
                [
                    f"history: the {type(store).__name__} store cannot hold deliveries "
                    "(it has no claim_group), which [grouping], route policies (for, "
                    "occurrences, time intervals) and [flapping] need: upgrade its plugin "
                    "or remove those settings"
                ]
            )

    # -- deciding ---------------------------------------------------------------

    async def decide(
        self,
        alert: Alert,
        plan: Mapping[ChannelName, RouteMatch | None],
        *,
        flapping: bool = True,
        dry: bool = False,
    ) -> tuple[Alert, dict[ChannelName, Decision]] | None:
        """Each channel's decision for ``alert`` (and the alert, with a flapping note if it
        starts flapping); None when every delivery goes out now as usual. ``dry`` (a
        preview) decides the same but writes nothing (no flapping mark, no job)."""
        now = self._clock.now()
        decisions: dict[ChannelName, Decision] = {}
        flap_note = None
        if flapping and self._settings.flapping is not None and plan:
            flap = await self._flapping(alert, now, dry=dry)
            if flap is not None and flap[0] == "drop":
                return alert, {name: Decision(name, drop=flap[1]) for name in plan}
            if flap is not None:
                flap_note = flap[1]
                alert = attrs.evolve(alert, metadata={**alert.metadata, FLAPPING_NOTE: flap_note})
        for name, match in plan.items():
            decisions[name] = await self._decide_one(alert, name, match, now)
        if flap_note is None and not any(d.held or d.drop for d in decisions.values()):
            return None
        return alert, decisions

    async def _decide_one(
        self, alert: Alert, channel: ChannelName, match: RouteMatch | None, now: float
    ) -> Decision:
        if channel not in self._pipeline.registry.slots:
            return Decision(channel)  # skipped at once: nothing to hold or group
        route = match.route if match is not None else None
        grouping = match.grouping if match is not None else self._settings.grouping
        notes: list[str] = []
        due = now
        if route is not None and route.occurrences and route.occurrences > 1:
            drop = await self._occurrences(
                alert, channel, route.occurrences, route.occurrences_window, now
            )
            if drop is not None:
                return Decision(channel, drop=drop)
        if route is not None and route.for_ and not alert.resolved:
            # To the millisecond below: created_at is kept to the microsecond.
            wait_until = math.floor((alert.created_at.timestamp() + route.for_) * 1000) / 1000
            if wait_until > now:
                due = wait_until
                notes.append(
                    f"held: for {format_duration(route.for_)}, notified only if still firing "
                    f"at {_when(due)}"
                )
        if match is not None:
            hold = self.mute_hold(match, due)
            if hold is not None:
                due, why = hold
                notes.append(why)
        if grouping is not None:
            ref = self.group_ref(alert, channel, match, grouping)
            wait = float(grouping.group_wait)
            if (
                ref.external
                or alert.resolved
                or (alert.priority is Priority.CRITICAL and not grouping.critical_waits)
            ):
                wait = 0.0
            flush_by = due + wait
            what = group_title(ref.labels) or "all alerts"
            notes.append(
                f"held: in group {what} on {channel}, notified with it by {_when(flush_by)}"
            )
            return Decision(channel, due, ref.ref, flush_by, "; ".join(notes))
        if due > now:
            return Decision(channel, due, note="; ".join(notes))
        return Decision(channel)

    def group_ref(
        self,
        alert: Alert,
        channel: str,
        match: RouteMatch | None,
        grouping: GroupingConfig,
    ) -> _GroupRef:
        """The group ``alert`` joins on ``channel``: Alertmanager's own group when the
        alert has ``metadata.group_key``, else the route's ``group_by`` values."""
        external = alert.metadata.get("group_key")
        if isinstance(external, str) and external:
            labels = alert.metadata.get("group_labels")
            shown = (
                {str(k): str(v) for k, v in labels.items()} if isinstance(labels, Mapping) else {}
            )
            digest = hashlib.sha1(external.encode()).hexdigest()[:20]
            return _GroupRef(f"{channel}|am|{digest}", shown, external)
        if "..." in grouping.group_by:
            values = {"key": alert.key}
        else:
            values = {name: label_value(alert, name) for name in grouping.group_by}
        route = "-" if match is None else str(match.index)
        blob = json.dumps(sorted(values.items()), separators=(",", ":"))
        digest = hashlib.sha1(blob.encode()).hexdigest()[:20]
        return _GroupRef(f"{channel}|{route}|{digest}", values)

    # -- time intervals -----------------------------------------------------------

    def _sets(self, names: Sequence[str]) -> list[TimeIntervalSet]:
        return [self._intervals[n] for n in names if n in self._intervals]

    def mute_hold(self, match: RouteMatch, ts: float) -> tuple[float, str] | None:
        """``(until, why)`` if deliveries of ``match``'s route are muted at ``ts``."""
        route = match.route
        if not route.mute_time_intervals and not route.active_time_intervals:
            return None
        key = (tuple(route.mute_time_intervals), tuple(route.active_time_intervals))
        cached = self._mute_cache.get(key)
        if cached is not None and cached[0] <= ts < cached[1]:
            _, end, state = cached
        else:
            mute, active = self._sets(key[0]), self._sets(key[1])
            state = muted(ts, mute, active)
            change = next_change(ts, mute, active)
            # No change within the horizon: look again in a day (a whole second, so that
            # the due time reads back exactly from the store).
            end = change if change is not None else math.floor(ts) + 86400.0
            self._mute_cache[key] = (ts, end, state)
        if not state:
            return None
        mute_sets = self._sets(key[0])
        inside = [s.name for s in mute_sets if s.contains(ts)]
        if inside:
            why = f"held: muted by time interval {', '.join(map(repr, inside))} until {_when(end)}"
        else:
            names = ", ".join(map(repr, key[1]))
            why = f"held: outside active time interval {names} until {_when(end)}"
        return end, why

    def hold_now(self, alert: Alert, channel: str) -> DeliveryResult | None:
        """A ``held`` result if ``alert`` may not go out on ``channel`` now (a mute
        interval began since it was planned), else None."""
        if not self.has_intervals:
            return None
        match = self._pipeline.plan(alert).get(ChannelName(channel))
        if match is None:
            return None
        hold = self.mute_hold(match, self._clock.now())
        if hold is None:
            return None
        until, why = hold
        return DeliveryResult(
            channel, DeliveryStatus.HELD, 0, why, next_attempt_at=to_datetime(until)
        )

    # -- occurrences and flapping -----------------------------------------------

    async def _occurrences(
        self, alert: Alert, channel: str, needed: int, window: float, now: float
    ) -> str | None:
        store = self._store()
        if alert.resolved:
            last = await store.entries(HistoryQuery(key=alert.key, status="firing", limit=1))
            for entry in last:
                for result in entry.results:
                    if str(result.channel) == channel and (result.error or "").startswith(
                        _OCCURRENCE
                    ):
                        return "not sent: the firing alert was never notified on this channel"
            return None
        since = to_datetime(now - window)
        seen = await store.entries(
            HistoryQuery(key=alert.key, status="firing", since=since, limit=needed)
        )
        count = len([e for e in seen if e.alert.id != alert.id]) + 1
        if count >= needed:
            return None
        return f"{_OCCURRENCE} {count} of {needed} within {format_duration(window)} (occurrences)"

    async def _flapping(
        self, alert: Alert, now: float, *, dry: bool = False
    ) -> tuple[str, str] | None:
        """``("drop", note)`` while ``alert.key`` flaps, ``("note", note)`` for the alert
        that makes it flap, else None (``dry``: without writing the mark or the job)."""
        config = self._settings.flapping
        assert config is not None
        state = self._state()
        mark = f"flapping:{alert.key}"
        current = await state.get(mark)
        window = format_duration(config.window)
        if current is not None:
            if not dry:
                await state.put(mark, current, config.quiet)
                await self._pipeline.timeline.schedule(
                    [self._flap_job(alert, now + config.quiet, current)]
                )
            return (
                "drop",
                f"not sent: flapping (changed state more than {config.changes} times within "
                f"{window}); its last state is notified once it has been quiet for "
                f"{format_duration(config.quiet)}",
            )
        entries = await self._store().entries(
            HistoryQuery(key=alert.key, since=to_datetime(now - config.window), limit=200)
        )
        earlier = sorted(
            (e.alert for e in entries if e.alert.id != alert.id), key=lambda a: a.created_at
        )
        states = [a.status for a in earlier] + [alert.status]
        changes = sum(1 for a, b in itertools.pairwise(states) if a != b)
        if changes <= config.changes:
            return None
        if not dry:
            await state.put(mark, alert.status, config.quiet)
            await self._pipeline.timeline.schedule(
                [self._flap_job(alert, now + config.quiet, alert.status)]
            )
        return (
            "note",
            f"flapping: changed state {changes} times within {window}; further changes are "
            f"not notified until it has been quiet for {format_duration(config.quiet)}",
        )

    def _flap_job(self, alert: Alert, due: float, notified: str) -> Job:
        return Job(FLAPPING_JOB, alert.key, due, {"alert": alert.to_dict(), "notified": notified})

    async def settle_flapping(self, claim: JobClaim) -> None:
        """The ``flapping`` job: the key has been quiet; notify its last state if it is not
        the one last notified."""
        payload = claim.job.payload
        try:
            last = Alert.from_dict(payload["alert"])
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("flapping job %s has a bad payload: %s", claim.job.ref, exc)
            return None
        if last.status == payload.get("notified"):
            return None
        now = self._clock.now()
        note = (
            f"settled after flapping: {last.status} since {last.created_at:%Y-%m-%d %H:%M:%S} UTC"
        )
        settled = attrs.evolve(
            last,
            id=_new_id(),
            created_at=to_datetime(now),
            metadata={**last.metadata, FLAPPING_NOTE: note},
        )
        await self._pipeline.send(settled, 0.0, flapping=False)
        return None

    # -- groups -------------------------------------------------------------------

    async def flush_group(self, claim: JobClaim) -> tuple[float, dict[str, Any] | None] | None:
        """The ``group`` job: notify the group's due members (and what still fires) as one
        notification on its channel, when ``group_wait``/``group_interval`` allow; or
        remind of it after ``repeat_interval``."""
        store = self._store()
        pipeline = self._pipeline
        delivery = self._settings.delivery
        ref = claim.job.ref
        state = dict(claim.job.payload)
        # A few groups take their members at a time: a store that commits queued calls
        # together would otherwise answer every group of a storm only once all are done.
        loop = asyncio.get_running_loop()
        if self._claiming is None or self._claiming[0] is not loop:
            self._claiming = (loop, asyncio.Semaphore(CLAIMING))
        async with self._claiming[1]:
            now = self._clock.now()
            members = await store.claim_group(
                ref, owner=pipeline.timeline.owner, lease=delivery.lease
            )
        pipeline.timeline.track(members)
        try:
            return await self._flush(ref, state, members, now)
        finally:
            pipeline.timeline.untrack(members)

    def _group_setup(
        self, ref: str, state: dict[str, Any], members: Sequence[Claim]
    ) -> tuple[str, RouteMatch | None, GroupingConfig, _GroupRef | None]:
        """The group's channel, route, grouping and labels: from a member (the config as
        it is now), else from what the group saved."""
        channel = state.get("channel") or ref.split("|", 1)[0]
        for claim in members:
            match = self._pipeline.plan(claim.alert).get(ChannelName(claim.channel))
            grouping = match.grouping if match is not None else self._settings.grouping
            if grouping is not None:
                return (
                    claim.channel,
                    match,
                    grouping,
                    self.group_ref(claim.alert, claim.channel, match, grouping),
                )
        grouping = self._settings.grouping or GroupingConfig()
        index = state.get("route")
        match = None
        if isinstance(index, int) and 0 <= index < len(self._settings.routes):
            route = self._settings.routes[index]
            effective = route.effective_grouping(self._settings.grouping)
            if effective is not None:
                grouping = effective
            match = RouteMatch(index, route, (channel,), effective)
        if "interval" in state:
            grouping = attrs.evolve(
                grouping,
                group_interval=state.get("interval", grouping.group_interval),
                repeat_interval=state.get("repeat", grouping.repeat_interval),
            )
        return channel, match, grouping, None

    async def _flush(
        self, ref: str, state: dict[str, Any], members: list[Claim], now: float
    ) -> tuple[float, dict[str, Any] | None] | None:
        channel, match, grouping, gref = self._group_setup(ref, state, members)
        active: dict[str, dict[str, Any]] = dict(state.get("active") or {})
        news_at = float(state.get("news_at", 0.0))
        repeat_at = float(state.get("repeat_at", 0.0))
        labels = dict(gref.labels) if gref is not None else dict(state.get("labels") or {})
        if not members and not active:
            return None
        if not members and now + _EPSILON < repeat_at:
            return _early(repeat_at), None
        wait_until = news_at if members and now + _EPSILON < news_at else now
        why = f"held: in group {group_title(labels) or 'all alerts'} on {channel}, "
        why += f"next notification at {_when(wait_until)} (group_interval)"
        muting = False
        if match is not None:
            hold = self.mute_hold(match, wait_until)
            if hold is not None:
                wait_until, why = hold
                muting = True
        if wait_until > now + _EPSILON:
            due = wait_until if muting else _early(wait_until)
            if members:
                await self._hold(members, due, why)
            return due, None
        if not members and active and await self._acknowledged(active):
            state["repeat_at"] = now + float(grouping.repeat_interval)
            return _early(state["repeat_at"]), state
        return await self._notify(
            ref, state, members, now, channel, match, grouping, gref, labels, active
        )

    async def _notify(
        self,
        ref: str,
        state: dict[str, Any],
        members: list[Claim],
        now: float,
        channel: str,
        match: RouteMatch | None,
        grouping: GroupingConfig,
        gref: _GroupRef | None,
        labels: dict[str, str],
        active: dict[str, dict[str, Any]],
    ) -> tuple[float, dict[str, Any] | None] | None:
        pipeline = self._pipeline
        firing: dict[str, Alert] = {}
        for key, data in active.items():
            try:
                firing[key] = Alert.from_dict(data)
            except (TypeError, ValueError):
                continue
        resolved: list[Alert] = []
        new: set[str] = set()
        unseen: list[Claim] = []  # resolves of alerts this group never told of
        for claim in sorted(members, key=lambda c: c.alert.created_at):
            alert = claim.alert
            if alert.resolved:
                if alert.key not in firing and all(a.key != alert.key for a in resolved):
                    unseen.append(claim)
                    continue
                firing.pop(alert.key, None)
                resolved = [a for a in resolved if a.key != alert.key] + [alert]
            else:
                if alert.key not in firing:
                    new.add(alert.id)
                firing[alert.key] = alert
                resolved = [a for a in resolved if a.key != alert.key]
        if unseen:  # nothing to resolve: not a notification, and not news for the group
            never = DeliveryResult(channel, DeliveryStatus.SUPPRESSED, 0, NEVER_NOTIFIED)
            await self._settle(unseen, never)
            members = [c for c in members if c not in unseen]
            if not members:
                if not active:
                    return None
                return _early(float(state.get("repeat_at", now))), None
        if not firing and not resolved:
            return None
        reason = "reminder" if not members else ("new" if not state.get("count") else "update")
        group = Group(
            key=ref,
            labels=labels,
            alerts=(*firing.values(), *resolved),
            new=new,
            reason=reason,
            external_key=(gref.external if gref is not None else state.get("external")),
            created_at=to_datetime(now),
        )
        slot = pipeline.registry.slots.get(ChannelName(channel))
        if slot is None:
            why = pipeline.registry.why_not(ChannelName(channel))
            await self._settle(members, DeliveryResult(channel, DeliveryStatus.SKIPPED, 0, why))
            return None
        previous = state.get("receipt")
        attempts = max((c.attempts for c in members), default=int(state.get("attempts", 0)))
        queued = min(
            (c.queued_at for c in members if c.queued_at), default=float(state.get("since") or now)
        )
        now = self._clock.now()  # group_interval counts from the notification itself
        result = await pipeline.deliver_group(
            slot, group, previous, attempts=attempts, queued_at=queued, route=match
        )
        interval, repeat = float(grouping.group_interval), float(grouping.repeat_interval)
        if result.status is DeliveryStatus.RETRYING:
            assert result.next_attempt_at is not None
            await self._settle(members, result)
            state.update(attempts=result.attempts, since=queued)
            return result.next_attempt_at.timestamp(), state
        state.pop("attempts", None)
        state.pop("since", None)
        if result.status is not DeliveryStatus.SENT:
            await self._settle(members, result)
            state.update(news_at=now + interval, repeat_at=now + repeat)
            return _early(now + repeat if firing else now + interval), state
        receipt = dict(result.receipt or {})
        await self._settle(members, attrs.evolve(result, receipt={**receipt, "group": ref}))
        state.update(
            channel=channel,
            route=None if match is None else match.index,
            labels=labels,
            external=group.external_key,
            interval=interval,
            repeat=repeat,
            active={key: _keep(alert) for key, alert in firing.items()},
            receipt=receipt or None,
            flushed_at=now,
            news_at=now + interval,
            repeat_at=now + repeat,
            count=int(state.get("count", 0)) + 1,
        )
        if reason == "reminder":
            await self._store().add_events(
                [
                    _event(alert.id, now, f"reminder sent on {channel} (group {ref})")
                    for alert in firing.values()
                ]
            )
        return _early(now + repeat if firing else now + interval), state

    async def _acknowledged(self, active: Mapping[str, Mapping[str, Any]]) -> bool:
        """True if every active alert of the group has an ``acknowledged`` event."""
        store = self._store()
        for data in active.values():
            entry = await store.entry(str(data.get("id")))
            if entry is None or not any(e.kind == "acknowledged" for e in entry.events):
                return False
        return True

    async def _hold(self, members: Sequence[Claim], until: float, why: str) -> None:
        held = [
            (
                c,
                DeliveryResult(
                    c.channel,
                    DeliveryStatus.HELD,
                    c.attempts,
                    why,
                    next_attempt_at=to_datetime(until),
                ),
            )
            for c in members
        ]
        await self._store().settle(held)

    async def _settle(self, members: Sequence[Claim], result: DeliveryResult) -> None:
        if not members:
            return
        settled = await self._store().settle(
            [(c, attrs.evolve(result, channel=c.channel)) for c in members]
        )
        if not all(settled.accepted):
            log.warning("group flush: a member's claim was lost; another instance took it over")
        done = set(settled.completed)
        for claim in members:
            if claim.alert.id in done:
                done.discard(claim.alert.id)
                await self._pipeline.finished(claim.alert)


def _early(ts: float) -> float:
    """A group's next time to run, a hair early: it is checked with :data:`_EPSILON` of
    slack, so a clock that lands right on it (a sweep, a fake clock) runs it."""
    return ts - _EPSILON / 2


def _keep(alert: Alert) -> dict[str, Any]:
    """What a group keeps of an alert between notifications (its message cut)."""
    data = alert.to_dict()
    data["channels"] = None
    if len(data["message"]) > _KEEP_MESSAGE:
        data["message"] = data["message"][: _KEEP_MESSAGE - 1] + "\u2026"
    return data


def _event(alert_id: str, now: float, note: str) -> Any:
    from ._storage import AlertEvent

    return AlertEvent(alert_id, "reminder", to_datetime(now), None, "pixalert", note)
