"""Heartbeats (dead man's switches): jobs that must check in, on the timeline.

Each ``[heartbeats.NAME]`` has one :class:`~pixalert.storage.Job` of kind
``"heartbeat"`` (``ref`` = NAME) whose due time is the check's deadline and
whose payload is its state: ``new`` (never pinged), ``up``, ``late`` or
``failed``, the last ping, a run's start and the last run's duration. A ping
moves the deadline; a deadline that passes raises the alert
``heartbeat:NAME``; the next good ping resolves it. A ``fail`` signal raises
it at once. Being a timeline row, a deadline survives restarts and is acted
on once across instances.

An alert that arrives and matches a heartbeat's ``match`` (Alertmanager's
always-firing ``Watchdog``) is that heartbeat's ping: it is recorded as
suppressed (with the reason), not delivered.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from ._clock import to_datetime
from ._durations import format_duration
from ._errors import ConfigError, HeartbeatNotFound
from ._lifecycle_config import HeartbeatConfig
from ._redact import redact
from ._storage import HistoryQuery, Job, JobClaim
from ._types import Alert

if TYPE_CHECKING:
    from ._manager import NotificationManager

__all__ = ["KIND", "SIGNALS", "HeartbeatPing", "Heartbeats", "alert_key"]

log = logging.getLogger("pixalert")

#: The job kind of heartbeat deadlines.
KIND = "heartbeat"
#: What a ping can say: the job ran well, it started, it failed.
SIGNALS = ("success", "start", "fail")

Signal = Literal["success", "start", "fail"]
F = TypeVar("F", bound=Callable[..., Any])

#: The longest note kept with a ping (the body of ``POST /heartbeat/NAME/fail``).
MAX_NOTE = 1000


def alert_key(name: str) -> str:
    """The key of heartbeat ``name``'s alert: ``heartbeat:NAME``."""
    return f"heartbeat:{name}"


def _iso(seconds: Any) -> str | None:
    return to_datetime(float(seconds)).isoformat() if seconds is not None else None


def _when(seconds: float) -> str:
    return to_datetime(seconds).strftime("%Y-%m-%d %H:%M:%S UTC")


def _clean_note(note: str | None) -> str | None:
    if note is None:
        return None
    text = " ".join(str(note).split())
    return text[:MAX_NOTE] or None


