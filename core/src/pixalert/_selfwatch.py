"""pixalert watching itself: a channel that fails every delivery for a while is news.

After each sweep of the timeline, every channel's circuit breaker says how
long its current run of failures has lasted. One that has failed every
attempt for ``[self_watch] failing_for`` (and at least ``min_failures``
attempts in a row) raises an alert through the other channels, once (across
instances sharing the state backend), and resolves it when the channel
delivers again.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ._clock import to_datetime
from ._errors import ConfigError
from ._redact import redact
from ._storage import HistoryQuery
from ._types import Alert

if TYPE_CHECKING:
    from ._delivery import ChannelSlot
    from ._manager import NotificationManager

__all__ = ["SelfWatch", "alert_key", "human_duration"]

log = logging.getLogger("pixalert")

#: How long the marks that make the alert "once" are kept in the state backend.
MARK_TTL = 30 * 86400.0


def alert_key(channel: str) -> str:
    """The key of the alert about a failing channel."""
    return f"pixalert:channel-failing:{channel}"


def human_duration(seconds: float) -> str:
    """``600`` as ``"10 minutes"``, ``5400`` as ``"1 hour 30 minutes"``, ``45`` as
    ``"45 seconds"`` (the two largest units)."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    parts = []
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    for value, unit in ((days, "day"), (hours, "hour"), (minutes, "minute")):
        if value:
            parts.append(f"{value} {unit}{'s' if value != 1 else ''}")
    return " ".join(parts[:2])


def _when(seconds: float) -> str:
    return to_datetime(seconds).strftime("%Y-%m-%d %H:%M:%S UTC")


class SelfWatch:
    """Raises and resolves the alerts about this manager's failing channels."""

    def __init__(self, manager: NotificationManager) -> None:
        self._m = manager
        self.config = manager.settings.self_watch
        #: Channels this instance knows are reported as failing, with the alert id.
        self._raised: dict[str, str] = {}

    def configure(self) -> None:
        """``ConfigError`` naming a ``[self_watch] channels`` entry that is not configured."""
        registry = self._m.registry
        source = self._m.settings.sources.get("self_watch", "config")
        errors = []
        for i, channel in enumerate(self.config.channels or ()):
            if channel not in registry.slots and channel not in registry.unavailable:
                errors.append(
                    f"{source}: channel {channel!r} is not configured @ self_watch.channels[{i}]"
                )
        if errors:
            raise ConfigError(errors)

    async def check(self) -> None:
        """Look at every channel once (the timeline runs it after each sweep)."""
        cfg = self.config
        if not cfg.failing_for:
            return
        registry = self._m.registry
        now = self._m.clock.now()
        for name, slot in list(registry.slots.items()):
            if name in registry.derived:
                continue
            breaker = slot.breaker
            since = breaker.failing_since
            failing = (
                since is not None
                and breaker.failures >= cfg.min_failures
                and now - since >= float(cfg.failing_for)
            )
            if failing and name not in self._raised:
                await self._raise(str(name), slot, now)
            elif since is None and name in self._raised:
                await self._recover(str(name), now)

    async def _last_error(self, channel: str) -> str | None:
        for result in ("retrying", "failed"):
            try:
                found = await self._m.history_store.entries(
                    HistoryQuery(channel=channel, result=result, limit=1)
                )
            except Exception:
                return None
            for entry in found:
                for r in entry.results:
                    if str(r.channel) == channel and r.error:
                        return r.error
        return None

    async def _raise(self, name: str, slot: ChannelSlot, now: float) -> None:
        registry = self._m.registry
        targets = [
            str(c)
            for c in (self.config.channels or registry.slots)
            if str(c) != name and c not in registry.derived
        ]
        since = slot.breaker.failing_since or now
        span = human_duration(now - since)
        self._raised[name] = ""
        if not targets:
            log.error(
                "channel %s has failed every delivery for %s, and no other channel is there "
                "to say so",
                name,
                span,
            )
            return
        state = self._m.state_backend
        if not await state.acquire(f"self-watch:raise:{name}", MARK_TTL):
            return  # another instance raised it
        error = await self._last_error(name)
        message = (
            f"pixalert could not deliver to channel {name} ({slot.type}) since {_when(since)}: "
            f"{slot.breaker.failures} failed attempts in a row. Alerts routed there wait to be "
            "retried."
        )
        if error:
            message += f" Last error: {error}"
        alert = Alert(
            title=f"Channel {name} has failed every delivery for {span}",
            message=message,
            priority=self.config.priority,
            channels=targets,
            metadata={
                "channel": name,
                "channel_type": slot.type,
                "failing_since": to_datetime(since).isoformat(),
                "failed_attempts": slot.breaker.failures,
            },
            key=alert_key(name),
            created_at=to_datetime(now),
        )
        self._raised[name] = alert.id
        await state.put(f"self-watch:alert:{name}", alert.id, MARK_TTL)
        await self._m.send_notification(alert, cooldown=0)

    async def _recover(self, name: str, now: float) -> None:
        known = self._raised.pop(name)
        state = self._m.state_backend
        alert_id = await state.get(f"self-watch:alert:{name}") or known
        if not alert_id:
            return  # nothing was sent (no other channel)
        if not await state.acquire(f"self-watch:resolve:{name}:{alert_id}", MARK_TTL):
            return  # another instance resolved it
        await state.release(f"self-watch:raise:{name}")
        await state.put(f"self-watch:alert:{name}", "", 0)
        entry = await self._m.history_store.entry(alert_id)
        if entry is None:
            return
        raised = entry.alert
        try:
            await self._m.send_notification(
                Alert(
                    title=f"Channel {name} delivers again",
                    message=f"Channel {name} delivered again at {_when(now)}.",
                    priority=raised.priority,
                    channels=raised.channels,
                    metadata=raised.metadata,
                    key=raised.key,
                    status="resolved",
                    created_at=to_datetime(now),
                ),
                cooldown=0,
            )
        except Exception as exc:
            log.warning("could not resolve the alert about channel %s: %s", name, redact(str(exc)))
