"""pixalert-monitoring: metrics and threshold rules, outside alerts, ``pixalert serve`` and
``pixalert monitor``.

This module stays light (``pixalert --help`` loads it): the public names below
are imported on first use.

- :class:`MonitoringBridge`: metrics, threshold rules, external alerts and health.
- :class:`AlertRule`, :func:`load_rules`: threshold rules, also from TOML.
- :func:`parse_external`, :class:`PayloadError`: Alertmanager, Grafana and plain bodies.
- :func:`create_app`: the receiver's Starlette app; :func:`load_monitoring_config`.
- :func:`parse_timestamp`: RFC 3339 with 0-9 fraction digits, on Python 3.10 too.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pixalert import hookimpl

if TYPE_CHECKING:
    import click

    from ._bridge import MetricSample, MonitoringBridge
    from ._external import (
        DEFAULT_SEVERITY_MAP,
        ExternalAlert,
        ExternalBatch,
        PayloadError,
        PayloadTooLarge,
        parse_external,
    )
    from ._host import HostSampler
    from ._metrics import ReceiverMetrics
    from ._receiver import create_app
    from ._rules import DEFAULT_RULES, OPERATORS, AlertRule, RuleError, load_rules
    from ._settings import MonitorConfig, MonitoringConfig, ReceiverConfig, load_monitoring_config
    from ._timefmt import parse_timestamp

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_RULES",
    "DEFAULT_SEVERITY_MAP",
    "OPERATORS",
    "AlertRule",
    "ExternalAlert",
    "ExternalBatch",
    "HostSampler",
    "MetricSample",
    "MonitorConfig",
    "MonitoringBridge",
    "MonitoringConfig",
    "PayloadError",
    "PayloadTooLarge",
    "ReceiverConfig",
    "ReceiverMetrics",
    "RuleError",
    "__version__",
    "create_app",
    "load_monitoring_config",
    "load_rules",
    "parse_external",
    "parse_timestamp",
]

_LAZY = {
    "MonitoringBridge": "._bridge",
    "MetricSample": "._bridge",
    "DEFAULT_SEVERITY_MAP": "._external",
    "ExternalAlert": "._external",
    "ExternalBatch": "._external",
    "PayloadError": "._external",
    "PayloadTooLarge": "._external",
    "parse_external": "._external",
    "HostSampler": "._host",
    "ReceiverMetrics": "._metrics",
    "create_app": "._receiver",
    "DEFAULT_RULES": "._rules",
    "OPERATORS": "._rules",
    "AlertRule": "._rules",
    "RuleError": "._rules",
    "load_rules": "._rules",
    "MonitorConfig": "._settings",
    "MonitoringConfig": "._settings",
    "ReceiverConfig": "._settings",
    "load_monitoring_config": "._settings",
    "parse_timestamp": "._timefmt",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pixalert_monitoring' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    # pluggy finds hook implementations through dir(): keep module globals in it.
    return sorted(set(globals()) | set(__all__))


@hookimpl  # type: ignore[untyped-decorator, unused-ignore]  # core lacks py.typed
def pixalert_cli(cli: click.Group) -> None:
    """Add ``pixalert serve`` and ``pixalert monitor``."""
    from ._cli import monitor, serve

    cli.add_command(serve, "serve")
    cli.add_command(monitor, "monitor")
