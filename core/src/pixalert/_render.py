"""What a preview says: per routed channel, what would happen to an alert and what
would go on the wire (``NotificationManager.render``, ``pixalert render``)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from typing import Any

import attrs

from ._channels import Preview
from ._types import Alert, ChannelName

__all__ = ["ChannelRender", "RenderDecision", "RenderResult"]


class RenderDecision(str, Enum):
    """What the pipeline would do with an alert on one channel.

    - ``send``: sent now;
    - ``suppressed``: not sent (a silence, an inhibition, the cooldown, a
      heartbeat's ping, occurrences, flapping): ``reason`` says which;
    - ``held``: held until ``due`` (a route's ``for``, a mute time interval);
    - ``grouped``: held in the group ``group_key``, notified with it by ``due``;
    - ``skipped``: routed to, but not configured (``reason`` says why);
    - ``not_routed``: asked for (``channel=``) but the alert is not routed there.
    """

    SEND = "send"
    SUPPRESSED = "suppressed"
    HELD = "held"
    GROUPED = "grouped"
    SKIPPED = "skipped"
    NOT_ROUTED = "not_routed"


@attrs.frozen
class ChannelRender:
    """The preview of one alert on one channel.

    - ``channel``: the channel's name; ``type`` its type (None when not configured).
    - ``decision``: a :class:`RenderDecision`; ``reason`` says why it is not
      ``send`` (or the hold's note).
    - ``route``: the index of the ``[[routes]]`` entry that sent it there
      (None: explicit channels, the priority table, a hook).
    - ``group_key``: the group it joins (``grouped``); ``due``: when a held or
      grouped delivery would go out.
    - ``preview``: what the channel would send (a
      :class:`pixalert.channels.Preview`; for ``grouped``, the group's
      notification with this alert in it); None when the channel is not
      configured or could not build it (``error`` says why: what ``send``
      would fail with).
    """

    channel: ChannelName
    decision: RenderDecision
    type: str | None = None
    reason: str | None = None
    route: int | None = None
    group_key: str | None = None
    due: datetime | None = None
    preview: Preview | None = None
    error: str | None = None

    @property
    def sends(self) -> bool:
        """True if the alert would go out on this channel (now, or held, or grouped)."""
        return self.decision in (RenderDecision.SEND, RenderDecision.HELD, RenderDecision.GROUPED)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "channel": str(self.channel),
            "type": self.type,
            "decision": self.decision.value,
            "reason": self.reason,
            "route": self.route,
            "group_key": self.group_key,
            "due": None if self.due is None else self.due.isoformat(),
            "error": self.error,
            "preview": None if self.preview is None else self.preview.to_dict(),
        }


@attrs.frozen
class RenderResult:
    """What :meth:`pixalert.NotificationManager.render` found: the ``alert`` as the
    pipeline would send it (a flapping note added, say) and each routed channel's
    :class:`ChannelRender`, in routing order. Nothing was sent or written."""

    alert: Alert
    channels: Mapping[ChannelName, ChannelRender]

    def __getitem__(self, name: str) -> ChannelRender:
        return self.channels[ChannelName(name)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form: ``{"alert": ..., "channels": {name: ...}}``."""
        return {
            "alert": self.alert.to_dict(),
            "channels": {str(k): v.to_dict() for k, v in self.channels.items()},
        }
