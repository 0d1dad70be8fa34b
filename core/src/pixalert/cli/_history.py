"""What ``pixalert history`` and ``pixalert stats`` share: the time window and filter
options, and the per-hour chart of ``stats --by hour``."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ._params import FiniteFloat

if TYPE_CHECKING:  # click >= 8.2 types ParamType by its values; 8.1 does not subscript it
    _TimeType = click.ParamType[datetime, Any]
else:
    _TimeType = click.ParamType

__all__ = [
    "Moment",
    "Window",
    "hour_chart",
    "hour_label",
    "parse_priorities",
    "resolve_window",
    "window_options",
]

F = TypeVar("F", bound=Callable[..., Any])

#: How long the window is when neither --since nor --hours says (hours).
DEFAULT_HOURS = 24.0


class Moment(_TimeType):
    """A moment: a duration ago (``90m``, ``2h``, ``7d``) or an ISO 8601 time (UTC
    when it has no offset), as :func:`pixalert.parse_time` reads it."""

    name = "time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """``value`` as an aware UTC datetime, or a usage error saying what was expected."""
        from .._durations import parse_time

        if isinstance(value, datetime):
            return value
        try:
            return parse_time(str(value), now=time.time())
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def window_options(fn: F) -> F:
    """``--since``, ``--until`` and ``--hours``, in that order on ``--help``."""
    fn = click.option(
        "--hours",
        type=FiniteFloat(0, min_open=True),
        default=None,
        help="The last N hours (> 0): the same as --since Nh.",
    )(fn)
    fn = click.option(
        "--until",
        type=Moment(),
        help="Up to this time (exclusive): a duration ago or an ISO 8601 time.",
    )(fn)
    fn = click.option(
        "--since",
        type=Moment(),
        help=(
            "From this time: a duration ago (90m, 2h, 7d) or an ISO 8601 time "
            "(UTC without an offset). Default: 24 h before --until (or now)."
        ),
    )(fn)
    return fn


class Window:
    """A checked time window: ``since``, ``until`` (None: now, open ended) and
    ``label``, how to say it in a sentence (``"in the last 24 h"``)."""

    def __init__(self, since: datetime, until: datetime | None, label: str) -> None:
        self.since = since
        self.until = until
        self.label = label


def _when(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def resolve_window(since: datetime | None, until: datetime | None, hours: float | None) -> Window:
    """The window the options give, or a usage error naming the option at fault."""
    if since is not None and hours is not None:
        raise click.UsageError("give --since or --hours, not both")
    now = datetime.now(timezone.utc)
    if hours is not None:
        start, label = now - timedelta(hours=hours), f"in the last {hours:g} h"
    elif since is not None:
        start, label = since, f"since {_when(since)}"
    elif until is None:
        start, label = now - timedelta(hours=DEFAULT_HOURS), f"in the last {DEFAULT_HOURS:g} h"
    else:
        start = until - timedelta(hours=DEFAULT_HOURS)
        label = f"in the {DEFAULT_HOURS:g} h before {_when(until)}"
    if until is not None:
        if until <= start:
            raise click.BadParameter(
                f"{_when(until)} is not after the start of the window ({_when(start)})",
                param_hint="'--until'",
            )
        if since is not None or hours is not None:
            label += f" until {_when(until)}"
    return Window(start, until, label)


def parse_priorities(values: Sequence[str]) -> list[Any] | None:
    """``--priority`` values (repeated, or comma lists) as priorities; None for none."""
    from .._types import Priority

    out: list[Priority] = []
    for value in values:
        for item in value.split(","):
            if not item.strip():
                continue
            try:
                level = Priority.parse(item)
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint="'--priority'") from None
            if level not in out:
                out.append(level)
    if values and not out:
        raise click.BadParameter(
            "expected low, medium, high or critical (or a comma list)", param_hint="'--priority'"
        )
    return out or None


def _hours(window: Window) -> list[str]:
    """Every UTC hour the window touches, as ``stats_by`` names them, oldest first."""
    from .._storage import hour_key

    end = (window.until or datetime.now(timezone.utc)).timestamp()
    start = window.since.timestamp()
    first = int(start // 3600)
    last = int((end - 1e-6) // 3600) if end > start else first
    return [hour_key(h * 3600) for h in range(first, last + 1)]


def hour_label(key: str) -> str:
    """``2026-12-02T03:00:00+00:00`` as ``2026-12-02 03:00``."""
    return key[:16].replace("T", " ")


def hour_chart(
    data: dict[str, Any], window: Window, *, width: int = 40, terminal: bool | None = None
) -> list[str]:
    """The lines of a bar chart of alerts per UTC hour of ``stats_by(by="hour")``'s
    ``data``, every hour of the window shown (empty ones too).

    On a terminal (``terminal`` None: stdout is one) the bars are rich markup in
    colour; otherwise plain ASCII text (``#`` bars).
    """
    if terminal is None:
        terminal = sys.stdout.isatty()
    groups = data.get("groups", {})
    hours = _hours(window)
    extra = [h for h in groups if h not in hours]
    hours = sorted({*hours, *extra})
    counts = [int(groups.get(h, {}).get("alerts", 0)) for h in hours]
    top = max(counts, default=0)
    digits = len(str(top))
    lines = []
    for key, n in zip(hours, counts, strict=True):
        failed = int(groups.get(key, {}).get("failed", 0))
        size = 0 if not top else max(1 if n else 0, round(n / top * width))
        note = f"  ({failed} failed)" if failed else ""
        if terminal:
            bar = f"[cyan]{'█' * size}[/cyan]" if size else ""
            gap = " " * (width - size)
            note = f"[red]{note}[/red]" if note else ""
            lines.append(f"{hour_label(key)}  {bar}{gap} {n:>{digits}}{note}")
        else:
            lines.append(f"{hour_label(key)}  {'#' * size:<{width}} {n:>{digits}}{note}")
    return lines
