"""The NotificationManager: the front of pixalert, over a few parts with one job each.

- :class:`~pixalert._registry.ChannelRegistry`: the channels, their breakers and limits;
- :class:`~pixalert._suppression.Suppression` and :class:`~pixalert._silences.SilenceBook`;
- :class:`~pixalert._timeline.Timeline`: owner liveness, claims, sweeps of due work;
- :class:`~pixalert._pipeline.Pipeline`: route, record, suppress, deliver, settle;
- :class:`~pixalert._lifecycle.Lifecycle`: acknowledgements and resolves;
- :class:`~pixalert._escalation.Escalations`, :class:`~pixalert._heartbeats.Heartbeats`
  and :class:`~pixalert._selfwatch.SelfWatch`: timeline jobs of the alert's lifecycle;
- :class:`~pixalert._sync.SyncRunner`: the synchronous path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import sys
import uuid
from collections.abc import AsyncGenerator, Awaitable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from ._actions import ActionLinks, Interaction
from ._channels import Channel
from ._clock import Clock, SystemClock, to_datetime
from ._config import Settings, load_settings
from ._durations import parse_time
from ._errors import ConfigError
from ._escalation import KIND as ESCALATION_KIND
from ._escalation import Escalations
from ._heartbeats import KIND as HEARTBEAT_KIND
from ._heartbeats import HeartbeatPing, Heartbeats, Signal
from ._lifecycle import ACK_KIND, AckOutcome, Lifecycle, ResolveOutcome
from ._pipeline import Pipeline, Results
from ._plugins import PluginManager, default_plugin_manager
from ._redact import redact
from ._registry import ChannelRegistry
from ._render import RenderResult
from ._selfwatch import SelfWatch
from ._silences import Silence, SilenceBook
from ._storage import (
    HistoryQuery,
    HistoryStore,
    StateBackend,
    check_stats_by,
    stats_by_from_entries,
)
from ._suppression import Suppression
from ._sync import SyncRunner
from ._timeline import Timeline
from ._types import Alert, AlertStatus, ChannelName, Priority
from ._urls import mask_url

__all__ = ["NotificationManager"]

log = logging.getLogger("pixalert")

T = TypeVar("T")


class NotificationManager:
    """Sends alerts to channels by priority, with cooldown, retries and history.

    ``NotificationManager()`` reads the configuration the usual way (see
    :func:`pixalert.load_settings`): ``pixalert.toml`` or
    ``notification_config.json``, ``.env.notifications``, the environment.
    ``config`` adds explicit settings on top; ``channels`` adds ready channel
    instances (they win over configured ones of the same name).

    Every accepted alert is in the history store before any channel is tried,
    with one delivery per channel; a delivery that fails for a reason worth
    retrying waits on the timeline for its next attempt. While it runs, the
    manager sweeps for due work every ``delivery.recover_interval`` seconds,
    including work a process that died left (see :meth:`resume_pending`).

    Use it from one event loop (``async with NotificationManager() as m``), or
    from synchronous code through :meth:`send_alert_sync`.
    """

    def __init__(
        self,
        config: Mapping[str, Any] | None = None,
        *,
        channels: Iterable[Channel] | Mapping[str, Channel] | None = None,
        clock: Clock | None = None,
        plugin_manager: PluginManager | None = None,
        config_file: str | os.PathLike[str] | None = None,
        env_file: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        read_files: bool = True,
        history: HistoryStore | None = None,
        state: StateBackend | None = None,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.plugins = plugin_manager if plugin_manager is not None else default_plugin_manager()
        self.instance_id = uuid.uuid4().hex[:12]
        self.settings: Settings = load_settings(
            config,
            config_file=config_file,
            env_file=env_file,
            env=env,
            specs=self.plugins.channel_specs(),
            read_files=read_files,
        )
        self.registry = ChannelRegistry(self.settings, self.plugins, channels)
        self.registry.check_routes()
        #: The receiver's public address and the signed links (``[actions] public_url``).
        self.action_links: ActionLinks | None = None
        if self.settings.actions.public_url is not None:
            self.action_links = ActionLinks.from_config(self.settings.actions, self.clock)
            self.registry.bind_actions(self.action_links)
        self._history: HistoryStore | None = history
        self._state: StateBackend | None = state
        self._own_stores = (history is None, state is None)
        self.silences_book = SilenceBook(lambda: self.state_backend, self.clock)
        self.timeline = Timeline(
            lambda: self.history_store,
            self.clock,
            self.instance_id,
            self.settings.delivery,
            self._run_claims,
        )
        suppression = Suppression(
            self.settings, self.plugins, self.silences_book, lambda: self.state_backend
        )
        self.pipeline = Pipeline(
            settings=self.settings,
            plugins=self.plugins,
            registry=self.registry,
            suppression=suppression,
            timeline=self.timeline,
            store=lambda: self.history_store,
            clock=self.clock,
            state=lambda: self.state_backend,
        )
        self.lifecycle = Lifecycle(self)
        self.escalation_book = Escalations(self)
        self.heartbeat_book = Heartbeats(self)
        self.self_watch = SelfWatch(self)
        errors: list[str] = []
        for part in (self.escalation_book, self.heartbeat_book, self.self_watch):
            try:
                part.configure()
            except ConfigError as exc:
                errors.extend(exc.errors)
        if errors:
            raise ConfigError(errors)
        self.timeline.handlers[ESCALATION_KIND] = self.escalation_book.run
        self.timeline.handlers[HEARTBEAT_KIND] = self.heartbeat_book.run
        self.timeline.handlers[ACK_KIND] = self.lifecycle.run_ack_job
        self.timeline.tickers.append(self.self_watch.check)
        suppression.checks.append(self.heartbeat_book.suppress)
        self._home: asyncio.AbstractEventLoop | None = None
        self._started = False
        self._start_lock: asyncio.Lock | None = None
        self._lifetime: AsyncGenerator[None, None] | None = None
        self._abandoned = False
        self._closed = False
        self._sync: SyncRunner | None = None

    def __repr__(self) -> str:
        history = mask_url(self.settings.history)
        return f"<NotificationManager {self.instance_id} history={history!r}>"

    async def _run_claims(self, claims: Sequence[Any]) -> None:
        await self.pipeline.run_claims(claims)

    # ------------------------------------------------------------------
    # What the parts expose
    # ------------------------------------------------------------------

    @property
    def channels(self) -> dict[ChannelName, Channel]:
        """Configured channel instances by name."""
        return self.registry.channels

    @property
    def channel_types(self) -> dict[ChannelName, str]:
        """The channel type of each configured channel."""
        return {name: slot.type for name, slot in self.registry.slots.items()}

    @property
    def unavailable(self) -> dict[str, str]:
        """Channel sections whose plugin is not installed, with the reason."""
        return self.registry.unavailable

    @property
    def history_store(self) -> HistoryStore:
        """The history store (after :meth:`start`)."""
        if self._history is None:
            raise RuntimeError("NotificationManager.start() has not run yet")
        return self._history

    @property
    def state_backend(self) -> StateBackend:
        """The state backend (after :meth:`start`)."""
        if self._state is None:
            raise RuntimeError("NotificationManager.start() has not run yet")
        return self._state

    def route(self, alert: Alert) -> list[ChannelName]:
        """The channel names ``alert`` goes to: explicit channels, else the routing table."""
        return self.pipeline.route(alert)

    def known_channel(self, name: str) -> bool:
        """True if ``name`` is configured, has a config section, is an installed
        channel type, or is one of the channel names this project ships."""
        return self.registry.known(name)

    # ------------------------------------------------------------------
    # Life cycle
    # ------------------------------------------------------------------

    async def __aenter__(self) -> NotificationManager:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Open the stores, announce this manager on the timeline, and start sweeping
        for due work (done on first use; idempotent)."""
        loop = asyncio.get_running_loop()
        if self._started and self._home is not loop:
            self._rebind(loop)
        if self._started:
            return
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._started:
                return
            self._home = loop
            if self._history is None:
                self._history = self._open_history(self.settings.history)
            self.pipeline.noise.check_store(self._history)
            if self._state is None:
                self._state = self._open_state(self.settings.state_url)
            retention = timedelta(days=self.settings.retention_days)
            try:
                await self._history.purge(to_datetime(self.clock.now()) - retention)
            except Exception as exc:
                log.warning("history retention failed: %s", redact(str(exc)))
            await self.timeline.start()
            try:
                await self.heartbeat_book.ensure()
            except Exception as exc:
                log.warning("heartbeats: could not set their deadlines: %s", redact(str(exc)))
            # Close on loop shutdown even when the caller never calls aclose():
            # asyncio.run() finalises async generators before closing the loop.
            self._lifetime = self._lifetime_guard()
            await self._lifetime.__anext__()
            self._started = True

    def _rebind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start over on ``loop``: the loop this manager started on has ended.

        Code that makes a new event loop per call (a Flask view running
        ``asyncio.run``) gets fresh channel clients on each loop; the history,
        the cooldown state and the circuit breakers carry over, and the claims
        the old loop left unfinished are given back on the next start.
        """
        home = self._home
        if home is not None and not home.is_closed() and home.is_running():
            raise RuntimeError(
                "this NotificationManager is in use by an event loop in another thread; "
                "use one manager per event loop, or its synchronous methods"
            )
        log.debug("event loop changed: rebuilding channel clients")
        if self._lifetime is not None:
            # Finish the old guard without running its cleanup on a dead loop.
            self._abandoned = True
            with contextlib.suppress(StopIteration, RuntimeError):
                self._lifetime.aclose().send(None)
            self._abandoned = False
            self._lifetime = None
        http = sys.modules.get("pixalert.http")
        if http is not None and home is not None:
            http.release_loop(home)  # before the old channels are dropped
        self.registry.rebuild()
        own_history, own_state = self._own_stores
        if own_history and self._history is not None and self._history.loop_bound:
            self._history = None
        if own_state and self._state is not None and self._state.loop_bound:
            self._state = None
        self.timeline.rebind()
        self.silences_book.rebind()
        self._start_lock = None
        self._started = False
        self._closed = False
        self._home = loop

    async def _lifetime_guard(self) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            if not self._abandoned:
                await self._close_resources()

    def _open_history(self, url: str) -> HistoryStore:
        store = self.plugins.hook.pixalert_history_store(url=url, clock=self.clock)
        if store is None:
            raise ValueError(
                f"history: no installed plugin handles {url.split(':', 1)[0]}:// URLs "
                "(expected memory://, sqlite:///path, "
                "or a backend plugin such as pixalert-postgres)"
            )
        return store  # type: ignore[no-any-return]

    def _open_state(self, url: str) -> StateBackend:
        state = self.plugins.hook.pixalert_state_backend(url=url, clock=self.clock)
        if state is None and not self.settings.state:
            log.warning(
                "no plugin serves cooldown state at the history URL (%s://); keeping it in "
                "memory: set 'state' to share it between instances",
                url.split(":", 1)[0],
            )
            return self.plugins.hook.pixalert_state_backend(  # type: ignore[no-any-return]
                url="memory://", clock=self.clock
            )
        if state is None:
            raise ValueError(
                f"state: no installed plugin handles {url.split(':', 1)[0]}:// URLs "
                "(expected memory://, sqlite:///path, or a backend plugin such as pixalert-redis)"
            )
        return state  # type: ignore[no-any-return]

    async def drain(self) -> None:
        """Wait until the background work this manager started (deliveries of
        :meth:`submit`, a sweep under way) has finished."""
        await self.timeline.drain()

    async def aclose(self) -> None:
        """Finish background deliveries, give back unfinished claims, then close
        channels and stores. Safe to call twice."""
        if self._lifetime is not None:
            lifetime, self._lifetime = self._lifetime, None
            await lifetime.aclose()  # runs _close_resources
        else:
            await self._close_resources()
        if self._sync is not None:
            self._sync.stop()
            self._sync = None

    async def _close_resources(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._history is not None:
            await self.timeline.stop()
        await self.registry.aclose()
        for store in (self._history, self._state):
            if store is not None:
                try:
                    await store.aclose()
                except Exception as exc:
                    log.warning("store failed to close: %s", redact(str(exc)))

    # ------------------------------------------------------------------
    # Sending
    # ------------------------------------------------------------------

    async def send_alert(
        self,
        title: str,
        message: str = "",
        priority: Priority | str | int = Priority.MEDIUM,
        channels: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        source: str | None = None,
        key: str | None = None,
        status: AlertStatus = "firing",
        cooldown: float | None = None,
    ) -> Results:
        """Send an alert; return ``{channel name: DeliveryResult}``.

        ``channels`` overrides priority routing. ``key`` identifies the
        incident (default: derived from source and title). ``cooldown`` in
        seconds overrides the configured ``cooldown_minutes`` for this alert.
        A bad title, priority or channel raises ``ValueError`` naming it. A
        delivery still failing after its quick attempts comes back as
        ``retrying`` with ``next_attempt_at``: it stays on the timeline.
        """
        alert = self._make_alert(title, message, priority, channels, metadata, source, key, status)
        return await self.send_notification(alert, cooldown=cooldown)

    def _make_alert(
        self,
        title: str,
        message: str,
        priority: Priority | str | int,
        channels: Sequence[str] | None,
        metadata: Mapping[str, Any] | None,
        source: str | None,
        key: str | None,
        status: AlertStatus,
    ) -> Alert:
        kwargs: dict[str, Any] = {
            "title": title,
            "message": message,
            "priority": priority,
            "channels": channels,
            "metadata": metadata,
            "status": status,
            "created_at": to_datetime(self.clock.now()),
        }
        if source is not None:
            kwargs["source"] = source
        if key is not None:
            kwargs["key"] = key
        return Alert(**kwargs)

    async def send_notification(self, alert: Alert, *, cooldown: float | None = None) -> Results:
        """Send a ready :class:`Alert` (alias ``NotificationMessage``).

        An unknown channel name in ``alert.channels`` raises ``ValueError``
        before anything is stored; a known one that is not configured is
        ``skipped``.
        """
        if not isinstance(alert, Alert):
            raise TypeError(f"send_notification: expected an Alert, got {type(alert).__name__}")
        self.registry.check(alert)
        await self.start()
        results = await self.pipeline.send(alert, cooldown)
        await self.lifecycle.accepted([alert], [results])
        return results

    async def submit(self, alert: Alert, *, cooldown: float | None = None) -> str:
        """Store ``alert`` and deliver it in the background; return its id once stored.

        For receivers that must answer fast: the alert is durable when this
        returns, and :meth:`drain` waits for the deliveries.
        """
        return (await self.submit_many([alert], cooldown=cooldown))[0]

    async def submit_many(
        self,
        alerts: Sequence[Alert],
        *,
        cooldown: float | Sequence[float | None] | None = None,
    ) -> list[str]:
        """:meth:`submit` for several alerts at once: stored in one step, then delivered.

        The alerts are written together (one transaction where the store
        supports it) before this returns their ids. ``cooldown`` is one
        value for all, or one per alert. A bad channel in any alert raises
        ``ValueError`` before anything is stored; a store failure raises
        :class:`~pixalert.SubmitError`.
        """
        cooldowns = _per_item(cooldown, len(alerts), "cooldown")
        for alert in alerts:
            if not isinstance(alert, Alert):
                raise TypeError(f"submit_many: expected Alerts, got {type(alert).__name__}")
            self.registry.check(alert)
        await self.start()
        ids = await self.pipeline.submit_many(alerts, cooldowns)
        if self.escalation_book.policies:
            self.timeline.spawn(self.lifecycle.accepted(list(alerts), None))
        return ids

    async def resume_pending(self) -> int:
        """Run every delivery and job that is due now, including what a process that
        died left, until none is left; return how many were run.

        Running managers do this every ``delivery.recover_interval`` seconds on
        their own; call it from a short-lived process, or in tests after moving
        a fake clock.
        """
        await self.start()
        return await self.timeline.sweep()

    # ------------------------------------------------------------------
    # Previews
    # ------------------------------------------------------------------

    async def render(
        self,
        alert: Alert,
        *,
        channel: str | None = None,
        cooldown: float | None = None,
    ) -> RenderResult:
        """What would happen to ``alert``, without sending it or writing anything.

        Runs routing, suppression (silences, ``pixalert_suppress`` hooks,
        the cooldown: read, never taken) and noise control (time intervals,
        ``for``, grouping, occurrences, flapping: read only), and returns a
        :class:`~pixalert.RenderResult`: for each routed channel its
        :class:`~pixalert.ChannelRender` (the decision, and the
        :class:`~pixalert.channels.Preview` of what it would put on the wire,
        built by the channel's own ``render``). ``channel`` shows that channel
        only; ``cooldown`` is :meth:`send_alert`'s. The history gets no alert
        and no cooldown is taken; channels open no connection.
        Raises ``ValueError`` for a channel that is not known.
        """
        if not isinstance(alert, Alert):
            raise TypeError(f"render: expected an Alert, got {type(alert).__name__}")
        self.registry.check(alert)
        only = None
        if channel is not None:
            only = ChannelName(str(channel))
            if only not in self.registry.slots and not self.registry.known(only):
                raise ValueError(f"channel: {channel!r} is not a configured channel")
        self._open_stores()
        return await self.pipeline.render(alert, cooldown, only=only)

    def render_sync(
        self, alert: Alert, *, channel: str | None = None, cooldown: float | None = None
    ) -> RenderResult:
        """:meth:`render` for code that is not async."""
        return self.run_sync(self.render(alert, channel=channel, cooldown=cooldown))

    def _open_stores(self) -> None:
        """Open the history store and state backend for reading, without starting
        (no retention purge, no timeline, no heartbeat deadlines)."""
        if self._history is None:
            self._history = self._open_history(self.settings.history)
            self.pipeline.noise.check_store(self._history)
        if self._state is None:
            self._state = self._open_state(self.settings.state_url)

    # ------------------------------------------------------------------
    # Receiver idempotency
    # ------------------------------------------------------------------

    async def first_seen(self, key: str, ttl: float) -> bool:
        """True only the first time ``key`` is seen within ``ttl`` seconds, across
        every instance sharing the state backend (receiver idempotency)."""
        await self.start()
        return await self.state_backend.acquire(f"dedup:{key}", ttl)

    async def first_seen_many(self, keys: Sequence[str], ttl: float) -> list[bool]:
        """:meth:`first_seen` for each key, decided in one step where the backend allows."""
        await self.start()
        marks = [f"dedup:{key}" for key in keys]
        if len(marks) == 1:
            return [await self.state_backend.acquire(marks[0], ttl)]
        return await self.state_backend.acquire_many(marks, ttl)

    async def forget_seen(self, key: str) -> None:
        """Undo :meth:`first_seen` for ``key`` (the work it guarded could not be done)."""
        await self.start()
        await self.state_backend.release(f"dedup:{key}")

    # ------------------------------------------------------------------
    # Silences
    # ------------------------------------------------------------------

    async def silence(
        self,
        matchers: Mapping[str, str],
        *,
        duration: float,
        comment: str = "",
        created_by: str = "",
    ) -> Silence:
        """Suppress every alert matching all of ``matchers`` for ``duration`` seconds.

        ``matchers`` maps ``key``, ``source``, ``title``, ``priority``,
        ``status`` or ``metadata.<name>`` to a string, compared exactly or as a
        glob pattern (``{"source": "db-*", "priority": "low"}``). The silence
        is kept in the state backend, so every instance sharing it applies it
        (within a second). Raises ``ValueError`` naming a bad matcher or
        duration, and ``RuntimeError`` if the state backend could not store it.
        """
        await self.start()
        return await self.silences_book.add(matchers, duration, comment, created_by)

    async def silences(self) -> list[Silence]:
        """The silences in effect now, on every instance sharing the state; soonest end first."""
        await self.start()
        return await self.silences_book.active(fresh=True)

    async def unsilence(self, silence_id: str) -> bool:
        """End the silence ``silence_id`` now; False if no such silence is in effect."""
        await self.start()
        return await self.silences_book.remove(silence_id)

    # ------------------------------------------------------------------
    # Acknowledgement, escalation, heartbeats
    # ------------------------------------------------------------------

    async def ack(
        self,
        alert_id: str,
        *,
        by: str | None = None,
        note: str | None = None,
        via: str | None = "python",
    ) -> AckOutcome:
        """Acknowledge the incident of alert ``alert_id``: someone is on it.

        The history records who (``by``), when, through what (``via``) and
        ``note`` on that alert; the incident's escalation stops; channels
        that announced it and can show it are told (PagerDuty's
        ``acknowledge`` event, the Slack message updated in place). A second
        ack changes nothing (``changed`` is False and ``detail`` says who
        did it first). Raises :class:`~pixalert.AlertNotFound` for an unknown id.
        """
        await self.start()
        return await self.lifecycle.ack(alert_id, by=by, note=note, via=via)

    async def resolve(
        self,
        alert_id: str,
        *,
        by: str | None = None,
        note: str | None = None,
        via: str | None = "python",
    ) -> ResolveOutcome:
        """Resolve the incident of alert ``alert_id`` from here.

        Records who resolved it (``by``, ``via``, ``note``) and sends the
        alert's resolve through the normal pipeline (PagerDuty gets
        ``resolve``, Slack updates its message, cooldown applies); the
        escalation stops. Resolving a resolved incident changes nothing.
        Raises :class:`~pixalert.AlertNotFound` for an unknown id.
        """
        await self.start()
        return await self.lifecycle.resolve(alert_id, by=by, note=note, via=via)

    async def handle_interaction(
        self, channel: str, headers: Mapping[str, str], body: bytes
    ) -> Interaction | None:
        """Take a request that ``channel``'s service sent when someone clicked one of
        its buttons (the receiver's ``POST /<channel>/actions``).

        The channel verifies it (its ``interaction`` method; Slack checks the
        request's signature and age); what it asks for (ack or resolve) runs
        in the background, so the service gets its answer at once
        (:meth:`drain` waits for it). Returns the :class:`~pixalert.channels.Interaction`,
        or None when there is nothing to do. Raises ``LookupError`` if the
        channel takes no interactions, and
        :class:`~pixalert.channels.InteractionRejected` (with the HTTP status)
        for a request it refuses; nothing changes then.
        """
        slot = self.registry.slots.get(ChannelName(channel))
        handler = getattr(slot.channel, "interaction", None) if slot is not None else None
        if not callable(handler):
            raise LookupError(f"channel {channel!r} takes no interactions")
        await self.start()
        interaction: Interaction | None = await handler(headers, body)
        if interaction is not None:
            self.timeline.spawn(self.lifecycle.interact(str(channel), interaction))
        return interaction

    async def escalations(self, *, include_stopped: bool = False) -> list[dict[str, Any]]:
        """The escalations under way, soonest next step first, as JSON-safe dicts:
        ``key``, ``alert_id``, ``title``, ``policy``, ``step``/``steps``,
        ``round``/``rounds``, ``next_at``, ``channels`` (of the next step).
        ``include_stopped`` adds finished and acknowledged ones (``state``)."""
        await self.start()
        return await self.escalation_book.listing(include_stopped=include_stopped)

    def heartbeat(self, name: str) -> HeartbeatPing:
        """Heartbeat ``name`` (``[heartbeats.NAME]``), to ping or to wrap a job with::

            async with manager.heartbeat("backup"):   # or: with ...
                run_backup()                            # start, then success or fail

            @manager.heartbeat("nightly-report")
            def nightly_report(): ...

            await manager.heartbeat("backup").ping()

        Raises :class:`~pixalert.HeartbeatNotFound` if it is not configured.
        """
        return HeartbeatPing(self, name)

    async def heartbeat_ping(
        self,
        name: str,
        signal: Signal = "success",
        *,
        note: str | None = None,
        via: str | None = None,
    ) -> dict[str, Any]:
        """Record heartbeat ``name``'s ``success`` (a ping), ``start`` or ``fail``
        signal; return its state after it (as :meth:`heartbeats` lists it),
        with ``alert``: ``"raised"``, ``"resolved"`` or None. A ``fail`` raises
        the alert ``heartbeat:NAME`` at once; a success after a late or failed
        run resolves it."""
        await self.start()
        return await self.heartbeat_book.ping(name, signal, note=note, via=via)

    async def heartbeats(self) -> list[dict[str, Any]]:
        """Every configured heartbeat's state, by name, as JSON-safe dicts: ``name``,
        ``state`` (new, up, late, failed), ``running``, ``expected``, ``last_ping``,
        ``last_duration`` (seconds from start to success), ``next_deadline``..."""
        await self.start()
        return await self.heartbeat_book.listing()

    # ------------------------------------------------------------------
    # History and health
    # ------------------------------------------------------------------

    def _window(
        self,
        hours: float | None,
        since: datetime | str | None,
        until: datetime | str | None,
    ) -> tuple[datetime, datetime | None]:
        """``(since, until)`` of a history window, checked (see :meth:`history`)."""
        now = to_datetime(self.clock.now())
        end = None
        if until is not None:
            try:
                end = parse_time(until, now=now)
            except ValueError as exc:
                raise ValueError(f"until: {exc}") from None
        if since is not None and hours is not None:
            raise ValueError("since: give since or hours, not both")
        if since is not None:
            try:
                start = parse_time(since, now=now)
            except ValueError as exc:
                raise ValueError(f"since: {exc}") from None
        elif hours is not None:
            if (
                isinstance(hours, bool)
                or not isinstance(hours, (int, float))
                or not math.isfinite(hours)
                or hours <= 0
            ):
                raise ValueError(f"hours: expected a finite number > 0, got {hours!r}")
            start = now - timedelta(hours=hours)
        else:
            start = (end or now) - timedelta(hours=24)
        if end is not None and end <= start:
            raise ValueError(
                f"until: expected a time after since ({start.isoformat()}), got {end.isoformat()}"
            )
        return start, end

    async def history(
        self,
        hours: float | None = None,
        *,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        limit: int | None = 1000,
        priorities: Iterable[Priority | str | int] | None = None,
        status: str | None = None,
        channel: str | None = None,
        result: str | None = None,
        search: str | None = None,
        source: str | None = None,
        key: str | None = None,
    ) -> list[dict[str, Any]]:
        """Alerts of a window, newest first (at most ``limit``; None for all).

        The window: from ``since``, or ``hours`` back from now (not both), to
        ``until`` (exclusive; None: no end); with neither ``since`` nor
        ``hours``, the 24 hours before ``until`` (or now). ``since`` and
        ``until`` are datetimes or strings :func:`pixalert.parse_time` reads
        (``"2h"``: two hours ago; an ISO 8601 time, UTC when it has no offset).

        The other arguments filter (see :class:`pixalert.storage.HistoryQuery`):
        ``priorities``, ``status`` (firing, resolved, acknowledged), ``channel``,
        ``result`` (sent, failed, retrying, pending, held, suppressed, skipped),
        ``search`` (in the title or message), ``source``, ``key``. A bad value is
        a ``ValueError`` naming the argument.
        """
        start, end = self._window(hours, since, until)
        query = HistoryQuery(
            since=start,
            until=end,
            limit=limit,
            priorities=priorities,
            status=status,
            channel=channel,
            result=result,
            search=search,
            source=source,
            key=key,
        )
        await self.start()
        return [e.to_dict() for e in await self.history_store.entries(query)]

    async def get_alert(self, alert_id: str) -> dict[str, Any] | None:
        """One alert from the history by id, with its deliveries and events, or None."""
        await self.start()
        entry = await self.history_store.entry(alert_id)
        return entry.to_dict() if entry else None

    async def stats(
        self, hours: float | None = None, *, since: datetime | str | None = None
    ) -> dict[str, Any]:
        """Per-channel sent, failed, suppressed, skipped, retrying, success rate and
        latency percentiles (seconds) over the last ``hours`` (default 24), or
        from ``since`` (as in :meth:`history`) to now."""
        start, _ = self._window(hours, since, None)
        await self.start()
        return await self.history_store.stats(start)

    async def stats_by(
        self,
        by: str = "channel",
        hours: float | None = None,
        *,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
    ) -> dict[str, Any]:
        """Alert and delivery counts of a window grouped ``by`` ``"channel"``,
        ``"priority"``, ``"source"`` or ``"hour"`` (UTC), each group with sent,
        failed, suppressed, skipped, retrying, held, success rate and latency
        percentiles; the window as in :meth:`history`. The shape of
        :func:`pixalert.storage.build_stats_by`; ``ValueError`` for a bad argument.
        """
        check_stats_by(by)
        start, end = self._window(hours, since, until)
        await self.start()
        store = self.history_store
        if not callable(getattr(store, "stats_by", None)):  # a store older than stats_by
            found = await store.entries(HistoryQuery(since=start, until=end, limit=None))
            return stats_by_from_entries(start, end, by, found)
        return await store.stats_by(start, end, by)

    async def health(self) -> dict[str, Any]:
        """``{"status": "ok" | "degraded", "channels": ..., "history": ..., "state": ...}``."""
        await self.start()
        channels = self.registry.health(self.clock.now())
        history = dict(await self.history_store.health())
        state = dict(await self.state_backend.health())
        degraded = (
            any(c.get("circuit") in ("open", "unavailable") for c in channels.values())
            or history.get("status") != "ok"
            or state.get("status") != "ok"
            or bool(self.plugins.problems)
        )
        return {
            "status": "degraded" if degraded else "ok",
            "instance": self.instance_id,
            "channels": channels,
            "history": history,
            "state": state,
            "plugin_errors": [str(e) for e in self.plugins.problems],
        }

    # ------------------------------------------------------------------
    # The synchronous path
    # ------------------------------------------------------------------

    def run_sync(self, coro: Awaitable[T], timeout: float | None = None) -> T:
        """Run ``coro`` on this manager's private event loop thread and return its result.

        For Flask, Django and scripts: no event loop to manage. Do not call it
        from inside a running event loop; ``await`` the async method there.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            if asyncio.iscoroutine(coro):
                coro.close()
            raise RuntimeError(
                "send_alert_sync() was called inside a running event loop; "
                "use 'await manager.send_alert(...)' there"
            )
        if self._sync is None:
            self._sync = SyncRunner()
        return self._sync.run(coro, timeout)

    def send_alert_sync(
        self,
        title: str,
        message: str = "",
        priority: Priority | str | int = Priority.MEDIUM,
        channels: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Results:
        """:meth:`send_alert` for code that is not async (Flask, Django, scripts)."""
        return self.run_sync(
            self.send_alert(title, message, priority, channels, metadata, **kwargs)
        )

    def close_sync(self) -> None:
        """Close a manager used only through the synchronous path."""
        if self._sync is not None:
            runner, self._sync = self._sync, None
            runner.run(self.aclose(), None)
            runner.stop()


def _per_item(
    value: float | Sequence[float | None] | None, count: int, name: str
) -> list[float | None]:
    """One value per item: ``value`` repeated, or the sequence itself (of the right length)."""
    if value is None or isinstance(value, (int, float)):
        return [value] * count
    values = list(value)
    if len(values) != count:
        raise ValueError(f"{name}: expected one value or {count} values, got {len(values)}")
    return values
