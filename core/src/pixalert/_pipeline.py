"""The one way an alert goes: route, record, suppress, deliver, settle.

For every store and every way in (``send_alert``, ``submit``, a sweep that
picks up a retry or a dead process's work):

1. route: the channels an alert goes to (explicit ``channels``, else the
   ``[[routes]]`` that match it, else the priority table), then the
   ``pixalert_route`` hooks; then noise control (``_noise.py``) decides for
   each delivery: now, held (``for``, a time interval), in a group, or not
   sent (occurrences, flapping);
2. record: the alert and one delivery per routed channel, in one write,
   before any channel is tried (the deliveries due now come back claimed;
   held ones wait on the timeline; one to a channel that is not configured
   is recorded ``skipped``, final, and nothing more happens to it);
3. suppress: the ``pixalert_suppress`` hooks, silences, cooldown (once per
   alert, when it is accepted and has a delivery that can go out; a retry is
   not suppressed again);
4. deliver: each claimed delivery to its channel, concurrently;
5. settle: every outcome in one write (sent, failed, suppressed, skipped, or
   retrying at its next due time), then the ``pixalert_after_delivery``
   hooks once every delivery of the alert is final.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from ._channels import Receipt
from ._clock import Clock, to_datetime
from ._config import Settings
from ._delivery import ChannelSlot, deliver, preview, preview_group
from ._errors import DeliveryError, SubmitError
from ._groups import Group
from ._noise import FLAPPING_JOB, Decision, NoiseControl
from ._plugins import PluginManager
from ._redact import redact
from ._registry import ChannelRegistry
from ._render import ChannelRender, RenderDecision, RenderResult
from ._routes import RouteMatch, RouteTable
from ._storage import (
    GROUP_JOB,
    NEVER_NOTIFIED,
    ROUTE_LATER,
    Claim,
    HistoryStore,
    Planned,
    Recorded,
    StateBackend,
)
from ._suppression import Suppression, await_me_maybe
from ._templates import Templates
from ._timeline import Timeline
from ._types import Alert, ChannelName, DeliveryResult, DeliveryStatus

__all__ = ["Pipeline", "Results"]

log = logging.getLogger("pixalert")

Results = dict[ChannelName, DeliveryResult]

_ROUTE_OF_ALERT = object()


@attrs.frozen
class _Decided:
    """Noise control's decisions for one alert, and the suppression reason found first."""

    decisions: Mapping[ChannelName, Decision]
    reason: str | None = None
    cooldown_taken: bool = False

    def entries(self, routed: Sequence[ChannelName]) -> list[str | Planned]:
        """What the store records for each routed channel."""
        if self.reason is not None:
            return list(routed)
        return [self.decisions[n].planned() if n in self.decisions else n for n in routed]

    def notes(self) -> dict[ChannelName, str]:
        """Channels not sent to, with why (occurrences, flapping)."""
        if self.reason is not None:
            return {}
        return {n: d.drop for n, d in self.decisions.items() if d.drop}

    def held(self, now: float) -> dict[ChannelName, DeliveryResult]:
        """The held deliveries, as results."""
        if self.reason is not None:
            return {}
        return {
            n: DeliveryResult(
                n,
                DeliveryStatus.HELD,
                0,
                d.note,
                next_attempt_at=to_datetime(now if d.due is None else d.due),
            )
            for n, d in self.decisions.items()
            if d.held
        }

    def wake(self) -> float | None:
        """When the first held delivery (or group) is due."""
        times = [
            d.flush_by if d.flush_by is not None else d.due
            for d in self.decisions.values()
            if d.held and (d.due is not None or d.flush_by is not None)
        ]
        return min((t for t in times if t is not None), default=None)


