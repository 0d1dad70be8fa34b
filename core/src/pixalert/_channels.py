"""What a channel plugin provides: a :class:`ChannelSpec` and :class:`Channel` objects."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import attrs

from ._types import Alert

__all__ = ["Channel", "ChannelSpec", "DemoSink", "Receipt"]

#: What a channel may return from ``send``: small string facts about the
#: delivery (a Slack message ``ts``, a PagerDuty ``dedup_key``). The core keeps
#: the receipt in history and hands it back as ``previous`` when the same
#: alert key is resolved, so a channel can update what it announced.
Receipt = Mapping[str, str]


@runtime_checkable
class Channel(Protocol):
    """A configured, ready-to-use channel instance.

    ``send`` raises :class:`pixalert.DeliveryError` on failure (saying whether
    a retry may help); any other exception counts as a retryable failure and
    its message is redacted. ``aclose`` releases connections and is safe to
    call twice. A channel may also have ``describe() -> str``: one line,
    without secrets, saying what it reaches (``"2 Apprise services: discord,
    mailto"``), which ``pixalert channels`` shows.

    With grouping on (``[grouping]``, a route's ``group_by``), alerts of one
    group go out as one notification. A channel may render it itself with
    ``async send_group(group, *, previous=None) -> Receipt | None``: ``group``
    is a :class:`pixalert.channels.Group` (its alerts sorted by priority, the
    new ones marked, its labels and reason), ``previous`` the receipt this
    channel returned for the group's last notification (to update that
    message in place). It raises :class:`pixalert.DeliveryError` as ``send``
    does, and keeps within the service's limits (an "and N more" line for
    what does not fit). A channel without ``send_group`` is sent the group's
    digest (:meth:`Group.digest`) through ``send``.
    """

    name: str

    async def send(self, alert: Alert, *, previous: Receipt | None = None) -> Receipt | None:
        """Deliver ``alert``; ``previous`` is the receipt of the last send of its key."""
        ...

    async def aclose(self) -> None:
        """Release any connection or pool this channel holds."""
        ...


@attrs.frozen
class ChannelSpec:
    """A channel type, as a plugin declares it from ``pixalert_channels()``.

    - ``name``: the type name (``"slack"``); also the default instance name.
    - ``config_type``: an attrs class for the channel's settings. Mark secret
      fields with the :class:`pixalert.channels.Secret` type so they never print.
    - ``factory``: builds a :class:`Channel` from ``(instance_name, config)``.
    - ``env``: environment variable name to config field, e.g.
      ``{"SLACK_WEBHOOK_URL": "webhook_url"}``. The seed's flat JSON keys are
      these names lowercased (``slack_webhook_url``).
    - ``aliases``: extra flat JSON keys, e.g. ``{"default_recipients": "recipients"}``.
    - ``description``: one line for ``pixalert plugins``.
    """

    name: str
    config_type: type[Any]
    factory: Callable[[str, Any], Channel]
    env: Mapping[str, str] = attrs.field(factory=dict)
    aliases: Mapping[str, str] = attrs.field(factory=dict)
    description: str = ""


@runtime_checkable
class DemoSink(Protocol):
    """A local stand-in for a channel's service, for ``pixalert demo``.

    A plugin returns these from ``pixalert_demo_sinks()``. ``start`` runs the
    server on 127.0.0.1 and returns the channel's config section pointing at
    it; ``lines`` lists one line per message the server accepted. Every
    :class:`pixalert.testing.FakeService` is one.
    """

    channel_type: str

    async def start(self) -> Mapping[str, Any]:
        """Start serving on loopback; return the channel config that targets this sink."""
        ...

    def lines(self) -> list[str]:
        """One short line per message received, oldest first."""
        ...

    async def stop(self) -> None:
        """Stop serving."""
        ...
