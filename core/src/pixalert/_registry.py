"""The channels a manager can deliver to, each in its :class:`ChannelSlot`."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ._channels import Channel, ChannelSpec
from ._config import CORE_CHANNEL_KEYS, Settings, build_channel_configs, structure_config
from ._delivery import ChannelSlot
from ._errors import ConfigError
from ._plugins import PluginManager
from ._redact import redact
from ._types import Alert, ChannelName, NotificationChannel

__all__ = ["ChannelRegistry"]

log = logging.getLogger("pixalert")

_SHIPPED = frozenset(c.value for c in NotificationChannel)


class ChannelRegistry:
    """Configured channels (built by their plugins) and ready instances given directly.

    A channel section whose plugin is not installed is *unavailable* (kept with
    the reason); alerts routed to it are ``skipped``.
    """

    def __init__(
        self,
        settings: Settings,
        plugins: PluginManager,
        extra: Iterable[Channel] | Mapping[str, Channel] | None = None,
    ) -> None:
        self._settings = settings
        self._plugins = plugins
        self._configured, self.unavailable = build_channel_configs(
            settings, plugins.channel_specs()
        )
        self.slots: dict[ChannelName, ChannelSlot] = {}
        #: Channels made for an escalation step's ``recipients``: never part of ``"*"``.
        self.derived: dict[ChannelName, str] = {}
        #: Given to every channel with a ``use_actions`` method (see :meth:`bind_actions`).
        self.actions: Any = None
        for name, (spec, config) in self._configured.items():
            self.slots[ChannelName(name)] = self._slot(name, spec, _build(spec, name, config))
        for channel in _as_mapping(extra).values():
            name = ChannelName(channel.name)
            kind = self.slots[name].type if name in self.slots else channel.name
            self.slots[name] = ChannelSlot.build(name, kind, channel, settings.delivery)

    def check_routes(self) -> None:
        """``ConfigError`` naming every route that sends alerts to a channel with no
        config section (a typo would otherwise only show when an alert is skipped)."""
        errors = []
        for i, route in enumerate(self._settings.routes):
            for j, name in enumerate(route.channels or ()):
                if name != "*" and name not in self.slots and name not in self.unavailable:
                    where = self._settings.sources.get("routes", "config")
                    known = ", ".join(sorted({*self.slots, *self.unavailable})) or "none"
                    errors.append(
                        f"{where}: channel {name!r} is not configured (configured: {known}) "
                        f"@ routes[{i}].channels[{j}]"
                    )
        if errors:
            raise ConfigError(errors)

    def _slot(self, name: str, spec: ChannelSpec, channel: Channel) -> ChannelSlot:
        self._bind(channel)
        return ChannelSlot.build(name, spec.name, channel, self._settings.delivery)

    def _bind(self, channel: Channel) -> None:
        use = getattr(channel, "use_actions", None)
        if self.actions is not None and callable(use):
            try:
                use(self.actions)
            except Exception as exc:
                log.warning("channel %s: use_actions failed: %s", channel.name, redact(str(exc)))

    def bind_actions(self, actions: Any) -> None:
        """Give every channel that wants it (an optional ``use_actions(actions)``
        method) the :class:`pixalert.channels.ActionLinks`, now and when rebuilt."""
        self.actions = actions
        for slot in self.slots.values():
            self._bind(slot.channel)

    def derive(self, name: str, base: str, recipients: Sequence[str], where: str) -> bool:
        """Add channel ``name``: configured channel ``base`` sending to ``recipients``
        instead of its own (an escalation step's), through the field its plugin names
        as ``ChannelSpec.recipients_field``. False if ``base``'s type has none;
        ``ConfigError`` naming ``where`` for a bad value. A derived channel is never
        part of ``"*"``."""
        if ChannelName(name) in self.slots:
            return True
        found = self._configured.get(base)
        if found is None:
            return False
        spec, _ = found
        if spec.recipients_field is None:
            return False
        section = {
            k: v for k, v in self._settings.channels[base].items() if k not in CORE_CHANNEL_KEYS
        }
        section[spec.recipients_field] = list(recipients)
        config = structure_config(spec.config_type, section, path=where, source="config")
        self._configured[name] = (spec, config)
        self.slots[ChannelName(name)] = self._slot(name, spec, _build(spec, name, config))
        self.derived[ChannelName(name)] = base
        return True

    def spec_of(self, name: str) -> ChannelSpec | None:
        """The spec of configured channel ``name`` (None for one given as an object)."""
        found = self._configured.get(name)
        return None if found is None else found[0]

    def template_of(self, name: str) -> str | None:
        """The template channel ``name``'s table names (a derived channel: its base's)."""
        section = self._settings.channels.get(self.derived.get(ChannelName(name), name))
        value = None if section is None else section.get("template")
        return value if isinstance(value, str) else None

    def markup_of(self, name: str) -> str:
        """The markup channel ``name`` shows text in: its spec's, else ``"text"``."""
        spec = self.spec_of(name)
        return "text" if spec is None else spec.markup

    @property
    def channels(self) -> dict[ChannelName, Channel]:
        """Channel name to channel instance."""
        return {name: slot.channel for name, slot in self.slots.items()}

    def rebuild(self) -> None:
        """Build the configured channels again (their clients belonged to an event loop
        that has ended); breakers carry over, concurrency limits start afresh."""
        for name, (spec, config) in self._configured.items():
            slot = self.slots.get(ChannelName(name))
            if slot is not None:
                fresh = self._slot(name, spec, _build(spec, name, config))
                fresh.breaker = slot.breaker
                self.slots[ChannelName(name)] = fresh
        for slot in self.slots.values():
            slot.limit = None

    def expand(self, names: Iterable[str]) -> list[str]:
        """``names`` with ``"*"`` standing for every configured and unavailable channel."""
        out: list[str] = []
        for name in names:
            if name == "*":
                out.extend(n for n in self.slots if n not in self.derived)
                out.extend(self.unavailable)
            else:
                out.append(name)
        return out

    def known(self, name: str) -> bool:
        """True if ``name`` is configured, has a config section, is an installed
        channel type, or is one of the channel names this project ships."""
        return (
            name in self.slots
            or name in self.unavailable
            or name in self._plugins.channel_specs()
            or name in _SHIPPED
        )

    def check(self, alert: Alert) -> None:
        """``ValueError`` naming the first unknown channel in ``alert.channels``."""
        unknown = [str(c) for c in alert.channels or () if not self.known(str(c))]
        if unknown:
            known = sorted({*self.slots, *self._plugins.channel_specs(), *_SHIPPED})
            raise ValueError(
                f"channels: unknown channel {unknown[0]!r}: expected one of {', '.join(known)}"
            )

    def why_not(self, name: str) -> str:
        """Why ``name`` cannot be delivered to (it has no slot)."""
        return self.unavailable.get(name, "not configured")

    def health(self, now: float) -> dict[str, Any]:
        """Each channel's type and circuit, and the unavailable ones with their reason."""
        channels: dict[str, Any] = {}
        for name, slot in self.slots.items():
            info: dict[str, Any] = {"type": slot.type}
            info.update(slot.breaker.to_dict(now))
            channels[str(name)] = info
        for missing, reason in self.unavailable.items():
            channels[missing] = {"circuit": "unavailable", "reason": reason}
        return channels

    async def aclose(self) -> None:
        """Close every channel; a failure is logged, never raised."""
        for name, slot in self.slots.items():
            try:
                await slot.channel.aclose()
            except Exception as exc:
                log.warning("channel %s failed to close: %s", name, redact(str(exc)))


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
