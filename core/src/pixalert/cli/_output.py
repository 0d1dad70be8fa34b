"""Output helpers: rich tables on a terminal, JSON for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import click

__all__ = [
    "Styled",
    "console",
    "escape",
    "print_json",
    "print_results",
    "print_table",
    "version_lines",
]


def console() -> Any:
    """A rich console on stdout (plain text when not a terminal)."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 120)


def print_json(data: Any) -> None:
    """``data`` as indented JSON on stdout."""
    click.echo(json.dumps(data, indent=2, default=str, ensure_ascii=False))


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A rich table."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(_cell(v, escape) for v in row))
    console().print(table)


def escape(text: str) -> str:
    """``text`` with rich markup escaped."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


class Styled(str):
    """A cell value that is rich markup on purpose (everything else is escaped)."""

    __slots__ = ()


def _cell(value: Any, escape: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Styled):
        return str(value)
    return str(escape(str(value)))


_STYLE = {"sent": "green", "ok": "green", "failed": "red", "suppressed": "yellow", "skipped": "dim"}


def status_text(status: str) -> str:
    """``status`` with a colour for rich."""
    style = _STYLE.get(status)
    return Styled(f"[{style}]{status}[/{style}]" if style else status)


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


def version_lines() -> list[str]:
    """``pixalert X``, then each installed plugin distribution and its version, then Python."""
    import platform
    from importlib import metadata

    try:
        core = metadata.version("pixalert")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a source tree
        core = "unknown"
    plugins: dict[str, str] = {}
    for entry_point in metadata.entry_points(group="pixalert"):
        dist = getattr(entry_point, "dist", None)
        if dist is None:  # pragma: no cover - an entry point without a distribution
            plugins[entry_point.value] = "unknown"
        else:
            plugins[dist.metadata["Name"]] = dist.version
    lines = [f"pixalert {core}"]
    lines += [f"{name} {version}" for name, version in sorted(plugins.items())]
    lines.append(f"Python {platform.python_version()} ({platform.python_implementation()})")
    return lines