class Heartbeats:
    """The configured heartbeats of one manager: pings, deadlines, their state."""

    def __init__(self, manager: NotificationManager) -> None:
        self._m = manager
        self.config: dict[str, HeartbeatConfig] = dict(manager.settings.heartbeats)

    def configure(self) -> None:
        """``ConfigError`` naming every heartbeat channel that is not configured."""
        registry = self._m.registry
        source = self._m.settings.sources.get("heartbeats", "config")
        errors = []
        for name, cfg in self.config.items():
            for i, channel in enumerate(cfg.channels or ()):
                if channel not in registry.slots and channel not in registry.unavailable:
                    known = ", ".join(sorted({*registry.slots, *registry.unavailable})) or "none"
                    errors.append(
                        f"{source}: channel {channel!r} is not configured (configured: {known}) "
                        f"@ heartbeats.{name}.channels[{i}]"
                    )
        if errors:
            raise ConfigError(errors)

    def get(self, name: str) -> HeartbeatConfig:
        """The config of heartbeat ``name``; :class:`~pixalert.HeartbeatNotFound` if none."""
        cfg = self.config.get(name) if isinstance(name, str) else None
        if cfg is None:
            raise HeartbeatNotFound(str(name), sorted(self.config))
        return cfg

    # -- alerts that are pings ------------------------------------------------------

    def signal_names(self, alert: Alert) -> list[str]:
        """The heartbeats whose ``match`` ``alert`` satisfies."""
        return [
            name
            for name, cfg in self.config.items()
            if cfg.match and all(m.matches(alert) for m in cfg.match)
        ]

    def is_signal(self, alert: Alert) -> bool:
        """True if ``alert`` is a heartbeat's ping rather than an alert to deliver."""
        return bool(self.config) and bool(self.signal_names(alert))

    async def suppress(self, alert: Alert, *, record: bool = True) -> str | None:
        """The suppression reason of an alert that is a heartbeat's ping (after
        recording the ping, unless ``record`` is False: a preview), else None. A
        resolved one is no ping, and not sent either."""
        if not self.config:
            return None
        names = self.signal_names(alert)
        if not names:
            return None
        if alert.resolved:
            return f"heartbeat signal for {', '.join(names)}: resolved, so no ping"
        if not record:
            return f"heartbeat ping for {', '.join(names)}"
        for name in names:
            await self.ping(name, "success", via=alert.source or "alert")
        return f"heartbeat ping for {', '.join(names)}"

    # -- the jobs ---------------------------------------------------------------------

    async def _job(self, name: str) -> Job | None:
        for job in await self._m.history_store.jobs(KIND):
            if job.ref == name:
                return job
        return None

    async def ensure(self) -> None:
        """Give every configured heartbeat without a deadline its first one (counted
        from now: a check that never pings is late after one period and its grace)."""
        if not self.config:
            return
        now = self._m.clock.now()
        jobs = [
            Job(KIND, name, cfg.deadline(now), {"state": "new", "since": now})
            for name, cfg in self.config.items()
        ]
        await self._m.timeline.schedule(jobs, replace=False)
        # A deadline set under an older config (a longer period) moves up to this one's.
        moved = []
        for job in await self._m.history_store.jobs(KIND):
            cfg = self.config.get(job.ref)
            state = job.payload.get("state", "new")
            if cfg is None or state not in ("new", "up") or job.payload.get("started_at"):
                continue
            since = job.payload.get("last_ping", job.payload.get("since", now))
            due = cfg.deadline(float(since))
            if due < job.due - 1:
                moved.append(Job(KIND, job.ref, due, job.payload))
        if moved:
            await self._m.timeline.schedule(moved, replace=True)

    async def ping(
        self,
        name: str,
        signal: Signal = "success",
        *,
        note: str | None = None,
        via: str | None = None,
    ) -> dict[str, Any]:
        """Record a ``success``, ``start`` or ``fail`` signal of heartbeat ``name``;
        return its state after it (see :meth:`listing`), with ``alert``: ``"raised"``,
        ``"resolved"`` or None."""
        cfg = self.get(name)
        if signal not in SIGNALS:
            raise ValueError(f"signal: expected one of {', '.join(SIGNALS)}, got {signal!r}")
        note = _clean_note(note)
        now = self._m.clock.now()
        job = await self._job(name)
        payload: dict[str, Any] = dict(job.payload) if job else {"state": "new", "since": now}
        before = str(payload.get("state", "new"))
        overdue = job is not None and job.due <= now
        payload.update(last_signal=signal, last_signal_at=now, via=via)
        alert: str | None = None
        if signal == "start":
            payload["started_at"] = now
            if before not in ("late", "failed"):
                payload["state"] = "running"
            due = now + float(cfg.grace)
        elif signal == "success":
            started = payload.get("started_at")
            payload.update(
                state="up",
                last_ping=now,
                started_at=None,
                last_duration=round(now - float(started), 3) if started is not None else None,
                pings=int(payload.get("pings", 0)) + 1,
                note=note,
            )
            due = cfg.deadline(now)
        else:
            payload.update(state="failed", started_at=None, last_fail=now, note=note)
            due = cfg.deadline(now)
        await self._m.timeline.schedule([Job(KIND, name, due, payload)], replace=True)
        if signal == "success" and (before in ("late", "failed") or overdue):
            if await self._resolve_open(name, now):
                alert = "resolved"
        elif signal == "fail" and before != "failed":
            await self._m.send_notification(self._alert(name, cfg, payload, now, failed=True))
            alert = "raised"
        state = self._state(name, cfg, Job(KIND, name, due, payload), now)
        state["signal"] = signal
        state["alert"] = alert
        return state

    async def _resolve_open(self, name: str, now: float) -> bool:
        """Send the resolve of heartbeat ``name``'s alert if it is firing; True if sent."""
        key = alert_key(name)
        found = await self._m.history_store.entries(HistoryQuery(key=key, limit=5))
        if not found:
            return False
        newest = max(found, key=lambda e: (e.alert.created_at, e.alert.id)).alert
        if newest.resolved:
            return False
        message = f"{name} pinged again at {_when(now)}."
        await self._m.send_notification(
            Alert(
                title=newest.title,
                message=message,
                priority=newest.priority,
                channels=newest.channels,
                metadata=newest.metadata,
                source=newest.source,
                key=key,
                status="resolved",
                created_at=to_datetime(now),
            )
        )
        return True

    def _alert(
        self,
        name: str,
        cfg: HeartbeatConfig,
        payload: dict[str, Any],
        now: float,
        *,
        failed: bool,
    ) -> Alert:
        last = payload.get("last_ping")
        since = ""
        if last is not None:
            ago = format_duration(max(0, round(now - float(last))))
            since = f"The last good ping was at {_when(float(last))} ({ago} ago)."
        if failed:
            title = f"Heartbeat {name} failed"
            note = payload.get("note")
            message = f"{name} reported a failure at {_when(now)}" + (f": {note}" if note else ".")
            message += " " + (since or "It has not reported a success yet.")
        else:
            title = f"Heartbeat {name} is late"
            started = payload.get("started_at")
            if started is not None:
                message = (
                    f"{name} started at {_when(float(started))} and did not finish within its "
                    f"grace of {format_duration(cfg.grace)}."
                )
                if since:
                    message += " " + since
            elif last is not None:
                message = f"No ping from {name} since {_when(float(last))}"
                message += f" ({format_duration(max(0, round(now - float(last))))} ago);"
                message += f" expected {cfg.describe()}."
            else:
                watched = float(payload.get("since", now))
                message = (
                    f"{name} has not pinged since pixalert began watching it at "
                    f"{_when(watched)}; expected {cfg.describe()}."
                )
        return Alert(
            title=title,
            message=message,
            priority=cfg.priority,
            channels=cfg.channels,
            metadata={
                "heartbeat": name,
                "last_ping": _iso(last),
                "expected": cfg.describe(),
            },
            key=alert_key(name),
            created_at=to_datetime(now),
        )

    async def run(self, claim: JobClaim) -> tuple[float, dict[str, Any] | None] | None:
        """A deadline passed (the timeline handler): raise the alert, once."""
        name = claim.job.ref
        cfg = self.config.get(name)
        if cfg is None:
            return None  # no longer configured: forget it
        payload = dict(claim.job.payload)
        state = str(payload.get("state", "new"))
        now = self._m.clock.now()
        if state in ("late", "failed"):
            # Alerted already: look again at the next expected time.
            return cfg.deadline(max(now, claim.job.due)), None
        payload.update(state="late", late_since=now)
        await self._m.send_notification(self._alert(name, cfg, payload, now, failed=False))
        current = await self._job(name)
        if current is not None and current.payload.get("last_signal_at") != claim.job.payload.get(
            "last_signal_at"
        ):
            # A ping came in while the alert went out: it is not late any more.
            if current.payload.get("state") == "up":
                await self._resolve_open(name, now)
            return None
        return cfg.deadline(now), payload

    # -- state ----------------------------------------------------------------------

    def _state(
        self, name: str, cfg: HeartbeatConfig, job: Job | None, now: float
    ) -> dict[str, Any]:
        payload = job.payload if job else {}
        state = str(payload.get("state", "new"))
        if job is not None and job.due <= now and state in ("new", "up", "running"):
            state = "late"  # the deadline passed; the alert is on its way
        running = payload.get("started_at") is not None
        return {
            "name": name,
            "state": "up" if state == "running" else state,
            "running": running,
            "expected": cfg.describe(),
            "priority": cfg.priority.name,
            "channels": list(cfg.channels) if cfg.channels is not None else None,
            "last_ping": _iso(payload.get("last_ping")),
            "last_duration": payload.get("last_duration"),
            "last_signal": payload.get("last_signal"),
            "started_at": _iso(payload.get("started_at")),
            "next_deadline": (
                _iso(job.due) if job is not None and state not in ("late", "failed") else None
            ),
            "pings": int(payload.get("pings", 0)),
            "watched_since": _iso(payload.get("since")),
        }

    async def listing(self) -> list[dict[str, Any]]:
        """Every configured heartbeat's state, by name, as JSON-safe dicts."""
        jobs = {job.ref: job for job in await self._m.history_store.jobs(KIND)}
        now = self._m.clock.now()
        return [
            self._state(name, cfg, jobs.get(name), now) for name, cfg in sorted(self.config.items())
        ]


