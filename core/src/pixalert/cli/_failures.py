"""Any error a command raises, as one or two clear lines and an exit code.

A user's or the environment's mistake says what went wrong, where (the
store's URL, the file, where that setting came from) and what to do. Anything
else is a bug: one line, and the traceback goes to a report file (or to
stderr with ``--debug``).
"""

from __future__ import annotations

import contextlib
import os
import traceback
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from . import EXIT_INTERNAL, EXIT_UNAVAILABLE, EXIT_USAGE, cli_options

__all__ = ["describe", "report", "write_report"]

MAX_REPORTS = 20

# SQLite's result codes (sqlite3.Error.sqlite_errorname, or words of its message)
# -> what it means and what to do; {path} is the database file.
_SQLITE = [
    (
        ("SQLITE_READONLY", "readonly database"),
        "{path} is read-only: make the file and its directory writable by this user, "
        "or set {key} to another path",
    ),
    (
        ("SQLITE_FULL", "disk is full"),
        "the disk holding {path} is full: free some space (a lower retention_days keeps "
        "less history)",
    ),
    (
        ("SQLITE_CANTOPEN", "unable to open database file"),
        "cannot open {path}: check that its directory exists and is writable, or set {key} "
        "to another path",
    ),
    (
        ("SQLITE_NOTADB", "file is not a database"),
        "{path} is not a SQLite database: set {key} to another file",
    ),
    (
        ("SQLITE_CORRUPT", "malformed"),
        "{path} is damaged: move it away (pixalert starts a new history) or restore a copy",
    ),
    (
        ("SQLITE_BUSY", "SQLITE_LOCKED", "database is locked"),
        "{path} is locked by another process: try again",
    ),
    (
        ("SQLITE_IOERR", "disk I/O error"),
        "could not write {path} (disk I/O error): is the disk full or failing?",
    ),
]


def report(exc: BaseException, ctx: click.Context) -> int:
    """Print ``exc`` for a person and return the exit code."""
    from .._redact import redact

    options = cli_options(ctx)
    settings = ctx.find_root().obj.get("settings") if ctx.find_root().obj else None
    code, message = describe(exc, settings)
    if options.debug:
        click.echo(redact("".join(traceback.format_exception(exc))).rstrip(), err=True)
    if code == EXIT_INTERNAL:
        where = None if options.debug else write_report(exc, ctx)
        if where is not None:
            message += f"\n  the full report is in {where} (--debug prints it instead)"
        elif not options.debug:
            message += "\n  run it again with --debug to see the traceback"
    click.echo(f"error: {message}", err=True)
    return code


def describe(exc: BaseException, settings: Any = None) -> tuple[int, str]:
    """The exit code and the message for ``exc``; ``settings`` name the stores."""
    import sqlite3

    from .._errors import ConfigError, StoreUnavailable
    from .._redact import redact

    text = redact(str(exc))
    if isinstance(exc, ConfigError):
        return EXIT_USAGE, text
    if isinstance(exc, StoreUnavailable):
        names = [f"{key!r} is set by {origin}" for key, url, origin in _stores(settings, text)]
        hint = "; ".join(names) or "check the store's URL in the config"
        return EXIT_UNAVAILABLE, f"{text}\n  is it running and reachable? ({hint})"
    if isinstance(exc, sqlite3.Error):
        return EXIT_UNAVAILABLE, _sqlite_message(exc, settings)
    if isinstance(exc, OSError):
        return EXIT_UNAVAILABLE, _os_message(exc, settings)
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return (
            EXIT_USAGE,
            f"the Python module {exc.name!r} is not installed: install the package that "
            "provides it into this environment",
        )
    if isinstance(exc, ValueError) and text:
        return EXIT_USAGE, text
    first = text.splitlines()[0] if text else ""
    return (
        EXIT_INTERNAL,
        f"internal error ({type(exc).__name__}{': ' + first if first else ''}); "
        "this is a bug in pixalert or one of its plugins",
    )


