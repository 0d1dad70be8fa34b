"""``pixalert serve`` and ``pixalert monitor``.

Only click (and the core's light CLI helpers) are imported here; starlette,
uvicorn and psutil are imported inside the command functions so that
``pixalert --help`` stays fast. Both commands take the core's global options
(``--config``, ``--env-file``, ``-v``, ``--debug``) before or after their name.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click
from pixalert.cli import (
    EXIT_DELIVERY_FAILED,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    build_manager,
    fail,
    global_options,
)

__all__ = ["monitor", "serve"]

_monitoring_option = click.option(
    "--monitoring-config",
    "monitoring_file",
    type=click.Path(dir_okay=False),
    envvar="PIXALERT_MONITORING_CONFIG",
    default=None,
    help="Monitoring file: [receiver], [severity], [monitor], [[rules]] "
    "(env PIXALERT_MONITORING_CONFIG).",
)


def _fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    fail(message, code)


def _manager() -> Any:
    """The manager of the global --config/--env-file (before or after the command)."""
    return build_manager()


def _monitoring_config(path: str | None, manager: Any) -> Any:
    """The monitoring file, else ``[plugins.monitoring]`` of the main config."""
    from pixalert import ConfigError

    from ._settings import load_monitoring_config

    try:
        return load_monitoring_config(path, settings=manager.settings)
    except ConfigError as exc:
        _fail(str(exc))


def _install_signals(stop: Callable[[], None]) -> Callable[[], None]:
    """Call ``stop`` on SIGINT and SIGTERM; return a function that restores the handlers."""
    loop = asyncio.get_running_loop()
    signals = [signal.SIGINT, signal.SIGTERM]
    installed: list[signal.Signals] = []
    previous: dict[signal.Signals, Any] = {}
    for sig in signals:
        try:
            loop.add_signal_handler(sig, stop)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - Windows
            previous[sig] = signal.signal(sig, lambda *_: loop.call_soon_threadsafe(stop))

    def restore() -> None:
        for sig in installed:
            loop.remove_signal_handler(sig)
        for sig, handler in previous.items():  # pragma: no cover - Windows
            signal.signal(sig, handler)

    return restore


@global_options
@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=9095,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port (0: any free port; the one used is printed).",
)
@_monitoring_option
@click.option(
    "--allow-unauthenticated",
    is_flag=True,
    help="Listen on a non-loopback address without a bearer token.",
)
@click.option("--max-body", type=click.IntRange(min=1), help="Largest body in bytes.")
@click.option("--max-alerts", type=click.IntRange(min=1), help="Most alerts in one request.")
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
def serve(
    host: str,
    port: int,
    monitoring_file: str | None,
    allow_unauthenticated: bool,
    max_body: int | None,
    max_alerts: int | None,
    log_level: str,
) -> None:
    """Receive alerts over HTTP: POST /webhook/alerts (Alertmanager, Grafana, JSON).

    Also GET /health, GET /metrics (Prometheus), GET /api/alerts?hours=N;
    POST /api/alerts/ID/ack and /resolve, POST /heartbeat/NAME (/start, /fail),
    the email links (/links/...) and Slack's buttons (/slack/actions); and the
    dashboard at / (what is firing, history, channels, silences).
    The bearer token comes from PIXALERT_RECEIVER_TOKEN or [receiver] token.
    """
    from ._server import is_loopback

    manager = _manager()
    settings = _monitoring_config(monitoring_file, manager)
    receiver = settings.receiver
    if not receiver.token and not is_loopback(host) and not allow_unauthenticated:
        _fail(
            f"refusing to listen on {host} without a bearer token: set "
            "PIXALERT_RECEIVER_TOKEN (or [receiver] token in the monitoring file), "
            "or pass --allow-unauthenticated"
        )
    from ._receiver import create_app

    app = create_app(
        manager,
        token=receiver.token,
        max_body=max_body or receiver.max_body,
        max_alerts=max_alerts or receiver.max_alerts,
        max_depth=receiver.max_depth,
        max_inflight=receiver.max_inflight,
        ingest_timeout=receiver.ingest_timeout,
        severities=settings.severities,
        dedup_ttl=receiver.dedup_ttl,
    )
    code = asyncio.run(_serve(app, manager, host, port, log_level, bool(receiver.token)))
    sys.exit(code)


async def _serve(
    app: Any, manager: Any, host: str, port: int, log_level: str, has_token: bool
) -> int:
    from ._server import running_server

    try:
        async with running_server(
            app, host=host, port=port, log_level=log_level, access_log=True
        ) as server:
            stopping = asyncio.Event()
            restore = _install_signals(stopping.set)
            bound_host, bound_port = server.bound
            shown = f"[{bound_host}]" if ":" in bound_host else bound_host
            auth = "bearer token required" if has_token else "no token"
            click.echo(
                f"pixalert: receiving alerts on http://{shown}:{bound_port}/webhook/alerts "
                f"({auth}); Ctrl-C to stop",
            )
            click.echo(f"pixalert: dashboard on http://{shown}:{bound_port}/")
            sys.stdout.flush()
            # What was built to start (modules, app, settings) lives until exit:
            # keep it out of every full garbage collection while serving.
            gc.freeze()
            try:
                await stopping.wait()
            finally:
                restore()
            click.echo("pixalert: stopping")
    except OSError as exc:  # the address could not be bound
        import os

        shown = f"[{host}]" if ":" in host else host
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        click.echo(
            f"error: cannot listen on {shown}:{port}: {reason}; "
            "stop what uses it or pick another --port (or --host)",
            err=True,
        )
        await manager.aclose()
        return EXIT_UNAVAILABLE
    except RuntimeError as exc:
        click.echo(f"error: {exc}", err=True)
        await manager.aclose()
        return EXIT_UNAVAILABLE
    await manager.aclose()
    click.echo("pixalert: stopped")
    return 0


@global_options
@click.command()
@click.option(
    "--interval",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds between samples (default: [monitor] interval, else 60).",
)
@click.option("--service", help="Service name for the metrics (default: this host's name).")
@click.option(
    "--disk", "disk_path", default="/", show_default=True, help="Filesystem whose usage is sampled."
)
@click.option("--once", is_flag=True, help="Sample and check once, then exit.")
@_monitoring_option
def monitor(
    interval: float | None,
    service: str | None,
    disk_path: str,
    once: bool,
    monitoring_file: str | None,
) -> None:
    """Watch this host's CPU, memory and disk; alert by the rules until Ctrl-C or SIGTERM.

    Uses the eight default rules (CPU, memory, queue size, error rate) plus disk
    rules (high_disk_usage > 85, critical_disk_usage > 95), and the [[rules]] of
    the monitoring file.
    """
    import socket

    from ._host import HOST_RULES, HostSampler

    manager = _manager()
    settings = _monitoring_config(monitoring_file, manager)
    service = service or socket.gethostname() or "localhost"
    try:
        sampler = HostSampler(service, disk_path)
    except OSError as exc:
        _fail(f"--disk {disk_path!r}: {exc.strerror or exc}")
    from ._bridge import MonitoringBridge

    bridge = MonitoringBridge(manager, severities=settings.severities)
    if settings.default_rules:
        bridge.setup_default_alert_rules()
        for rule in HOST_RULES:
            bridge.add_alert_rule(*rule)
    for rule in settings.rules:
        bridge.alert_rules[rule.rule_name] = rule
    every = interval or settings.interval
    sys.exit(asyncio.run(_monitor(bridge, manager, sampler, every, once)))


def _report(sent: list[dict[str, Any]]) -> None:
    for item in sent:
        results = ", ".join(f"{k}={v}" for k, v in item.get("results", {}).items()) or item.get(
            "error", "no channel"
        )
        click.echo(
            f"pixalert: {item['status']} {item['rule']} on {item['service']} "
            f"(value {item['value']}): {results}"
        )
    sys.stdout.flush()


async def _monitor(bridge: Any, manager: Any, sampler: Any, interval: float, once: bool) -> int:
    try:
        if once:
            await asyncio.sleep(sampler.min_cpu_window)  # the CPU measurement window
            sampler(bridge)
            sent = await bridge.check_alert_conditions()
            _report(sent)
            if not sent:
                click.echo(
                    f"pixalert: checked {len(bridge.alert_rules)} rules on {sampler.service}: "
                    "none fired"
                )
            failed = any(
                "error" in item or "failed" in item.get("results", {}).values() for item in sent
            )
            return EXIT_DELIVERY_FAILED if failed else 0
        restore = _install_signals(bridge.stop)
        click.echo(
            f"pixalert: monitoring {sampler.service} every {interval:g}s with "
            f"{len(bridge.alert_rules)} rules; Ctrl-C to stop"
        )
        sys.stdout.flush()
        try:
            await bridge.start_monitoring_loop(interval, collect=sampler, on_check=_report)
        finally:
            restore()
        click.echo("pixalert: stopped")
        return 0
    finally:
        await bridge.aclose()
        await manager.aclose()
