"""Routes: label matchers on alerts, tried in order, each naming channels and policies.

``[[routes]]`` tables are tried in order; the first whose ``match`` holds wins,
unless it says ``continue = true``, in which case the next routes are tried
as well. An alert no route matches goes by the priority table
(``[routing]``). An explicit ``channels=`` on the alert wins over both.

A matcher is ``name = "value"`` where ``value`` is one of::

    "db"        equal            "!=db"      not equal
    "=~db-.*"   matches regex    "!~test-.*" does not match regex

(a regex must match the whole value, as in Alertmanager), and for ``priority``
also a comparison: ``">=high"``, ``">medium"``, ``"<=low"``, ``"<critical"``.
``name`` is an alert field (``source``, ``title``, ``key``, ``status``,
``priority``), a metadata key, or a label of an Alertmanager alert
(``metadata.labels``); ``metadata.NAME`` and ``labels.NAME`` say which
explicitly. A missing value is the empty string, so ``"!=db"`` matches an
alert without that label, as Alertmanager's matchers do.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ._durations import Duration
from ._types import Alert, Priority

__all__ = [
    "ALERT_FIELDS",
    "FlappingConfig",
    "GroupingConfig",
    "Matcher",
    "RouteConfig",
    "RouteMatch",
    "RouteTable",
    "label_value",
]

#: The alert fields a matcher or ``group_by`` may name besides metadata keys.
ALERT_FIELDS = ("source", "title", "key", "status", "priority")

_COMPARE = {
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
}


def label_value(alert: Alert, name: str) -> str:
    """The text ``name`` has on ``alert`` for matchers and grouping ("" when missing).

    ``priority`` reads as ``low``/``medium``/``high``/``critical``; other alert
    fields as they are; anything else is looked up in the metadata, then in
    an Alertmanager alert's ``metadata.labels``. Non-string values read as JSON.
    """
    if name == "priority":
        return alert.priority.name.lower()
    if name in ALERT_FIELDS:
        return str(getattr(alert, name))
    if name.startswith("metadata."):
        return _text(alert.metadata.get(name[len("metadata.") :]))
    labels = alert.metadata.get("labels")
    if name.startswith("labels."):
        return _text(labels.get(name[len("labels.") :])) if isinstance(labels, Mapping) else ""
    if name in alert.metadata:
        return _text(alert.metadata[name])
    if isinstance(labels, Mapping) and name in labels:
        return _text(labels[name])
    return ""


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    import json

    return json.dumps(value, sort_keys=True)


@attrs.frozen
class Matcher:
    """One ``name = "value"`` condition of a route (see the module docstring)."""

    name: str
    op: str  # "=", "!=", "=~", "!~", or a comparison for priority
    value: str
    regex: re.Pattern[str] | None = attrs.field(default=None, eq=False, repr=False)
    priority: Priority | None = None

    @classmethod
    def parse(cls, name: str, text: object) -> Matcher:
        """Read one matcher; ``ValueError`` saying what was expected."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError("expected a label name, got an empty one")
        if not isinstance(text, str):
            raise ValueError(f'expected a string such as "db" or "!=db", got {text!r}')
        if name == "priority":
            for op in (">=", "<=", ">", "<", "!=", "="):
                if text.startswith(op):
                    rest = text[len(op) :].strip()
                    break
            else:
                op, rest = "=", text.strip()
            try:
                level = Priority.parse(rest)
            except ValueError as exc:
                raise ValueError(str(exc)) from None
            return cls(name, op, level.name.lower(), priority=level)
        for op in ("=~", "!~", "!=", "="):
            if text.startswith(op):
                value = text[len(op) :]
                break
        else:
            op, value = "=", text
        if op in ("=~", "!~"):
            try:
                regex = re.compile(f"(?:{value})\\Z", re.DOTALL)
            except re.error as exc:
                raise ValueError(f"expected a regular expression, got {value!r}: {exc}") from None
            return cls(name, op, value, regex)
        return cls(name, op, value)

    def matches(self, alert: Alert) -> bool:
        """True if ``alert`` satisfies this matcher."""
        if self.priority is not None:
            if self.op in _COMPARE:
                return bool(_COMPARE[self.op](alert.priority, self.priority))
            return (alert.priority is self.priority) == (self.op == "=")
        value = label_value(alert, self.name)
        if self.regex is not None:
            return (self.regex.match(value) is not None) == (self.op == "=~")
        return (value == self.value) == (self.op == "=")

    def __str__(self) -> str:
        return (
            f"{self.name}{self.op}{self.value}" if self.op != "=" else f"{self.name}={self.value}"
        )


