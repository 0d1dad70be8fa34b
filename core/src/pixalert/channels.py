"""What a channel plugin author needs, in one module.

A channel plugin declares :class:`ChannelSpec` records from its
``pixalert_channels`` hook (marked with ``pixalert.hookimpl``); each spec
builds :class:`Channel` objects whose ``send`` raises
``pixalert.DeliveryError`` on failure; a channel that renders a
:class:`Group` of alerts itself (one message for many) adds ``send_group``.
(The alert types and the errors are the application's names, in
:mod:`pixalert`.) A spec's :class:`SetupField` records are the questions
``pixalert init`` asks, and its ``check`` (by default
:func:`send_test_alert`) tries a configured channel for real. Mark secret
config fields with :class:`Secret` and durations with :class:`Duration`,
register secrets you derive with :func:`register_secret`, and pace sends
with :class:`RateLimiter`. :func:`structure_config` builds a config class
from a mapping with the same error messages the core gives.

A channel that can show an acknowledgement, or carry buttons and links to
act on an alert, uses :class:`AlertEvent`, :class:`ActionLinks` (with
:class:`AlertLinks`) and :class:`Interaction` / :class:`InteractionRejected`
(see the :class:`Channel` protocol's optional methods).

A channel whose spec declares a ``markup`` (``"html"``, ``"mrkdwn"``) reads a
message template's body rendered for it with :func:`rendered_message` and
inserts it as it is; :func:`escape_mrkdwn` is Slack's escaping of untrusted text.

A channel shows what it would send, without sending, with an optional
``render(alert)`` (and ``render_group(group)``) returning a :class:`Preview`
(``pixalert render``); :func:`generic_preview` is what a channel without
one gets.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._channels import (
    Channel,
    ChannelSpec,
    DemoSink,
    Preview,
    Receipt,
    SetupField,
    generic_preview,
    send_test_alert,
)
from ._clock import Clock, SystemClock
from ._durations import Duration

# The application's names a channel module needs too (documented in pixalert):
# importable from here, not listed in __all__.
from ._errors import ConfigError as ConfigError
from ._errors import DeliveryError as DeliveryError
from ._ratelimit import RateLimiter
from ._redact import mask_loggers, redact, register_secret
from ._types import Alert as Alert
from ._types import Priority as Priority
from ._types import Secret
from ._urls import mask_secret_url
from .hookspecs import hookimpl as hookimpl

if TYPE_CHECKING:
    from ._actions import ActionLinks, AlertLinks, Interaction, InteractionRejected, LinkError
    from ._config import structure_config
    from ._groups import Group
    from ._storage import AlertEvent
    from ._templates import escape_mrkdwn, rendered_message

__all__ = [
    "ActionLinks",
    "AlertEvent",
    "AlertLinks",
    "Channel",
    "ChannelSpec",
    "Clock",
    "DemoSink",
    "Duration",
    "Group",
    "Interaction",
    "InteractionRejected",
    "LinkError",
    "Preview",
    "RateLimiter",
    "Receipt",
    "Secret",
    "SetupField",
    "SystemClock",
    "escape_mrkdwn",
    "generic_preview",
    "mask_loggers",
    "mask_secret_url",
    "redact",
    "register_secret",
    "rendered_message",
    "send_test_alert",
    "structure_config",
]


#: Names loaded on first use (they pull in routing, lifecycle and template
#: config, cattrs), so that importing a plugin module stays fast.
_LAZY = {
    "ActionLinks": "._actions",
    "AlertLinks": "._actions",
    "Interaction": "._actions",
    "InteractionRejected": "._actions",
    "LinkError": "._actions",
    "AlertEvent": "._storage",
    "Group": "._groups",
    "escape_mrkdwn": "._templates",
    "rendered_message": "._templates",
    "structure_config": "._config",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pixalert.channels' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__.rpartition(".")[0]), name)
    globals()[name] = value
    return value
