"""``pixalert routes test``: which routes an alert takes, and what noise control does there."""

from __future__ import annotations

from typing import Any

import click

from . import build_manager, fail, json_option
from ._output import console, escape, print_json

_FIELDS = ("title", "message", "priority", "source", "key", "status")


@click.group()
def routes() -> None:
    """Inspect [[routes]]: routes test LABEL=VALUE ..."""


@routes.command("test")
@click.argument("labels", nargs=-1)
@click.option("--title", help="The alert's title (default: a placeholder).")
@click.option("-p", "--priority", help="low, medium, high or critical (default: medium).")
@click.option("--source", help="Where the alert comes from.")
@click.option("--status", type=click.Choice(["firing", "resolved"]), help="firing or resolved.")
@json_option
def test(
    labels: tuple[str, ...],
    title: str | None,
    priority: str | None,
    source: str | None,
    status: str | None,
    as_json: bool,
) -> None:
    """Show which routes an alert with LABELS (KEY=VALUE: an alert field such as
    source or priority, else metadata) matches, where it goes, and which grouping,
    for, occurrences and time intervals apply, as Alertmanager's
    ``amtool config routes test`` does."""
    from .._types import Alert

    fields: dict[str, Any] = {}
    metadata: dict[str, str] = {}
    for item in labels:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="LABELS")
        target = fields if key in _FIELDS else metadata
        target[key.strip()] = value
    options: dict[str, str | None] = {"title": title, "priority": priority, "source": source}
    fields.update({name: value for name, value in options.items() if value is not None})
    if status is not None:
        fields["status"] = status
    fields.setdefault("title", "routes test")
    manager = build_manager(sweep=False)
    try:
        alert = Alert(metadata=metadata, created_at=_now(manager), **fields)
    except ValueError as exc:
        fail(str(exc))
        raise AssertionError("unreachable") from None
    report = explain(manager, alert)
    if as_json:
        print_json(report)
    else:
        _print_tree(report)


def _now(manager: Any) -> Any:
    from .._clock import to_datetime

    return to_datetime(manager.clock.now())


def _duration(value: float | None) -> str | None:
    from .._durations import format_duration

    return None if value is None else format_duration(value)


def explain(manager: Any, alert: Any) -> dict[str, Any]:
    """What routing and noise control do with ``alert``, as a JSON-safe dict."""
    from .._clock import to_datetime
    from .._types import ChannelName

    settings = manager.settings
    pipeline = manager.pipeline
    noise = pipeline.noise
    now = manager.clock.now()
    table = manager.registry.expand(settings.routing.for_priority(alert.priority))
    matches = pipeline.route_table.match(alert, table)
    plan = pipeline.plan(alert)
    out_routes = []
    for match in matches:
        route = match.route
        entry: dict[str, Any] = {
            "index": match.index,
            "match": [str(m) for m in route.match] or ["(every alert)"],
            "continue": route.continue_,
            "channels": list(manager.registry.expand(match.channels)),
            "for": _duration(route.for_),
            "occurrences": (
                {"count": route.occurrences, "window": _duration(route.occurrences_window)}
                if route.occurrences
                else None
            ),
            "escalation": route.escalation,
            "template": route.template,
            "grouping": _grouping(noise, alert, match, match.grouping),
            "mute_time_intervals": [_interval(settings, n, now) for n in route.mute_time_intervals],
            "active_time_intervals": [
                _interval(settings, n, now) for n in route.active_time_intervals
            ],
        }
        hold = noise.mute_hold(match, now)
        entry["muted_now"] = (
            {"until": to_datetime(hold[0]).isoformat(), "why": hold[1]} if hold else None
        )
        out_routes.append(entry)
    default = None
    if not matches:
        default = {
            "priority": alert.priority.name.lower(),
            "channels": [str(c) for c in plan],
            "grouping": _grouping(noise, alert, None, settings.grouping),
        }
    channels = {}
    for name, match in plan.items():
        configured = ChannelName(name) in manager.registry.slots
        channels[str(name)] = {
            "route": None if match is None else match.index,
            "configured": configured,
            "why_not": None if configured else manager.registry.why_not(ChannelName(name)),
            "template": pipeline.templates.name_for(str(name), match),
        }
    return {
        "alert": {
            "title": alert.title,
            "priority": alert.priority.name.lower(),
            "source": alert.source,
            "status": alert.status,
            "key": alert.key,
            "metadata": alert.metadata,
        },
        "explicit_channels": list(alert.channels) if alert.channels is not None else None,
        "routes": out_routes,
        "default": default,
        "channels": channels,
        "flapping": (
            {
                "changes": settings.flapping.changes,
                "window": _duration(settings.flapping.window),
                "settle": _duration(settings.flapping.quiet),
            }
            if settings.flapping is not None
            else None
        ),
    }


