"""``pixalert silence``: add, list and remove silences in the shared state backend."""

from __future__ import annotations

import getpass
from datetime import datetime, timezone
from typing import Any

import click

from . import build_manager, fail, json_option, run_async
from ._output import print_json, print_table

_json_option = json_option


def _parse_matchers(items: tuple[str, ...]) -> dict[str, str]:
    from .._silences import check_matchers

    matchers: dict[str, str] = {}
    for item in items:
        field, sep, value = item.partition("=")
        if not sep or not field.strip():
            raise click.BadParameter(
                f"expected FIELD=VALUE (e.g. source=db or priority=low), got {item!r}",
                param_hint="MATCHERS",
            )
        matchers[field.strip()] = value
    try:
        return check_matchers(matchers)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="MATCHERS") from None


def _parse_for(ctx: click.Context, param: click.Parameter, value: str) -> float:
    from .._silences import parse_duration

    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _default_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment
        return ""


def _check_shared(manager: Any) -> None:
    from .._memory import MemoryStateBackend

    if isinstance(manager.state_backend, MemoryStateBackend):
        raise ValueError(
            "silence: the state backend is in memory, so a silence would end with this "
            "command; set 'state' (or 'history') to sqlite:///path, redis://... or "
            "postgresql://... in the config"
        )


def _describe(matchers: dict[str, str]) -> str:
    return " ".join(f"{field}={value}" for field, value in matchers.items())


def _left(ends_at: datetime) -> str:
    seconds = max(0, int((ends_at - datetime.now(timezone.utc)).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


@click.group()
def silence() -> None:
    """Silence alerts by matchers for a while: add, list, remove.

    Silences live in the state backend, so every instance sharing it applies them.
    """


@silence.command("add")
@click.argument("matchers", nargs=-1, required=True)
@click.option(
    "--for",
    "duration",
    required=True,
    callback=_parse_for,
    help="How long: 90s, 30m, 2h, 1d or 1h30m.",
)
@click.option("--comment", default="", help="Why (shown in the suppressed alert's reason).")
@click.option("--created-by", default=None, help="Who (default: your user name).")
@_json_option
def add(
    matchers: tuple[str, ...],
    duration: float,
    comment: str,
    created_by: str | None,
    as_json: bool,
) -> None:
    """Silence alerts whose fields match every FIELD=VALUE of MATCHERS.

    FIELD is key, source, title, priority, status or metadata.NAME; VALUE is
    compared exactly or as a glob pattern (db-*, web-?).
    """
    fields = _parse_matchers(matchers)
    manager = build_manager(sweep=False)

    async def go() -> Any:
        async with manager:
            _check_shared(manager)
            return await manager.silence(
                fields,
                duration=duration,
                comment=comment,
                created_by=_default_user() if created_by is None else created_by,
            )

    try:
        made = run_async(go())
    except (ValueError, RuntimeError) as exc:
        fail(str(exc))
    if as_json:
        print_json(made.to_dict())
        return
    click.echo(
        f"silence {made.id} until {made.ends_at.isoformat(timespec='seconds')}: "
        f"{_describe(made.matchers)}"
    )


@silence.command("list")
@_json_option
def list_(as_json: bool) -> None:
    """List the silences in effect."""
    manager = build_manager(sweep=False)

    async def go() -> Any:
        from .._silences import SILENCE_PREFIX

        async with manager:
            # The manager keeps going without silences if the backend fails; this
            # command must not say "none" then: read them once here, letting errors out.
            await manager.state_backend.items(SILENCE_PREFIX)
            return await manager.silences()

    try:
        silences = run_async(go())
    except (ValueError, RuntimeError) as exc:
        fail(str(exc))
    if as_json:
        print_json([s.to_dict() for s in silences])
        return
    if not silences:
        click.echo("No silences in effect.")
        return
    print_table(
        "Silences",
        ["id", "matchers", "ends", "left", "by", "comment"],
        (
            (
                s.id,
                _describe(s.matchers),
                s.ends_at.isoformat(timespec="seconds"),
                _left(s.ends_at),
                s.created_by,
                s.comment,
            )
            for s in silences
        ),
    )


@silence.command("remove")
@click.argument("id")
def remove(id: str) -> None:
    """End the silence ID now."""
    manager = build_manager(sweep=False)

    async def go() -> bool:
        async with manager:
            return bool(await manager.unsilence(id))

    try:
        found = run_async(go())
    except (ValueError, RuntimeError) as exc:
        fail(str(exc))
    if not found:
        fail(f"no silence {id!r} is in effect (see 'pixalert silence list')")
    click.echo(f"silence {id} removed")
