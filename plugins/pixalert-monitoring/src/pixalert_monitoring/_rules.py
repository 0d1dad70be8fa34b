"""Threshold rules: a metric, an operator, a threshold, a priority and a cooldown."""

from __future__ import annotations

import math
import operator as _op
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
from pixalert import ConfigError, Priority

__all__ = [
    "DEFAULT_RULES",
    "OPERATORS",
    "AlertRule",
    "RuleError",
    "load_rules",
    "read_toml",
    "structure_rules",
]

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": _op.gt,
    ">=": _op.ge,
    "<": _op.lt,
    "<=": _op.le,
    "==": _op.eq,
    "!=": _op.ne,
}
"""The comparison operators a rule may use."""

_OPERATOR_LIST = ", ".join(OPERATORS)


class RuleError(ConfigError):
    """A rule (or a rules file) is invalid. ``errors`` holds one line per problem.

    A :class:`pixalert.ConfigError` (so a ``ValueError`` too).
    """

    def __init__(self, errors: Iterable[str]) -> None:
        super().__init__(list(errors))
        self.args = (
            "; ".join(self.errors)
            if len(self.errors) == 1
            else "invalid alert rules:\n  " + "\n  ".join(self.errors),
        )


# Each check takes the field's name and a value, and returns the value as the
# rule keeps it or raises ValueError saying what was expected: AlertRule.create
# runs them on loose input, and the class runs them as validators.


def _check_name(what: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what}: expected a non-empty string, got {value!r}")
    return value.strip()


def _check_operator(what: str, value: object) -> str:
    if isinstance(value, str) and value.strip() in OPERATORS:
        return value.strip()
    raise ValueError(f"{what}: expected one of {_OPERATOR_LIST}, got {value!r}")


