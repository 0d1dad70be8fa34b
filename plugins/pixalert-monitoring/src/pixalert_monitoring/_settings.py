"""The monitoring config: receiver settings, severity mapping, host monitor, rules.

Example (``pixalert-monitoring.toml``, or the same tables under
``[plugins.monitoring]`` of the main config)::

    [receiver]
    token = "a-long-random-string"   # or PIXALERT_RECEIVER_TOKEN
    max_body = 2097152
    max_alerts = 1000
    dedup_ttl = "2m"

    [severity]                       # severity label -> priority
    page = "critical"

    [monitor]
    interval = "1m"
    default_rules = true

    [[rules]]
    rule_name = "disk_almost_full"
    metric_name = "disk_usage_percent"
    threshold = 90
    operator = ">"
    priority = "high"
    cooldown_minutes = 30

The same tables may sit under ``[monitoring]``. The tables are structured by
the core's converter (:func:`pixalert.channels.structure_config`), so an error
reads as the core's do: ``<file>: <what was expected> @ <key path>``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import attrs
from pixalert import ConfigError, Priority
from pixalert.channels import Duration, Secret, register_secret

from ._bridge import DEFAULT_DEDUP_TTL
from ._rules import AlertRule, read_toml, structure_rules

__all__ = [
    "DEFAULT_DEDUP_TTL",
    "DEFAULT_INGEST_TIMEOUT",
    "DEFAULT_MAX_ALERTS",
    "DEFAULT_MAX_BODY",
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_INFLIGHT",
    "MonitorConfig",
    "MonitoringConfig",
    "ReceiverConfig",
    "load_monitoring_config",
]

TOKEN_ENV = "PIXALERT_RECEIVER_TOKEN"
CONFIG_ENV = "PIXALERT_MONITORING_CONFIG"

DEFAULT_MAX_BODY = 2 * 1024 * 1024
DEFAULT_MAX_ALERTS = 1000
DEFAULT_MAX_DEPTH = 32
DEFAULT_MAX_INFLIGHT = 64
DEFAULT_INGEST_TIMEOUT = 5.0


def _whole(instance: Any, attribute: Any, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{attribute.name}: expected a whole number >= 1, got {value!r}")


def _positive(name: str, value: object) -> Duration:
    """``value`` as a :class:`Duration` > 0; an error names the field ``name``."""
    if isinstance(value, Duration):  # structured already: say its number
        value = float(value)
    try:
        return Duration.parse(value, zero=False)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


def _ingest_timeout(value: object) -> Duration:
    return _positive("ingest_timeout", value)


def _dedup_ttl(value: object) -> Duration:
    return _positive("dedup_ttl", value)


def _interval(value: object) -> Duration:
    return _positive("interval", value)


def _token(value: str | Secret | None) -> Secret | None:
    if isinstance(value, str):
        register_secret(value)  # masked by pixalert.channels.redact() and in log records
        return Secret(value)
    return value


def _non_empty_token(instance: Any, attribute: Any, value: Secret | None) -> None:
    if value is not None and not value.get():
        raise ValueError("token: expected a non-empty string (or no token)")


@attrs.frozen
class ReceiverConfig:
    """``[receiver]``: the HTTP receiver's token and limits.

    ``token`` is a :class:`pixalert.channels.Secret` (a string given here
    becomes one): no repr or str shows it. Durations are seconds or
    strings such as ``"2m"``.
    """

    token: Secret | None = attrs.field(default=None, converter=_token, validator=_non_empty_token)
    max_body: int = attrs.field(default=DEFAULT_MAX_BODY, validator=_whole)
    max_alerts: int = attrs.field(default=DEFAULT_MAX_ALERTS, validator=_whole)
    max_depth: int = attrs.field(default=DEFAULT_MAX_DEPTH, validator=_whole)
    max_inflight: int = attrs.field(default=DEFAULT_MAX_INFLIGHT, validator=_whole)
    ingest_timeout: Duration = attrs.field(
        default=Duration(DEFAULT_INGEST_TIMEOUT), converter=_ingest_timeout
    )
    dedup_ttl: Duration = attrs.field(default=Duration(DEFAULT_DEDUP_TTL), converter=_dedup_ttl)


@attrs.frozen
class MonitorConfig:
    """``[monitor]``: ``pixalert monitor``'s sampling interval and default rules."""

    interval: Duration = attrs.field(default=Duration(60), converter=_interval)
    default_rules: bool = True


@attrs.frozen
class _Tables:
    """The tables of a monitoring config but ``rules`` (structured one rule at a time)."""

    receiver: ReceiverConfig = ReceiverConfig()
    severity: dict[str, Priority] = attrs.Factory(dict)
    monitor: MonitorConfig = MonitorConfig()


@attrs.frozen
class MonitoringConfig:
    """The whole monitoring config."""

    receiver: ReceiverConfig = ReceiverConfig()
    severities: dict[str, Priority] = attrs.Factory(dict)
    interval: float = 60.0
    default_rules: bool = True
    rules: tuple[AlertRule, ...] = ()


def load_monitoring_config(
    source: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    settings: Any = None,
) -> MonitoringConfig:
    """Read the monitoring file (or mapping); ``PIXALERT_RECEIVER_TOKEN`` overrides the token.

    With no ``source``, ``$PIXALERT_MONITORING_CONFIG`` is read if set, else
    ``[plugins.monitoring]`` of ``settings`` (the main config's
    :class:`pixalert.Settings`), else the defaults apply. Raises
    :class:`pixalert.ConfigError` with one line per problem, each naming the
    file and the key path (``plugins.monitoring.receiver.max_body`` in the
    main config).
    """
    env = os.environ if env is None else env
    if source is None and env.get(CONFIG_ENV):
        source = env[CONFIG_ENV]
    origin: str | Mapping[str, str] = "monitoring config"
    path = ""
    data: Mapping[str, Any]
    if source is None and settings is not None:
        data = settings.plugins.get("monitoring") or {}
        origin, path = settings.sources, "plugins.monitoring"
    elif source is None:
        data = {}
    elif isinstance(source, Mapping):
        data = source
    else:
        data = read_toml(source)
        origin = str(source)
    if isinstance(data.get("monitoring"), Mapping):
        data = data["monitoring"]
        path = f"{path}.monitoring" if path else "monitoring"
    return _structure(dict(data), env, origin, path)


def _structure(
    data: dict[str, Any], env: Mapping[str, str], origin: str | Mapping[str, str], path: str
) -> MonitoringConfig:
    from pixalert.channels import structure_config

    errors: list[str] = []
    rules: list[AlertRule] = []
    if "rules" in data:
        prefix = f"{path}.rules" if path else "rules"
        rules, errors = structure_rules(data.pop("rules"), path=prefix, origin=origin)
    if env.get(TOKEN_ENV) and isinstance(data.get("receiver", {}), Mapping):
        data["receiver"] = {**data.get("receiver", {}), "token": env[TOKEN_ENV]}
    tables = _Tables()
    try:
        tables = structure_config(_Tables, data, path=path, source=origin)
    except ConfigError as exc:
        errors[:0] = exc.errors
    if errors:
        raise ConfigError(errors)
    return MonitoringConfig(
        receiver=tables.receiver,
        severities={str(k).strip().lower(): v for k, v in tables.severity.items()},
        interval=float(tables.monitor.interval),
        default_rules=tables.monitor.default_rules,
        rules=tuple(rules),
    )
