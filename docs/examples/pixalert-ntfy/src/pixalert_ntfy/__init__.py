"""pixalert-ntfy: push notifications through an ntfy server (https://ntfy.sh or your own).

This module is imported by ``pixalert --help``: it holds only the hook
implementations, and they import the channel and the test server when called.
"""

from __future__ import annotations

from pixalert import hookimpl
from pixalert.channels import ChannelSpec, DemoSink

__version__ = "0.1.0"


@hookimpl
def pixalert_channels() -> list[ChannelSpec]:
    """Declare the ``ntfy`` channel type."""
    from ._channel import NtfyChannel, NtfyConfig

    return [
        ChannelSpec(
            name="ntfy",
            config_type=NtfyConfig,
            factory=NtfyChannel,
            env={"NTFY_SERVER": "server", "NTFY_TOPIC": "topic", "NTFY_TOKEN": "token"},
            description="ntfy push notifications",
        )
    ]


@hookimpl
def pixalert_demo_sinks() -> list[DemoSink]:
    """A local ntfy server for ``pixalert demo``."""
    from .testing import NtfyServer

    return [NtfyServer()]