def _check_number(what: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{what}: expected a number, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{what}: expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{what}: expected a finite number, got {value!r}")
    return number


def _check_cooldown(what: str, value: object) -> float:
    number = _check_number(what, value)
    if number < 0:
        raise ValueError(f"{what}: expected a finite number >= 0, got {value!r}")
    return number


def _check_priority(what: str, value: object) -> Priority:
    try:
        return Priority.parse(value)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None


def _validator(check: Callable[[str, object], object]) -> Callable[[Any, Any, Any], None]:
    def validate(instance: Any, attribute: Any, value: Any) -> None:
        check(attribute.name, value)

    return validate


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


@attrs.frozen
class AlertRule:
    """Fire when ``metric_name`` compared with ``threshold`` by ``operator`` holds.

    Evaluated per service; ``cooldown_minutes`` is the shortest time between
    two notifications of this rule for one service. Names and the operator
    are stripped; an empty name, an unknown operator, a non-finite threshold or a
    negative cooldown is a ``ValueError``.
    """

    rule_name: str = attrs.field(converter=_strip, validator=_validator(_check_name))
    metric_name: str = attrs.field(converter=_strip, validator=_validator(_check_name))
    threshold: float = attrs.field(validator=_validator(_check_number))
    operator: str = attrs.field(converter=_strip, validator=_validator(_check_operator))
    priority: Priority = attrs.field(validator=attrs.validators.instance_of(Priority))
    cooldown_minutes: float = attrs.field(default=5.0, validator=_validator(_check_cooldown))

    @classmethod
    def create(
        cls,
        rule_name: object,
        metric_name: object,
        threshold: object,
        operator: object,
        priority: object,
        cooldown_minutes: object = 5,
    ) -> AlertRule:
        """Build a rule from loose input (``"high"``, ``"85"``); ``RuleError`` names it."""
        raw = {
            "rule_name": rule_name,
            "metric_name": metric_name,
            "threshold": threshold,
            "operator": operator,
            "priority": priority,
            "cooldown_minutes": cooldown_minutes,
        }
        values: dict[str, Any] = {}
        errors: list[str] = []
        for field, check in _LOOSE.items():
            try:
                values[field] = check(field, raw[field])
            except ValueError as exc:
                errors.append(str(exc))
        if errors:
            name = rule_name if isinstance(rule_name, str) and rule_name.strip() else None
            label = f"rule {name!r}" if name else "rule"
            raise RuleError(f"{label}: {error}" for error in errors)
        return cls(**values)

    @property
    def cooldown_seconds(self) -> float:
        """The cooldown in seconds."""
        return self.cooldown_minutes * 60.0

    def matches(self, value: float) -> bool:
        """True when ``value`` breaches this rule."""
        return OPERATORS[self.operator](value, self.threshold)

    def describe(self) -> str:
        """``cpu_usage_percent > 85``."""
        return f"{self.metric_name} {self.operator} {_number(self.threshold)}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (the rules-file form)."""
        return {
            "rule_name": self.rule_name,
            "metric_name": self.metric_name,
            "threshold": self.threshold,
            "operator": self.operator,
            "priority": self.priority.name,
            "cooldown_minutes": self.cooldown_minutes,
        }


# AlertRule.create's checks of loose input, in the order of the fields.
_LOOSE: dict[str, Callable[[str, object], Any]] = {
    "rule_name": _check_name,
    "metric_name": _check_name,
    "threshold": _check_number,
    "operator": _check_operator,
    "priority": _check_priority,
    "cooldown_minutes": _check_cooldown,
}


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


DEFAULT_RULES: tuple[tuple[str, str, float, str, Priority, float], ...] = (
    ("high_cpu_usage", "cpu_usage_percent", 85.0, ">", Priority.MEDIUM, 10),
    ("critical_cpu_usage", "cpu_usage_percent", 95.0, ">", Priority.HIGH, 5),
    ("high_memory_usage", "memory_usage_percent", 80.0, ">", Priority.MEDIUM, 10),
    ("critical_memory_usage", "memory_usage_percent", 90.0, ">", Priority.HIGH, 5),
    ("large_processing_queue", "queue_size", 1000.0, ">", Priority.MEDIUM, 15),
    ("critical_processing_queue", "queue_size", 5000.0, ">", Priority.HIGH, 10),
    ("high_error_rate", "error_rate_percent", 5.0, ">", Priority.MEDIUM, 10),
    ("critical_error_rate", "error_rate_percent", 15.0, ">", Priority.HIGH, 5),
)
"""The eight default rules: (name, metric, threshold, operator, priority, cooldown min)."""

# Short forms a rule table may use for add_alert_rule's argument names.
_ALIASES = {"name": "rule_name", "metric": "metric_name", "cooldown": "cooldown_minutes"}


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a TOML file, raising ``RuleError`` with the path for an unreadable or bad file."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    file = Path(path)
    try:
        with file.open("rb") as f:
            data: dict[str, Any] = tomllib.load(f)
    except OSError as exc:
        raise RuleError([f"{file}: cannot read ({exc.strerror or exc})"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise RuleError([f"{file}: not valid TOML: {exc}"]) from None
    return data


def load_rules(source: str | os.PathLike[str] | Mapping[str, Any]) -> list[AlertRule]:
    """Read alert rules from a TOML file or an already-parsed mapping.

    The rules are an array of tables (``[[rules]]``) or a table of tables
    (``[rules.<name>]``), at the top level or under ``[monitoring]``; each has
    ``rule_name`` (or ``name``, implied by a table of tables), ``metric_name``
    (or ``metric``), ``threshold``, ``operator``, ``priority`` and
    ``cooldown_minutes`` (or ``cooldown``, default 5). Every problem is
    reported in a :class:`RuleError` whose lines read
    ``<file>: <what was expected> @ <key path>``, as the core's config errors do.
    """
    origin = "rules"
    if isinstance(source, Mapping):
        data: Mapping[str, Any] = source
    else:
        data = read_toml(source)
        origin = str(source)
    path = "rules"
    if isinstance(data.get("monitoring"), Mapping) and "rules" not in data:
        data = data["monitoring"]
        path = "monitoring.rules"
    rules, errors = structure_rules(data.get("rules", []), path=path, origin=origin)
    if errors:
        raise RuleError(errors)
    return rules


def structure_rules(
    raw: object, *, path: str, origin: str | Mapping[str, str]
) -> tuple[list[AlertRule], list[str]]:
    """The rules of a ``rules`` value (a list of tables or a table of tables), and the
    problems found, one line each: ``<origin>: <what was expected> @ <path>...``."""
    entries: list[tuple[str, object, str | None]]
    if isinstance(raw, Mapping):
        entries = [(f"{path}.{name}", table, str(name)) for name, table in raw.items()]
    elif isinstance(raw, list):
        entries = [(f"{path}[{index}]", table, None) for index, table in enumerate(raw)]
    else:
        where = origin if isinstance(origin, str) else _origin(path, origin)
        expected = "an array of tables ([[rules]]) or a table of tables ([rules.<name>])"
        return [], [f"{where}: expected {expected}, got {type(raw).__name__} @ {path}"]
    rules: list[AlertRule] = []
    errors: list[str] = []
    seen: dict[str, str] = {}
    for where, table, implied_name in entries:
        try:
            rule = _structure_rule(table, where, origin, implied_name)
        except ConfigError as exc:
            errors.extend(exc.errors)
            continue
        if rule.rule_name in seen:
            errors.append(
                f"{_origin(where, origin)}: expected each rule_name once, "
                f"{rule.rule_name!r} is also at {seen[rule.rule_name]} @ {where}"
            )
            continue
        seen[rule.rule_name] = where
        rules.append(rule)
    return rules, errors


def _structure_rule(
    table: object, where: str, origin: str | Mapping[str, str], implied_name: str | None
) -> AlertRule:
    from pixalert.channels import structure_config

    if not isinstance(table, Mapping):
        kind = type(table).__name__
        raise ConfigError([f"{_origin(where, origin)}: expected a table, got {kind} @ {where}"])
    values: dict[str, Any] = {} if implied_name is None else {"rule_name": implied_name}
    for key, value in table.items():
        field = _ALIASES.get(str(key), str(key))
        if field != key and field in table:
            raise ConfigError(
                [f"{_origin(where, origin)}: expected {field} or {key}, not both @ {where}"]
            )
        values[field] = value
    rule: AlertRule = structure_config(AlertRule, values, path=where, source=origin)
    return rule


def _origin(path: str, origin: str | Mapping[str, str]) -> str:
    """The file a key path came from (``origin`` is a file name or the core's sources map)."""
    if isinstance(origin, str):
        return origin
    best = max(
        (key for key in origin if path == key or path.startswith(key + ".")), key=len, default=""
    )
    return origin.get(best, "defaults")
