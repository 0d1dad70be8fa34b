"""What a channel plugin author needs, in one module.

A channel plugin declares :class:`ChannelSpec` records from its
``pixalert_channels`` hook (marked with :data:`hookimpl`); each spec builds
:class:`Channel` objects whose ``send`` raises :class:`DeliveryError` on
failure. Mark secret config fields with :class:`Secret` and durations with
:class:`Duration`, register secrets you derive with :func:`register_secret`,
and pace sends with :class:`RateLimiter`. :func:`structure_config` builds a
config class from a mapping with the same error messages the core gives.

A channel that can show an acknowledgement, or carry buttons and links to
act on an alert, uses :class:`AlertEvent`, :class:`ActionLinks` (with
:class:`AlertLinks`) and :class:`Interaction` / :class:`InteractionRejected`
(see the :class:`Channel` protocol's optional methods).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._actions import ActionLinks, AlertLinks, Interaction, InteractionRejected, LinkError
from ._channels import Channel, ChannelSpec, DemoSink, Receipt
from ._clock import Clock, SystemClock
from ._durations import Duration
from ._errors import ConfigError, DeliveryError
from ._ratelimit import RateLimiter
from ._redact import redact, register_secret
from ._storage import AlertEvent
from ._types import Alert, Priority, Secret
from .hookspecs import hookimpl

if TYPE_CHECKING:
    from ._config import structure_config

__all__ = [
    "ActionLinks",
    "Alert",
    "AlertEvent",
    "AlertLinks",
    "Channel",
    "ChannelSpec",
    "Clock",
    "ConfigError",
    "DeliveryError",
    "DemoSink",
    "Duration",
    "Interaction",
    "InteractionRejected",
    "LinkError",
    "Priority",
    "RateLimiter",
    "Receipt",
    "Secret",
    "SystemClock",
    "hookimpl",
    "redact",
    "register_secret",
    "structure_config",
]


def __getattr__(name: str) -> Any:
    # cattrs loads on first use, so importing a plugin module stays fast.
    if name == "structure_config":
        from ._config import structure_config

        globals()[name] = structure_config
        return structure_config
    raise AttributeError(f"module 'pixalert.channels' has no attribute {name!r}")
