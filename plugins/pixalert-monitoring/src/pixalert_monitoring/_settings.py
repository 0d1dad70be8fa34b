"""The monitoring config file: receiver settings, severity mapping, host monitor, rules.

Example (``pixalert-monitoring.toml``)::

    [receiver]
    token = "a-long-random-string"   # or PIXALERT_RECEIVER_TOKEN
    max_body = 2097152
    max_alerts = 1000

    [severity]                       # severity label -> priority
    page = "critical"

    [monitor]
    interval = 60
    default_rules = true

    [[rules]]
    rule_name = "disk_almost_full"
    metric_name = "disk_usage_percent"
    threshold = 90
    operator = ">"
    priority = "high"
    cooldown_minutes = 30

The same tables may sit under ``[monitoring]``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import attrs
from pixalert import Priority

from ._bridge import DEFAULT_DEDUP_TTL
from ._receiver import (
    DEFAULT_INGEST_TIMEOUT,
    DEFAULT_MAX_ALERTS,
    DEFAULT_MAX_BODY,
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_INFLIGHT,
)
from ._rules import AlertRule, RuleError, load_rules, read_toml

__all__ = ["MonitoringConfig", "ReceiverConfig", "load_monitoring_config"]

TOKEN_ENV = "PIXALERT_RECEIVER_TOKEN"
CONFIG_ENV = "PIXALERT_MONITORING_CONFIG"


@attrs.frozen
class ReceiverConfig:
    """``[receiver]``: the HTTP receiver's token and limits."""

    token: str | None = attrs.field(default=None, repr=lambda v: "'***'" if v else "None")
    max_body: int = DEFAULT_MAX_BODY
    max_alerts: int = DEFAULT_MAX_ALERTS
    max_depth: int = DEFAULT_MAX_DEPTH
    max_inflight: int = DEFAULT_MAX_INFLIGHT
    ingest_timeout: float = DEFAULT_INGEST_TIMEOUT
    dedup_ttl: float = DEFAULT_DEDUP_TTL


@attrs.frozen
class MonitoringConfig:
    """The whole monitoring file."""

    receiver: ReceiverConfig = ReceiverConfig()
    severities: dict[str, Priority] = attrs.Factory(dict)
    interval: float = 60.0
    default_rules: bool = True
    rules: tuple[AlertRule, ...] = ()


_RECEIVER_INTS = ("max_body", "max_alerts", "max_depth", "max_inflight")
_RECEIVER_FLOATS = ("ingest_timeout", "dedup_ttl")


def load_monitoring_config(
    source: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
) -> MonitoringConfig:
    """Read the monitoring file (or mapping); ``PIXALERT_RECEIVER_TOKEN`` overrides the token.

    With no ``source``, ``$PIXALERT_MONITORING_CONFIG`` is read if set.
    Raises :class:`RuleError` (a ``ValueError``) with one line per problem,
    each naming the file and key.
    """
    env = os.environ if env is None else env
    if source is None and env.get(CONFIG_ENV):
        source = env[CONFIG_ENV]
    where = "monitoring config"
    data: Mapping[str, Any]
    if source is None:
        data = {}
    elif isinstance(source, Mapping):
        data = source
    else:
        data = read_toml(source)
        where = str(source)
    if isinstance(data.get("monitoring"), Mapping):
        data = data["monitoring"]
    errors: list[str] = []
    known = {"receiver", "severity", "monitor", "rules"}
    for key in data:
        if key not in known:
            errors.append(
                f"{where}: unknown key {key!r}; expected receiver, severity, monitor, rules"
            )

    receiver_data = _table(data, "receiver", where, errors)
    receiver: dict[str, Any] = {}
    for key, value in receiver_data.items():
        path = f"{where}: receiver.{key}"
        if key == "token":
            if not isinstance(value, str) or not value:
                errors.append(f"{path}: expected a non-empty string")
            else:
                receiver["token"] = value
        elif key in _RECEIVER_INTS:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                errors.append(f"{path}: expected a whole number >= 1, got {value!r}")
            else:
                receiver[key] = value
        elif key in _RECEIVER_FLOATS:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                errors.append(f"{path}: expected a number > 0, got {value!r}")
            else:
                receiver[key] = float(value)
        else:
            errors.append(
                f"{path}: unknown key; expected token, "
                + ", ".join(_RECEIVER_INTS + _RECEIVER_FLOATS)
            )
    if env.get(TOKEN_ENV):
        receiver["token"] = env[TOKEN_ENV]

    severities: dict[str, Priority] = {}
    for key, value in _table(data, "severity", where, errors).items():
        try:
            severities[str(key).strip().lower()] = Priority.parse(value)
        except ValueError as exc:
            errors.append(f"{where}: severity.{key}: {exc}")

    monitor = _table(data, "monitor", where, errors)
    interval = 60.0
    default_rules = True
    for key, value in monitor.items():
        path = f"{where}: monitor.{key}"
        if key == "interval":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                errors.append(f"{path}: expected seconds > 0, got {value!r}")
            else:
                interval = float(value)
        elif key == "default_rules":
            if not isinstance(value, bool):
                errors.append(f"{path}: expected true or false, got {value!r}")
            else:
                default_rules = value
        else:
            errors.append(f"{path}: unknown key; expected interval, default_rules")

    rules: list[AlertRule] = []
    if "rules" in data:
        try:
            rules = load_rules({"rules": data["rules"]})
        except RuleError as exc:
            errors.extend(f"{where}: {line}" for line in exc.errors)
    if errors:
        raise RuleError(errors)
    return MonitoringConfig(
        receiver=ReceiverConfig(**receiver),
        severities=severities,
        interval=interval,
        default_rules=default_rules,
        rules=tuple(rules),
    )


def _table(data: Mapping[str, Any], key: str, where: str, errors: list[str]) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        errors.append(f"{where}: {key}: expected a table, got {type(value).__name__}")
        return {}
    return value
