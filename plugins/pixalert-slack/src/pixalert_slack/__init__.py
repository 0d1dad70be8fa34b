"""pixalert-slack: the Slack channel for pixalert.

Posts alerts as Block Kit messages through an incoming webhook
(``SLACK_WEBHOOK_URL``) or the Web API's ``chat.postMessage`` with a bot token
(``SLACK_TOKEN`` and ``SLACK_CHANNEL``). This module stays light (``pixalert
--help`` imports it): the HTTP code is imported when a channel is built.

Public names: :class:`SlackConfig`, :class:`SlackChannel`,
:func:`build_message`, :func:`build_group_message`, :func:`escape`; the local test server is in
:mod:`pixalert_slack.testing`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pixalert import hookimpl
from pixalert.channels import Channel, ChannelSpec, DemoSink, SetupField

if TYPE_CHECKING:
    from ._blocks import build_group_message, build_message, escape
    from ._channel import SlackChannel
    from ._config import SlackConfig

__version__ = "0.1.0"

__all__ = [
    "ENV",
    "SlackChannel",
    "SlackConfig",
    "__version__",
    "build_group_message",
    "build_message",
    "escape",
    "pixalert_channels",
    "pixalert_demo_sinks",
]

# What ``pixalert init`` asks, in order; each variable fills its field too.
SETUP = (
    SetupField(
        "webhook_url",
        "Incoming webhook URL (https://hooks.slack.com/services/...)",
        env="SLACK_WEBHOOK_URL",
        secret=True,
    ),
    SetupField("channel", "Slack channel, e.g. #alerts (with a bot token)", env="SLACK_CHANNEL"),
    SetupField(
        "token", "Bot token xoxb-... (instead of a webhook)", env="SLACK_TOKEN", secret=True
    ),
    SetupField(
        "signing_secret",
        "Signing secret, for Acknowledge/Resolve buttons (optional)",
        env="SLACK_SIGNING_SECRET",
        secret=True,
    ),
)

ENV = {item.env: item.field for item in SETUP if item.env}
"""The environment variables this channel reads, and the config field each fills
(``SLACK_WEBHOOK_URL``, ``SLACK_TOKEN``, ``SLACK_CHANNEL``, ``SLACK_SIGNING_SECRET``).
Flat JSON config files use the same names lowercased (``slack_webhook_url``)."""

_LAZY = {
    "SlackChannel": "._channel",
    "SlackConfig": "._config",
    "build_message": "._blocks",
    "build_group_message": "._blocks",
    "escape": "._blocks",
}


def _factory(name: str, config: Any) -> Channel:
    from ._channel import SlackChannel

    return SlackChannel(name, config)


@hookimpl
def pixalert_channels() -> list[ChannelSpec]:
    """Declare the ``slack`` channel type."""
    from ._config import SlackConfig

    return [
        ChannelSpec(
            name="slack",
            config_type=SlackConfig,
            factory=_factory,
            description="Slack: incoming webhook or chat.postMessage (Block Kit)",
            title="Slack",
            setup=SETUP,
            check_prompt="Send a test message to Slack now?",
            markup="mrkdwn",
        )
    ]


@hookimpl
def pixalert_demo_sinks() -> list[DemoSink]:
    """A local Slack (webhook and Web API) for ``pixalert demo``."""
    from .testing import SlackServer

    return [SlackServer()]


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'pixalert_slack' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
