"""``pixalert demo``: the whole system on loopback sinks, no credentials needed."""

from __future__ import annotations

import sys
import tempfile
from typing import Any

import click

from . import EXIT_DELIVERY_FAILED, EXIT_USAGE, fail, json_option, run_async
from ._output import Styled, console, escape, print_table, status_text

_PRIORITIES = ("LOW", "MEDIUM", "HIGH", "CRITICAL")

_ALERTS = {
    "LOW": ("Nightly backup finished late", "The backup of db-1 took 74 minutes (usual: 40)."),
    "MEDIUM": ("High memory usage on api-1", "Memory usage has exceeded 85% threshold: 87%."),
    "HIGH": ("Error rate above 5% on checkout", "5xx responses: 7.2% over the last 5 minutes."),
    "CRITICAL": ("Database primary unreachable", "db-1 has not answered health checks for 60 s."),
}


@click.command()
@json_option
def demo(as_json: bool) -> None:
    """Run the whole system on local sinks: no credentials needed.

    Starts a local stand-in for every channel the installed plugins can
    demonstrate (an SMTP server with STARTTLS and AUTH, Slack, PagerDuty and a
    webhook receiver, all on 127.0.0.1 and checking the real wire contracts),
    configures the channels against them, sends one alert of each priority and
    a resolve, and shows what each sink received and the history.
    """
    from .._plugins import default_plugin_manager

    pm = default_plugin_manager()
    sinks = _sinks(pm)
    outcome = run_async(_run(pm, sinks, show=not as_json))
    if as_json:
        from ._output import print_json

        print_json(outcome)
    failed = [
        (a["title"], c)
        for a in outcome["alerts"]
        for c, r in a["results"].items()
        if r["status"] != "sent"
    ]
    if failed or not outcome["sinks"]:
        sys.exit(EXIT_DELIVERY_FAILED)


def _sinks(pm: Any) -> list[Any]:
    """Every plugin's demo sinks; a plugin whose test servers are not installed is named."""
    sinks: list[Any] = []
    missing: dict[str, str] = {}
    for impl in pm.hook.pixalert_demo_sinks.get_hookimpls():
        try:
            sinks.extend(impl.function() or ())
        except ModuleNotFoundError as exc:
            missing[impl.plugin_name] = _top(exc)
        except Exception as exc:
            click.echo(f"warning: plugin {impl.plugin_name!r}: no demo sinks ({exc})", err=True)
    if missing:
        _fail_missing(pm, missing)
    return sinks


def _top(exc: ModuleNotFoundError) -> str:
    """The distribution-level name of the module that is missing (``aiosmtpd``)."""
    return (exc.name or str(exc)).split(".")[0]


def _fail_missing(pm: Any, missing: dict[str, str]) -> None:
    """Exit 2, saying which ``pip install`` brings the modules the demo sinks need."""
    dists = {info.name: info.distribution for info in pm.plugin_infos()}
    wanted = []
    for plugin, module in sorted(missing.items()):
        dist = dists.get(plugin)
        wanted.append(f"'{dist}[testing]'" if dist and _has_extra(dist, "testing") else module)
    modules = ", ".join(sorted(set(missing.values())))
    fail(
        f"pixalert demo needs the plugins' test servers, and {modules} is not installed: "
        f"pip install {' '.join(wanted)}",
        EXIT_USAGE,
    )


def _has_extra(dist: str, extra: str) -> bool:
    from importlib import metadata

    try:
        return extra in (metadata.metadata(dist).get_all("Provides-Extra") or [])
    except metadata.PackageNotFoundError:
        return False


async def _run(pm: Any, sinks: list[Any], *, show: bool = True) -> dict[str, Any]:
    from .._manager import NotificationManager

    out = console()
    if not sinks:
        message = (
            "No channel plugin is installed, so there is nothing to demonstrate.\n"
            "Install them: python3 -m pip install pixalert-email pixalert-slack "
            "pixalert-pagerduty pixalert-webhook"
        )
        if show:
            out.print(f"[yellow]{escape(message)}[/]")
        else:
            click.echo(message, err=True)
        return {"sinks": {}, "alerts": [], "history": []}

    channels: dict[str, Any] = {}
    started = []
    with tempfile.TemporaryDirectory(prefix="pixalert-demo-") as tmp:
        try:
            for sink in sinks:
                try:
                    channels[sink.channel_type] = dict(await sink.start())
                except ModuleNotFoundError as exc:
                    _fail_missing(pm, {_owner(pm, sink): _top(exc)})
                started.append(sink)
            if show:
                out.print(
                    f"Started {len(started)} local sinks on 127.0.0.1: "
                    + ", ".join(s.channel_type for s in started)
                )
            config = {
                "history": f"sqlite:///{tmp}/history.db",
                "channels": channels,
                "delivery": {"timeout": 10},
            }
            manager = NotificationManager(config, read_files=False, env={}, plugin_manager=pm)
            alerts: list[dict[str, Any]] = []
            async with manager:
                for level in _PRIORITIES:
                    title, message = _ALERTS[level]
                    results = await manager.send_alert(
                        title,
                        message,
                        level,
                        metadata={"demo": True, "host": "api-1"},
                        source="pixalert-demo",
                        key=f"demo-{level.lower()}",
                    )
                    alerts.append(_summary(level, title, "firing", results))
                title, message = _ALERTS["CRITICAL"]
                results = await manager.send_alert(
                    title,
                    "db-1 is answering again.",
                    "CRITICAL",
                    metadata={"demo": True, "host": "db-1"},
                    source="pixalert-demo",
                    key="demo-critical",
                    status="resolved",
                )
                alerts.append(_summary("CRITICAL", title, "resolved", results))
                history = await manager.history(1)
        finally:
            received = {s.channel_type: s.lines() for s in started}
            for sink in started:
                await sink.stop()

    if show:
        _show(alerts, received, history)
    return {"sinks": received, "alerts": alerts, "history": history}


def _owner(pm: Any, sink: Any) -> str:
    """The plugin whose channel type ``sink`` stands in for."""
    for info in pm.plugin_infos():
        if sink.channel_type in info.channels:
            return str(info.name)
    return str(sink.channel_type)


def _summary(level: str, title: str, status: str, results: Any) -> dict[str, Any]:
    return {
        "priority": level,
        "title": title,
        "status": status,
        "results": {str(name): r.to_dict() for name, r in results.items()},
    }


def _show(
    alerts: list[dict[str, Any]], received: dict[str, list[str]], history: list[dict[str, Any]]
) -> None:
    print_table(
        "Routing: which channels each alert went to",
        ["priority", "alert", "status", "routed to"],
        (
            (
                a["priority"],
                a["title"],
                a["status"],
                Styled(
                    ", ".join(
                        f"{escape(c)} {status_text(r['status'])}" for c, r in a["results"].items()
                    )
                ),
            )
            for a in alerts
        ),
    )
    print_table(
        "What each local sink received",
        ["channel", "received"],
        ((name, "\n".join(lines) or "(nothing)") for name, lines in received.items()),
    )
    print_table(
        "History (newest first)",
        ["time", "priority", "status", "title", "results"],
        (
            (
                e["created_at"][11:19],
                e["priority"],
                e["status"],
                e["title"],
                ", ".join(f"{c}: {r['status']} x{r['attempts']}" for c, r in e["results"].items()),
            )
            for e in history
        ),
    )
