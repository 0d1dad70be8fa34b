"""pixalert-pagerduty: PagerDuty Events API v2 as a pixalert channel.

This module stays light (``pixalert --help`` imports it): only the hook
implementations live here, and they import the channel and the local test
server on first use.

- :class:`PagerDutyConfig` / :class:`PagerDutyChannel` (in ``_channel``) send
  ``trigger`` events for firing alerts and ``resolve`` events for resolved ones.
- :mod:`pixalert_pagerduty.testing` is a local, contract-enforcing Events API v2
  for tests and ``pixalert demo``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pixalert import hookimpl

if TYPE_CHECKING:
    from pixalert.channels import ChannelSpec, DemoSink

    from ._channel import PagerDutyChannel, PagerDutyConfig, channel_spec

__version__ = "0.1.0"

__all__ = [
    "PagerDutyChannel",
    "PagerDutyConfig",
    "__version__",
    "channel_spec",
    "pixalert_channels",
    "pixalert_demo_sinks",
]

_LAZY = ("PagerDutyChannel", "PagerDutyConfig", "channel_spec")


@hookimpl  # type: ignore[untyped-decorator,unused-ignore]
def pixalert_channels() -> Sequence[ChannelSpec]:
    """Declare the ``pagerduty`` channel type."""
    from ._channel import channel_spec

    return [channel_spec()]


@hookimpl  # type: ignore[untyped-decorator,unused-ignore]
def pixalert_demo_sinks() -> Sequence[DemoSink]:
    """Offer the local Events API v2 (:class:`pixalert_pagerduty.testing.PagerDutyServer`)."""
    from .testing import PagerDutyServer

    return [PagerDutyServer()]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import _channel

        return getattr(_channel, name)
    raise AttributeError(f"module 'pixalert_pagerduty' has no attribute {name!r}")
