"""The NotificationManager: validate, store, suppress, route, deliver, record."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import os
import sys
import threading
import uuid
from collections.abc import (
    AsyncGenerator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Mapping,
    Sequence,
)
from datetime import timedelta
from typing import Any, TypeVar

from ._channels import Channel, ChannelSpec
from ._clock import Clock, SystemClock, to_datetime
from ._config import Settings, build_channel_configs, load_settings
from ._delivery import CircuitBreaker, deliver
from ._errors import SubmitError
from ._memory import MemoryHistoryStore, MemoryStateBackend
from ._plugins import PluginManager, default_plugin_manager
from ._redact import redact
from ._silences import SILENCE_PREFIX, Silence, check_duration, check_matchers
from ._storage import HistoryStore, Lease, StateBackend
from ._types import (
    Alert,
    AlertStatus,
    ChannelName,
    DeliveryResult,
    DeliveryStatus,
    NotificationChannel,
    Priority,
)

__all__ = ["NotificationManager"]

log = logging.getLogger("pixalert")

T = TypeVar("T")


class _Undecided:
    """The type of ``_UNDECIDED``: suppression not checked yet."""


_UNDECIDED = _Undecided()

#: Silences are read from the state backend at most this often (seconds) per manager.
SILENCE_REFRESH = 1.0

Results = dict[ChannelName, DeliveryResult]


async def await_me_maybe(value: Any) -> Any:
    """``value``, awaited first if it is awaitable (hook results may be either)."""
    if inspect.isawaitable(value):
        return await value
    return value


class NotificationManager:
    """Sends alerts to channels by priority, with cooldown, retries and history.

    ``NotificationManager()`` reads the configuration the usual way (see
    :func:`pixalert.load_settings`): ``pixalert.toml`` or
    ``notification_config.json``, ``.env.notifications``, the environment.
    ``config`` adds explicit settings on top; ``channels`` adds ready channel
    instances (they win over configured ones of the same name).

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
        specs = self.plugins.channel_specs()
        self.settings: Settings = load_settings(
            config,
            config_file=config_file,
            env_file=env_file,
            env=env,
            specs=specs,
            read_files=read_files,
        )
        configured, self.unavailable = build_channel_configs(self.settings, specs)
        self._configured = configured
        self.channels: dict[ChannelName, Channel] = {}
        self.channel_types: dict[ChannelName, str] = {}
        for name, (spec, channel_config) in configured.items():
            self.channels[ChannelName(name)] = _build(spec, name, channel_config)
            self.channel_types[ChannelName(name)] = spec.name
        for channel in _as_mapping(channels).values():
            self.channels[ChannelName(channel.name)] = channel
            self.channel_types.setdefault(ChannelName(channel.name), channel.name)
        delivery = self.settings.delivery
        self._breakers = {
            name: CircuitBreaker(delivery.circuit_failures, delivery.circuit_reset)
            for name in self.channels
        }
        self._limits: dict[ChannelName, asyncio.Semaphore] = {}
        self._history: HistoryStore | None = history
        self._state: StateBackend | None = state
        self._own_stores = (history is None, state is None)
        self._home: asyncio.AbstractEventLoop | None = None
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._abandoned = False
        self._started = False
        self._start_lock: asyncio.Lock | None = None
        self._inflight: set[Lease] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._lifetime: AsyncGenerator[None, None] | None = None
        self._closed = False
        self._sync: _SyncRunner | None = None
        self._silence_cache: list[Silence] | None = None
        self._silence_read_at = 0.0
        self._silence_lock: asyncio.Lock | None = None

    # ------------------------------------------------------------------
    # Life cycle
    # ------------------------------------------------------------------

    async def __aenter__(self) -> NotificationManager:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Open the history and state stores (done on first use; idempotent).

        Also delivers what a dead process left pending (claimed under a lease)
        and, with ``delivery.recover_interval``, keeps doing so periodically.
        """
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
            if self._state is None:
                self._state = self._open_state(self.settings.state_url)
            retention = timedelta(days=self.settings.retention_days)
            try:
                await self._history.purge(to_datetime(self.clock.now()) - retention)
            except Exception as exc:
                log.warning("history retention failed: %s", redact(str(exc)))
            # Close on loop shutdown even when the caller never calls aclose():
            # asyncio.run() finalises async generators before closing the loop.
            self._lifetime = self._lifetime_guard()
            await self._lifetime.__anext__()
            self._started = True
        await self._recover()
        if self.settings.delivery.recover_interval:
            self._schedule("recover", self.settings.delivery.recover_interval, self._recover)

    def _rebind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start over on ``loop``: the loop this manager started on has ended.

        Code that makes a new event loop per call (the seed's Flask example)
        gets fresh channel clients and locks on each loop; the history, the
        cooldown state and the circuit breakers carry over.
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
        for name, (spec, config) in self._configured.items():
            self.channels[ChannelName(name)] = _build(spec, name, config)
        own_history, own_state = self._own_stores
        if own_history and not isinstance(self._history, _loop_free_stores()):
            self._history = None
        if own_state and not isinstance(self._state, _loop_free_stores()):
            self._state = None
        self._limits = {}
        self._timers = {}
        self._tasks = set()
        self._inflight = set()  # their leases expire and recovery delivers them
        self._start_lock = None
        self._silence_lock = None
        self._started = False
        self._closed = False
        self._home = loop

    async def _lifetime_guard(self) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            if not self._abandoned:
                await self._close_resources()

    def _schedule(self, name: str, delay: float, job: Callable[[], Awaitable[Any]]) -> None:
        """Run ``job`` in ``delay`` seconds, then again every ``delay`` seconds.

        A timer, not a sleeping task: a loop that is closed with it pending
        drops it silently.
        """
        if name in self._timers or self._closed:
            return
        loop = asyncio.get_running_loop()

        def tick() -> None:
            self._timers.pop(name, None)
            if self._closed:
                return
            self._spawn(self._run_job(name, job))
            self._schedule(name, delay, job)

        self._timers[name] = loop.call_later(delay, tick)

    async def _run_job(self, name: str, job: Callable[[], Awaitable[Any]]) -> None:
        try:
            await job()
        except Exception as exc:
            log.warning("%s failed: %s", name, redact(str(exc)))

    async def _renew(self) -> None:
        if not self._inflight:
            self._cancel_timer("renew")
            return
        await self.history_store.renew(list(self._inflight), self.settings.delivery.lease)

    def _cancel_timer(self, name: str) -> None:
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer.cancel()

    async def _recover(self) -> None:
        """Claim alerts whose holder's lease ran out, and deliver them in the background."""
        try:
            leases = await self.history_store.claim_pending(
                owner=self.instance_id, lease=self.settings.delivery.lease
            )
        except Exception as exc:
            log.warning("could not look for pending alerts: %s", redact(str(exc)))
            return
        for lease in leases:
            self._spawn(self._process(lease, resume=True))

    def _open_history(self, url: str) -> HistoryStore:
        if url.startswith("memory:"):
            return MemoryHistoryStore(self.clock)
        if url.startswith("sqlite:"):
            from ._sqlite import SQLiteHistoryStore

            return SQLiteHistoryStore(url, self.clock)
        store = self.plugins.hook.pixalert_history_store(url=url, clock=self.clock)
        if store is None:
            raise ValueError(
                f"history: no installed plugin handles {url.split(':', 1)[0]}:// URLs "
                "(expected memory://, sqlite:///path, "
                "or a backend plugin such as pixalert-postgres)"
            )
        return store  # type: ignore[no-any-return]

    def _open_state(self, url: str) -> StateBackend:
        if url.startswith("memory:"):
            return MemoryStateBackend(self.clock)
        if url.startswith("sqlite:"):
            from ._sqlite import SQLiteStateBackend

            return SQLiteStateBackend(url, self.clock)
        state = self.plugins.hook.pixalert_state_backend(url=url, clock=self.clock)
        if state is None and not self.settings.state:
            log.warning(
                "no plugin serves cooldown state at the history URL (%s://); keeping it in "
                "memory: set 'state' to share it between instances",
                url.split(":", 1)[0],
            )
            return MemoryStateBackend(self.clock)
        if state is None:
            raise ValueError(
                f"state: no installed plugin handles {url.split(':', 1)[0]}:// URLs "
                "(expected memory://, sqlite:///path, or a backend plugin such as pixalert-redis)"
            )
        return state  # type: ignore[no-any-return]

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

    async def drain(self) -> None:
        """Wait until every delivery started by :meth:`submit` has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        """Finish background deliveries, then close channels and stores. Safe to call twice."""
        if self._lifetime is not None:
            lifetime, self._lifetime = self._lifetime, None
            await self.drain()
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
        for name in list(self._timers):
            self._cancel_timer(name)
        for task in list(self._tasks):
            task.cancel()
        for name, channel in self.channels.items():
            try:
                await channel.aclose()
            except Exception as exc:
                log.warning("channel %s failed to close: %s", name, redact(str(exc)))
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
        A bad title, priority or channel raises ``ValueError`` naming it.
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
        self._check_channels(alert)
        await self.start()
        store = self.history_store
        recording = store.record(alert, owner=self.instance_id, lease=self.settings.delivery.lease)
        if isinstance(store, MemoryHistoryStore):
            return await self._process(await recording, cooldown=cooldown)
        # A store with I/O: the record and the suppression check (a cooldown key in
        # the state backend) go out together, so their round trips overlap (with
        # SQLite they share one transaction). No channel is tried before both end.
        stored = asyncio.ensure_future(recording)
        try:
            reason = await self._suppressed(alert, cooldown)
        except BaseException:
            stored.add_done_callback(_ignore_outcome)  # left pending: recovery delivers it
            raise
        try:
            lease = await stored
        except BaseException:
            if reason is None:  # the cooldown taken for an alert that was not stored
                with contextlib.suppress(Exception):
                    await self.state_backend.release(self._cooldown_key(alert))
            raise
        return await self._process(lease, cooldown=cooldown, reason=reason)

    async def submit(self, alert: Alert, *, cooldown: float | None = None) -> str:
        """Store ``alert`` and deliver it in the background; return its id once stored.

        For receivers that must answer fast: the alert is durable when this
        returns, and :meth:`drain` waits for the deliveries.
        """
        self._check_channels(alert)
        await self.start()
        lease = await self.history_store.record(
            alert, owner=self.instance_id, lease=self.settings.delivery.lease
        )
        self._spawn(self._process(lease, cooldown=cooldown))
        return alert.id

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
        :class:`~pixalert.SubmitError`, whose ``stored`` lists the ids that
        were stored anyway (and are being delivered).
        """
        cooldowns = _per_item(cooldown, len(alerts), "cooldown")
        for alert in alerts:
            if not isinstance(alert, Alert):
                raise TypeError(f"submit_many: expected Alerts, got {type(alert).__name__}")
            self._check_channels(alert)
        await self.start()
        owner, lease = self.instance_id, self.settings.delivery.lease
        store = self.history_store
        record_many = getattr(store, "record_many", None)
        if record_many is not None and len(alerts) > 1:
            try:  # one transaction: all or none
                leases: list[Lease] = await record_many(alerts, owner=owner, lease=lease)
            except Exception as exc:
                raise SubmitError(f"could not store the alerts: {exc}") from exc
        else:
            leases = []
            for alert in alerts:
                try:
                    leases.append(await store.record(alert, owner=owner, lease=lease))
                except Exception as exc:
                    self._spawn_all(leases, cooldowns)
                    raise SubmitError(
                        f"could not store alert {len(leases) + 1} of {len(alerts)}: {exc}",
                        stored=[held.alert.id for held in leases],
                    ) from exc
        self._spawn_all(leases, cooldowns)
        return [alert.id for alert in alerts]

    def _spawn_all(self, leases: Sequence[Lease], cooldowns: Sequence[float | None]) -> None:
        for lease, ttl in zip(leases, cooldowns, strict=False):  # fewer leases on failure
            self._spawn(self._process(lease, cooldown=ttl))

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background delivery failed: %s", redact(repr(task.exception())))

    async def first_seen(self, key: str, ttl: float) -> bool:
        """True only the first time ``key`` is seen within ``ttl`` seconds, across
        every instance sharing the state backend (receiver idempotency)."""
        await self.start()
        return await self.state_backend.acquire(f"dedup:{key}", ttl)

    async def first_seen_many(self, keys: Sequence[str], ttl: float) -> list[bool]:
        """:meth:`first_seen` for each key, decided in one step where the backend allows."""
        await self.start()
        return await _acquire_many(self.state_backend, [f"dedup:{key}" for key in keys], ttl)

    async def forget_seen(self, key: str) -> None:
        """Undo :meth:`first_seen` for ``key`` (the work it guarded could not be done)."""
        await self.start()
        await self.state_backend.release(f"dedup:{key}")

    async def resume_pending(self) -> int:
        """Deliver alerts left pending by a process that died; return how many.

        Channels that already have a result for an alert are not tried again.
        Called on start and, with ``delivery.recover_interval``, periodically.
        """
        await self.start()
        count = 0
        while True:
            leases = await self.history_store.claim_pending(
                owner=self.instance_id, lease=self.settings.delivery.lease
            )
            if not leases:
                return count
            await asyncio.gather(*(self._process(lease, resume=True) for lease in leases))
            count += len(leases)

    async def _process(
        self,
        lease: Lease,
        *,
        cooldown: float | None = None,
        resume: bool = False,
        reason: str | _Undecided | None = _UNDECIDED,
    ) -> Results:
        alert = lease.alert
        store = self.history_store
        self._inflight.add(lease)
        self._schedule("renew", max(0.05, self.settings.delivery.lease / 3), self._renew)
        try:
            routed = self.route(alert)
            results: Results = {}
            done: dict[str, DeliveryResult] = {}
            if resume:
                done = {str(r.channel): r for r in await store.results_for(alert.id)}
            if isinstance(reason, _Undecided):
                reason = None if resume else await self._suppressed(alert, cooldown)
            cooldown_key = self._cooldown_key(alert)
            todo: list[ChannelName] = []
            for name in routed:
                previous_result = done.get(name)
                if (
                    previous_result is not None
                    and previous_result.status is not DeliveryStatus.FAILED
                ):
                    results[name] = previous_result
                elif reason is not None:
                    results[name] = DeliveryResult(name, DeliveryStatus.SUPPRESSED, 0, reason)
                elif name not in self.channels:
                    why = self.unavailable.get(name, "not configured")
                    results[name] = DeliveryResult(name, DeliveryStatus.SKIPPED, 0, why)
                else:
                    todo.append(name)
            if len(todo) == 1:  # no task per channel when there is one
                results[todo[0]] = await self._deliver(todo[0], alert)
            elif todo:
                sent = await asyncio.gather(*(self._deliver(name, alert) for name in todo))
                results.update(zip(todo, sent, strict=True))
            if todo and reason is None and not any(results[n] for n in todo) and cooldown_key:
                # Nothing went out: do not let the cooldown swallow the next try.
                await self.state_backend.release(cooldown_key)
            ordered = {name: results[name] for name in routed}
            if not await _finish(store, lease, list(ordered.values())):
                log.warning("alert %s: lease lost; another instance took over", alert.id)
        finally:
            self._inflight.discard(lease)
        await self._after_delivery(alert, ordered)
        return ordered

    def _cooldown_key(self, alert: Alert) -> str:
        # Priority is part of it: an escalation is news, not a repeat.
        return f"cooldown:{alert.key}:{alert.status}:{alert.priority.name}"

    async def _suppressed(self, alert: Alert, cooldown: float | None) -> str | None:
        # One plugin at a time: the first reason wins, and later hooks are not called.
        for impl in reversed(self.plugins.hook.pixalert_suppress.get_hookimpls()):
            try:
                reason = await await_me_maybe(impl.function(alert=alert))
            except Exception as exc:
                log.warning(
                    "pixalert_suppress hook of %s failed: %s", impl.plugin_name, redact(str(exc))
                )
                continue
            if reason:
                return str(reason)
        for silence in await self._live_silences():
            if silence.matches(alert):
                comment = f": {silence.comment}" if silence.comment else ""
                return f"silenced by {silence.id}{comment}"
        ttl = self.settings.cooldown_minutes * 60 if cooldown is None else cooldown
        if ttl > 0 and not await self.state_backend.acquire(self._cooldown_key(alert), ttl):
            return f"in cooldown (same key within {ttl:g}s)"
        return None

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
        fields = check_matchers(matchers)
        seconds = check_duration(duration, "silence duration")
        for name, text in (("comment", comment), ("created_by", created_by)):
            if not isinstance(text, str):
                raise ValueError(f"silence {name}: expected a string, got {type(text).__name__}")
        await self.start()
        now = self.clock.now()
        silence = Silence(
            id=uuid.uuid4().hex[:12],
            matchers=fields,
            starts_at=to_datetime(now),
            ends_at=to_datetime(now + seconds),
            comment=comment,
            created_by=created_by,
        )
        key = SILENCE_PREFIX + silence.id
        body = json.dumps(silence.to_dict(), separators=(",", ":"), ensure_ascii=False)
        await self.state_backend.put(key, body, seconds)
        if await self.state_backend.get(key) is None:
            raise RuntimeError(
                "silence: the state backend did not store it (is it reachable? see health())"
            )
        await self._refresh_silences(now)
        return silence

    async def silences(self) -> list[Silence]:
        """The silences in effect now, on every instance sharing the state; soonest end first."""
        await self.start()
        now = self.clock.now()
        await self._refresh_silences(now)
        return sorted(
            (s for s in self._silence_cache or () if s.active(now)), key=lambda s: s.ends_at
        )

    async def unsilence(self, silence_id: str) -> bool:
        """End the silence ``silence_id`` now; False if no such silence is in effect."""
        await self.start()
        key = SILENCE_PREFIX + str(silence_id)
        found = await self.state_backend.get(key) is not None
        if found:
            await self.state_backend.release(key)
        await self._refresh_silences(self.clock.now())
        return found

    async def _live_silences(self) -> list[Silence]:
        """The silences in effect, read from the backend at most once per SILENCE_REFRESH."""
        now = self.clock.now()
        if self._silence_cache is None or not 0 <= now - self._silence_read_at < SILENCE_REFRESH:
            if self._silence_lock is None:
                self._silence_lock = asyncio.Lock()
            async with self._silence_lock:  # one read for a burst, not one per alert
                if self._silence_cache is None or not (
                    0 <= now - self._silence_read_at < SILENCE_REFRESH
                ):
                    await self._refresh_silences(now)
        cache = self._silence_cache
        if not cache:
            return []
        return [s for s in cache if s.active(now)]

    async def _refresh_silences(self, now: float) -> None:
        try:
            raw = await self.state_backend.items(SILENCE_PREFIX)
        except Exception as exc:
            # Keep what was known: a backend hiccup must not stop deliveries.
            log.warning("could not read silences: %s", redact(str(exc)))
            if self._silence_cache is None:
                self._silence_cache = []
            self._silence_read_at = now
            return
        silences = []
        for key, body in raw.items():
            try:
                silences.append(Silence.from_dict(json.loads(body)))
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("ignoring unreadable silence %s: %s", key, redact(str(exc)))
        self._silence_cache = silences
        self._silence_read_at = now

    def route(self, alert: Alert) -> list[ChannelName]:
        """The channel names ``alert`` goes to: explicit channels, else the routing table."""
        if alert.channels is not None:
            names = [str(c) for c in alert.channels]
        else:
            names = []
            for name in self.settings.routing.for_priority(alert.priority):
                if name == "*":
                    names.extend(self.channels)
                    names.extend(self.unavailable)
                else:
                    names.append(name)
        try:
            changed = self.plugins.hook.pixalert_route(alert=alert, channels=list(names))
        except Exception as exc:
            log.warning("pixalert_route hook failed, routing unchanged: %s", redact(str(exc)))
            changed = None
        if changed is not None:
            names = [str(c) for c in changed]
        return [ChannelName(n) for n in dict.fromkeys(names)]

    def known_channel(self, name: str) -> bool:
        """True if ``name`` is configured, has a config section, is an installed
        channel type, or is one of the channel names this project ships."""
        return (
            name in self.channels
            or name in self.unavailable
            or name in self.plugins.channel_specs()
            or name in _SHIPPED
        )

    def _check_channels(self, alert: Alert) -> None:
        unknown = [str(c) for c in alert.channels or () if not self.known_channel(str(c))]
        if unknown:
            known = sorted({*self.channels, *self.plugins.channel_specs(), *_SHIPPED})
            raise ValueError(
                f"channels: unknown channel {unknown[0]!r}: expected one of {', '.join(known)}"
            )

    async def _deliver(self, name: ChannelName, alert: Alert) -> DeliveryResult:
        previous = None
        if alert.resolved:
            previous = await self.history_store.last_receipt(alert.key, name)
        limit = self._limits.get(name)
        if limit is None:
            limit = self._limits[name] = asyncio.Semaphore(self.settings.delivery.concurrency)
        return await deliver(
            name,
            self.channels[name],
            alert,
            previous=previous,
            config=self.settings.delivery,
            breaker=self._breakers.setdefault(
                name,
                CircuitBreaker(
                    self.settings.delivery.circuit_failures, self.settings.delivery.circuit_reset
                ),
            ),
            limit=limit,
            clock=self.clock,
        )

    async def _after_delivery(self, alert: Alert, results: Results) -> None:
        for impl in self.plugins.hook.pixalert_after_delivery.get_hookimpls():
            try:
                await await_me_maybe(impl.function(alert=alert, results=results))
            except Exception as exc:
                log.warning(
                    "pixalert_after_delivery hook of %s failed: %s",
                    impl.plugin_name,
                    redact(str(exc)),
                )

    # ------------------------------------------------------------------
    # History and health
    # ------------------------------------------------------------------

    async def history(self, hours: float = 24, *, limit: int | None = 1000) -> list[dict[str, Any]]:
        """Alerts of the last ``hours``, newest first (at most ``limit``; None for all)."""
        await self.start()
        since = to_datetime(self.clock.now()) - timedelta(hours=hours)
        return [e.to_dict() for e in await self.history_store.entries(since, limit=limit)]

    async def stats(self, hours: float = 24) -> dict[str, Any]:
        """Per-channel sent, failed, suppressed, skipped, success rate and latency
        percentiles (seconds) over the last ``hours``."""
        await self.start()
        since = to_datetime(self.clock.now()) - timedelta(hours=hours)
        return await self.history_store.stats(since)

    async def health(self) -> dict[str, Any]:
        """``{"status": "ok" | "degraded", "channels": ..., "history": ..., "state": ...}``."""
        await self.start()
        now = self.clock.now()
        channels: dict[str, Any] = {}
        for name in self.channels:
            breaker = self._breakers.get(name)
            info: dict[str, Any] = {"type": self.channel_types.get(name, str(name))}
            info.update(breaker.to_dict(now) if breaker else {"circuit": "closed"})
            channels[str(name)] = info
        for unavailable, reason in self.unavailable.items():
            channels[unavailable] = {"circuit": "unavailable", "reason": reason}
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
            if inspect.iscoroutine(coro):
                coro.close()
            raise RuntimeError(
                "send_alert_sync() was called inside a running event loop; "
                "use 'await manager.send_alert(...)' there"
            )
        if self._sync is None:
            self._sync = _SyncRunner()
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


