"""pixalert: alert notification framework for Python.

The whole public API is named here. Channel plugins import from this module
(and :mod:`pixalert.testing`, :mod:`pixalert.http`) only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._channels import Channel, ChannelSpec, DemoSink, Receipt
from ._clock import Clock, SystemClock
from ._ratelimit import RateLimiter
from ._redact import redact, register_secret
from ._silences import Silence
from ._storage import HistoryEntry, HistoryStore, Lease, StateBackend
from ._types import (
    Alert,
    ChannelName,
    DeliveryError,
    DeliveryResult,
    DeliveryStatus,
    NotificationChannel,
    NotificationMessage,
    NotificationPriority,
    Priority,
    Secret,
    SubmitError,
)
from .hookspecs import hookimpl, hookspec

if TYPE_CHECKING:
    from ._config import ConfigError, Settings, load_settings, structure_config
    from ._manager import NotificationManager
    from ._plugins import PluginError, PluginManager, get_plugin_manager

__version__ = "0.1.0"

__all__ = [
    "Alert",
    "Channel",
    "ChannelName",
    "ChannelSpec",
    "Clock",
    "ConfigError",
    "DeliveryError",
    "DemoSink",
    "DeliveryResult",
    "DeliveryStatus",
    "HistoryEntry",
    "HistoryStore",
    "Lease",
    "NotificationChannel",
    "NotificationManager",
    "NotificationMessage",
    "NotificationPriority",
    "PluginError",
    "PluginManager",
    "Priority",
    "RateLimiter",
    "Receipt",
    "Secret",
    "Settings",
    "Silence",
    "StateBackend",
    "SubmitError",
    "SystemClock",
    "__version__",
    "get_plugin_manager",
    "hookimpl",
    "hookspec",
    "load_settings",
    "redact",
    "register_secret",
    "structure_config",
]

# Heavier parts (cattrs, the manager) load on first use, so that importing a
# plugin module, or running ``pixalert --help``, stays fast.
_LAZY = {
    "ConfigError": "._config",
    "Settings": "._config",
    "load_settings": "._config",
    "structure_config": "._config",
    "NotificationManager": "._manager",
    "PluginError": "._plugins",
    "PluginManager": "._plugins",
    "get_plugin_manager": "._plugins",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'pixalert' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
