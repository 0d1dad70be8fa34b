"""pixalert-ntfy: push notifications through an ntfy server (https://ntfy.sh or your own).

This module is imported by ``pixalert --help``: it holds only the hook
implementations, and they import the channel and the test server when called.
"""

from __future__ import annotations

from pixalert import hookimpl
from pixalert.channels import ChannelSpec, DemoSink, SetupField

__version__ = "0.1.0"

# What ``pixalert init`` asks, in order. Each ``env`` variable also fills its
# field from the environment, and names the flag ``pixalert init --no-input``
# takes (``--ntfy-topic``).
SETUP = (
    SetupField(
        "topic",
        "Topic to publish to",
        env="NTFY_TOPIC",
        secret=True,
        required=True,
        help="Anyone who knows the topic can read the alerts: pick a long, random one.",
    ),
    SetupField("server", "ntfy server", env="NTFY_SERVER", default="https://ntfy.sh"),
    SetupField("token", "Access token, for a protected topic", env="NTFY_TOKEN", secret=True),
)


@hookimpl
def pixalert_channels() -> list[ChannelSpec]:
    """Declare the ``ntfy`` channel type."""
    from ._channel import NtfyChannel, NtfyConfig

    return [
        ChannelSpec(
            name="ntfy",
            config_type=NtfyConfig,
            factory=NtfyChannel,
            description="ntfy push notifications",
            title="ntfy",
            setup=SETUP,
            check_prompt="Publish a test alert to the topic now?",
        )
    ]


@hookimpl
def pixalert_demo_sinks() -> list[DemoSink]:
    """A local ntfy server for ``pixalert demo``."""
    from .testing import NtfyServer

    return [NtfyServer()]