class _SyncRunner:
    """An event loop in a daemon thread, kept for the manager's lifetime."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="pixalert-sync", daemon=True
        )
        self._thread.start()

    def run(self, coro: Awaitable[T], timeout: float | None) -> T:
        future = asyncio.run_coroutine_threadsafe(_wrap(coro), self.loop)
        return future.result(timeout)

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)
            self.loop.close()


async def _wrap(coro: Awaitable[T]) -> T:
    return await coro


async def _finish(store: HistoryStore, lease: Lease, results: list[DeliveryResult]) -> bool:
    """Record ``results`` and complete the alert: in one step when the store can."""
    finish = getattr(store, "finish", None)
    if finish is not None:
        return bool(await finish(lease, results))
    for result in results:
        if not await store.record_result(lease, result):
            return False
    return await store.complete(lease)


_SHIPPED = frozenset(c.value for c in NotificationChannel)


async def _acquire_many(backend: StateBackend, keys: Sequence[str], ttl: float) -> list[bool]:
    """Acquire keys with the backend's optional ``acquire_many``, else one by one."""
    many = getattr(backend, "acquire_many", None)
    if many is not None and len(keys) > 1:
        taken: list[bool] = await many(keys, ttl)
        return taken
    return [await backend.acquire(key, ttl) for key in keys]


def _ignore_outcome(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved, so asyncio does not log it as never retrieved


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


def _loop_free_stores() -> tuple[type, ...]:
    from ._sqlite import SQLiteHistoryStore, SQLiteStateBackend

    return (MemoryHistoryStore, MemoryStateBackend, SQLiteHistoryStore, SQLiteStateBackend)


def _as_mapping(channels: Iterable[Channel] | Mapping[str, Channel] | None) -> dict[str, Channel]:
    if channels is None:
        return {}
    if isinstance(channels, Mapping):
        return dict(channels)
    return {channel.name: channel for channel in channels}


def _build(spec: ChannelSpec, name: str, config: Any) -> Channel:
    try:
        return spec.factory(name, config)
    except ValueError:
        raise
    except Exception as exc:
        raise ValueError(
            redact(f"channels.{name}: the {spec.name} plugin could not build it: {exc}")
        ) from None