def parse_matchers(value: Any) -> tuple[Matcher, ...]:
    """A table of ``label = "matcher"`` as :class:`Matcher` records (kept if parsed already)."""
    if isinstance(value, tuple) and all(isinstance(m, Matcher) for m in value):
        return value
    if not isinstance(value, Mapping):
        kind = type(value).__name__
        raise ValueError(f'match: expected a table of label = "matcher", got {kind}')
    out = []
    for name, text in value.items():
        try:
            out.append(Matcher.parse(str(name), text))
        except ValueError as exc:
            raise ValueError(f"match.{name}: {exc}") from None
    return tuple(out)


def _optional_duration(value: Any) -> Duration | None:
    return None if value is None else Duration.parse(value)


def _duration(value: Any) -> Duration:
    return Duration.parse(value)


def _positive(instance: Any, attribute: Any, value: float | None) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{attribute.name.rstrip('_')}: expected a duration > 0, got {value!r}")


def _non_negative(instance: Any, attribute: Any, value: float | None) -> None:
    if value is not None and value < 0:
        raise ValueError(f"{attribute.name.rstrip('_')}: expected a duration >= 0, got {value!r}")


def _count(minimum: int) -> Any:
    def check(instance: Any, attribute: Any, value: int | None) -> None:
        if value is not None and value < minimum:
            raise ValueError(f"{attribute.name}: expected a count >= {minimum}, got {value!r}")

    return check


@attrs.define
class FlappingConfig:
    """``[flapping]``: an alert (by key) that changes state (firing, resolved) more than
    ``changes`` times within ``window`` is *flapping*: the alert that makes it so is
    notified once, with a note, and later ones are held back (``suppressed``, the
    history says why) until the key has been quiet for ``settle`` (default:
    ``window``); then its last state is notified if it differs from the one last told.
    """

    changes: int = attrs.field(default=4, validator=_count(1))
    window: Duration = attrs.field(default=Duration(600.0), validator=_positive)
    settle: Duration | None = attrs.field(
        default=None, converter=_optional_duration, validator=_positive
    )

    @property
    def quiet(self) -> float:
        """How long a flapping key must be quiet to settle."""
        return float(self.window if self.settle is None else self.settle)


@attrs.define
class GroupingConfig:
    """``[grouping]`` (and a route's own grouping keys): alerts that share the values
    of ``group_by`` go out as one notification per channel.

    ``group_wait``: how long a new group waits for more alerts before its first
    notification (CRITICAL alerts do not wait unless ``critical_waits``);
    ``group_interval``: how long after a notification the group waits before
    telling about alerts that joined since; ``repeat_interval``: how long
    before a still-firing, unacknowledged group is sent again as a reminder.
    """

    group_by: list[str] = attrs.Factory(list)
    group_wait: Duration = attrs.field(default=Duration(30.0), validator=_non_negative)
    group_interval: Duration = attrs.field(default=Duration(300.0), validator=_positive)
    repeat_interval: Duration = attrs.field(default=Duration(14400.0), validator=_positive)
    critical_waits: bool = False


