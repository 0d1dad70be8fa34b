"""The values pixalert passes around: priorities, alerts, channel names, results."""

from __future__ import annotations

import enum
import hashlib
import math
import os
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, Literal

import attrs

__all__ = [
    "Alert",
    "ChannelName",
    "DeliveryResult",
    "DeliveryStatus",
    "NotificationChannel",
    "NotificationMessage",
    "NotificationPriority",
    "Priority",
    "Secret",
]

AlertStatus = Literal["firing", "resolved"]

_MAX_TITLE = 1000


class Priority(enum.IntEnum):
    """How urgent an alert is: ``LOW < MEDIUM < HIGH < CRITICAL``."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @classmethod
    def parse(cls, value: object) -> Priority:
        """Read a priority from ``Priority.HIGH``, ``"high"``, ``"HIGH"`` or ``3``.

        Raises ``ValueError`` naming the accepted values for anything else.
        """
        if isinstance(value, cls):
            return value
        if isinstance(value, enum.Enum):
            value = value.value
        if isinstance(value, bool):
            pass
        elif isinstance(value, int):
            try:
                return cls(value)
            except ValueError:
                pass
        elif isinstance(value, str):
            text = value.strip()
            if text.isdigit():
                return cls.parse(int(text))
            member = cls.__members__.get(text.upper())
            if member is not None:
                return member
        raise ValueError(
            f"unknown priority {value!r}: expected one of low, medium, high, critical (or 1-4)"
        )

    def __str__(self) -> str:
        return self.name


NotificationPriority = Priority
"""Another name for :class:`Priority`, for code written against the
``notification_integrations`` module."""


class ChannelName(str):
    """A channel's name: a plain string that also has ``.value``.

    ``send_alert`` returns results keyed by these, so code written for an enum
    (``channel.value``) and code written for strings (``"slack"``) both work,
    for a plugin's channel as much as for a built-in one.
    """

    __slots__ = ()

    @property
    def value(self) -> str:
        """The name as a plain ``str``."""
        return str.__str__(self)

    def __repr__(self) -> str:
        return f"ChannelName({str.__repr__(self)})"


class NotificationChannel(str, enum.Enum):
    """The channel types this repository ships; each equals its plain string."""

    EMAIL = "email"
    SLACK = "slack"
    PAGERDUTY = "pagerduty"
    WEBHOOK = "webhook"

    # Hash and compare as the plain string, so a member finds "slack" in a dict.
    __hash__ = str.__hash__

    def __str__(self) -> str:
        return str(self.value)


class DeliveryStatus(str, enum.Enum):
    """What happened to an alert on one channel.

    ``SENT``, ``FAILED``, ``SUPPRESSED`` and ``SKIPPED`` are final.
    ``PENDING`` is a delivery not tried yet; ``RETRYING`` one that failed for
    a reason worth retrying and waits on the timeline for its next attempt
    (``DeliveryResult.next_attempt_at``); ``HELD`` one that noise control
    keeps back until ``next_attempt_at`` (a ``for`` duration, a mute time
    interval, a group waiting to be notified), with the reason in ``error``.
    """

    SENT = "sent"
    FAILED = "failed"
    SUPPRESSED = "suppressed"
    SKIPPED = "skipped"
    PENDING = "pending"
    RETRYING = "retrying"
    HELD = "held"

    @property
    def final(self) -> bool:
        """True once nothing more will be tried for this delivery."""
        return self not in (DeliveryStatus.PENDING, DeliveryStatus.RETRYING, DeliveryStatus.HELD)

    __hash__ = str.__hash__

    def __str__(self) -> str:
        return str(self.value)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


# Random bits drawn from the OS 256 ids at a time: one os.urandom() call per id
# (as uuid4 makes) releases the GIL and waits to get it back from the SQLite thread.
_ID_BATCH = 256
_RANDOM_BITS = 74  # what a version 7 UUID holds besides its time, version and variant
_random: list[int] = []
if hasattr(os, "register_at_fork"):  # a forked child must not reuse its parent's ids
    os.register_at_fork(after_in_child=_random.clear)


def _new_id() -> str:
    """A time-ordered random UUID (version 7, RFC 9562) as 32 hex digits.

    The first 48 bits are the Unix time in milliseconds, so ids made close
    together sort together: a store's primary-key index takes them near one
    another instead of on a random page each. 74 bits are random.
    """
    try:
        bits = _random.pop()
    except IndexError:
        raw = os.urandom(10 * _ID_BATCH)
        _random.extend(
            int.from_bytes(raw[i : i + 10], "big") >> (80 - _RANDOM_BITS)
            for i in range(0, len(raw), 10)
        )
        bits = _random.pop()
    millis = time.time_ns() // 1_000_000
    value = (
        (millis & 0xFFFF_FFFF_FFFF) << 80
        | 0x7 << 76  # version 7
        | (bits >> 62) << 64  # 12 random bits
        | 0b10 << 62  # RFC 9562 variant
        | bits & (1 << 62) - 1  # 62 random bits
    )
    return f"{value:032x}"


def _check_title(instance: Any, attribute: Any, value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("title: expected a non-empty string")
    if len(value) > _MAX_TITLE:
        raise ValueError(f"title: expected at most {_MAX_TITLE} characters, got {len(value)}")


def _check_message(instance: Any, attribute: Any, value: str) -> None:
    if not isinstance(value, str):
        raise ValueError(f"message: expected a string, got {type(value).__name__}")


def _check_aware(instance: Any, attribute: Any, value: datetime) -> None:
    if value.tzinfo is None:
        raise ValueError("created_at: expected a timezone-aware datetime")


def _check_status(instance: Any, attribute: Any, value: str) -> None:
    if value not in ("firing", "resolved"):
        raise ValueError(f"status: expected 'firing' or 'resolved', got {value!r}")


_PLAIN = frozenset({str, int, bool, type(None)})

#: How deeply metadata may nest (a dict in a list in a dict is depth 3).
MAX_METADATA_DEPTH = 32


def _json_safe(value: Any, path: str, depth: int = 0) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path}: expected a finite number, got {value!r}")
        return value
    if isinstance(value, enum.Enum):
        return _json_safe(value.value, path)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (Mapping, list, tuple)) and depth >= MAX_METADATA_DEPTH:
        raise ValueError(f"{path}: expected at most {MAX_METADATA_DEPTH} levels of nesting")
    # Plain values are taken as they are; the path is only built for what needs a look.
    if isinstance(value, Mapping):
        return {
            str(k): v if type(v) in _PLAIN else _json_safe(v, f"{path}.{k}", depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [
            v if type(v) in _PLAIN else _json_safe(v, f"{path}[{i}]", depth + 1)
            for i, v in enumerate(value)
        ]
    raise ValueError(
        f"{path}: expected a JSON value (str, number, bool, None, list, dict), "
        f"got {type(value).__name__}"
    )


def _priority(value: object) -> Priority:
    return Priority.parse(value)


def _metadata(value: Mapping[str, Any] | None) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"metadata: expected a mapping, got {type(value).__name__}")
    return _json_safe(dict(value), "metadata")  # type: ignore[no-any-return]


def _channels(value: Sequence[str] | None) -> tuple[ChannelName, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    names = []
    for item in value:
        name = str(item.value if isinstance(item, enum.Enum) else item).strip()
        if not name:
            raise ValueError("channels: expected channel names, got an empty name")
        names.append(ChannelName(name))
    return tuple(names)


@attrs.frozen
class Alert:
    """One alert: what happened, how urgent it is, and where it came from.

    ``key`` identifies the incident for cooldown, dedup and resolve; when not
    given it is derived from ``source`` and ``title``. ``channels`` overrides
    priority routing when set.

    ``rendered`` is set only on the alert a channel is handed when a message
    template applied (see :func:`pixalert.channels.rendered_message`): the
    message rendered for the channel's markup (``{"html": ...}`` or
    ``{"mrkdwn": ...}``), its values escaped for it. It is not stored, not
    compared and not part of :meth:`to_dict`.
    """

    title: str = attrs.field(validator=_check_title)
    message: str = attrs.field(default="", validator=_check_message)
    priority: Priority = attrs.field(default=Priority.MEDIUM, converter=_priority)
    metadata: dict[str, Any] = attrs.field(factory=dict, converter=_metadata)
    source: str = "pixalert"
    key: str = attrs.field()
    status: AlertStatus = attrs.field(default="firing", validator=_check_status)
    channels: tuple[ChannelName, ...] | None = attrs.field(default=None, converter=_channels)
    id: str = attrs.field(factory=_new_id)
    created_at: datetime = attrs.field(factory=_utcnow, validator=_check_aware)
    rendered: Mapping[str, str] | None = attrs.field(
        default=None, eq=False, repr=False, kw_only=True
    )

    @key.default
    def _default_key(self) -> str:
        digest = hashlib.sha1(f"{self.source}\0{self.title}".encode()).hexdigest()
        return digest[:16]

    @property
    def resolved(self) -> bool:
        """True for an alert that announces the end of an incident."""
        return self.status == "resolved"

    def resolve(self, message: str | None = None) -> Alert:
        """The resolved counterpart of this alert: same key, new id and time."""
        return attrs.evolve(
            self,
            status="resolved",
            message=self.message if message is None else message,
            id=_new_id(),
            created_at=_utcnow(),
            rendered=None,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict of every field."""
        return {
            "id": self.id,
            "key": self.key,
            "title": self.title,
            "message": self.message,
            "priority": self.priority.name,
            "status": self.status,
            "source": self.source,
            "metadata": self.metadata,
            "channels": list(self.channels) if self.channels is not None else None,
            "created_at": self.created_at.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Alert:
        """Rebuild an alert from :meth:`to_dict` output."""
        created = data.get("created_at")
        kwargs = dict(data)
        if isinstance(created, str):
            kwargs["created_at"] = datetime.fromisoformat(created)
        return cls(**kwargs)


NotificationMessage = Alert
"""Another name for :class:`Alert`, for code written against the ``notification_integrations``
module."""


@attrs.frozen
class DeliveryResult:
    """What happened to one alert on one channel.

    ``bool(result)`` is true only when the alert was sent. ``error`` is a
    short reason with no secrets in it. A delivery waiting to be retried has
    status ``retrying``, the attempts made so far, the last error and
    ``next_attempt_at`` (an aware UTC datetime); a ``held`` one has the
    reason it is held in ``error`` and when it is due in ``next_attempt_at``.
    """

    channel: ChannelName = attrs.field(converter=ChannelName)
    status: DeliveryStatus = attrs.field(converter=DeliveryStatus)
    attempts: int = 0
    error: str | None = None
    latency: float | None = None
    receipt: dict[str, str] | None = None
    next_attempt_at: datetime | None = None

    def __bool__(self) -> bool:
        return self.status is DeliveryStatus.SENT

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict of this result."""
        data: dict[str, Any] = {
            "channel": str(self.channel),
            "status": self.status.value,
            "attempts": self.attempts,
            "error": self.error,
            "latency": self.latency,
        }
        if self.next_attempt_at is not None:
            data["next_attempt_at"] = self.next_attempt_at.isoformat()
        return data


@attrs.frozen(repr=False)
class Secret:
    """A secret config value (password, token, webhook URL).

    Its ``repr`` and ``str`` never show the value; call :meth:`get` where the
    value is really needed.
    """

    _value: str = attrs.field(alias="value")

    def get(self) -> str:
        """The secret itself."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)
