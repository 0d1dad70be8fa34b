"""Acting on an alert from outside pixalert: signed email links and channel interactions.

- :class:`ActionLinks` makes and checks the signed, expiring links an email
  carries (``<public_url>/links/ack/<alert id>?expires=...&sig=...``). The
  signature is HMAC-SHA256 over the action, the alert id and the expiry,
  keyed with ``[actions] secret``; checking it takes the same time wherever
  a forged signature differs.
- :class:`Interaction` is what a channel makes of a request its service sent
  when someone clicked a button (Slack's Acknowledge): a channel with an
  ``async interaction(headers, body)`` method verifies the request and
  returns one, or raises :class:`InteractionRejected`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime
from typing import Literal
from urllib.parse import quote

import attrs

from ._clock import Clock, SystemClock, to_datetime
from ._errors import PixalertError
from ._lifecycle_config import ActionsConfig
from ._types import Alert, Secret

__all__ = [
    "ACTIONS",
    "ActionLinks",
    "AlertLinks",
    "Interaction",
    "InteractionRejected",
    "LinkError",
]

#: What a link or an interaction can do to an alert.
ACTIONS = ("ack", "resolve")

Action = Literal["ack", "resolve"]


class LinkError(PixalertError):
    """An action link that cannot be used: ``reason`` is ``"expired"`` or ``"invalid"``
    (altered, forged, or for another action or alert)."""

    def __init__(self, reason: Literal["expired", "invalid"], message: str) -> None:
        super().__init__(message)
        self.reason = reason


class InteractionRejected(PixalertError):
    """A channel refused an incoming interaction request.

    ``status`` is the HTTP status to answer (401 for a missing, forged or
    replayed signature; 400 for a malformed body); the message says why
    without repeating anything secret.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@attrs.frozen
class Interaction:
    """What someone did from a channel's own interface (a button in Slack).

    ``action`` is ``"ack"`` or ``"resolve"``, ``alert_id`` the alert it was
    done to, ``by`` who did it (as the service names them), ``note`` an
    optional comment. The manager records it with ``via`` = the channel name.
    """

    action: Action
    alert_id: str
    by: str | None = None
    note: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"action: expected one of {', '.join(ACTIONS)}, got {self.action!r}")


@attrs.frozen
class AlertLinks:
    """The signed links for one alert: ``ack`` and ``resolve`` URLs, valid until
    ``expires_at`` (an aware UTC datetime)."""

    ack: str
    resolve: str
    expires_at: datetime


class ActionLinks:
    """The receiver's public address, and the signed links to act on alerts there.

    Channels that want links or buttons get one through their optional
    ``use_actions(actions)`` method (called once when the channel is built,
    only when ``[actions] public_url`` is set). :meth:`links` gives an email
    its links; :meth:`verify` is what the receiver calls when one is used.
    Tests make one directly: ``ActionLinks("https://alerts.example.com",
    secret="...", clock=FakeClock())``.
    """

    def __init__(
        self,
        public_url: str,
        *,
        secret: str | Secret | None = None,
        link_ttl: float = 86400.0,
        clock: Clock | None = None,
    ) -> None:
        config = ActionsConfig(public_url=public_url, secret=secret, link_ttl=link_ttl)
        if config.public_url is None:
            raise ValueError("public_url: expected the receiver's public URL")
        self.public_url: str = config.public_url
        self.link_ttl = float(config.link_ttl)
        self._secret = config.secret.get().encode() if config.secret is not None else None
        self._clock: Clock = clock or SystemClock()

    @classmethod
    def from_config(cls, config: ActionsConfig, clock: Clock) -> ActionLinks:
        """From the ``[actions]`` table (``public_url`` must be set)."""
        if config.public_url is None:
            raise ValueError("actions.public_url: expected the receiver's public URL")
        return cls(config.public_url, secret=config.secret, link_ttl=config.link_ttl, clock=clock)

    def __repr__(self) -> str:
        signing = "signed links" if self.signs else "no link secret"
        return f"<ActionLinks {self.public_url} ({signing})>"

    @property
    def signs(self) -> bool:
        """True when ``[actions] secret`` is set, so links can be made."""
        return self._secret is not None

    def _signature(self, action: str, alert_id: str, expires: int) -> str:
        assert self._secret is not None
        message = f"pixalert-link:v1\n{action}\n{alert_id}\n{expires}".encode()
        digest = hmac.new(self._secret, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def url(self, action: Action, alert_id: str, *, expires: int | None = None) -> str:
        """The signed link doing ``action`` to ``alert_id`` (``ValueError`` without a secret)."""
        if self._secret is None:
            raise ValueError("actions.secret: links need a secret to be signed with")
        if action not in ACTIONS:
            raise ValueError(f"action: expected one of {', '.join(ACTIONS)}, got {action!r}")
        if expires is None:
            expires = int(self._clock.now() + self.link_ttl)
        sig = self._signature(action, alert_id, expires)
        return (
            f"{self.public_url}/links/{action}/{quote(alert_id, safe='')}"
            f"?expires={expires}&sig={sig}"
        )

    def links(self, alert: Alert) -> AlertLinks | None:
        """The links for ``alert``: None when links cannot be signed or the alert is a resolve."""
        if self._secret is None or alert.resolved:
            return None
        expires = int(self._clock.now() + self.link_ttl)
        return AlertLinks(
            ack=self.url("ack", alert.id, expires=expires),
            resolve=self.url("resolve", alert.id, expires=expires),
            expires_at=to_datetime(expires),
        )

    def verify(self, action: str, alert_id: str, expires: str, signature: str) -> None:
        """Check a used link; raise :class:`LinkError` if it is altered or expired.

        The signature is compared first (in constant time), so an altered
        expiry reads as invalid, not as expired.
        """
        if self._secret is None:
            raise LinkError("invalid", "this pixalert has no [actions] secret to check links with")
        if action not in ACTIONS or not expires.isdigit() or len(expires) > 12:
            raise LinkError("invalid", "this link is not valid (it was altered or cut short)")
        expected = self._signature(action, alert_id, int(expires))
        if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
            raise LinkError("invalid", "this link is not valid (it was altered or cut short)")
        if self._clock.now() > int(expires):
            when = to_datetime(int(expires)).strftime("%Y-%m-%d %H:%M UTC")
            raise LinkError("expired", f"this link expired at {when}")