@attrs.define
class RouteConfig:
    """One ``[[routes]]`` table.

    ``match``: label matchers, all of which must hold (empty: every alert);
    ``channels``: where matching alerts go (absent: the priority table);
    ``continue``: try the next routes too. The other keys set this route's
    policies: grouping (``group_by``, ``group_wait``, ``group_interval``,
    ``repeat_interval``; ``grouping = false`` turns it off here), ``for``
    (notify only if still firing after that long), ``occurrences`` (notify
    only from the Nth firing of the same key within ``occurrences_window``),
    time intervals (``mute_time_intervals``, ``active_time_intervals``) and
    ``escalation`` (the name of an ``[escalation.NAME]`` policy); ``template``
    (the name of a ``[templates.NAME]`` message template, used for the alerts this
    route matched instead of their channel's).
    """

    match: tuple[Matcher, ...] = attrs.field(factory=tuple, converter=parse_matchers)
    channels: list[str] | None = None
    continue_: bool = False
    grouping: bool | None = None
    group_by: list[str] | None = None
    group_wait: Duration | None = attrs.field(
        default=None, converter=_optional_duration, validator=_non_negative
    )
    group_interval: Duration | None = attrs.field(
        default=None, converter=_optional_duration, validator=_positive
    )
    repeat_interval: Duration | None = attrs.field(
        default=None, converter=_optional_duration, validator=_positive
    )
    for_: Duration | None = attrs.field(
        default=None, converter=_optional_duration, validator=_non_negative
    )
    occurrences: int | None = attrs.field(default=None, validator=_count(1))
    occurrences_window: Duration = attrs.field(
        default=Duration(3600.0), converter=_duration, validator=_positive
    )
    mute_time_intervals: list[str] = attrs.Factory(list)
    active_time_intervals: list[str] = attrs.Factory(list)
    escalation: str | None = None
    template: str | None = None

    def matches(self, alert: Alert) -> bool:
        """True if every matcher holds for ``alert``."""
        return all(m.matches(alert) for m in self.match)

    def effective_grouping(self, default: GroupingConfig | None) -> GroupingConfig | None:
        """This route's grouping: its own keys over ``[grouping]``; None when off
        (``grouping = false``, or neither it nor ``[grouping]`` sets any)."""
        if self.grouping is False:
            return None
        own = (self.group_by, self.group_wait, self.group_interval, self.repeat_interval)
        if default is None and not self.grouping and all(v is None for v in own):
            return None
        base = default or GroupingConfig()
        return attrs.evolve(
            base,
            group_by=list(self.group_by) if self.group_by is not None else base.group_by,
            group_wait=base.group_wait if self.group_wait is None else self.group_wait,
            group_interval=base.group_interval
            if self.group_interval is None
            else self.group_interval,
            repeat_interval=base.repeat_interval
            if self.repeat_interval is None
            else self.repeat_interval,
        )


@attrs.frozen
class RouteMatch:
    """A route an alert matched: its position, the channels it names, its policies."""

    index: int
    route: RouteConfig
    channels: tuple[str, ...]
    grouping: GroupingConfig | None


class RouteTable:
    """The configured routes, ready to match alerts."""

    def __init__(
        self, routes: Sequence[RouteConfig], grouping: GroupingConfig | None = None
    ) -> None:
        self.routes = list(routes)
        self.grouping = grouping

    def __bool__(self) -> bool:
        return bool(self.routes)

    def match(self, alert: Alert, table: Sequence[str] = ()) -> list[RouteMatch]:
        """The routes ``alert`` takes, in order: the first that matches, and the ones
        after it while each says ``continue``. ``table`` stands in for a route
        without ``channels`` (the priority table's channels for this alert)."""
        found = []
        for index, route in enumerate(self.routes):
            if not route.matches(alert):
                continue
            channels = tuple(route.channels) if route.channels is not None else tuple(table)
            found.append(
                RouteMatch(index, route, channels, route.effective_grouping(self.grouping))
            )
            if not route.continue_:
                break
        return found