def _grouping(noise: Any, alert: Any, match: Any, grouping: Any) -> dict[str, Any] | None:
    if grouping is None:
        return None
    ref = noise.group_ref(alert, "*", match, grouping)
    return {
        "group_by": list(grouping.group_by),
        "group_wait": _duration(grouping.group_wait),
        "group_interval": _duration(grouping.group_interval),
        "repeat_interval": _duration(grouping.repeat_interval),
        "critical_waits": grouping.critical_waits,
        "group": ref.labels,
        "alertmanager_group": ref.external,
    }


def _interval(settings: Any, name: str, now: float) -> dict[str, Any]:
    from .._clock import to_datetime
    from .._intervals import next_change

    found = settings.time_intervals[name]
    inside = found.contains(now)
    change = next_change(now, [found], [])
    return {
        "name": name,
        "now": "inside" if inside else "outside",
        "changes_at": None if change is None else to_datetime(change).isoformat(),
    }


def _print_tree(report: dict[str, Any]) -> None:
    from rich.tree import Tree

    alert = report["alert"]
    labels = ", ".join(f"{k}={v}" for k, v in alert["metadata"].items())
    head = (
        f"[bold]{escape(alert['title'])}[/bold]  priority={alert['priority']} "
        f"source={escape(alert['source'])} status={alert['status']}"
    )
    if labels:
        head += f"  {escape(labels)}"
    tree = Tree(head)
    if report["explicit_channels"] is not None:
        tree.add(f"explicit channels: {escape(', '.join(report['explicit_channels']))}")
    for route in report["routes"]:
        branch = tree.add(
            f"[bold]route {route['index']}[/bold] {escape(' '.join(route['match']))}"
            + ("  (continue)" if route["continue"] else "")
        )
        branch.add(f"channels: {escape(', '.join(route['channels']) or 'none')}")
        _policies(branch, route)
    if report["default"] is not None:
        branch = tree.add(f"no route matches: the priority table ({report['default']['priority']})")
        branch.add(f"channels: {escape(', '.join(report['default']['channels']) or 'none')}")
        if report["default"]["grouping"]:
            _group_node(branch, report["default"]["grouping"])
    for name, info in report["channels"].items():
        if not info["configured"]:
            tree.add(f"[yellow]{escape(name)}: skipped[/yellow] ({escape(info['why_not'] or '')})")
        elif info["template"]:
            tree.add(f"{escape(name)}: message template {escape(info['template'])}")
    if report["flapping"]:
        f = report["flapping"]
        tree.add(
            f"flapping: more than {f['changes']} changes in {f['window']}, "
            f"settles after {f['settle']}"
        )
    console().print(tree)


def _policies(branch: Any, route: dict[str, Any]) -> None:
    if route["grouping"]:
        _group_node(branch, route["grouping"])
    if route["for"]:
        branch.add(f"for {route['for']}: notified only if still firing then")
    if route["occurrences"]:
        o = route["occurrences"]
        branch.add(f"occurrences: from the {o['count']}th firing within {o['window']}")
    for key, word in (("mute_time_intervals", "mute"), ("active_time_intervals", "active")):
        for interval in route[key]:
            when = interval["changes_at"] or "never"
            branch.add(
                f"{word} time interval {escape(interval['name'])}: {interval['now']} now, "
                f"changes at {when}"
            )
    if route["muted_now"]:
        branch.add(f"[yellow]{escape(route['muted_now']['why'])}[/yellow]")
    if route["escalation"]:
        branch.add(f"escalation: {escape(route['escalation'])}")
    if route["template"]:
        branch.add(f"message template: {escape(route['template'])}")


def _group_node(branch: Any, grouping: dict[str, Any]) -> None:
    if grouping["alertmanager_group"]:
        what = f"Alertmanager's group {escape(grouping['alertmanager_group'])}"
    else:
        labels = ", ".join(f"{k}={v}" for k, v in grouping["group"].items()) or "all alerts"
        what = f"group {escape(labels)} (group_by {escape(', '.join(grouping['group_by']) or '-')})"
    node = branch.add(f"grouping: {what}")
    node.add(
        f"group_wait {grouping['group_wait']}, group_interval {grouping['group_interval']}, "
        f"repeat_interval {grouping['repeat_interval']}"
        + ("" if grouping["critical_waits"] else "; CRITICAL does not wait")
    )
