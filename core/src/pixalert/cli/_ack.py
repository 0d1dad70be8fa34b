"""``pixalert ack``, ``pixalert resolve`` and ``pixalert escalations``."""

from __future__ import annotations

import getpass
from typing import TYPE_CHECKING, Any

import click

from . import json_option, with_manager
from ._output import print_json, print_table

if TYPE_CHECKING:
    from .._manager import NotificationManager

_json_option = json_option
_by_option = click.option("--by", default=None, help="Who (default: your user name).")
_note_option = click.option("--note", default=None, help="A note kept with it in the history.")


def _default_user() -> str | None:
    try:
        return getpass.getuser() or None
    except Exception:  # no user name in this environment
        return None


def _act(action: str, alert_id: str, by: str | None, note: str | None) -> Any:
    async def act(manager: NotificationManager) -> Any:
        call = manager.ack if action == "ack" else manager.resolve
        return await call(alert_id, by=by or _default_user(), note=note, via="cli")

    return with_manager(act, hint=" (see 'pixalert history')")


def _report(outcome: Any, as_json: bool) -> None:
    if as_json:
        print_json(outcome.to_dict())
        return
    click.echo(f"alert {outcome.alert_id}: {outcome.detail}")
    for channel, status in getattr(outcome, "channels", {}).items():
        click.echo(f"  {channel}: {status}")
    for channel, result in getattr(outcome, "results", {}).items():
        detail = f" ({result.error})" if result.error else ""
        click.echo(f"  {channel}: {result.status.value}{detail}")
    if getattr(outcome, "escalation_stopped", False):
        click.echo("  escalation stopped")


@click.command()
@click.argument("alert_id")
@_by_option
@_note_option
@_json_option
def ack(alert_id: str, by: str | None, note: str | None, as_json: bool) -> None:
    """Acknowledge alert ALERT_ID: someone is on it.

    Its escalation stops and the channels that announced it show it
    (PagerDuty's acknowledge, the Slack message). Acknowledging twice
    changes nothing.
    """
    _report(_act("ack", alert_id, by, note), as_json)


@click.command()
@click.argument("alert_id")
@_by_option
@_note_option
@_json_option
def resolve(alert_id: str, by: str | None, note: str | None, as_json: bool) -> None:
    """Resolve alert ALERT_ID: send its resolve to the channels, stop its escalation."""
    _report(_act("resolve", alert_id, by, note), as_json)


@click.command()
@click.option("--all", "include_stopped", is_flag=True, help="Also finished and acknowledged ones.")
@_json_option
def escalations(include_stopped: bool, as_json: bool) -> None:
    """List the escalations under way: each alert's next step and when it is due."""
    found = with_manager(lambda manager: manager.escalations(include_stopped=include_stopped))
    if as_json:
        print_json(found)
        return
    if not found:
        click.echo("No escalation under way.")
        return
    print_table(
        "Escalations",
        ["alert", "title", "policy", "next step", "due", "channels", "state"],
        (
            (
                e["alert_id"],
                e["title"],
                e["policy"],
                f"{e['step']}/{e['steps']}"
                + (f" (round {e['round']}/{e['rounds']})" if (e["rounds"] or 1) > 1 else ""),
                (e["next_at"] or "")[:19].replace("T", " "),
                ", ".join(e["channels"]),
                e["state"] + (f" by {e['acknowledged_by']}" if e.get("acknowledged_by") else ""),
            )
            for e in found
        ),
    )
