"""The monitoring bridge: metrics, threshold rules, external alerts, health summary."""

from __future__ import annotations

import asyncio
import collections
import inspect
import json
import logging
import math
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

import attrs
from pixalert import Alert, DeliveryResult, Priority, SubmitError, hookimpl
from pixalert.channels import Duration, redact

from ._external import ExternalAlert, ExternalBatch, parse_external, severity_map
from ._rules import DEFAULT_RULES, AlertRule, load_rules

__all__ = ["MetricSample", "MonitoringBridge"]

log = logging.getLogger("pixalert.monitoring")

#: How long, in seconds, an external notification's identity is remembered, so
#: that its redeliveries are taken once: Alertmanager's HA peers send the same
#: notification up to peer_timeout (15 s) times their position later, and a
#: sender retries a notification it did not see answered within about 10 s.
#: It stays well under Alertmanager's group_interval (5 m by default), so a
#: repeat of a still-firing alert (repeat_interval, 4 h by default) is taken
#: again and goes through cooldown like any alert.
DEFAULT_DEDUP_TTL = 120.0

_JOURNAL_SIZE = 10_000

#: Shortest life of a shared inhibition key, in seconds (a rule's cooldown may be 0).
MIN_INHIBIT_TTL = 60.0


@attrs.frozen
class MetricSample:
    """The latest value of one metric for one service."""

    value: float
    unit: str
    status: str
    recorded_at: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return {
            "value": self.value,
            "unit": self.unit,
            "status": self.status,
            "recorded_at": _iso(self.recorded_at),
        }


@attrs.define
class _RuleState:
    """What the bridge knows about one rule on one service."""

    firing: bool = False
    since: float | None = None
    value: float | None = None
    notified: bool = False
    last_sent: float | None = None
    alert: Alert | None = None
    inhibited_by: str | None = None
    resolve_pending: bool = False
    # The shared inhibition key this rule has put in the state backend, if any.
    inhibit_key: str | None = None


class _Journal:
    """Observes every delivery of the bridge's manager (``pixalert_after_delivery``)."""

    def __init__(self) -> None:
        # (created_at timestamp, the history row as JSON): a float and a str per
        # entry, which the garbage collector does not track. Ten thousand rows
        # of nested dicts made each full collection take ~90 ms in a receiver.
        self._seen: collections.deque[tuple[float, str]] = collections.deque(maxlen=_JOURNAL_SIZE)

    @hookimpl  # type: ignore[untyped-decorator, unused-ignore]  # core lacks py.typed
    def pixalert_after_delivery(self, alert: Alert, results: Mapping[str, DeliveryResult]) -> None:
        """Remember the alert and its results."""
        row = alert.to_dict()
        row["state"] = "done"
        row["results"] = {str(name): r.to_dict() for name, r in results.items()}
        self._seen.append((alert.created_at.timestamp(), json.dumps(row, separators=(",", ":"))))

    def since(self, since: float) -> list[dict[str, Any]]:
        """The history rows of the alerts created at or after ``since``, oldest first."""
        return [json.loads(row) for created, row in self._seen if created >= since]


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat()


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


