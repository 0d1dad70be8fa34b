"""Escalation policies on the timeline: who else to tell when nobody acknowledges.

An alert whose route names a policy (``escalation = "NAME"``), or a CRITICAL
alert no route gives one when a policy named ``default`` exists, gets one
:class:`~pixalert.storage.Job` of kind ``"escalation"`` per incident (its
``ref`` is the alert key). The job is due when the next step is; its
handler notifies that step's channels (a new notification of the alert,
with ``metadata["escalation"]`` saying which step) and puts the job back
for the step after. Being a timeline row, a step runs on time after a
restart and once across instances.

The job stays after the last step, or after an acknowledgement, with its
``state`` (``done``, ``acknowledged``) and a due time that never comes: a
repeated notification of the same incident does not start it again. A
resolve removes it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from ._clock import to_datetime
from ._durations import format_duration
from ._errors import ConfigError
from ._redact import redact
from ._routes import RouteTable
from ._storage import AlertEvent, Job, JobClaim
from ._types import Alert, DeliveryResult, DeliveryStatus, Priority, _new_id

if TYPE_CHECKING:
    from ._manager import NotificationManager

__all__ = ["DEFAULT_POLICY", "FAR", "KIND", "Escalations"]

log = logging.getLogger("pixalert")

#: The job kind of escalations.
KIND = "escalation"
#: The policy CRITICAL alerts get when no route names one.
DEFAULT_POLICY = "default"
#: A due time that never comes (the last second of year 9999, the latest time a
#: datetime, SQLite and PostgreSQL all hold): the job only keeps the incident's state.
FAR = 253402300799.0


class Escalations:
    """The configured policies, and the escalation jobs of one manager."""

    def __init__(self, manager: NotificationManager) -> None:
        self._m = manager
        self.policies = manager.settings.escalation
        self._routes = RouteTable(manager.settings.routes)
        #: Per policy, per step: the channel names notified (derived ones for recipients).
        self.targets: dict[str, list[list[str]]] = {}

    # -- configuration ------------------------------------------------------

    def configure(self) -> None:
        """Check the policies against the channels and routes, and make the channels
        of steps with ``recipients``; ``ConfigError`` naming every problem."""
        settings = self._m.settings
        registry = self._m.registry
        errors: list[str] = []
        known = ", ".join(sorted(self.policies)) or "none"
        for i, route in enumerate(settings.routes):
            if route.escalation is not None and route.escalation not in self.policies:
                where = settings.sources.get("routes", "config")
                errors.append(
                    f"{where}: unknown escalation policy {route.escalation!r} "
                    f"(configured: {known}) @ routes[{i}].escalation"
                )
        source = settings.sources.get("escalation", "config")
        for name, policy in self.policies.items():
            steps: list[list[str]] = []
            for j, step in enumerate(policy.steps):
                at = f"escalation.{name}.steps[{j}]"
                names: list[str] = []
                took_recipients = False
                for k, channel in enumerate(step.channels):
                    if channel not in registry.slots and channel not in registry.unavailable:
                        configured = ", ".join(sorted({*registry.slots, *registry.unavailable}))
                        errors.append(
                            f"{source}: channel {channel!r} is not configured "
                            f"(configured: {configured or 'none'}) @ {at}.channels[{k}]"
                        )
                        continue
                    if step.recipients is None or channel in registry.unavailable:
                        names.append(channel)
                        continue
                    derived = f"{channel}@{name}.{j + 1}"
                    try:
                        made = registry.derive(derived, channel, step.recipients, at)
                    except (ConfigError, ValueError) as exc:
                        lines = exc.errors if isinstance(exc, ConfigError) else [str(exc)]
                        errors.extend(lines)
                        continue
                    took_recipients = took_recipients or made
                    names.append(derived if made else channel)
                if step.recipients is not None and not took_recipients and names:
                    errors.append(
                        f"{source}: none of this step's channels ({', '.join(step.channels)}) "
                        f"has recipients to replace @ {at}.recipients"
                    )
                steps.append(names)
            self.targets[name] = steps
        if errors:
            raise ConfigError(errors)

    def policy_for(self, alert: Alert) -> str | None:
        """The policy ``alert`` escalates by: the first matching route's, else ``default``
        for a CRITICAL alert (when configured), else None."""
        if not self.policies:
            return None
        for match in self._routes.match(alert):
            if match.route.escalation is not None:
                return match.route.escalation
        if alert.priority is Priority.CRITICAL and DEFAULT_POLICY in self.policies:
            return DEFAULT_POLICY
        return None

    # -- starting and stopping ------------------------------------------------

    async def start(
        self,
        alerts: Sequence[Alert],
        results: Sequence[Mapping[Any, DeliveryResult] | None],
    ) -> int:
        """Start escalating the firing alerts among ``alerts`` that have a policy
        (unless suppressed everywhere, or their incident is escalating or was
        acknowledged already); return how many were started."""
        jobs: list[Job] = []
        for alert, outcome in zip(alerts, results, strict=True):
            if alert.resolved:
                continue
            name = self.policy_for(alert)
            if name is None:
                continue
            if outcome and all(r.status is DeliveryStatus.SUPPRESSED for r in outcome.values()):
                continue
            # (A datetime keeps microseconds: it may read a hair later than the clock.)
            started = min(alert.created_at.timestamp(), self._m.clock.now())
            first = self.policies[name].steps[0]
            jobs.append(
                Job(
                    KIND,
                    alert.key,
                    started + float(first.after),
                    {
                        "policy": name,
                        "alert_id": alert.id,
                        "step": 0,
                        "round": 0,
                        "state": "active",
                        "started_at": started,
                    },
                )
            )
        if not jobs:
            return 0
        written = await self._m.timeline.schedule(jobs, replace=False)
        return sum(written)

    async def job(self, key: str) -> Job | None:
        """The escalation job of incident ``key``, if any."""
        for job in await self._m.history_store.jobs(KIND):
            if job.ref == key:
                return job
        return None

    async def acknowledged(self, alert: Alert, event: AlertEvent) -> bool:
        """Stop ``alert``'s escalation for good (until a resolve); True if it was
        escalating. An alert with a policy that has no job yet gets a stopped one,
        so that it does not start later."""
        current = await self.job(alert.key)
        if current is None:
            name = self.policy_for(alert)
            if name is None:
                return False
            payload: dict[str, Any] = {
                "policy": name,
                "alert_id": alert.id,
                "step": 0,
                "round": 0,
                "started_at": alert.created_at.timestamp(),
            }
            active = False
        else:
            payload = dict(current.payload)
            active = payload.get("state", "active") == "active"
            if not active and payload.get("state") == "acknowledged":
                return False
        payload.update(state="acknowledged", by=event.by, at=event.at.timestamp(), via=event.via)
        await self._m.timeline.schedule([Job(KIND, alert.key, FAR, payload)], replace=True)
        return active

    async def cancel(self, keys: Sequence[str]) -> int:
        """Forget the escalations of these incidents (they resolved); how many there were."""
        if not keys:
            return 0
        return await self._m.history_store.cancel_jobs(KIND, list(dict.fromkeys(keys)))

    # -- the timeline handler ---------------------------------------------------

    async def run(self, claim: JobClaim) -> tuple[float, dict[str, Any] | None] | None:
        """Run one due step: notify its channels, then schedule the next."""
        payload = dict(claim.job.payload)
        if payload.get("state", "active") != "active":
            return FAR, None
        name = str(payload.get("policy"))
        policy = self.policies.get(name)
        if policy is None:
            log.warning("escalation of %s: policy %r is no longer configured", claim.job.ref, name)
            return None
        store = self._m.history_store
        entry = await store.entry(str(payload.get("alert_id")))
        if entry is None or entry.alert.resolved:
            return None
        origin = entry.alert
        step, round_ = int(payload.get("step", 0)), int(payload.get("round", 0))
        if step >= len(policy.steps):  # the policy lost steps since
            step, round_ = len(policy.steps) - 1, policy.repeat
        targets = list(self.targets.get(name, [[]] * len(policy.steps))[step])
        if step == 0 and round_ == 0:
            results = entry.results
            if results and all(r.status is DeliveryStatus.SUPPRESSED for r in results):
                return None  # it never went out: nothing to escalate
            if float(policy.steps[0].after) == 0:
                # At once: together with the alert itself, so not where it went already.
                routed = {str(r.channel) for r in results}
                targets = [t for t in targets if t not in routed]
        now = self._m.clock.now()
        label = f"step {step + 1} of {len(policy.steps)}"
        if policy.repeat:
            label += f", round {round_ + 1} of {policy.repeat + 1}"
        if targets:
            waited = format_duration(max(0, round(now - float(payload.get("started_at", now)))))
            notice = attrs.evolve(
                origin,
                id=_new_id(),
                created_at=to_datetime(now),
                channels=tuple(targets),
                metadata={
                    **origin.metadata,
                    "escalation": f"{name} {label}: not acknowledged after {waited}",
                },
            )
            await self._m.pipeline.submit_many([notice], [0.0])
        note = f"{name} {label}: " + (", ".join(targets) or "no channel left to notify")
        event = AlertEvent(origin.id, "escalated", to_datetime(now), None, KIND, note)
        try:
            await store.add_events([event])
        except Exception as exc:
            log.warning("escalation of %s: could not record it: %s", origin.key, redact(str(exc)))
        due = claim.job.due
        if step + 1 < len(policy.steps):
            payload["step"] = step + 1
            return due + float(policy.steps[step + 1].after), payload
        if round_ < policy.repeat:
            payload.update(step=0, round=round_ + 1)
            return due + float(policy.steps[0].after), payload
        payload.update(state="done", finished_at=now)
        return FAR, payload

    # -- what is escalating -------------------------------------------------------

    async def listing(self, *, include_stopped: bool = False) -> list[dict[str, Any]]:
        """The escalations, soonest next step first, as JSON-safe dicts."""
        store = self._m.history_store
        out: list[dict[str, Any]] = []
        for job in await store.jobs(KIND):
            payload = job.payload
            state = str(payload.get("state", "active"))
            if state != "active" and not include_stopped:
                continue
            name = str(payload.get("policy"))
            policy = self.policies.get(name)
            entry = await store.entry(str(payload.get("alert_id")))
            step = int(payload.get("step", 0))
            steps = self.targets.get(name, [])
            item: dict[str, Any] = {
                "key": job.ref,
                "alert_id": payload.get("alert_id"),
                "title": entry.alert.title if entry else None,
                "priority": entry.alert.priority.name if entry else None,
                "policy": name,
                "state": state,
                "step": step + 1,
                "steps": len(policy.steps) if policy else None,
                "round": int(payload.get("round", 0)) + 1,
                "rounds": policy.repeat + 1 if policy else None,
                "next_at": to_datetime(job.due).isoformat() if state == "active" else None,
                "channels": list(steps[step]) if state == "active" and step < len(steps) else [],
                "started_at": to_datetime(float(payload.get("started_at", 0))).isoformat(),
            }
            if state == "acknowledged":
                item["acknowledged_by"] = payload.get("by")
                item["acknowledged_at"] = to_datetime(float(payload.get("at", 0))).isoformat()
            out.append(item)
        return out