def _stores(settings: Any, mentioned: str = "") -> Iterator[tuple[str, str, str]]:
    """(key, url, where it was set) of the history and state stores.

    With ``mentioned``, only the stores whose URL it names (all if it names none).
    """
    if settings is None:
        return
    from .._urls import mask_url

    found: list[tuple[str, str, str]] = []
    for key in ("history", "state"):
        url = getattr(settings, key, None)
        if not url or any(url == f[1] for f in found):
            continue
        found.append((key, url, settings.sources.get(key, "the default")))
    named = [f for f in found if mask_url(f[1]) in mentioned or f[1] in mentioned]
    yield from named or found


def _sqlite_files(settings: Any) -> list[tuple[str, str, str]]:
    """(key, file path, where it was set) of the stores that are SQLite files."""
    from .._sqlite import sqlite_path

    out = []
    for key, url, origin in _stores(settings):
        if url.startswith("sqlite:"):
            path = sqlite_path(url)
            if path != ":memory:":
                out.append((key, os.path.abspath(path), origin))
    return out


def _sqlite_message(exc: BaseException, settings: Any) -> str:
    files = _sqlite_files(settings)
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    if files:
        path = " or ".join(sorted({f[1] for f in files}))
        key = " / ".join(f"'{k}' (set by {o})" for k, _, o in files)
    else:
        path, key = "the SQLite database", "'history'"
    folders = [f for f in files if os.path.isdir(f[1])]
    if folders:
        key = " / ".join(f"'{k}' (set by {o})" for k, _, o in folders)
        return f"{folders[0][1]} is a directory: set {key} to a file's path (SQLite: {text})"
    for needles, advice in _SQLITE:
        if any(n == name or n in text for n in needles):
            return f"{advice.format(path=path, key=key)} (SQLite: {text})"
    return f"SQLite error on {path}: {text} ({key})"


def _os_message(exc: OSError, settings: Any) -> str:
    reason = exc.strerror or str(exc) or type(exc).__name__
    filename = exc.filename
    if filename is not None:
        target = os.path.abspath(os.fsdecode(filename))
        for key, path, origin in _sqlite_files(settings):
            if path == target or path.startswith(target.rstrip("/") + "/"):
                return (
                    f"{key} store {path}: {target}: {reason}\n"
                    f"  {key!r} is set by {origin}: point it at a file in a directory "
                    "this user can write"
                )
        return f"{target}: {reason}"
    if isinstance(exc, TimeoutError):
        return f"timed out ({reason}): is the server reachable?"
    return f"{type(exc).__name__}: {reason}"


def write_report(exc: BaseException, ctx: click.Context) -> Path | None:
    """Write the traceback of ``exc`` to an owner-only file in the user's log dir.

    Returns its path, or None if it could not be written. Registered secrets
    are masked; the command's arguments are not recorded (they may hold one).
    """
    import platformdirs

    from .._redact import redact
    from ._output import version_lines

    folder = Path(platformdirs.user_log_dir("pixalert", appauthor=False))
    stamp = datetime.now().astimezone()
    path = folder / f"error-{stamp:%Y%m%d-%H%M%S}-{os.getpid()}.txt"
    lines = [
        "pixalert internal error report",
        f"time: {stamp.isoformat(timespec='seconds')}",
        f"command: {ctx.find_root().info_name or 'pixalert'} "
        f"{ctx.invoked_subcommand or ''} (arguments not recorded)",
        *version_lines(),
        "",
        "".join(traceback.format_exception(exc)),
    ]
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(redact("\n".join(lines)))
        _prune(folder)
    except OSError:
        return None
    return path


def _prune(folder: Path) -> None:
    reports = sorted(folder.glob("error-*.txt"))
    for old in reports[:-MAX_REPORTS]:
        with contextlib.suppress(OSError):  # another process got there first
            old.unlink()
