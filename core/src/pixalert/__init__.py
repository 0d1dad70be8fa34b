"""pixalert: alert notification framework for Python.

This module holds what an application needs: :class:`NotificationManager`,
the alert and result types, the errors, and :class:`SecretFilter` for the
application's own log handlers. Plugin authors find the rest in
one module per audience:

- :mod:`pixalert.channels`: writing a channel (``ChannelSpec``, ``Channel``...);
- :mod:`pixalert.storage`: writing a history store or state backend;
- :mod:`pixalert.plugins`: hosting plugins (the plugin manager, load problems);
- :mod:`pixalert.testing`: testing any of them;
- :mod:`pixalert.hookspecs`: every hook, and the ``hookimpl`` marker.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from ._durations import parse_time
from ._errors import (
    AlertNotFound,
    ConfigError,
    DeliveryError,
    HeartbeatNotFound,
    PixalertError,
    PluginError,
    StoreUnavailable,
    SubmitError,
)
from ._redact import SecretFilter
from ._silences import Silence
from ._types import (
    Alert,
    ChannelName,
    DeliveryResult,
    DeliveryStatus,
    NotificationChannel,
    NotificationMessage,
    NotificationPriority,
    Priority,
)
from .hookspecs import hookimpl

if TYPE_CHECKING:
    from ._config import Settings, load_settings
    from ._lifecycle import AckOutcome, ResolveOutcome
    from ._manager import NotificationManager
    from ._render import ChannelRender, RenderDecision, RenderResult

__version__ = "0.1.0"

__all__ = [
    "AckOutcome",
    "Alert",
    "AlertNotFound",
    "ChannelName",
    "ChannelRender",
    "ConfigError",
    "DeliveryError",
    "DeliveryResult",
    "DeliveryStatus",
    "HeartbeatNotFound",
    "NotificationChannel",
    "NotificationManager",
    "NotificationMessage",
    "NotificationPriority",
    "PixalertError",
    "PluginError",
    "Priority",
    "RenderDecision",
    "RenderResult",
    "ResolveOutcome",
    "SecretFilter",
    "Settings",
    "Silence",
    "StoreUnavailable",
    "SubmitError",
    "__version__",
    "hookimpl",
    "load_settings",
    "parse_time",
]

# Heavier parts (cattrs, the manager) load on first use, so that importing a
# plugin module, or running ``pixalert --help``, stays fast.
_LAZY = {
    "Settings": "._config",
    "load_settings": "._config",
    "NotificationManager": "._manager",
    "AckOutcome": "._lifecycle",
    "ResolveOutcome": "._lifecycle",
    "ChannelRender": "._render",
    "RenderDecision": "._render",
    "RenderResult": "._render",
}

# Names that lived here before each audience got its own module: still found,
# with a DeprecationWarning that says where they are now.
_MOVED = {
    "Channel": "pixalert.channels",
    "ChannelSpec": "pixalert.channels",
    "DemoSink": "pixalert.channels",
    "Receipt": "pixalert.channels",
    "RateLimiter": "pixalert.channels",
    "Secret": "pixalert.channels",
    "redact": "pixalert.channels",
    "register_secret": "pixalert.channels",
    "structure_config": "pixalert.channels",
    "Clock": "pixalert.storage",
    "SystemClock": "pixalert.storage",
    "HistoryEntry": "pixalert.storage",
    "HistoryStore": "pixalert.storage",
    "StateBackend": "pixalert.storage",
    "PluginManager": "pixalert.plugins",
    "get_plugin_manager": "pixalert.plugins",
    "hookspec": "pixalert.hookspecs",
}


def __getattr__(name: str) -> Any:
    import importlib

    module_name = _LAZY.get(name)
    if module_name is not None:
        value = getattr(importlib.import_module(module_name, __name__), name)
        globals()[name] = value
        return value
    home = _MOVED.get(name)
    if home is not None:
        warnings.warn(
            f"pixalert.{name} has moved: import it from {home}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(home), name)
    raise AttributeError(f"module 'pixalert' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
