"""What a channel plugin author needs, in one module.

A channel plugin declares :class:`ChannelSpec` records from its
``pixalert_channels`` hook (marked with :data:`hookimpl`); each spec builds
:class:`Channel` objects whose ``send`` raises :class:`DeliveryError` on
failure; a channel that renders a :class:`Group` of alerts itself (one
message for many) adds ``send_group``. Mark secret config fields with
:class:`Secret` and durations with
:class:`Duration`, register secrets you derive with :func:`register_secret`,
and pace sends with :class:`RateLimiter`. :func:`structure_config` builds a
config class from a mapping with the same error messages the core gives.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._channels import Channel, ChannelSpec, DemoSink, Receipt
from ._clock import Clock, SystemClock
from ._durations import Duration
from ._errors import ConfigError, DeliveryError
from ._groups import Group
from ._ratelimit import RateLimiter
from ._redact import redact, register_secret
from ._types import Alert, Priority, Secret
from .hookspecs import hookimpl

if TYPE_CHECKING:
    from ._config import structure_config

__all__ = [
    "Alert",
    "Channel",
    "ChannelSpec",
    "Clock",
    "ConfigError",
    "DeliveryError",
    "DemoSink",
    "Duration",
    "Group",
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
