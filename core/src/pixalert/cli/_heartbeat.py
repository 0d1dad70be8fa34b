"""``pixalert heartbeat NAME`` (a ping) and ``pixalert heartbeats`` (their state)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from . import json_option, with_manager
from ._output import Styled, print_json, print_table

if TYPE_CHECKING:
    from .._heartbeats import Signal

_json_option = json_option
_STATE_STYLE = {"up": "green", "late": "red", "failed": "red", "new": "dim"}


def _when(value: str | None) -> str:
    return (value or "")[:19].replace("T", " ")


@click.command()
@click.argument("name")
@click.option("--start", "signal", flag_value="start", help="A run started (time it from here).")
@click.option("--fail", "signal", flag_value="fail", help="The run failed: alert at once.")
@click.option("--note", default=None, help="A note (the reason of a failure).")
@_json_option
def heartbeat(name: str, signal: str | None, note: str | None, as_json: bool) -> None:
    """Ping heartbeat NAME ([heartbeats.NAME] in the config): the job ran well.

    For a cron job:  backup.sh && pixalert heartbeat backup || pixalert heartbeat backup --fail
    """
    what: Signal = "start" if signal == "start" else "fail" if signal == "fail" else "success"
    state = with_manager(lambda manager: manager.heartbeat_ping(name, what, note=note, via="cli"))
    if as_json:
        print_json(state)
        return
    line = f"heartbeat {name}: {what} recorded; {state['state']}"
    if state.get("next_deadline"):
        line += f", next deadline {_when(state['next_deadline'])} UTC"
    if state.get("alert"):
        line += f" (alert {state['alert']})"
    click.echo(line)


@click.command()
@_json_option
def heartbeats(as_json: bool) -> None:
    """List the heartbeats: state, last ping, last run's duration, next deadline."""
    found = with_manager(lambda manager: manager.heartbeats())
    if as_json:
        print_json(found)
        return
    if not found:
        click.echo("No heartbeat is configured ([heartbeats.NAME] in the config).")
        return

    def state(h: dict[str, Any]) -> str:
        text = h["state"] + (" (running)" if h["running"] else "")
        style = _STATE_STYLE.get(h["state"])
        return Styled(f"[{style}]{text}[/{style}]") if style else text

    print_table(
        "Heartbeats",
        ["name", "state", "last ping", "duration", "next deadline", "expected"],
        (
            (
                h["name"],
                state(h),
                _when(h["last_ping"]) or "never",
                "" if h["last_duration"] is None else f"{h['last_duration']:g}s",
                _when(h["next_deadline"]),
                h["expected"],
            )
            for h in found
        ),
    )