class HeartbeatPing:
    """``manager.heartbeat("NAME")``: ping heartbeat NAME, or wrap a job run with it.

    - ``await hb.ping()``, ``await hb.start()``, ``await hb.fail("why")`` (and
      ``ping_sync()``, ``start_sync()``, ``fail_sync()`` for code that is not async);
    - ``async with manager.heartbeat("backup"):`` and ``with ...:`` signal
      ``start`` on entry, and on exit ``success``, or ``fail`` with the
      exception if one was raised (the exception goes on);
    - ``@manager.heartbeat("backup")`` does the same around each call of a
      function, async or not.

    A ping that cannot be recorded from the context manager or the decorator
    is logged, never raised into the job (a missed ping is what a heartbeat
    detects). An unknown NAME raises :class:`~pixalert.HeartbeatNotFound` at once.
    """

    def __init__(self, manager: NotificationManager, name: str) -> None:
        manager.heartbeat_book.get(name)
        self._m = manager
        self.name = name

    def __repr__(self) -> str:
        return f"<HeartbeatPing {self.name!r}>"

    async def ping(self, note: str | None = None) -> dict[str, Any]:
        """Signal a success."""
        return await self._m.heartbeat_ping(self.name, "success", note=note, via="python")

    async def start(self, note: str | None = None) -> dict[str, Any]:
        """Signal that a run started (its duration is measured from here)."""
        return await self._m.heartbeat_ping(self.name, "start", note=note, via="python")

    async def fail(self, note: str | None = None) -> dict[str, Any]:
        """Signal a failure: the alert is raised at once."""
        return await self._m.heartbeat_ping(self.name, "fail", note=note, via="python")

    def ping_sync(self, note: str | None = None) -> dict[str, Any]:
        """:meth:`ping` for code that is not async."""
        return self._m.run_sync(self.ping(note))

    def start_sync(self, note: str | None = None) -> dict[str, Any]:
        """:meth:`start` for code that is not async."""
        return self._m.run_sync(self.start(note))

    def fail_sync(self, note: str | None = None) -> dict[str, Any]:
        """:meth:`fail` for code that is not async."""
        return self._m.run_sync(self.fail(note))

    async def _quietly(self, call: Awaitable[Any]) -> None:
        try:
            await call
        except Exception as exc:
            log.warning("heartbeat %s: signal not recorded: %s", self.name, redact(str(exc)))

    def _quietly_sync(self, call: Callable[[], Any]) -> None:
        try:
            call()
        except Exception as exc:
            log.warning("heartbeat %s: signal not recorded: %s", self.name, redact(str(exc)))

    async def __aenter__(self) -> HeartbeatPing:
        await self._quietly(self.start())
        return self

    async def __aexit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        if _succeeded(exc):
            await self._quietly(self.ping())
        else:
            await self._quietly(self.fail(_describe(exc)))

    def __enter__(self) -> HeartbeatPing:
        self._quietly_sync(self.start_sync)
        return self

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        if _succeeded(exc):
            self._quietly_sync(self.ping_sync)
        else:
            note = _describe(exc)
            self._quietly_sync(lambda: self.fail_sync(note))

    def __call__(self, func: F) -> F:
        """Wrap ``func`` (async or not) so that each call is a run of this heartbeat."""
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                async with self:
                    return await func(*args, **kwargs)

            return run_async  # type: ignore[return-value]

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            with self:
                return func(*args, **kwargs)

        return run  # type: ignore[return-value]


def _succeeded(exc: BaseException | None) -> bool:
    """True for no exception, or ``sys.exit(0)``."""
    return exc is None or (isinstance(exc, SystemExit) and exc.code in (0, None))


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return ""
    text = redact(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