class Pipeline:
    """Runs alerts through the steps above."""

    def __init__(
        self,
        *,
        settings: Settings,
        plugins: PluginManager,
        registry: ChannelRegistry,
        suppression: Suppression,
        timeline: Timeline,
        store: Callable[[], HistoryStore],
        clock: Clock,
        state: Callable[[], StateBackend] | None = None,
    ) -> None:
        timeline.on_written = self._written  # after-delivery hooks of late writes
        self._settings = settings
        self._plugins = plugins
        self._registry = registry
        self._suppression = suppression
        self._timeline = timeline
        self._store = store
        self._clock = clock
        self._routes = RouteTable(settings.routes, settings.grouping)
        #: The message templates (``[templates.NAME]``), applied by :meth:`prepare`.
        self.templates = Templates.from_settings(settings, registry.template_of, registry.markup_of)
        self.noise = NoiseControl(
            settings, self, clock=clock, store=store, state=state or _no_state
        )
        timeline.handlers.setdefault(GROUP_JOB, self.noise.flush_group)
        timeline.handlers.setdefault(FLAPPING_JOB, self.noise.settle_flapping)

    @property
    def registry(self) -> ChannelRegistry:
        """The configured channels."""
        return self._registry

    @property
    def route_table(self) -> RouteTable:
        """The configured ``[[routes]]``."""
        return self._routes

    @property
    def timeline(self) -> Timeline:
        """The timeline this pipeline records on."""
        return self._timeline

    # -- 1. route -------------------------------------------------------------

    def route(self, alert: Alert) -> list[ChannelName]:
        """The channel names ``alert`` goes to: explicit channels, else the routes that
        match it (``[[routes]]``), else the priority table; then the ``pixalert_route``
        hooks (first non-None answer wins)."""
        return list(self.plan(alert))

    def plan(self, alert: Alert) -> dict[ChannelName, RouteMatch | None]:
        """Each channel ``alert`` goes to, with the route that sent it there (None for
        explicit channels, the priority table and channels a hook added)."""
        planned: dict[ChannelName, RouteMatch | None] = {}
        if alert.channels is not None:
            planned = dict.fromkeys((ChannelName(str(c)) for c in alert.channels), None)
        else:
            table = self._registry.expand(self._settings.routing.for_priority(alert.priority))
            matches = self._routes.match(alert, table) if self._routes else []
            for match in matches:
                for name in self._registry.expand(match.channels):
                    planned.setdefault(ChannelName(name), match)
            if not matches:
                planned = dict.fromkeys((ChannelName(n) for n in table), None)
        try:
            changed = self._plugins.hook.pixalert_route(alert=alert, channels=list(planned))
        except Exception as exc:
            log.warning("pixalert_route hook failed, routing unchanged: %s", redact(str(exc)))
            changed = None
        if changed is not None:
            planned = {ChannelName(str(c)): planned.get(ChannelName(str(c))) for c in changed}
        return planned

    def route_of(self, alert: Alert, channel: str) -> RouteMatch | None:
        """The route that sent ``alert`` to ``channel`` (the first matching route that
        names it), or None (explicit channels, the priority table)."""
        if alert.channels is not None or not self._routes:
            return None
        table = self._registry.expand(self._settings.routing.for_priority(alert.priority))
        for match in self._routes.match(alert, table):
            if channel in self._registry.expand(match.channels):
                return match
        return None

    def prepare(
        self,
        alert: Alert,
        channel: str,
        *,
        group: Group | None = None,
        route: RouteMatch | object | None = _ROUTE_OF_ALERT,
    ) -> Alert:
        """The alert as ``channel`` is handed it: with the message template of its
        route (``route``; by default the route ``alert`` matched for ``channel``) or of
        the channel applied, if any (see :class:`pixalert._templates.Templates`). The one
        place templates apply: deliveries, group notifications and previews call it.
        ``group``: the group whose digest ``alert`` is."""
        if not self.templates:
            return alert
        match = self.route_of(alert, channel) if route is _ROUTE_OF_ALERT else route
        assert match is None or isinstance(match, RouteMatch)
        return self.templates.prepare(alert, channel, match, group)

    # -- previews ---------------------------------------------------------------

    async def render(
        self, alert: Alert, cooldown: float | None, *, only: ChannelName | None = None
    ) -> RenderResult:
        """Steps 1 and 3 for ``alert`` without sending or writing anything: each routed
        channel's decision (noise control and suppression, read only) and the preview of
        what it would send (the alert as :meth:`prepare` hands it). ``only``: just that
        channel (``not_routed`` if the alert does not go there)."""
        plan = self.plan(alert)
        decisions: Mapping[ChannelName, Decision] = {}
        if self.noise.enabled:
            decided = await self.noise.decide(alert, plan, dry=True)
            if decided is not None:
                alert, decisions = decided
        reason = None
        if not (decisions and all(d.drop for d in decisions.values())):
            reason = await self._suppression.reason(alert, cooldown, dry=True)
        names = list(plan) if only is None else [only]
        out: dict[ChannelName, ChannelRender] = {}
        for name in names:
            out[name] = await self._render_one(alert, name, plan, decisions.get(name), reason)
        return RenderResult(alert, out)

    async def _render_one(
        self,
        alert: Alert,
        name: ChannelName,
        plan: Mapping[ChannelName, RouteMatch | None],
        decision: Decision | None,
        reason: str | None,
    ) -> ChannelRender:
        slot = self._registry.slots.get(name)
        match = plan.get(name)
        base = ChannelRender(
            name,
            RenderDecision.SEND,
            type=None if slot is None else slot.type,
            route=None if match is None else match.index,
        )
        if name not in plan:
            base = attrs.evolve(
                base, decision=RenderDecision.NOT_ROUTED, reason="the alert is not routed here"
            )
        elif reason is not None:
            base = attrs.evolve(base, decision=RenderDecision.SUPPRESSED, reason=reason)
        elif decision is not None and decision.drop:
            base = attrs.evolve(base, decision=RenderDecision.SUPPRESSED, reason=decision.drop)
        elif slot is None:
            return attrs.evolve(
                base, decision=RenderDecision.SKIPPED, reason=self._registry.why_not(name)
            )
        elif decision is not None and decision.group is not None:
            due = decision.flush_by if decision.flush_by is not None else decision.due
            base = attrs.evolve(
                base,
                decision=RenderDecision.GROUPED,
                reason=decision.note,
                group_key=decision.group,
                due=None if due is None else to_datetime(due),
            )
        elif decision is not None and decision.due is not None:
            base = attrs.evolve(
                base,
                decision=RenderDecision.HELD,
                reason=decision.note,
                due=to_datetime(decision.due),
            )
        elif (hold := self.noise.hold_now(alert, name)) is not None:
            base = attrs.evolve(
                base, decision=RenderDecision.HELD, reason=hold.error, due=hold.next_attempt_at
            )
        if slot is None:
            return base
        try:
            if base.decision is RenderDecision.GROUPED:
                group = self._preview_group(alert, name, match)
                plain = group.digest()
                digest = self.prepare(plain, name, group=group, route=match)
                if digest is not plain:  # a template made it: as deliver_group hands it
                    group = attrs.evolve(group, templated=digest)
                shown = await preview_group(slot, group, digest)
            else:
                shown = await preview(slot, self.prepare(alert, name))
        except DeliveryError as exc:
            return attrs.evolve(base, error=redact(exc.message))
        except Exception as exc:
            return attrs.evolve(base, error=redact(f"{type(exc).__name__}: {exc}"))
        return attrs.evolve(base, preview=shown)

    def _preview_group(self, alert: Alert, name: ChannelName, match: RouteMatch | None) -> Group:
        """The group notification ``alert`` would be in on ``name``, as its first member."""
        grouping = match.grouping if match is not None else self._settings.grouping
        assert grouping is not None
        ref = self.noise.group_ref(alert, name, match, grouping)
        return Group(
            key=ref.ref,
            labels=ref.labels,
            alerts=(alert,),
            new={alert.id},
            reason="new",
            external_key=ref.external,
            created_at=to_datetime(self._clock.now()),
        )

    # -- ways in ----------------------------------------------------------------

    async def send(self, alert: Alert, cooldown: float | None, *, flapping: bool = True) -> Results:
        """Route, record, suppress and deliver ``alert``; return every channel's result
        (a held delivery's says when it is due). ``flapping=False`` skips the flapping
        check (for the notification of a flapping key that settled)."""
        if self.noise.enabled:
            plan = self.plan(alert)
            decided = await self.noise.decide(alert, plan, flapping=flapping)
            if decided is not None:
                alert, decisions = decided
                return await self._send_decided(alert, list(plan), decisions, cooldown)
            routed = list(plan)
        else:
            routed = self.route(alert)
        store = self._store()
        delivery = self._settings.delivery
        entries = self._final_known(routed)
        # The record and the suppression check (a cooldown key in the state
        # backend) go out together so that their round trips overlap; no
        # channel is tried before both are done. An alert that no channel can
        # take is not checked: nothing would go out, so no cooldown is taken.
        recording = asyncio.ensure_future(
            store.record(alert, entries, owner=self._timeline.owner, lease=delivery.lease)
        )
        checked = _sendable(entries)
        try:
            reason = await self._suppression.reason(alert, cooldown) if checked else None
        except BaseException:
            recording.add_done_callback(_ignore_outcome)  # recorded: a sweep delivers it
            raise
        try:
            recorded = await recording
        except BaseException:
            if checked and reason is None:  # the cooldown taken for an alert not stored
                with contextlib.suppress(Exception):
                    await self._suppression.give_back(alert)
            raise
        return await self._process(
            recorded, routed, reason, cooldown_taken=checked and reason is None
        )

    def _final_known(self, entries: Sequence[str | Planned]) -> list[str | Planned]:
        """``entries`` with each delivery due now to a channel that is not configured
        planned final, ``skipped`` with why (recorded so, never claimed or tried)."""
        slots = self._registry.slots
        return [
            entry
            if isinstance(entry, Planned) or entry in slots
            else Planned(entry, final=DeliveryStatus.SKIPPED, note=self._registry.why_not(entry))
            for entry in entries
        ]

    def _skipped(self, name: ChannelName) -> DeliveryResult:
        """The result of a delivery to ``name``, a channel that is not configured."""
        return DeliveryResult(name, DeliveryStatus.SKIPPED, 0, self._registry.why_not(name))

    async def _send_decided(
        self,
        alert: Alert,
        routed: list[ChannelName],
        decisions: Mapping[ChannelName, Decision],
        cooldown: float | None,
    ) -> Results:
        """:meth:`send` for an alert noise control has a say on: suppression first (a held
        delivery is recorded unclaimed, so it must be known not to be suppressed), then
        one write with the held deliveries, then what is due now."""
        decided = await self._suppress_first(alert, decisions, cooldown)
        try:
            recorded = await self._store().record(
                alert,
                self._final_known(decided.entries(routed)),
                owner=self._timeline.owner,
                lease=self._settings.delivery.lease,
            )
        except BaseException:
            if decided.cooldown_taken:
                with contextlib.suppress(Exception):
                    await self._suppression.give_back(alert)
            raise
        return await self._process_decided(recorded, routed, decided)

    async def _suppress_first(
        self, alert: Alert, decisions: Mapping[ChannelName, Decision], cooldown: float | None
    ) -> _Decided:
        if decisions and all(d.drop for d in decisions.values()):
            return _Decided(decisions)  # nothing goes out: no cooldown is taken
        reason = await self._suppression.reason(alert, cooldown)
        return _Decided(decisions, reason, cooldown_taken=reason is None)

    async def _process_decided(
        self, recorded: Recorded, routed: list[ChannelName], decided: _Decided
    ) -> Results:
        wake = decided.wake()
        if wake is not None:
            self._timeline.wake_at(wake)
        return await self._process(
            recorded,
            routed,
            decided.reason,
            cooldown_taken=decided.cooldown_taken,
            notes=decided.notes(),
            held=decided.held(self._clock.now()),
        )

    async def submit_many(
        self, alerts: Sequence[Alert], cooldowns: Sequence[float | None]
    ) -> list[str]:
        """Record ``alerts`` in one write, then run each in the background."""
        decided: list[_Decided | None] = [None] * len(alerts)
        if self.noise.enabled:
            plans = [self.plan(alert) for alert in alerts]
            routes = [list(plan) for plan in plans]
            found = await asyncio.gather(
                *(self.noise.decide(alert, plan) for alert, plan in zip(alerts, plans, strict=True))
            )
            alerts = list(alerts)
            suppressions = []
            for i, item in enumerate(found):
                if item is not None:
                    alerts[i] = item[0]
                    suppressions.append((i, self._suppress_first(item[0], item[1], cooldowns[i])))
            for (i, _), result in zip(
                suppressions, await asyncio.gather(*(s for _, s in suppressions)), strict=True
            ):
                decided[i] = result
        else:
            routes = [self.route(alert) for alert in alerts]
        entries: list[Sequence[str | Planned]] = [
            self._final_known(d.entries(r) if d is not None else r)
            for d, r in zip(decided, routes, strict=True)
        ]
        try:
            recorded = await self._store().record_many(
                alerts,
                entries,
                owner=self._timeline.owner,
                lease=self._settings.delivery.lease,
            )
        except SubmitError as exc:
            self._accept_all(exc.recorded, routes, cooldowns, decided)  # what was kept goes out
            raise
        except Exception as exc:
            for alert, d in zip(alerts, decided, strict=True):
                if d is not None and d.cooldown_taken:
                    with contextlib.suppress(Exception):
                        await self._suppression.give_back(alert)
            raise SubmitError(f"could not store the alerts: {redact(str(exc))}") from exc
        self._accept_all(recorded, routes, cooldowns, decided)
        return [item.alert.id for item in recorded]

    def _accept_all(
        self,
        recorded: Sequence[Recorded],
        routes: Sequence[list[ChannelName]],
        cooldowns: Sequence[float | None],
        decided: Sequence[_Decided | None],
    ) -> None:
        for item, routed, ttl, d in zip(recorded, routes, cooldowns, decided, strict=False):
            self._timeline.spawn(self._accept(item, routed, ttl, d))

    async def _accept(
        self,
        recorded: Recorded,
        routed: list[ChannelName],
        ttl: float | None,
        decided: _Decided | None = None,
    ) -> None:
        if decided is not None:
            try:
                await self._process_decided(recorded, routed, decided)
            except Exception as exc:
                log.error("alert %s: delivery failed: %s", recorded.alert.id, redact(repr(exc)))
            return
        checked = bool(recorded.claims)  # nothing to send: no suppression, no cooldown
        try:
            reason = await self._suppression.reason(recorded.alert, ttl) if checked else None
        except Exception as exc:
            log.warning(
                "alert %s: suppression check failed: %s", recorded.alert.id, redact(str(exc))
            )
            await self._store().release(list(recorded.claims))  # a sweep takes it again
            return
        try:
            await self._process(recorded, routed, reason, cooldown_taken=checked and reason is None)
        except Exception as exc:
            log.error("alert %s: delivery failed: %s", recorded.alert.id, redact(repr(exc)))

    async def run_claims(self, claims: Sequence[Claim]) -> None:
        """Deliver claimed work from a sweep (retries, or what a dead process left)."""
        by_alert: dict[str, list[Claim]] = {}
        for claim in claims:
            by_alert.setdefault(claim.alert.id, []).append(claim)
        await asyncio.gather(*(self._resume(group) for group in by_alert.values()))

    async def _resume(self, claims: list[Claim]) -> None:
        alert = claims[0].alert
        try:
            if any(c.channel == ROUTE_LATER for c in claims):
                # Recorded before it was routed (a store from an older schema): route now.
                routed = self.route(alert)
                again = await self._store().record(
                    alert, routed, owner=self._timeline.owner, lease=self._settings.delivery.lease
                )
                claims = [c for c in claims if c.channel != ROUTE_LATER] + list(again.claims)
            _, finished = await self._settle(alert, claims, None)
            if finished:
                await self._finished(alert, None)
        except Exception as exc:
            log.error("alert %s: delivery failed: %s", alert.id, redact(repr(exc)))

    # -- 3.-5. suppress, deliver, settle -------------------------------------

    async def _process(
        self,
        recorded: Recorded,
        routed: list[ChannelName],
        reason: str | None,
        *,
        cooldown_taken: bool,
        notes: Mapping[ChannelName, str] | None = None,
        held: Mapping[ChannelName, DeliveryResult] | None = None,
    ) -> Results:
        alert = recorded.alert
        outcomes, finished = await self._settle(alert, list(recorded.claims), reason, notes)
        results: Results = {}
        missing = False
        for name in routed:
            if name in outcomes:
                results[name] = outcomes[name]
            elif name in recorded.superseded:
                results[name] = DeliveryResult(name, DeliveryStatus.SUPPRESSED, 0, NEVER_NOTIFIED)
            elif name in recorded.final:
                results[name] = self._skipped(name)
            elif held and name in held:
                results[name] = held[name]
            else:
                missing = True
        if missing:  # recorded before (an alert id sent twice): report what the store has
            known = {str(r.channel): r for r in await self._store().results_for(alert.id)}
            results = {
                name: results.get(name)
                or known.get(name)
                or DeliveryResult(name, DeliveryStatus.PENDING)
                for name in routed
            }
        if routed and not recorded.claims and set(routed) <= recorded.superseded | recorded.final:
            finished = True  # every delivery was final when recorded
        tried = [r for r in outcomes.values() if r.attempts]
        if cooldown_taken and tried and all(r.status is DeliveryStatus.FAILED for r in tried):
            # Nothing went out and nothing will: the next try must not be swallowed.
            with contextlib.suppress(Exception):
                await self._suppression.give_back(alert)
        if finished:
            await self._finished(alert, None if missing else results)
        return results

    async def _settle(
        self,
        alert: Alert,
        claims: list[Claim],
        reason: str | None,
        notes: Mapping[ChannelName, str] | None = None,
    ) -> tuple[dict[ChannelName, DeliveryResult], bool]:
        """Deliver (or suppress, or skip, or hold) each claim and write the outcomes;
        return them, and whether every delivery of the alert is now final. Outcomes the
        store fails to take stay with their claims; the next sweep writes them."""
        if not claims:
            return {}, False
        store = self._store()
        self._timeline.track(claims)
        try:
            outcomes = await self._outcomes(alert, claims, reason, notes or {})
            pairs = [(c, outcomes[ChannelName(c.channel)]) for c in claims]
            try:
                settled = await store.settle(pairs)
            except Exception as exc:
                # Tried, perhaps sent, but not written: sending again would duplicate it,
                # so the claims stay held and the next sweep writes these outcomes.
                log.warning(
                    "alert %s: could not write the results (the next sweep will): %s",
                    alert.id,
                    redact(str(exc)),
                )
                self._timeline.hold(pairs)
                return outcomes, False
        finally:
            self._timeline.untrack(claims)
        if not all(settled.accepted):
            log.warning("alert %s: a claim was lost; another instance took its work over", alert.id)
        waiting = [r.next_attempt_at for r in outcomes.values() if r.next_attempt_at is not None]
        if waiting:
            self._timeline.wake_at(min(waiting).timestamp())
        return outcomes, alert.id in settled.completed

    async def _written(self, alerts: Sequence[Alert]) -> None:
        """After-delivery hooks of alerts finished by outcomes written late."""
        for alert in alerts:
            await self._finished(alert, None)

    async def finished(self, alert: Alert) -> None:
        """Run the after-delivery hooks of ``alert``, whose deliveries are all final now."""
        await self._finished(alert, None)

    async def _finished(self, alert: Alert, results: Results | None) -> None:
        """Run the after-delivery hooks of a finished alert (``results``: every
        channel's, or None to read them from the store)."""
        impls = self._plugins.hook.pixalert_after_delivery.get_hookimpls()
        if not impls:
            return
        if results is None:
            found = await self._store().results_for(alert.id)
            results = {ChannelName(str(r.channel)): r for r in found}
        for impl in impls:
            try:
                await await_me_maybe(impl.function(alert=alert, results=results))
            except Exception as exc:
                log.warning(
                    "pixalert_after_delivery hook of %s failed: %s",
                    impl.plugin_name,
                    redact(str(exc)),
                )

    async def _outcomes(
        self,
        alert: Alert,
        claims: list[Claim],
        reason: str | None,
        notes: Mapping[ChannelName, str],
    ) -> dict[ChannelName, DeliveryResult]:
        outcomes: dict[ChannelName, DeliveryResult] = {}
        todo: list[Claim] = []
        for claim in claims:
            name = ChannelName(claim.channel)
            if reason is not None:
                outcomes[name] = DeliveryResult(name, DeliveryStatus.SUPPRESSED, 0, reason)
            elif name in notes:
                outcomes[name] = DeliveryResult(name, DeliveryStatus.SUPPRESSED, 0, notes[name])
            elif name not in self._registry.slots:  # config changed, or a store ignored final
                outcomes[name] = self._skipped(name)
            elif (hold := self.noise.hold_now(alert, name)) is not None:
                outcomes[name] = attrs.evolve(hold, attempts=claim.attempts)
            else:
                todo.append(claim)
        if len(todo) == 1:  # no task per channel when there is one
            outcomes[ChannelName(todo[0].channel)] = await self._deliver(alert, todo[0])
        elif todo:
            sent = await asyncio.gather(*(self._deliver(alert, claim) for claim in todo))
            outcomes.update(zip((ChannelName(c.channel) for c in todo), sent, strict=True))
        return outcomes

    async def _deliver(self, alert: Alert, claim: Claim) -> DeliveryResult:
        slot = self._registry.slots[ChannelName(claim.channel)]
        previous = None
        if alert.resolved:
            previous = await self._store().last_receipt(alert.key, claim.channel)
        return await deliver(
            slot,
            self.prepare(alert, claim.channel),
            previous=previous,
            config=self._settings.delivery,
            clock=self._clock,
            attempts=claim.attempts,
            queued_at=claim.queued_at or None,
        )

    async def deliver_group(
        self,
        slot: ChannelSlot,
        group: Group,
        previous: Receipt | None,
        *,
        attempts: int,
        queued_at: float,
        route: RouteMatch | None = None,
    ) -> DeliveryResult:
        """Send ``group`` as one notification on ``slot``'s channel, with the retries,
        timeout and circuit breaker of any delivery: ``send_group`` where the channel
        has it, else its ``send`` with the group's digest alert. With a message
        template (``route``'s, else the channel's), the digest is rendered by it and
        ``send_group`` is given the group with that digest as ``templated``."""
        digest = group.digest()
        if self.templates:
            prepared = self.prepare(digest, slot.name, group=group, route=route)
            if prepared is not digest:
                digest = prepared
                group = attrs.evolve(group, templated=prepared)
        send_group = getattr(slot.channel, "send_group", None)

        async def send() -> Receipt | None:
            if send_group is not None:
                return await send_group(group, previous=previous)  # type: ignore[no-any-return]
            return await slot.channel.send(digest, previous=previous)

        return await deliver(
            slot,
            digest,
            previous=previous,
            config=self._settings.delivery,
            clock=self._clock,
            attempts=attempts,
            queued_at=queued_at,
            send=send,
        )


def _no_state() -> StateBackend:
    raise RuntimeError("noise control needs the state backend (flapping)")


def _sendable(entries: Sequence[str | Planned]) -> bool:
    """True if any of ``entries`` is not planned final (a delivery may go out)."""
    return any(not isinstance(entry, Planned) or entry.final is None for entry in entries)


def _ignore_outcome(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved, so asyncio does not log it as never retrieved
