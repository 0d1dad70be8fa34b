"""Suppression: whether an alert is kept from every channel, and why.

In order, the first reason wins: the core's own checks (an alert that is a
heartbeat's ping), the plugins' ``pixalert_suppress`` hooks
(inhibition lives there), the silences in effect, and the cooldown (the same
``key``, status and priority inside ``cooldown_minutes`` is not sent again).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ._config import Settings
from ._plugins import PluginManager
from ._redact import redact
from ._silences import SilenceBook
from ._storage import StateBackend
from ._types import Alert

__all__ = ["Suppression", "await_me_maybe"]

log = logging.getLogger("pixalert")


async def await_me_maybe(value: Any) -> Any:
    """``value``, awaited first if it is awaitable (hook results may be either)."""
    if inspect.isawaitable(value):
        return await value
    return value


class Suppression:
    """Decides, once per alert, whether it is suppressed on every channel."""

    def __init__(
        self,
        settings: Settings,
        plugins: PluginManager,
        silences: SilenceBook,
        state: Callable[[], StateBackend],
    ) -> None:
        self._settings = settings
        self._plugins = plugins
        self._silences = silences
        self._state = state
        #: The core's own checks, tried first: each returns a reason or None;
        #: called with ``record=False`` for a preview (it must then change nothing).
        self.checks: list[Callable[..., Awaitable[str | None]]] = []

    @staticmethod
    def cooldown_key(alert: Alert) -> str:
        """The state key of ``alert``'s cooldown (an escalation or a resolve is news)."""
        return f"cooldown:{alert.key}:{alert.status}:{alert.priority.name}"

    async def reason(
        self, alert: Alert, cooldown: float | None, *, dry: bool = False
    ) -> str | None:
        """Why ``alert`` is suppressed, or None to send it (taking its cooldown if any).

        ``cooldown`` (seconds) overrides ``cooldown_minutes`` for this alert.
        ``dry`` (a preview) only looks: no cooldown is taken, no ping recorded.
        """
        for check in self.checks:
            try:
                found = await (check(alert, record=False) if dry else check(alert))
            except Exception as exc:
                log.warning("suppression check failed: %s", redact(str(exc)))
                continue
            if found:
                return found
        # One plugin at a time: the first reason wins, and later hooks are not called.
        for impl in reversed(self._plugins.hook.pixalert_suppress.get_hookimpls()):
            try:
                reason = await await_me_maybe(impl.function(alert=alert))
            except Exception as exc:
                log.warning(
                    "pixalert_suppress hook of %s failed: %s", impl.plugin_name, redact(str(exc))
                )
                continue
            if reason:
                return str(reason)
        for silence in await self._silences.active():
            if silence.matches(alert):
                comment = f": {silence.comment}" if silence.comment else ""
                return f"silenced by {silence.id}{comment}"
        ttl = self._settings.cooldown_minutes * 60 if cooldown is None else cooldown
        if ttl <= 0:
            return None
        if dry:
            held = await self.cooling(alert)
        else:
            held = not await self._state().acquire(self.cooldown_key(alert), ttl)
        return f"in cooldown (same key within {ttl:g}s)" if held else None

    async def cooling(self, alert: Alert) -> bool:
        """True if ``alert``'s cooldown is taken now, read without taking it: the state
        backend's ``is_set`` where it has one, else whether ``get`` finds the key."""
        state = self._state()
        key = self.cooldown_key(alert)
        is_set = getattr(state, "is_set", None)
        if callable(is_set):
            return bool(await is_set(key))
        return await state.get(key) is not None

    async def give_back(self, alert: Alert) -> None:
        """Lift ``alert``'s cooldown: nothing went out, so the next try must not be swallowed."""
        await self._state().release(self.cooldown_key(alert))
