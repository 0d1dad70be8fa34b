"""The core's commands: send, channels, plugins, history, stats."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from .._storage import RESULTS, STATS_BY, STATUSES
from . import EXIT_DELIVERY_FAILED, build_manager, fail, json_option, run_async
from ._history import (
    Window,
    hour_chart,
    hour_label,
    parse_priorities,
    resolve_window,
    window_options,
)
from ._output import (
    Styled,
    console,
    escape,
    fmt_latency,
    print_json,
    print_results,
    print_table,
    status_text,
)
from ._params import FiniteFloat, WholeNumber

_json_option = json_option
F = TypeVar("F", bound=Callable[..., Any])


def _out_option(lead: str) -> Callable[[F], F]:
    """``--out PATH``: where file previews (an email's .eml) are written."""
    return click.option(
        "--out",
        type=click.Path(dir_okay=True, file_okay=True, writable=True),
        help=f"{lead} file previews (an email's .eml) to this file or directory.",
    )


def _read_message() -> str:
    """The message from standard input (``-``), without its final newline."""
    stream = sys.stdin
    if stream.isatty():
        click.echo("pixalert: reading the message from stdin; end it with Ctrl-D", err=True)
    try:
        text = stream.read()
    except UnicodeDecodeError as exc:
        fail(f"MESSAGE from stdin: not valid text ({exc.reason} at byte {exc.start})")
    return text[:-1] if text.endswith("\n") else text


def _parse_meta(items: tuple[str, ...]) -> dict[str, str]:
    meta = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--meta")
        meta[key] = value
    return meta


def _alert_options(f: Any) -> Any:
    """The options that describe an alert, shared by ``send`` and ``render``."""
    for option in reversed(
        [
            click.argument("title"),
            click.argument("message", required=False, default=""),
            click.option(
                "-p",
                "--priority",
                default="medium",
                show_default=True,
                help="low, medium, high or critical.",
            ),
            click.option(
                "-m",
                "--meta",
                multiple=True,
                help="Metadata KEY=VALUE (repeatable); '-m -' reads MESSAGE from stdin.",
            ),
            click.option("--source", help="Where the alert comes from."),
            click.option(
                "--key",
                help="Incident key for cooldown and resolve (default: from source and title).",
            ),
            click.option(
                "--resolved",
                is_flag=True,
                help="Send the resolve of an earlier alert (same --key).",
            ),
            click.option(
                "--cooldown",
                type=FiniteFloat(0),
                help="Cooldown in seconds for this alert (0 disables).",
            ),
        ]
    ):
        f = option(f)
    return f


def _alert_fields(
    title: str, message: str, priority: str, meta: tuple[str, ...]
) -> tuple[Any, str, dict[str, str]]:
    """The priority, message (read from stdin for ``-``) and metadata of the command line."""
    from .._types import Priority

    try:
        level = Priority.parse(priority)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--priority") from None
    from_stdin = message == "-" or "-" in meta
    if from_stdin and message not in ("", "-"):
        raise click.UsageError("give MESSAGE or '-m -' (read it from stdin), not both")
    metadata = _parse_meta(tuple(m for m in meta if m != "-"))
    if from_stdin:
        message = _read_message()
    return level, message, metadata


@click.command()
@_alert_options
@click.option(
    "-c",
    "--channel",
    "channels",
    multiple=True,
    help="Send to this channel only (repeatable); overrides priority routing.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Send nothing and write no history: show what each channel would send.",
)
@_out_option("With --dry-run: write")
@_json_option
def send(
    title: str,
    message: str,
    priority: str,
    channels: tuple[str, ...],
    meta: tuple[str, ...],
    source: str | None,
    key: str | None,
    resolved: bool,
    cooldown: float | None,
    dry_run: bool,
    out: str | None,
    as_json: bool,
) -> None:
    """Send an alert. Exit 1 if a channel failed or nothing was delivered.

    MESSAGE '-' (or '-m -') reads the message from standard input. --dry-run
    shows what would be sent instead (as 'pixalert render' does).
    """
    if out is not None and not dry_run:
        raise click.UsageError("--out goes with --dry-run")
    level, message, metadata = _alert_fields(title, message, priority, meta)
    if dry_run:
        from ._render import run_render

        run_render(
            title,
            message,
            level,
            list(channels) or None,
            metadata,
            source=source,
            key=key,
            resolved=resolved,
            cooldown=cooldown,
            only=None,
            out=out,
            as_json=as_json,
        )
        return
    manager = build_manager(sweep=False)

    async def go() -> Any:
        async with manager:
            return await manager.send_alert(
                title,
                message,
                level,
                list(channels) or None,
                metadata,
                source=source,
                key=key,
                status="resolved" if resolved else "firing",
                cooldown=cooldown,
            )

    try:
        results = run_async(go())
    except ValueError as exc:
        fail(str(exc))
    if as_json:
        print_json({str(k): v.to_dict() for k, v in results.items()})
    elif results:
        print_results(results)
    else:
        click.echo(f"no channel is routed for priority {level.name}", err=True)
    statuses = [r.status.value for r in results.values()]
    if "failed" in statuses or not any(s in ("sent", "suppressed") for s in statuses):
        sys.exit(EXIT_DELIVERY_FAILED)


@click.command()
@_alert_options
@click.option(
    "-c",
    "--channel",
    "only",
    metavar="NAME",
    help="Show this channel only (routing, suppression and grouping still apply).",
)
@_out_option("Write")
@_json_option
def render(
    title: str,
    message: str,
    priority: str,
    meta: tuple[str, ...],
    source: str | None,
    key: str | None,
    resolved: bool,
    cooldown: float | None,
    only: str | None,
    out: str | None,
    as_json: bool,
) -> None:
    """Show what each routed channel would send for an alert, and whether it would
    be sent now, suppressed, held or grouped; send nothing, write no history.

    Exit 1 if a channel could not build its message or nothing would be sent
    or suppressed, as 'pixalert send' would.
    """
    from ._render import run_render

    level, message, metadata = _alert_fields(title, message, priority, meta)
    run_render(
        title,
        message,
        level,
        None,
        metadata,
        source=source,
        key=key,
        resolved=resolved,
        cooldown=cooldown,
        only=only,
        out=out,
        as_json=as_json,
    )


def _describe(channel: Any) -> str | None:
    """A channel's own one-line, secret-free summary of what it reaches, if it has one."""
    describe = getattr(channel, "describe", None)
    if not callable(describe):
        return None
    try:
        text = describe()
    except Exception:
        return None
    return " ".join(str(text).split()) or None if text is not None else None  # one line


@click.command()
@click.option(
    "--check", is_flag=True, help="Try each channel for real (its live check; exit 1 if one fails)."
)
@_json_option
def channels(check: bool, as_json: bool) -> None:
    """List configured channels; with --check, try each one (exit 1 if any fails)."""
    manager = build_manager(sweep=False)

    async def go() -> dict[str, Any]:
        # Channels only: the history store is never opened (a broken one is not this
        # command's business); aclose() closes the channels the check used.
        try:
            return await _channel_report(manager, check)
        finally:
            await manager.aclose()

    info = run_async(go())
    if as_json:
        print_json(info)
    elif not info:
        click.echo("No channels configured. Run 'pixalert init', or see 'pixalert plugins'.")
    else:
        print_table(
            "Channels",
            ["channel", "type", "status", "latency", "detail"],
            (
                (
                    name,
                    i.get("type") or "",
                    status_text(i["status"]),
                    fmt_latency(i.get("latency")),
                    i.get("detail") or "",
                )
                for name, i in info.items()
            ),
        )
    if check and any(i["status"] not in ("ok", "configured") for i in info.values()):
        sys.exit(EXIT_DELIVERY_FAILED)


@click.command()
@_json_option
def plugins(as_json: bool) -> None:
    """List installed plugins with versions, channel types, hooks and load errors."""
    from .._plugins import default_plugin_manager

    pm = default_plugin_manager()
    try:
        pm.channel_specs()
    except ValueError as exc:
        click.echo(f"error: {exc}", err=True)
    infos = pm.plugin_infos()
    if as_json:
        print_json(
            {
                "plugins": [
                    {
                        "name": i.name,
                        "distribution": i.distribution,
                        "version": i.version,
                        "channels": list(i.channels),
                        "hooks": list(i.hooks),
                    }
                    for i in infos
                ],
                "errors": [{"name": e.name, "error": e.error} for e in pm.problems],
            }
        )
        return
    if infos:
        print_table(
            "Plugins",
            ["name", "distribution", "version", "channels", "hooks"],
            (
                (
                    i.name,
                    i.distribution or "",
                    i.version or "",
                    ", ".join(i.channels),
                    ", ".join(i.hooks),
                )
                for i in infos
            ),
        )
    else:
        click.echo("No plugins installed. Try: pip install pixalert-slack")
    for error in pm.problems:
        click.echo(f"error: {error}", err=True)


def _history_results(results: dict[str, Any]) -> Styled:
    return Styled(", ".join(f"{escape(c)}: {status_text(r['status'])}" for c, r in results.items()))


@click.command()
@window_options
@click.option(
    "-p",
    "--priority",
    "priorities",
    multiple=True,
    help="Only this priority (repeatable, or a comma list: -p high,critical).",
)
@click.option(
    "--status",
    type=click.Choice(STATUSES),
    help="firing, resolved, or acknowledged (an ack was recorded on the alert).",
)
@click.option("-c", "--channel", help="Only alerts with a delivery on this channel.")
@click.option(
    "--result",
    type=click.Choice(RESULTS),
    help="Only alerts with a delivery in this state (on --channel if given).",
)
@click.option("--search", metavar="TEXT", help="Text in the title or message (any case).")
@click.option("--source", help="Only alerts from this source.")
@click.option("--key", help="Only alerts with this incident key.")
@click.option(
    "--limit",
    type=WholeNumber(1),
    default=50,
    show_default=True,
    help="At most this many alerts (>= 1).",
)
@_json_option
def history(
    since: Any,
    until: Any,
    hours: float | None,
    priorities: tuple[str, ...],
    status: str | None,
    channel: str | None,
    result: str | None,
    search: str | None,
    source: str | None,
    key: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Show the alerts of a time window (default: the last 24 h), newest first, and
    what each channel did. Times are UTC."""
    window = resolve_window(since, until, hours)
    levels = parse_priorities(priorities)
    manager = build_manager(sweep=False)

    async def go() -> list[dict[str, Any]]:
        async with manager:
            return await manager.history(
                since=window.since,
                until=window.until,
                limit=limit,
                priorities=levels,
                status=status,
                channel=channel,
                result=result,
                search=search,
                source=source,
                key=key,
            )

    entries = run_async(go())
    if as_json:
        print_json(entries)
        return
    filters = [
        f"{name} {value}"
        for name, value in (
            ("priority", ",".join(p.name.lower() for p in levels or ())),
            ("status", status),
            ("channel", channel),
            ("result", result),
            ("search", repr(search) if search is not None else None),
            ("source", source),
            ("key", key),
        )
        if value
    ]
    matching = f" matching {', '.join(filters)}" if filters else ""
    if not entries:
        click.echo(f"No alerts{matching} {window.label}.")
        return
    print_table(
        f"Alerts{matching} {window.label} (newest first)",
        ["time (UTC)", "priority", "status", "title", "channels"],
        (
            (
                e["created_at"][:19].replace("T", " "),
                e["priority"],
                "acknowledged"
                if e["status"] == "firing" and any(v["kind"] == "acknowledged" for v in e["events"])
                else e["status"],
                e["title"],
                _history_results(e["results"]),
            )
            for e in entries
        ),
    )


def _rate(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f}%"


@click.command()
@window_options
@click.option(
    "--by",
    type=click.Choice(STATS_BY),
    help="Group by channel, priority, source or UTC hour (hour: with a chart).",
)
@_json_option
def stats(since: Any, until: Any, hours: float | None, by: str | None, as_json: bool) -> None:
    """Delivery counts, success rate and latency percentiles: per channel, or --by
    priority, source or hour (with a chart of alerts per hour)."""
    window = resolve_window(since, until, hours)
    if by is None and window.until is not None:
        by = "channel"  # stats() has no end; the grouped form has
    manager = build_manager(sweep=False)

    async def go() -> dict[str, Any]:
        async with manager:
            if by is None:
                return await manager.stats(since=window.since)
            return await manager.stats_by(by, since=window.since, until=window.until)

    data = run_async(go())
    if as_json:
        print_json(data)
        return
    if by is None:
        _print_channel_stats(data, window)
        return
    click.echo(f"{data['alerts']} alerts {window.label}")
    if not data["groups"]:
        return
    label = {"channel": "channel", "priority": "priority", "source": "source"}.get(by, "hour (UTC)")
    print_table(
        f"By {by}",
        [label, "alerts", "sent", "failed", "suppressed", "success", "p50", "p99"],
        (
            (
                hour_label(name) if by == "hour" else name,
                g["alerts"],
                g["sent"],
                g["failed"],
                g["suppressed"],
                _rate(g["success_rate"]),
                fmt_latency(g["latency"]["p50"]),
                fmt_latency(g["latency"]["p99"]),
            )
            for name, g in data["groups"].items()
        ),
    )
    if by == "hour":
        terminal = sys.stdout.isatty()
        lines = ["Alerts per hour (UTC)", *hour_chart(data, window, terminal=terminal)]
        if terminal:
            out = console()
            for line in lines:
                out.print(line)
        else:
            for line in lines:
                click.echo(line)


def _print_channel_stats(data: dict[str, Any], window: Window) -> None:
    click.echo(f"{data['alerts']} alerts {window.label}")
    if not data["channels"]:
        return
    print_table(
        "Channels",
        ["channel", "sent", "failed", "suppressed", "skipped", "success", "p50", "p95", "p99"],
        (
            (
                name,
                c["sent"],
                c["failed"],
                c["suppressed"],
                c["skipped"],
                _rate(c["success_rate"]),
                fmt_latency(c["latency"]["p50"]),
                fmt_latency(c["latency"]["p95"]),
                fmt_latency(c["latency"]["p99"]),
            )
            for name, c in data["channels"].items()
        ),
    )


async def _channel_report(manager: Any, check: bool) -> dict[str, Any]:
    """Each configured channel (and each unavailable one), tried when ``check``."""
    import asyncio

    from ._check import check_channel, test_alert

    out: dict[str, Any] = {}
    for name, channel in manager.channels.items():
        out[str(name)] = {"type": manager.channel_types.get(name), "status": "configured"}
        reaches = _describe(channel)
        if reaches:
            out[str(name)]["detail"] = reaches
    for unavailable, reason in manager.unavailable.items():
        out[unavailable] = {"type": None, "status": "unavailable", "detail": reason}
    if check and manager.channels:
        specs = manager.plugins.channel_specs()
        names = list(manager.channels)
        outcomes = await asyncio.gather(
            *(
                check_channel(
                    specs.get(manager.channel_types.get(name, "")),
                    manager.channels[name],
                    test_alert("pixalert channels --check", str(name)),
                )
                for name in names
            )
        )
        for name, outcome in zip(names, outcomes, strict=True):
            out[str(name)]["status"] = "ok" if outcome.ok else "failed"
            out[str(name)]["detail"] = outcome.message
            out[str(name)]["latency"] = outcome.seconds if outcome.ok else None
    return out
