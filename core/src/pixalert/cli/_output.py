"""Output helpers: rich tables on a terminal, JSON for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import click

__all__ = ["console", "print_json", "print_results", "print_table"]


def console() -> Any:
    """A rich console on stdout (plain text when not a terminal)."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 120)


def print_json(data: Any) -> None:
    """``data`` as indented JSON on stdout."""
    click.echo(json.dumps(data, indent=2, default=str, ensure_ascii=False))


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A rich table."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console().print(table)


_STYLE = {"sent": "green", "failed": "red", "suppressed": "yellow", "skipped": "dim"}


def status_text(status: str) -> str:
    """``status`` with a colour for rich."""
    style = _STYLE.get(status)
    return f"[{style}]{status}[/{style}]" if style else status


def fmt_latency(value: float | None) -> str:
    """Seconds as a short ms string."""
    return "" if value is None else f"{value * 1000:.1f} ms"


def print_results(results: Mapping[str, Any]) -> None:
    """One row per channel of a ``send_alert`` result."""
    print_table(
        None,
        ["channel", "status", "attempts", "latency", "detail"],
        (
            (
                str(name),
                status_text(r.status.value),
                r.attempts,
                fmt_latency(r.latency),
                r.error or "",
            )
            for name, r in results.items()
        ),
    )
