"""``pixalert render`` and ``pixalert send --dry-run``: what each channel would send."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import EXIT_DELIVERY_FAILED, build_manager, fail, run_async
from ._output import console, escape, print_json

#: The file name suffix of a preview's raw bytes, by media type.
_SUFFIXES = {"message/rfc822": ".eml", "application/json": ".json"}

_DECISION_STYLE = {
    "send": "green",
    "suppressed": "yellow",
    "held": "cyan",
    "grouped": "cyan",
    "skipped": "red",
    "not_routed": "dim",
}


def run_render(
    title: str,
    message: str,
    priority: Any,
    channels: Sequence[str] | None,
    metadata: Mapping[str, str],
    *,
    source: str | None,
    key: str | None,
    resolved: bool,
    cooldown: float | None,
    only: str | None,
    out: str | None,
    as_json: bool,
) -> None:
    """Build the alert, render it (nothing sent, nothing written), print the previews,
    write the file previews to ``out``; exit 1 as ``send`` would have."""
    manager = build_manager(sweep=False)

    async def go() -> Any:
        try:
            alert = manager._make_alert(
                title,
                message,
                priority,
                channels,
                metadata,
                source,
                key,
                "resolved" if resolved else "firing",
            )
            return await manager.render(alert, channel=only, cooldown=cooldown)
        finally:
            await manager.aclose()

    try:
        result = run_async(go())
    except ValueError as exc:
        fail(str(exc))
    written = _write_files(result, out) if out is not None else {}
    if as_json:
        data = result.to_dict()
        data["dry_run"] = True
        data["files"] = written
        print_json(data)
    else:
        _print(result, written)
    renders = list(result.channels.values())
    if (
        any(r.error for r in renders)
        or not renders
        or not any(r.sends or r.decision.value == "suppressed" for r in renders)
    ):
        sys.exit(EXIT_DELIVERY_FAILED)


def _write_files(result: Any, out: str) -> dict[str, str]:
    """Write each preview that has raw bytes; return ``{channel: path}``."""
    files = {
        str(name): r.preview
        for name, r in result.channels.items()
        if r.preview is not None and r.preview.raw is not None
    }
    if not files:
        fail(f"--out {out}: no routed channel has a file preview (an email's .eml)")
    target = Path(out)
    written: dict[str, str] = {}
    if target.is_dir():
        for name, found in files.items():
            path = target / f"{name}{_SUFFIXES.get(found.media_type or '', '.bin')}"
            _write(path, found.raw)
            written[name] = str(path)
        return written
    if len(files) > 1:
        fail(
            f"--out {out}: {len(files)} channels have file previews "
            f"({', '.join(files)}): give a directory"
        )
    name, found = next(iter(files.items()))
    _write(target, found.raw)
    return {name: str(target)}


def _write(path: Path, data: bytes) -> None:
    try:
        # Owner-only: an alert's text can be sensitive.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
    except OSError as exc:
        fail(f"--out {path}: {exc.strerror or exc}")


def _print(result: Any, written: Mapping[str, str]) -> None:
    out = console()
    alert = result.alert
    out.print(
        f"[bold]{escape(alert.title)}[/bold]  priority={alert.priority.name.lower()} "
        f"status={alert.status} key={escape(alert.key)}  (dry run: nothing sent)"
    )
    if not result.channels:
        out.print(f"no channel is routed for priority {alert.priority.name}")
    for name, r in result.channels.items():
        style = _DECISION_STYLE.get(r.decision.value, "")
        head = f"\n[bold]{escape(str(name))}[/bold]"
        if r.type:
            head += f" ({escape(r.type)})"
        head += f": [{style}]{_decision_text(r)}[/{style}]" if style else f": {_decision_text(r)}"
        if r.route is not None:
            head += f"  [dim]route {r.route}[/dim]"
        out.print(head)
        if r.reason:
            out.print(f"  {escape(r.reason)}")
        if r.error:
            out.print(f"  [red]would fail: {escape(r.error)}[/red]")
        if r.preview is None:
            continue
        for field, value in r.preview.content.items():
            out.print(f"  [bold]{escape(str(field))}[/bold]:", end="")
            if isinstance(value, str) and "\n" not in value:
                out.print(f" {escape(value)}", soft_wrap=True)
                continue
            if _pairs(value):  # headers as (name, value) pairs
                text = "\n".join(f"{k}: {v}" for k, v in value)
            elif isinstance(value, str):
                text = value
            else:
                text = json.dumps(value, indent=2, ensure_ascii=False)
            out.print()
            out.print(_indent(text, "    "), markup=False, highlight=False, soft_wrap=True)
        out.print("  [bold]sketch[/bold]:")
        out.print(
            _indent(r.preview.sketch, "    | "), markup=False, highlight=False, soft_wrap=True
        )
        if str(name) in written:
            out.print(f"  written to {escape(written[str(name)])}")


def _pairs(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p)
            for p in value
        )
    )


def _decision_text(r: Any) -> str:
    decision = r.decision.value
    if decision == "send":
        return "would send now"
    if decision == "grouped":
        return f"would be grouped ({escape(r.group_key or '')})"
    if decision == "held":
        return "would be held" + (f" until {r.due:%Y-%m-%d %H:%M:%S} UTC" if r.due else "")
    if decision == "suppressed":
        return "would be suppressed"
    if decision == "skipped":
        return "skipped"
    return "not routed here"


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in (text.splitlines() or [""]))


__all__ = ["run_render"]
