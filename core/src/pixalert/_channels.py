"""What a channel plugin provides: a :class:`ChannelSpec` and :class:`Channel` objects."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

import attrs

from ._types import Alert

__all__ = [
    "Channel",
    "ChannelSpec",
    "DemoSink",
    "Preview",
    "Receipt",
    "SetupField",
    "generic_preview",
    "send_test_alert",
]

Receipt = Mapping[str, str]
"""What a channel may return from ``send``: small string facts about the delivery (a Slack
message ``ts``, a PagerDuty ``dedup_key``). The core keeps the receipt in history and hands
it back as ``previous`` when the same alert key is resolved, so a channel can update what it
announced."""


@runtime_checkable
class Channel(Protocol):
    """A configured, ready-to-use channel instance.

    ``send`` raises :class:`pixalert.DeliveryError` on failure (saying whether
    a retry may help); any other exception counts as a retryable failure and
    its message is redacted. ``aclose`` releases connections and is safe to
    call twice. A channel may also have ``describe() -> str``: one line,
    without secrets, saying what it reaches (``"2 Apprise services: discord,
    mailto"``), which ``pixalert channels`` shows.

    A channel that must stay under a service's rate limit may also have
    ``async pace(alert) -> None``, which waits until ``alert`` may be sent (a
    :class:`pixalert.channels.RateLimiter` per destination). The core awaits
    it before each attempt and only then starts the attempt's
    ``delivery.timeout``, so waiting for a turn is never taken for a slow
    service (a timeout, then a retry that posts twice). ``send`` itself
    should not wait for a turn.

    Optional methods for the alert's lifecycle (the core calls them when present):

    - ``async acknowledge(alert, *, event, previous) -> bool``: someone
      acknowledged the incident that ``alert`` (sent on this channel)
      belongs to; ``event`` is the :class:`pixalert.channels.AlertEvent`
      (``by``, ``at``, ``via``, ``note``), ``previous`` the receipt of the last
      send of its key here. Show it (PagerDuty sends ``acknowledge``; Slack
      updates its message). Return False if there was nothing to update;
      raise :class:`pixalert.DeliveryError` on failure (a retryable one is
      tried again later).
    - ``use_actions(actions)``: called once after the channel is built when
      ``[actions] public_url`` is set, with the
      :class:`pixalert.channels.ActionLinks` (signed links for emails; the
      sign that buttons will be answered).
    - ``async interaction(headers, body) -> Interaction | None``: a request
      the channel's service sent to the receiver's ``POST /<channel>/actions``
      (a button click). Verify it (its signature, its age) before reading
      it; return a :class:`pixalert.channels.Interaction` (ack or resolve an
      alert), None for a request that asks for nothing, or raise
      :class:`pixalert.channels.InteractionRejected` with the HTTP status.

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

    Previews (``pixalert render``, ``pixalert send --dry-run``,
    ``NotificationManager.render``): a channel may have ``render(alert) ->
    Preview`` (and ``render_group(group) -> Preview``), which builds exactly
    what ``send`` (``send_group``) would put on the wire, with the same
    builder, and sends nothing: no connection, no state changed. A channel
    without it is shown a generic preview (:func:`generic_preview`). The
    core masks every registered secret in what it returns.
    """

    name: str

    async def send(self, alert: Alert, *, previous: Receipt | None = None) -> Receipt | None:
        """Deliver ``alert``; ``previous`` is the receipt of the last send of its key."""
        ...

    async def aclose(self) -> None:
        """Release any connection or pool this channel holds."""
        ...


def _json_safe(value: Any) -> Any:
    """``value`` as JSON types (anything else as its text)."""
    return json.loads(json.dumps(value, default=str))


@attrs.frozen
class Preview:
    """What a channel would send for one alert (or group), built without sending it.

    - ``channel_type``: the channel's type (``"slack"``).
    - ``content``: what goes on the wire, as JSON types: a request's
      ``body`` and ``headers``, an email's ``headers``, ``text`` and
      ``html``... (each channel documents its keys).
    - ``sketch``: the message as plain text, roughly as people will see it.
    - ``raw``: the exact bytes, where they are a file of their own (an
      email's ``.eml``), with their ``media_type`` (``"message/rfc822"``).
    """

    channel_type: str
    content: Mapping[str, Any] = attrs.field(factory=dict, converter=_json_safe)
    sketch: str = ""
    raw: bytes | None = None
    media_type: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (``raw`` as text, or None)."""
        return {
            "channel_type": self.channel_type,
            "content": dict(self.content),
            "sketch": self.sketch,
            "media_type": self.media_type,
            "raw": None if self.raw is None else self.raw.decode("utf-8", "replace"),
        }


def generic_preview(alert: Alert, channel_type: str) -> Preview:
    """The preview of a channel that has no ``render``: the alert's fields and a
    plain-text sketch of its title and message."""
    content = {
        "title": alert.title,
        "message": alert.message,
        "priority": alert.priority.name,
        "status": alert.status,
        "source": alert.source,
        "key": alert.key,
        "metadata": dict(alert.metadata),
    }
    lines = [f"[{alert.priority.name}] {alert.title}" + (" (resolved)" if alert.resolved else "")]
    if alert.message:
        lines += ["", alert.message]
    lines += [f"{k}: {v}" for k, v in alert.metadata.items()]
    return Preview(channel_type, content, "\n".join(lines))


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KINDS = (str, int, float, bool, list)


def _check_kind(instance: Any, attribute: Any, value: Any) -> None:
    if value not in _KINDS:
        raise ValueError(f"kind: expected str, int, float, bool or list, got {value!r}")


def _check_env_name(instance: Any, attribute: Any, value: str | None) -> None:
    if value is not None and not _ENV_NAME.fullmatch(value):
        raise ValueError(f"env: expected an environment variable name like MY_URL, got {value!r}")


@attrs.frozen
class SetupField:
    """One question ``pixalert init`` asks to fill a field of a channel's config.

    - ``field``: the config field the answer fills (``"server"``).
    - ``label``: the question as shown (``"SMTP server"``).
    - ``env``: the environment variable that fills the field too
      (``"ACME_SERVER"``). ``pixalert init`` offers its value as the default and
      takes the flag named after it (``--acme-server``); the spec's ``env``
      mapping gets it, so it is declared once, here.
    - ``secret``: typed at a hidden prompt and never shown again. A field typed
      :class:`pixalert.channels.Secret` in the config class is always secret.
    - ``required``: the channel cannot work without it; ``pixalert init``
      asks until it is given.
    - ``default``: offered when nothing is configured yet.
    - ``help``: one more sentence, shown above the question and in
      ``pixalert init --help``.
    - ``kind``: how an answer is read: ``str``, ``int``, ``float``, ``bool``, or
      ``list`` (comma-separated, a list of strings).
    """

    field: str
    label: str
    env: str | None = attrs.field(default=None, validator=_check_env_name)
    secret: bool = False
    required: bool = False
    default: Any = None
    help: str = ""
    kind: type = attrs.field(default=str, validator=_check_kind)

    @property
    def flag(self) -> str | None:
        """The ``pixalert init`` flag for this field (``--acme-server``), if it has ``env``."""
        return None if self.env is None else "--" + self.env.lower().replace("_", "-")


async def send_test_alert(channel: Channel, alert: Alert) -> str:
    """The live check a channel has when its spec declares none.

    Sends ``alert`` through ``channel``, then, when the channel returned a
    receipt (it tracks what it sent: an incident, a message), the alert's
    resolve, so the test leaves nothing open. Returns ``"sent"`` or
    ``"sent and resolved"``; raises what ``send`` raises. A plugin's own
    ``check`` may call it and say more about what happened.
    """
    receipt = await channel.send(alert)
    if not receipt:
        return "sent"
    await channel.send(alert.resolve(), previous=receipt)
    return "sent and resolved"


def _check_markup(instance: Any, attribute: Any, value: str) -> None:
    if value not in ("text", "html", "mrkdwn"):
        raise ValueError(f"markup: expected 'text', 'html' or 'mrkdwn', got {value!r}")


def _setup_tuple(value: Iterable[SetupField]) -> tuple[SetupField, ...]:
    return tuple(value)


@attrs.frozen
class ChannelSpec:
    """A channel type, as a plugin declares it from ``pixalert_channels()``.

    - ``name``: the type name (``"slack"``); also the default instance name.
    - ``config_type``: an attrs class for the channel's settings. Mark secret
      fields with the :class:`pixalert.channels.Secret` type so they never print.
    - ``factory``: builds a :class:`Channel` from ``(instance_name, config)``.
    - ``env``: environment variable name to config field, e.g.
      ``{"ACME_URL": "url"}``. Flat JSON config files use these names
      lowercased as keys (``acme_url``). The ``env`` of every ``setup`` field
      is added to it.
    - ``aliases``: extra flat JSON keys, e.g. ``{"acme_endpoint": "url"}``.
    - ``description``: one line for ``pixalert plugins``.
    - ``title``: the channel's name for people (``"Acme Pager"``), as
      ``pixalert init`` asks "Set up Acme Pager?"; ``name`` when empty.
    - ``setup``: the :class:`SetupField` questions ``pixalert init`` asks, in
      order. Without them it asks for every field of ``config_type`` (its
      name, type and default; ``Secret`` fields hidden).
    - ``check``: ``async check(channel, alert) -> str``, the live check of
      ``pixalert init`` and ``pixalert channels --check``: given a channel built
      from the config being checked and a ``LOW`` test alert, try the channel
      for real (log in, send the alert) and return one line saying what
      worked (``"logged in as ops and sent a test page"``), or raise
      :class:`pixalert.DeliveryError` saying what did not. The caller times it
      out, closes the channel and masks secrets in what it prints. Without
      one, the check is :func:`send_test_alert`.
    - ``check_prompt``: the question ``pixalert init`` asks before the check,
      saying what it does (``"Send a test page now? It opens an incident and
      resolves it at once."``).
    - ``recipients_field``: the config field that lists who gets a message
      (an email channel's addresses), if the channel has one: an escalation
      step's ``recipients`` replace it for that step.
    - ``markup``: how the channel shows message text: ``"text"`` (the
      default), ``"html"`` or ``"mrkdwn"`` (Slack). A message template's body
      is rendered for it with every inserted value escaped for that markup,
      and handed over as :func:`pixalert.channels.rendered_message`;
      ``alert.message`` always holds the body as plain text.

    A ``setup`` field naming a field ``config_type`` does not have, two
    ``setup`` fields for one config field, or an ``env`` name that fills two
    different fields is a ``ValueError`` when the spec is made.
    """

    name: str
    config_type: type[Any]
    factory: Callable[[str, Any], Channel]
    env: Mapping[str, str] = attrs.field(factory=dict)
    aliases: Mapping[str, str] = attrs.field(factory=dict)
    description: str = ""
    title: str = ""
    setup: tuple[SetupField, ...] = attrs.field(default=(), converter=_setup_tuple)
    check: Callable[[Channel, Alert], Awaitable[str]] | None = None
    check_prompt: str = ""
    recipients_field: str | None = None
    markup: str = attrs.field(default="text", validator=_check_markup)

    def __attrs_post_init__(self) -> None:
        env = dict(self.env)
        fields = attrs.fields_dict(self.config_type) if attrs.has(self.config_type) else None
        seen: set[str] = set()
        for item in self.setup:
            where = f"channel type {self.name!r}: setup field {item.field!r}"
            if not isinstance(item, SetupField):
                raise TypeError(
                    f"channel type {self.name!r}: setup: expected SetupField, got {item!r}"
                )
            if fields is not None and item.field not in fields:
                raise ValueError(f"{where}: {self.config_type.__name__} has no such field")
            if item.field in seen:
                raise ValueError(f"{where}: asked twice")
            seen.add(item.field)
            if item.env is not None:
                if env.get(item.env, item.field) != item.field:
                    raise ValueError(f"{where}: env {item.env!r} already fills {env[item.env]!r}")
                env[item.env] = item.field
        # Normalised once here: ``env`` holds every variable, setup fields included.
        object.__setattr__(self, "env", env)


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
