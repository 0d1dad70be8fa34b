"""pixalert-apprise: every Apprise service as a pixalert channel.

The channel type ``apprise`` sends each alert through Apprise 2.x's
``Apprise.async_notify`` to every URL of its config (``discord://``,
``msteams://``, ``tgram://``, ``ntfy://``, ``mailto://``, ``json://`` and the
rest of Apprise's services), behind pixalert's routing, retries, grouping and
history. Apprise's own retries and pacing are turned off, failures become
:class:`pixalert.DeliveryError` (retryable or not, from what Apprise
reports), and secrets are masked in Apprise's log records too.

This module stays light (``pixalert --help`` loads it): Apprise is imported
only when an ``apprise`` channel is configured.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pixalert import hookimpl
from pixalert.channels import Channel, ChannelSpec, DemoSink, SetupField

if TYPE_CHECKING:
    from ._channel import AppriseChannel, classify
    from ._config import AppriseConfig
    from ._render import NOTIFY_TYPES, notify_type, render_body, render_title

__version__ = "0.1.0"

__all__ = [
    "ENV",
    "NOTIFY_TYPES",
    "AppriseChannel",
    "AppriseConfig",
    "__version__",
    "classify",
    "notify_type",
    "pixalert_channels",
    "pixalert_demo_sinks",
    "render_body",
    "render_title",
]

ENV = {"APPRISE_URLS": "urls", "APPRISE_CONFIG_PATH": "config"}
"""Apprise's own environment variables, and the config field each fills (for the
default channel, named ``apprise``)."""

SETUP = (
    SetupField(
        "urls",
        "Apprise URLs, comma-separated (or Enter to use a config file)",
        env="APPRISE_URLS",
        kind=list,
        secret=True,
    ),
    SetupField("config", "Apprise config file, YAML or TEXT (optional)", env="APPRISE_CONFIG_PATH"),
    SetupField("tags", "Tags of that file's services, comma-separated (optional)", kind=list),
)
"""The questions ``pixalert init`` asks to set up an Apprise channel."""

DESCRIPTION = (
    "Apprise: 100+ services by URL (discord://, msteams://, tgram://, matrix://, ntfy://, "
    "pover://, mailto://, json://, ...)"
)

_LAZY = {
    "AppriseChannel": "._channel",
    "classify": "._channel",
    "AppriseConfig": "._config",
    "NOTIFY_TYPES": "._render",
    "notify_type": "._render",
    "render_body": "._render",
    "render_title": "._render",
}


def _factory(name: str, config: Any) -> Channel:
    from ._channel import AppriseChannel

    return AppriseChannel(name, config)


@hookimpl
def pixalert_channels() -> Sequence[ChannelSpec]:
    """Declare the ``apprise`` channel type."""
    from ._config import AppriseConfig

    return [
        ChannelSpec(
            name="apprise",
            config_type=AppriseConfig,
            factory=_factory,
            env=ENV,
            description=DESCRIPTION,
            title="Apprise (about 150 services by URL)",
            setup=SETUP,
            check_prompt="Send a test notification through Apprise now?",
        )
    ]


@hookimpl
def pixalert_demo_sinks() -> Sequence[DemoSink]:
    """A local HTTP server taking Apprise's ``json://`` notifications, for ``pixalert demo``."""
    from .testing import AppriseSink

    return [AppriseSink()]


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'pixalert_apprise' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
