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
from pixalert import Priority

__all__ = [
    "DEFAULT_RULES",
    "OPERATORS",
    "AlertRule",
    "RuleError",
    "load_rules",
    "read_toml",
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


class RuleError(ValueError):
    """A rule (or a rules file) is invalid. ``errors`` holds one line per problem."""

    def __init__(self, errors: Iterable[str]) -> None:
        self.errors = list(errors)
        super().__init__(
            "; ".join(self.errors)
            if len(self.errors) == 1
            else "invalid alert rules:\n  " + "\n  ".join(self.errors)
        )


def _check_name(what: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what}: expected a non-empty string, got {value!r}")
    return value.strip()


def _check_operator(value: object) -> str:
    if isinstance(value, str) and value.strip() in OPERATORS:
        return value.strip()
    raise ValueError(f"unknown operator {value!r}; expected one of {_OPERATOR_LIST}")


def _check_number(what: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{what}: expected a number, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{what}: expected a number, got {value!r}") from None
    if math.isnan(number):
        raise ValueError(f"{what}: expected a number, got NaN")
    return number


def _check_cooldown(value: object) -> float:
    number = _check_number("cooldown_minutes", value)
    if number < 0 or math.isinf(number):
        raise ValueError(f"cooldown_minutes: expected a finite number >= 0, got {value!r}")
    return number


@attrs.frozen
class AlertRule:
    """Fire when ``metric_name`` compared with ``threshold`` by ``operator`` holds.

    Evaluated per service; ``cooldown_minutes`` is the shortest time between
    two notifications of this rule for one service.
    """

    rule_name: str
    metric_name: str
    threshold: float
    operator: str
    priority: Priority
    cooldown_minutes: float

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
        rule, errors = _build(
            rule_name=rule_name,
            metric_name=metric_name,
            threshold=threshold,
            operator=operator,
            priority=priority,
            cooldown_minutes=cooldown_minutes,
        )
        if rule is None:
            name = rule_name if isinstance(rule_name, str) and rule_name.strip() else None
            label = f"rule {name!r}" if name else "rule"
            raise RuleError(f"{label}: {error}" for error in errors)
        return rule

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


def _build(**raw: object) -> tuple[AlertRule | None, list[str]]:
    checks: dict[str, Callable[[object], Any]] = {
        "rule_name": lambda v: _check_name("rule_name", v),
        "metric_name": lambda v: _check_name("metric_name", v),
        "threshold": lambda v: _check_number("threshold", v),
        "operator": _check_operator,
        "priority": _priority,
        "cooldown_minutes": _check_cooldown,
    }
    values: dict[str, Any] = {}
    errors: list[str] = []
    for field, check in checks.items():
        try:
            values[field] = check(raw.get(field, 5 if field == "cooldown_minutes" else None))
        except ValueError as exc:
            errors.append(str(exc))
    if errors:
        return None, errors
    return AlertRule(**values), []


def _priority(value: object) -> Priority:
    try:
        return Priority.parse(value)
    except ValueError as exc:
        raise ValueError(f"priority: {exc}") from None


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

# Keys a rule table may use: the argument names of ``add_alert_rule`` and short forms.
_RULE_KEYS = {
    "rule_name": "rule_name",
    "name": "rule_name",
    "metric_name": "metric_name",
    "metric": "metric_name",
    "threshold": "threshold",
    "operator": "operator",
    "priority": "priority",
    "cooldown_minutes": "cooldown_minutes",
    "cooldown": "cooldown_minutes",
}
_REQUIRED = ("rule_name", "metric_name", "threshold", "operator", "priority")


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a TOML file, raising ``RuleError`` with the path for an unreadable or bad file."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    file = Path(path)
    try:
        with file.open("rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise RuleError([f"{file}: cannot read ({exc.strerror or exc})"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise RuleError([f"{file}: not valid TOML: {exc}"]) from None


def load_rules(source: str | os.PathLike[str] | Mapping[str, Any]) -> list[AlertRule]:
    """Read alert rules from a TOML file or an already-parsed mapping.

    The rules are an array of tables (``[[rules]]``) or a table of tables
    (``[rules.<name>]``), at the top level or under ``[monitoring]``; each has
    ``rule_name`` (or ``name``, implied by a table of tables), ``metric_name``
    (or ``metric``), ``threshold``, ``operator``, ``priority`` and
    ``cooldown_minutes`` (default 5). Every problem is reported at once in a
    :class:`RuleError` whose lines name the file and the rule.
    """
    where = "rules"
    if isinstance(source, Mapping):
        data: Mapping[str, Any] = source
    else:
        data = read_toml(source)
        where = f"{source}: rules"
    if isinstance(data.get("monitoring"), Mapping) and "rules" not in data:
        data = data["monitoring"]
    raw = data.get("rules", [])
    entries: list[tuple[str, Any, str | None]] = []
    if isinstance(raw, Mapping):
        for name, table in raw.items():
            entries.append((f"{where}.{name}", table, str(name)))
    elif isinstance(raw, list):
        for index, table in enumerate(raw):
            entries.append((f"{where}[{index}]", table, None))
    else:
        raise RuleError(
            [
                f"{where}: expected an array of tables ([[rules]]) or a table of tables "
                f"([rules.<name>]), got {type(raw).__name__}"
            ]
        )
    rules: list[AlertRule] = []
    errors: list[str] = []
    seen: dict[str, str] = {}
    for path, table, implied_name in entries:
        if not isinstance(table, Mapping):
            errors.append(f"{path}: expected a table, got {type(table).__name__}")
            continue
        values: dict[str, Any] = {}
        if implied_name is not None:
            values["rule_name"] = implied_name
        for key, value in table.items():
            field = _RULE_KEYS.get(key)
            if field is None:
                errors.append(
                    f"{path}: unknown key {key!r}; expected rule_name, metric_name, "
                    "threshold, operator, priority, cooldown_minutes"
                )
                continue
            values[field] = value
        name = values.get("rule_name")
        label = f"{path} ({name})" if isinstance(name, str) and implied_name is None else path
        missing = [f for f in _REQUIRED if f not in values]
        if missing:
            errors.append(f"{label}: missing {', '.join(missing)}")
            continue
        rule, problems = _build(**values)
        if rule is None:
            errors.extend(f"{label}: {problem}" for problem in problems)
            continue
        if rule.rule_name in seen:
            errors.append(
                f"{label}: rule {rule.rule_name!r} is defined twice (also {seen[rule.rule_name]})"
            )
            continue
        seen[rule.rule_name] = label
        rules.append(rule)
    if errors:
        raise RuleError(errors)
    return rules