class MonitoringBridge:
    """Turns metrics and outside alerts into pixalert alerts.

    ``manager`` is a :class:`pixalert.NotificationManager` (a new one, read
    from the usual configuration, when omitted); ``clock`` defaults to the
    manager's. ``severities`` maps Alertmanager/Grafana ``severity`` label
    values to priorities (added to the defaults: critical, error/high,
    warning, info). ``dedup_ttl`` is how long, in seconds (or ``"2m"``), an
    external notification is remembered so that its redeliveries are taken
    once (default 2 minutes: see :data:`DEFAULT_DEDUP_TTL`).
    """

    def __init__(
        self,
        manager: Any = None,
        *,
        clock: Any = None,
        severities: Mapping[str, Any] | None = None,
        default_priority: Priority | str = Priority.MEDIUM,
        dedup_ttl: float = DEFAULT_DEDUP_TTL,
        max_alerts: int | None = None,
    ) -> None:
        if manager is None:
            from pixalert import NotificationManager

            manager = NotificationManager()
            self._owns_manager = True
        else:
            self._owns_manager = False
        self.manager = manager
        if clock is None:
            clock = getattr(manager, "clock", None)
        if clock is None:
            from pixalert.storage import SystemClock

            clock = SystemClock()
        self.clock = clock
        self.severities = severity_map(severities)
        self.default_priority = Priority.parse(default_priority)
        try:
            self.dedup_ttl = float(Duration.parse(dedup_ttl, zero=False))
        except ValueError as exc:
            raise ValueError(f"dedup_ttl: {exc}") from None
        self.max_alerts = max_alerts
        self.alert_rules: dict[str, AlertRule] = {}
        self.metrics: dict[str, dict[str, MetricSample]] = {}
        self._states: dict[tuple[str, str], _RuleState] = {}
        self._check_lock: asyncio.Lock | None = None
        self._stop_requested = False
        self._stop_event: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running = False
        self._health_cache: dict[str, Any] | None = None
        self._journal = _Journal()
        plugins = getattr(manager, "plugins", None)
        self._observer_registered = False
        if plugins is not None and hasattr(plugins, "register"):
            plugins.register(self._journal)
            self._observer_registered = True

    # ------------------------------------------------------------------
    # Rules
    # ------------------------------------------------------------------

    def setup_default_alert_rules(self) -> None:
        """Add the eight default rules: CPU, memory, queue size and error rate, each at a
        high (MEDIUM) and a critical (HIGH) threshold (:data:`DEFAULT_RULES`)."""
        for name, metric, threshold, op, priority, cooldown in DEFAULT_RULES:
            self.add_alert_rule(name, metric, threshold, op, priority, cooldown)

    def add_alert_rule(
        self,
        rule_name: str,
        metric_name: str,
        threshold: float,
        operator: str,
        priority: Priority | str | int,
        cooldown_minutes: float = 5,
    ) -> AlertRule:
        """Add (or replace) a rule; ``operator`` is one of ``> >= < <= == !=``.

        Raises ``ValueError`` naming the rule for a bad operator, threshold,
        priority or cooldown.
        """
        rule = AlertRule.create(
            rule_name, metric_name, threshold, operator, priority, cooldown_minutes
        )
        self.alert_rules[rule.rule_name] = rule
        return rule

    def remove_alert_rule(self, rule_name: str) -> None:
        """Remove a rule; an alert it had sent is resolved at the next check."""
        self.alert_rules.pop(rule_name, None)

    def load_rules(self, source: Any) -> list[AlertRule]:
        """Add the rules of a TOML file or mapping (see :func:`pixalert_monitoring.load_rules`)."""
        rules = load_rules(source)
        for rule in rules:
            self.alert_rules[rule.rule_name] = rule
        return rules

    # ------------------------------------------------------------------
    # Metrics
    # ------------------------------------------------------------------

    def record_metric(
        self,
        metric_name: str,
        value: float,
        unit: str = "",
        service_name: str = "default",
        status: str = "ok",
    ) -> MetricSample:
        """Record the latest ``value`` of ``metric_name`` for ``service_name``.

        Rules are evaluated on the next :meth:`check_alert_conditions`.
        """
        if not isinstance(metric_name, str) or not metric_name.strip():
            raise ValueError(f"metric_name: expected a non-empty string, got {metric_name!r}")
        if not isinstance(service_name, str) or not service_name.strip():
            raise ValueError(f"service_name: expected a non-empty string, got {service_name!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(
                f"value of {metric_name!r}: expected a number, got {type(value).__name__}"
            )
        if not math.isfinite(value):
            raise ValueError(f"value of {metric_name!r}: expected a finite number, got {value!r}")
        sample = MetricSample(float(value), str(unit or ""), str(status or "ok"), self.clock.now())
        self.metrics.setdefault(service_name.strip(), {})[metric_name.strip()] = sample
        return sample

    # ------------------------------------------------------------------
    # Rule evaluation
    # ------------------------------------------------------------------

    async def check_alert_conditions(self) -> list[dict[str, Any]]:
        """Evaluate every rule for every service; send what fires, resolve what stopped.

        A rule's cooldown is per rule and service. When rules of one metric
        with different priorities fire together, only the highest is sent
        (inhibition), also across instances: the highest firing rule of a
        metric and service is kept in the manager's state backend as
        ``inhibit:<metric>:<service>``, and every bridge sharing that backend
        holds back its lower rules. Returns one summary dict per notification sent.
        """
        if self._check_lock is None:
            self._check_lock = asyncio.Lock()
        async with self._check_lock:
            plan = self._evaluate(self.clock.now())
            plan = await self._share_inhibition(plan)
            sent = [await self._send_planned(*item) for item in plan]
        await self._refresh_health()
        return sent

    def _state(self, rule: str, service: str) -> _RuleState:
        return self._states.setdefault((rule, service), _RuleState())

    def _evaluate(self, now: float) -> list[tuple[str, AlertRule | None, str, _RuleState, Alert]]:
        plan: list[tuple[str, AlertRule | None, str, _RuleState, Alert]] = []
        for service, samples in self.metrics.items():
            firing: dict[str, tuple[AlertRule, MetricSample]] = {}
            for rule in self.alert_rules.values():
                sample = samples.get(rule.metric_name)
                if sample is not None and rule.matches(sample.value):
                    firing[rule.rule_name] = (rule, sample)
            for rule, sample in firing.values():
                state = self._state(rule.rule_name, service)
                if not state.firing:
                    state.firing = True
                    state.since = now
                state.resolve_pending = False
                state.value = sample.value
                higher = [
                    other
                    for other, _ in firing.values()
                    if other.metric_name == rule.metric_name and other.priority > rule.priority
                ]
                state.inhibited_by = (
                    max(higher, key=lambda r: (r.priority, r.rule_name)).rule_name
                    if higher
                    else None
                )
                if state.inhibited_by is not None:
                    continue
                if state.last_sent is not None and now - state.last_sent < rule.cooldown_seconds:
                    continue
                plan.append(
                    (
                        "firing",
                        rule,
                        service,
                        state,
                        self._rule_alert(rule, service, sample, state, now),
                    )
                )
            for (rule_name, svc), state in self._states.items():
                if svc != service or rule_name in firing:
                    continue
                if state.firing:
                    state.firing = False
                    state.inhibited_by = None
                    state.since = None
                    state.resolve_pending = state.notified
                if state.resolve_pending and state.alert is not None:
                    known = self.alert_rules.get(rule_name)
                    sample = samples.get(known.metric_name) if known else None
                    plan.append(
                        (
                            "resolved",
                            known,
                            service,
                            state,
                            self._resolve_alert(known, service, sample, state, now),
                        )
                    )
        return plan

    async def _state_backend(self) -> Any:
        """The manager's state backend, or None (a manager without one: inhibition stays local)."""
        start = getattr(self.manager, "start", None)
        if start is None:
            return None
        try:
            await start()  # idempotent: opens the stores on first use
            return getattr(self.manager, "state_backend", None)
        except Exception as exc:
            log.warning("inhibition is local only: %s", redact(f"{type(exc).__name__}: {exc}"))
            return None

    def _outranks(self, rule: AlertRule, other: AlertRule) -> bool:
        return other.metric_name == rule.metric_name and rule.priority > other.priority

    async def _share_inhibition(
        self, plan: list[tuple[str, AlertRule | None, str, _RuleState, Alert]]
    ) -> list[tuple[str, AlertRule | None, str, _RuleState, Alert]]:
        """Publish this bridge's inhibiting rules and apply those of the other instances.

        A failing state backend leaves inhibition as it is in this process.
        """
        store = await self._state_backend()
        if store is None:
            return plan
        rules = list(self.alert_rules.values())
        # First lift what stopped inhibiting, so that a lower rule may go out now.
        for (rule_name, _service), state in self._states.items():
            if state.inhibit_key is None:
                continue
            if state.firing and state.inhibited_by is None and rule_name in self.alert_rules:
                continue
            key, state.inhibit_key = state.inhibit_key, None
            try:
                if await store.get(key) == rule_name:
                    await store.release(key)
            except Exception as exc:
                log.warning("could not lift shared inhibition %s: %s", key, redact(str(exc)))
        remote: set[int] = set()
        for (rule_name, service), state in self._states.items():
            rule = self.alert_rules.get(rule_name)
            if rule is None or not state.firing or state.inhibited_by is not None:
                continue
            key = f"inhibit:{rule.metric_name}:{service}"
            try:
                if any(self._outranks(other, rule) for other in rules):
                    holder = self.alert_rules.get(str(await store.get(key)))
                    if holder is not None and self._outranks(holder, rule):
                        state.inhibited_by = holder.rule_name
                        remote.add(id(state))
                        continue
                if any(self._outranks(rule, other) for other in rules):
                    ttl = max(rule.cooldown_seconds, MIN_INHIBIT_TTL)
                    await store.put(key, rule.rule_name, ttl)
                    state.inhibit_key = key
            except Exception as exc:
                log.warning("shared inhibition %s unavailable: %s", key, redact(str(exc)))
        return [item for item in plan if not (item[0] == "firing" and id(item[3]) in remote)]

    def _rule_alert(
        self, rule: AlertRule, service: str, sample: MetricSample, state: _RuleState, now: float
    ) -> Alert:
        value = f"{_fmt(sample.value)}{sample.unit}"
        return Alert(
            title=f"{rule.rule_name} on {service}",
            message=(
                f"{rule.metric_name} is {value} on {service} "
                f"(rule {rule.rule_name}: {rule.describe()})"
            ),
            priority=rule.priority,
            metadata={
                "rule": rule.rule_name,
                "metric": rule.metric_name,
                "value": sample.value,
                "unit": sample.unit,
                "threshold": rule.threshold,
                "operator": rule.operator,
                "service": service,
                "metric_status": sample.status,
                "since": _iso(state.since if state.since is not None else now),
            },
            source="monitoring",
            key=f"monitoring:{rule.rule_name}:{service}",
            created_at=datetime.fromtimestamp(now, timezone.utc),
        )

    def _resolve_alert(
        self,
        rule: AlertRule | None,
        service: str,
        sample: MetricSample | None,
        state: _RuleState,
        now: float,
    ) -> Alert:
        assert state.alert is not None
        if rule is None:
            message = f"rule {state.alert.metadata.get('rule')} was removed"
        elif sample is None:
            message = f"{rule.metric_name} on {service} no longer breaches {rule.describe()}"
        else:
            message = (
                f"{rule.metric_name} is back to {_fmt(sample.value)}{sample.unit} on {service} "
                f"(rule {rule.rule_name}: {rule.describe()})"
            )
        metadata = dict(state.alert.metadata)
        if sample is not None:
            metadata["value"] = sample.value
        return attrs.evolve(
            state.alert.resolve(message),
            metadata=metadata,
            created_at=datetime.fromtimestamp(now, timezone.utc),
        )

    async def _send_planned(
        self, kind: str, rule: AlertRule | None, service: str, state: _RuleState, alert: Alert
    ) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "rule": alert.metadata.get("rule"),
            "service": service,
            "status": kind,
            "priority": alert.priority.name,
            "value": alert.metadata.get("value"),
            "id": alert.id,
        }
        cooldown = rule.cooldown_seconds if (kind == "firing" and rule is not None) else 0.0
        try:
            results = await self.manager.send_notification(alert, cooldown=cooldown)
        except Exception as exc:
            log.error(
                "monitoring: could not send %s alert %s: %s",
                kind,
                alert.key,
                redact(f"{type(exc).__name__}: {exc}"),
            )
            summary["error"] = type(exc).__name__
            return summary
        delivered = any(bool(r) for r in results.values())
        summary["results"] = {str(name): r.status.value for name, r in results.items()}
        if kind == "firing":
            state.last_sent = self.clock.now()
            state.alert = alert
            state.notified = state.notified or delivered
        else:
            state.resolve_pending = False
            state.notified = False
            state.alert = None
        return summary

    # ------------------------------------------------------------------
    # The monitoring loop
    # ------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while :meth:`start_monitoring_loop` runs."""
        return self._running

    async def start_monitoring_loop(
        self,
        check_interval: float = 60,
        *,
        collect: Callable[[MonitoringBridge], Awaitable[None] | None] | None = None,
        on_check: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> None:
        """Check the rules every ``check_interval`` seconds until :meth:`stop` is called.

        ``collect``, if given, is called before each check to record fresh
        metrics (``pixalert monitor`` samples the host there); ``on_check``
        gets what each check sent. An error in a check is logged and the
        loop goes on.
        """
        if isinstance(check_interval, bool) or not isinstance(check_interval, (int, float)):
            raise ValueError(f"check_interval: expected seconds > 0, got {check_interval!r}")
        if not check_interval > 0:
            raise ValueError(f"check_interval: expected seconds > 0, got {check_interval!r}")
        if self._running:
            raise RuntimeError("the monitoring loop is already running")
        self._running = True
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        try:
            while not self._stop_requested:
                try:
                    if collect is not None:
                        result = collect(self)
                        if inspect.isawaitable(result):
                            await result
                    sent = await self.check_alert_conditions()
                    if on_check is not None:
                        on_check(sent)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.error("monitoring check failed: %s", redact(f"{type(exc).__name__}: {exc}"))
                if self._stop_requested:
                    break
                await self._wait(check_interval)
        finally:
            self._running = False
            self._stop_requested = False
            self._stop_event = None
            self._loop = None

    async def _wait(self, seconds: float) -> None:
        assert self._stop_event is not None
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        stopper = asyncio.ensure_future(self._stop_event.wait())
        try:
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, stopper):
                if not task.done():
                    task.cancel()
            await asyncio.gather(sleeper, stopper, return_exceptions=True)

    def stop(self) -> None:
        """Stop the monitoring loop after its current check (safe from any thread).

        Called just before the loop starts, it makes the loop return at once.
        """
        self._stop_requested = True
        loop, event = self._loop, self._stop_event
        if loop is None or event is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            event.set()
        elif not loop.is_closed():
            loop.call_soon_threadsafe(event.set)

    async def aclose(self) -> None:
        """Stop the loop, stop observing the manager, and close it if the bridge made it."""
        self.stop()
        plugins = getattr(self.manager, "plugins", None)
        if self._observer_registered and plugins is not None:
            plugins.unregister(self._journal)
            self._observer_registered = False
        if self._owns_manager:
            await self.manager.aclose()

    async def __aenter__(self) -> MonitoringBridge:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------
    # External alerts
    # ------------------------------------------------------------------

    def parse_external_alerts(
        self, alert_data: Any, *, max_alerts: int | None = None
    ) -> ExternalBatch:
        """Validate an external body and return its alerts without sending anything.

        Raises :class:`pixalert_monitoring.PayloadError` (a ``ValueError``)
        naming the expected formats.
        """
        return parse_external(
            alert_data,
            severities=self.severities,
            default_priority=self.default_priority,
            max_alerts=self.max_alerts if max_alerts is None else max_alerts,
            now=datetime.fromtimestamp(self.clock.now(), timezone.utc),
        )

    async def process_external_alerts(
        self, alert_data: Any, *, wait: bool = True, max_alerts: int | None = None
    ) -> dict[str, Any]:
        """Take an Alertmanager (v4), Grafana or plain ``{title, message, priority}`` body.

        The whole body is validated first: a bad one raises ``ValueError``
        naming the expected formats and nothing is sent. A notification
        already taken (same groupKey, fingerprint, status and startsAt, from
        a retry or an HA peer) is skipped as a duplicate. With ``wait=True``
        each alert is delivered before returning and the summary holds the
        per-channel results; with ``wait=False`` alerts are stored and
        delivered in the background (``manager.submit``). Returns a
        JSON-serialisable summary.
        """
        batch = self.parse_external_alerts(alert_data, max_alerts=max_alerts)
        entries: list[dict[str, Any]] = []
        fresh: list[tuple[ExternalAlert, dict[str, Any]]] = []
        taken: list[str] = []
        stored: set[str] = set()
        try:
            # Every dedup mark of the body in one step (one transaction where the backend allows).
            dedups = [item.dedup for item in batch.alerts if item.dedup is not None]
            first = iter(
                await self.manager.first_seen_many([f"ingest:{d}" for d in dedups], self.dedup_ttl)
                if dedups
                else ()
            )
            for item in batch.alerts:
                entry: dict[str, Any] = {
                    "id": item.alert.id,
                    "key": item.alert.key,
                    "title": item.alert.title,
                    "status": item.alert.status,
                    "priority": item.alert.priority.name,
                    "duplicate": False,
                }
                entries.append(entry)
                if item.dedup is not None:
                    if not next(first):
                        entry["duplicate"] = True
                        entry["id"] = None
                        continue
                    taken.append(item.dedup)
                fresh.append((item, entry))
            if wait:
                outcomes = await asyncio.gather(
                    *(self._send_external(item) for item, _ in fresh), return_exceptions=True
                )
                failure: BaseException | None = None
                for (item, entry), outcome in zip(fresh, outcomes, strict=True):
                    if isinstance(outcome, BaseException):
                        failure = failure or outcome
                        entry["error"] = type(outcome).__name__
                        continue
                    entry["results"] = outcome
                    if item.dedup is not None:
                        stored.add(item.dedup)
                if failure is not None:
                    raise failure
            elif fresh:
                # Stored together before the caller answers; delivered in the background.
                kept: Iterable[str] = ()
                try:
                    kept = await self.manager.submit_many(
                        [item.alert for item, _ in fresh],
                        cooldown=[_cooldown_for(item.alert) for item, _ in fresh],
                    )
                except SubmitError as exc:
                    kept = exc.stored  # a store without batches may keep some
                    raise
                finally:
                    ids = set(kept)
                    stored.update(
                        item.dedup
                        for item, _ in fresh
                        if item.dedup is not None and item.alert.id in ids
                    )
        except BaseException:
            # What was not stored must be taken when Alertmanager delivers it again.
            await self._forget(d for d in taken if d not in stored)
            raise
        return {
            "format": batch.format,
            "received": len(batch.alerts),
            "accepted": len(fresh),
            "duplicates": len(batch.alerts) - len(fresh),
            **(
                {"truncated_alerts": batch.info["truncated_alerts"]}
                if batch.info.get("truncated_alerts")
                else {}
            ),
            "alerts": entries,
        }

    async def _send_external(self, item: ExternalAlert) -> dict[str, str]:
        results = await self.manager.send_notification(
            item.alert, cooldown=_cooldown_for(item.alert)
        )
        return {str(name): r.status.value for name, r in results.items()}

    async def _forget(self, dedups: Iterable[str]) -> None:
        for dedup in dedups:
            key = f"ingest:{dedup}"
            try:
                await self.manager.forget_seen(key)
            except Exception as exc:
                log.warning("could not forget ingestion key: %s", redact(str(exc)))

    # ------------------------------------------------------------------
    # History and health
    # ------------------------------------------------------------------

    async def aget_alert_history(self, hours: float = 24) -> list[dict[str, Any]]:
        """Alerts of the last ``hours`` from the manager's history, newest first."""
        _check_hours(hours)
        return list(await self.manager.history(hours))

    def get_alert_history(self, hours: float = 24) -> list[dict[str, Any]]:
        """Alerts of the last ``hours``, newest first (for code that is not async).

        Outside an event loop it reads the manager's history. Inside a running
        loop, where it cannot wait for the store, it answers from what this
        process saw delivered; ``await aget_alert_history()`` there instead.
        """
        _check_hours(hours)
        if _in_running_loop():
            return self._journal.since(self.clock.now() - hours * 3600)[::-1]
        history: list[dict[str, Any]] = self._run_sync(self.aget_alert_history(hours))
        return history

    def _run_sync(self, coro: Any) -> Any:
        run_sync = getattr(self.manager, "run_sync", None)
        if run_sync is not None:
            return run_sync(coro)
        return _run_in_thread(coro)  # pragma: no cover - a manager without run_sync

    async def _refresh_health(self) -> dict[str, Any] | None:
        try:
            self._health_cache = dict(await self.manager.health())
        except Exception as exc:
            log.warning("could not read channel health: %s", redact(str(exc)))
        return self._health_cache

    async def aget_system_health_summary(self) -> dict[str, Any]:
        """:meth:`get_system_health_summary` for async code, always fresh."""
        health = await self._refresh_health()
        history = await self.manager.history(24, limit=None)
        return self._summary(health, history)

    def get_system_health_summary(self) -> dict[str, Any]:
        """A JSON-serialisable summary: services, firing rules, channels, alert counts (24 h).

        Inside a running event loop, channel health is the last one read
        (refreshed by every check) and alert counts come from what this
        process saw; ``await aget_system_health_summary()`` there for fresh data.
        """
        if _in_running_loop():
            seen = self._journal.since(self.clock.now() - 24 * 3600)
            return self._summary(self._health_cache, seen)
        return self._run_sync(self.aget_system_health_summary())  # type: ignore[no-any-return]

    def firing_rules(self) -> list[dict[str, Any]]:
        """The rules breached now, per service (inhibited ones say by which rule)."""
        out = []
        for (rule_name, service), state in sorted(self._states.items()):
            if not state.firing:
                continue
            rule = self.alert_rules.get(rule_name)
            out.append(
                {
                    "rule": rule_name,
                    "service": service,
                    "metric": rule.metric_name if rule else None,
                    "value": state.value,
                    "operator": rule.operator if rule else None,
                    "threshold": rule.threshold if rule else None,
                    "priority": rule.priority.name if rule else None,
                    "since": _iso(state.since) if state.since is not None else None,
                    "notified": state.notified,
                    "inhibited_by": state.inhibited_by,
                }
            )
        return out

    def _summary(
        self, health: Mapping[str, Any] | None, history: Iterable[Mapping[str, Any]]
    ) -> dict[str, Any]:
        firing = self.firing_rules()
        services: dict[str, Any] = {}
        for service, samples in sorted(self.metrics.items()):
            mine = [f for f in firing if f["service"] == service]
            services[service] = {
                "status": _service_status(samples, mine),
                "metrics": {name: s.to_dict() for name, s in sorted(samples.items())},
                "firing_rules": [f["rule"] for f in mine],
            }
        counts: dict[str, Any] = {
            "total": 0,
            "firing": 0,
            "resolved": 0,
            "by_priority": {p.name: 0 for p in Priority},
            "by_source": {},
        }
        for entry in history:
            counts["total"] += 1
            status = entry.get("status")
            if status in ("firing", "resolved"):
                counts[status] += 1
            priority = str(entry.get("priority"))
            counts["by_priority"][priority] = counts["by_priority"].get(priority, 0) + 1
            source = str(entry.get("source"))
            counts["by_source"][source] = counts["by_source"].get(source, 0) + 1
        worst = "ok"
        for info in services.values():
            worst = _worse(worst, info["status"])
        return {
            "status": worst,
            "generated_at": _iso(self.clock.now()),
            "services": services,
            "firing_rules": firing,
            "rules": len(self.alert_rules),
            "notification_system": {
                "status": (health or {}).get("status", "unknown"),
                "channels": dict((health or {}).get("channels", {})),
            },
            "alerts_last_24h": counts,
        }


_SEVERITY_ORDER = {"ok": 0, "unknown": 1, "warning": 2, "critical": 3}


def _worse(a: str, b: str) -> str:
    return a if _SEVERITY_ORDER.get(a, 2) >= _SEVERITY_ORDER.get(b, 2) else b


def _service_status(samples: Mapping[str, MetricSample], firing: list[dict[str, Any]]) -> str:
    status = "ok"
    for rule in firing:
        level = "critical" if rule["priority"] in ("HIGH", "CRITICAL") else "warning"
        status = _worse(status, level)
    for sample in samples.values():
        value = sample.status.lower()
        if value != "ok":
            status = _worse(status, value if value in _SEVERITY_ORDER else "warning")
    return status


def _cooldown_for(alert: Alert) -> float | None:
    # A resolve must always follow its firing alert; cooldown is for repeats of firing.
    return 0.0 if alert.resolved else None


def _check_hours(hours: float) -> None:
    if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not hours > 0:
        raise ValueError(f"hours: expected a number > 0, got {hours!r}")


def _in_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _run_in_thread(coro: Any) -> Any:  # pragma: no cover - fallback only
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]
