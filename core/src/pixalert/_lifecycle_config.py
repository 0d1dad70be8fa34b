"""The settings of an alert's lifecycle: ``[actions]``, ``[escalation.NAME]``,
``[heartbeats.NAME]`` and ``[self_watch]``.

Light on purpose (the config loader imports it): the cron library is imported
only when a heartbeat has a ``schedule``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import attrs

from ._durations import Duration
from ._routes import parse_matchers
from ._types import Priority, Secret

__all__ = [
    "HEARTBEAT_NAME",
    "ActionsConfig",
    "EscalationPolicy",
    "EscalationStep",
    "HeartbeatConfig",
    "SelfWatchConfig",
    "check_heartbeat_name",
]

#: What a heartbeat's name may hold: it is part of a URL and of an alert key.
HEARTBEAT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")

#: The shortest ``[actions] secret`` taken (HMAC keys shorter than this are guessable).
MIN_SECRET = 16

#: A cron ``schedule`` must fire at least once in this many years (29 February does).
CRON_HORIZON_YEARS = 8


def _url(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"public_url: expected a URL string, got {type(value).__name__}")
    text = value.strip().rstrip("/")
    if not text:
        return None
    if not re.fullmatch(r"https?://[^/\s?#]+(/[^\s?#]*)?", text, flags=re.IGNORECASE):
        raise ValueError(
            f"public_url: expected the receiver's address as people reach it, such as "
            f"https://alerts.example.com, got {value!r}"
        )
    return text


def _secret(value: Any) -> Secret | None:
    if value is None:
        return None
    if isinstance(value, str):
        from ._redact import register_secret

        value = Secret(value)
        register_secret(value.get())
    if not isinstance(value, Secret):
        raise ValueError(f"secret: expected a string, got {type(value).__name__}")
    if not value.get().strip():
        return None
    if len(value.get()) < MIN_SECRET:
        raise ValueError(
            f"secret: expected at least {MIN_SECRET} characters (a random string, such as "
            "the output of 'python -c \"import secrets; print(secrets.token_urlsafe(32))\"'); "
            "the value is not shown"
        )
    return value


def _parse_duration(name: str, value: Any, *, zero: bool = True) -> Duration:
    try:
        return Duration.parse(value, zero=zero)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


def _link_ttl(value: Any) -> Duration:
    return _parse_duration("link_ttl", value, zero=False)


def _after(value: Any) -> Duration:
    return _parse_duration("after", value)


def _grace(value: Any) -> Duration:
    return _parse_duration("grace", value)


def _failing_for(value: Any) -> Duration:
    return _parse_duration("failing_for", value)


def _priority(value: Any) -> Priority:
    return Priority.parse(value)


def _period(value: Any) -> Duration | None:
    return None if value is None else _parse_duration("period", value, zero=False)


@attrs.define
class ActionsConfig:
    """``[actions]``: how people act on an alert from outside pixalert.

    - ``public_url``: where ``pixalert serve`` is reached from outside
      (``https://alerts.example.com``, a path prefix allowed). With it set,
      Slack messages carry Acknowledge and Resolve buttons (when the Slack
      channel has its ``signing_secret``) and emails carry links.
    - ``secret`` (``PIXALERT_ACTIONS_SECRET``): the key that signs email links
      (HMAC-SHA256; at least 16 characters; the same on every instance).
      Without it, emails carry no links.
    - ``link_ttl``: how long an email link works after the email was sent.
    """

    public_url: str | None = attrs.field(default=None, converter=_url)
    secret: Secret | None = attrs.field(default=None, converter=_secret, repr=False)
    link_ttl: Duration = attrs.field(default=Duration(86400.0), converter=_link_ttl)


def _channel_list(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(v, str) and v.strip() for v in value
    ):
        raise ValueError('channels: expected a list of channel names, such as ["slack"]')
    return [v.strip() for v in value]


def _step_channels(value: Any) -> list[str]:
    names = _channel_list(value)
    if not names:
        raise ValueError("channels: expected at least one channel")
    return names


def _optional_channels(value: Any) -> list[str] | None:
    return None if value is None else _channel_list(value)


def _recipients(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError("recipients: expected a list of addresses")
    out = []
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise ValueError(f"recipients: expected addresses, got {item!r}")
        out.append(item.strip())
    return out


@attrs.define
class EscalationStep:
    """One step of an escalation policy: wait ``after`` (since the previous step;
    the first: since the alert was raised; 0 or omitted: at once), then notify
    ``channels``. ``recipients`` replaces the recipients of those of the
    step's channels that have recipients (email)."""

    channels: list[str] = attrs.field(converter=_step_channels)
    after: Duration = attrs.field(default=Duration(0.0), converter=_after)
    recipients: list[str] | None = attrs.field(default=None, converter=_recipients)


def _steps(value: Any) -> list[EscalationStep]:
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError('steps: expected a list of steps, such as [{ channels = ["slack"] }]')
    out = []
    for i, step in enumerate(value):
        if isinstance(step, EscalationStep):
            out.append(step)
            continue
        if not isinstance(step, Mapping):
            raise ValueError(f"steps[{i}]: expected a table {{ after, channels, recipients }}")
        unknown = sorted(set(step) - {"after", "channels", "recipients"})
        if unknown:
            raise ValueError(
                f"steps[{i}]: unknown key {unknown[0]!r}; expected after, channels, recipients"
            )
        if "channels" not in step:
            raise ValueError(f"steps[{i}]: expected channels")
        try:
            out.append(EscalationStep(**dict(step)))
        except ValueError as exc:
            raise ValueError(f"steps[{i}].{exc}") from None
    return out


def _repeat(value: Any) -> int:
    if value is False or value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(
            f"repeat: expected how many more times to run the steps (0, 1, 2...) or false, "
            f"got {value!r}"
        )
    return value


@attrs.define
class EscalationPolicy:
    """``[escalation.NAME]``: what happens to an alert nobody acknowledges.

    ``steps`` run one after the other (see :class:`EscalationStep`); after
    the last, the steps run again ``repeat`` more times (``false``: none).
    An acknowledged or resolved alert stops escalating.
    """

    # Typed Any for the config loader: the converters read and check the tables.
    steps: Any = attrs.field(converter=_steps)
    repeat: Any = attrs.field(default=0, converter=_repeat)


def check_heartbeat_name(name: str) -> str:
    """``name`` if it can name a heartbeat (letters, digits, ``_ . -``), else ``ValueError``."""
    if not isinstance(name, str) or not HEARTBEAT_NAME.fullmatch(name):
        raise ValueError(
            f"heartbeat name {name!r}: expected letters, digits, '_', '.' or '-' "
            "(it is part of a URL and of the alert key heartbeat:NAME)"
        )
    return name


def _zone(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"timezone: expected a time zone name such as Europe/Paris, got {value!r}")
    from zoneinfo import ZoneInfo

    try:
        ZoneInfo(value.strip())
    except (ValueError, KeyError, OSError):
        raise ValueError(
            f"timezone: unknown time zone {value!r} (expected an IANA name such as "
            "UTC or Europe/Paris)"
        ) from None
    return value.strip()


def _schedule(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f'schedule: expected a cron line such as "0 3 * * *", got {value!r}')
    return " ".join(value.split())


@attrs.define
class HeartbeatConfig:
    """``[heartbeats.NAME]``: a job that must check in (a dead man's switch).

    Either ``period`` (a ping is expected at least this often) or
    ``schedule`` (a cron line, read in ``timezone``: a ping is expected at
    each time it names). A ping later than that by more than ``grace`` (or,
    after a ``start`` signal, no success within ``grace``) raises the alert
    ``heartbeat:NAME`` at ``priority`` (to ``channels``, else as routed).
    ``match`` (label matchers, as in ``[[routes]]``) makes alerts that
    arrive, such as Alertmanager's always-firing ``Watchdog``, count as pings
    instead of being delivered.
    """

    period: Duration | None = attrs.field(default=None, converter=_period)
    schedule: str | None = attrs.field(default=None, converter=_schedule)
    timezone: str = attrs.field(default="UTC", converter=_zone)
    grace: Duration = attrs.field(default=Duration(300.0), converter=_grace)
    priority: Priority = attrs.field(default=Priority.HIGH, converter=_priority)
    channels: list[str] | None = attrs.field(default=None, converter=_optional_channels)
    # Typed Any for the config loader: the converter reads the matchers.
    match: Any = attrs.field(factory=tuple, converter=parse_matchers)

    def __attrs_post_init__(self) -> None:
        if (self.period is None) == (self.schedule is None):
            raise ValueError(
                'expected either period (such as "5m") or schedule (a cron line such as '
                '"0 3 * * *"), not both nor neither'
            )
        if self.schedule is not None:
            self.next_expected(datetime.now(timezone.utc).timestamp())

    def next_expected(self, after: float) -> float:
        """When the next ping is expected after ``after`` (epoch seconds), without grace."""
        if self.period is not None:
            return after + float(self.period)
        return _next_cron(str(self.schedule), self.timezone, after)

    def deadline(self, after: float) -> float:
        """The next deadline after a ping at ``after``: the next expected time plus grace."""
        return self.next_expected(after) + float(self.grace)

    def describe(self) -> str:
        """``"every 5m, grace 1m"`` or ``"cron '0 3 * * *' (Europe/Paris), grace 1h"``."""
        from ._durations import format_duration

        if self.period is not None:
            when = f"every {format_duration(self.period)}"
        else:
            when = f"cron '{self.schedule}' ({self.timezone})"
        return f"{when}, grace {format_duration(self.grace)}"


def _next_cron(schedule: str, zone: str, after: float) -> float:
    """The first time ``schedule`` fires strictly after ``after``, in ``zone``."""
    from zoneinfo import ZoneInfo

    try:
        from croniter import CroniterBadCronError, CroniterBadDateError, croniter
    except ImportError:  # pragma: no cover - croniter is a dependency
        raise ValueError("schedule: the croniter package is needed for cron schedules") from None
    start = datetime.fromtimestamp(after, ZoneInfo(zone))
    try:
        it = croniter(schedule, start, max_years_between_matches=CRON_HORIZON_YEARS)
        nxt: datetime = it.get_next(datetime)
    except CroniterBadDateError:
        raise ValueError(
            f"schedule: {schedule!r} never fires within {CRON_HORIZON_YEARS} years"
        ) from None
    except (CroniterBadCronError, ValueError, KeyError) as exc:
        raise ValueError(f"schedule: not a cron line ({exc}): {schedule!r}") from None
    return nxt.timestamp()


@attrs.define
class SelfWatchConfig:
    """``[self_watch]``: pixalert watching its own channels.

    A channel whose every delivery attempt has failed for ``failing_for``
    (and at least ``min_failures`` attempts in a row) raises an alert through
    the other channels (``channels``, default: every other channel), once,
    and resolves it when the channel delivers again. ``failing_for = 0``
    (the default) turns it off.
    """

    failing_for: Duration = attrs.field(default=Duration(0.0), converter=_failing_for)
    min_failures: int = 3
    priority: Priority = attrs.field(default=Priority.HIGH, converter=_priority)
    channels: list[str] | None = attrs.field(default=None, converter=_optional_channels)

    def __attrs_post_init__(self) -> None:
        if isinstance(self.min_failures, bool) or self.min_failures < 1:
            raise ValueError(f"min_failures: expected a whole number >= 1, got {self.min_failures}")
