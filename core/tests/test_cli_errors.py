"""Every command in a broken environment: one clear line, a documented exit code, no traceback."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import pixalert
import pytest
from click.testing import CliRunner
from pixalert import StoreUnavailable, _plugins
from pixalert.cli import cli
from pixalert.testing import recording_spec

EXIT_CODES = {0, 1, 2, 3}

# Every command that can meet a store, with arguments that are right.
COMMANDS = [
    ["send", "Disk full", "-p", "low"],
    ["render", "Disk full", "-p", "low"],
    ["send", "Disk full", "-p", "low", "--dry-run"],
    ["history"],
    ["stats"],
    ["channels"],
    ["channels", "--check"],
    ["plugins"],
    ["silence", "add", "key=x", "--for", "1h"],
    ["silence", "list"],
    ["silence", "remove", "abc"],
    ["config", "check"],
    ["config", "show"],
    ["test", "priorities"],
]
# The ones that really open the history or state store (channels --check does not).
STORE_COMMANDS = [
    ["send", "Disk full", "-p", "low"],
    ["render", "Disk full", "-p", "low"],
    ["render", "Disk full", "-p", "low"],
    ["send", "Disk full", "-p", "low", "--dry-run"],
    ["history"],
    ["stats"],
    ["silence", "add", "key=x", "--for", "1h"],
    ["silence", "list"],
]


class Unreachable:
    """A store whose server refuses every connection (as a real one does when down)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __getattr__(self, name: str) -> Any:
        async def refuse(*args: Any, **kwargs: Any) -> Any:
            raise StoreUnavailable(f"Broken store at {self.url}: connection refused")

        return refuse

    async def aclose(self) -> None:
        return None


class BrokenStores:
    """Serves ``broken://`` URLs with :class:`Unreachable`, and the recording channel."""

    @pixalert.hookimpl
    def pixalert_channels(self) -> list[pixalert.channels.ChannelSpec]:
        return [recording_spec("recording")]

    @pixalert.hookimpl
    def pixalert_history_store(self, url: str, clock: Any) -> Any:
        return Unreachable(url) if url.startswith("broken:") else None

    @pixalert.hookimpl
    def pixalert_state_backend(self, url: str, clock: Any) -> Any:
        return Unreachable(url) if url.startswith("broken:") else None


@pytest.fixture
def broken_plugins(monkeypatch: pytest.MonkeyPatch) -> _plugins.PluginManager:
    """The plugins above, and a ./pixalert.toml with one channel that takes every alert."""
    pm = _plugins.get_plugin_manager(entrypoints=False, plugins=[BrokenStores()])
    monkeypatch.setattr(_plugins, "_default", pm)
    Path("pixalert.toml").write_text(
        '[routing]\nlow = ["ok"]\n[channels.ok]\ntype = "recording"\n', encoding="utf-8"
    )
    return pm


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """``tiny_fs("1m")``: a small filesystem of its own (tmpfs; root only, else skipped)."""
    mounted: list[Path] = []

    def make(size: str) -> Path:
        where = tmp_path / f"fs{len(mounted)}"
        if not _mount_tmpfs(where, size):
            pytest.skip("cannot mount a small filesystem here (needs root)")
        mounted.append(where)
        return where

    yield make
    for where in reversed(mounted):
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def _make_history(path: Path) -> None:
    """A real pixalert history database at ``path``."""
    code, _, err = run(["send", "seed", "-p", "low"], env={"PIXALERT_HISTORY": f"sqlite:///{path}"})
    assert code in (0, 1), err
    assert path.is_file()


def read_only_history(tmp_path: Path, tiny_fs: Callable[[str], Path]) -> Path:
    """A history database this process cannot write (a read-only filesystem for root)."""
    if os.geteuid() == 0:
        where = tiny_fs("2m")
        db = where / "history.db"
        _make_history(db)
        remount = subprocess.run(
            ["mount", "-o", "remount,ro", str(where)], capture_output=True, check=False
        )
        if remount.returncode != 0:
            pytest.skip("cannot remount read-only")
        return db
    db = tmp_path / "ro" / "history.db"
    db.parent.mkdir()
    _make_history(db)
    db.chmod(0o400)
    db.parent.chmod(0o500)
    return db


def full_history(tiny_fs: Callable[[str], Path]) -> Path:
    """A history database on a filesystem with no space left."""
    where = tiny_fs("2m")
    db = where / "history.db"
    _make_history(db)
    with open(where / "filler", "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
    return db


def run(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run the CLI in this process; fails if an exception escaped it."""
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{args}: {result.exception!r}"
    )
    return result.exit_code, result.stdout, result.stderr


def assert_clean(args: list[str], code: int, out: str, err: str) -> None:
    """A documented exit code, no traceback, and at most two lines of error."""
    assert code in EXIT_CODES, (args, code, err)
    assert "Traceback" not in out + err, (args, out, err)
    problem_lines = [
        line for line in err.splitlines() if line and not line.startswith(("warning:", "note:"))
    ]
    if code >= 2 and args[:2] != ["config", "check"]:
        assert 1 <= len(problem_lines) <= 2, (args, err)
        assert problem_lines[0].startswith("error: "), (args, err)


def _environments(tmp_path: Path, tiny_fs: Callable[[str], Path]) -> dict[str, tuple[str, str]]:
    """name -> (history URL, what the error must name)."""
    not_a_db = tmp_path / "notes.txt"
    not_a_db.write_text("this is not a database\n" * 100)
    return {
        "missing directory": ("sqlite:////proc/nope/h.db", "/proc/nope"),
        "unknown scheme": ("mysql://x", "mysql://"),
        "store refuses": ("broken://db.example:5432/x", "broken://db.example:5432/x"),
        "a directory": (f"sqlite:///{tmp_path}", str(tmp_path)),
        "not a database": (f"sqlite:///{not_a_db}", str(not_a_db)),
    }


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_every_command_in_every_broken_environment(
    args: list[str], tmp_path: Path, tiny_fs: Callable[[str], Path], broken_plugins: Any
) -> None:
    for name, (url, named) in _environments(tmp_path, tiny_fs).items():
        code, out, err = run(args, env={"PIXALERT_HISTORY": url})
        assert_clean(args, code, out, err)
        if args in STORE_COMMANDS:
            assert code in (2, 3), (name, args, code, err)
            assert named in err, (name, args, err)
            assert "PIXALERT_HISTORY" in err or code == 2, (name, args, err)


@pytest.mark.parametrize("args", STORE_COMMANDS, ids=" ".join)
def test_store_commands_on_a_read_only_history(
    args: list[str], tmp_path: Path, tiny_fs: Callable[[str], Path], broken_plugins: Any
) -> None:
    db = read_only_history(tmp_path, tiny_fs)
    code, out, err = run(args, env={"PIXALERT_HISTORY": f"sqlite:///{db}"})
    assert_clean(args, code, out, err)
    assert code == 3, err
    assert str(db) in err
    assert "writable" in err


@pytest.mark.parametrize("args", STORE_COMMANDS, ids=" ".join)
def test_store_commands_on_a_full_disk(
    args: list[str], tiny_fs: Callable[[str], Path], broken_plugins: Any
) -> None:
    db = full_history(tiny_fs)
    code, out, err = run(args, env={"PIXALERT_HISTORY": f"sqlite:///{db}"})
    assert_clean(args, code, out, err)
    if code != 0:  # reading may still work on a full disk
        assert code == 3, err
        assert str(db) in err and ("full" in err or "I/O" in err), err


def test_sqlite_errors_say_what_to_do() -> None:
    """SQLite's own error for a full database, mapped to a line naming the file."""
    from pixalert.cli._failures import describe

    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (x BLOB)")
    conn.execute("PRAGMA max_page_count = 2")  # SQLite reports "database or disk is full"
    with pytest.raises(sqlite3.OperationalError) as info:
        conn.execute("INSERT INTO t VALUES (zeroblob(100000))")
    settings = pixalert.load_settings(
        config={"history": "sqlite:////var/lib/pixalert/h.db"}, read_files=False, env={}
    )
    code, message = describe(info.value, settings)
    assert code == 3
    assert message.startswith("the disk holding /var/lib/pixalert/h.db is full: free some space")


# ---------------------------------------------------------------------------
# As real processes: nothing printed at exit either
# ---------------------------------------------------------------------------


def _process(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("PIXALERT_")}
    full.update(env)
    full["PIXALERT_PLUGINS"] = ""  # the core alone, as it is installed without plugins
    done = subprocess.run(
        [sys.executable, "-m", "pixalert", *args],
        capture_output=True,
        text=True,
        env=full,
        cwd=cwd,
        timeout=120,
    )
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize(
    "args", [a for a in STORE_COMMANDS if a[0] != "channels"], ids=" ".join
)  # no channel plugin is installed in these processes, so channels --check sends nothing
def test_broken_environments_as_real_processes(args: list[str], tmp_path: Path) -> None:
    cases = {
        "sqlite:////proc/nope/h.db": "/proc/nope",
        "mysql://x": "mysql://",
        f"sqlite:///{tmp_path}": str(tmp_path),
    }
    for url, named in cases.items():
        code, out, err = _process(args, {"PIXALERT_HISTORY": url}, tmp_path)
        assert_clean(args, code, out, err)
        assert code in (2, 3) and named in err, (url, err)
        # pixalert's warnings that only repeat the error are not shown with it
        assert not [line for line in err.splitlines() if line.startswith("warning:")], err


# ---------------------------------------------------------------------------
# An unexpected error: one line, and where the report is
# ---------------------------------------------------------------------------


class Buggy:
    @pixalert.hookimpl
    def pixalert_cli(self, cli: click.Group) -> None:
        @cli.command()
        def crash() -> None:
            """Fail the way a bug does."""
            {}["nothing"]


@pytest.fixture
def buggy_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    pm = _plugins.get_plugin_manager(entrypoints=False, plugins=[Buggy()])
    monkeypatch.setattr(_plugins, "_default", pm)
    monkeypatch.setattr(cli, "_plugins_loaded", False)
    monkeypatch.setattr(cli, "commands", dict(cli.commands))


def test_internal_error_is_one_line_and_a_report(buggy_cli: None) -> None:
    code, out, err = run(["crash"])
    assert code == 4
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 2, err
    assert lines[0] == (
        "error: internal error (KeyError: 'nothing'); "
        "this is a bug in pixalert or one of its plugins"
    )
    report = Path(lines[1].split("the full report is in ", 1)[1].split(" (", 1)[0])
    text = report.read_text()
    assert "Traceback" in text and "KeyError: 'nothing'" in text and "pixalert " in text
    assert stat.S_IMODE(report.stat().st_mode) == 0o600


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_prints_the_traceback(buggy_cli: None, where: str) -> None:
    args = ["--debug", "crash"] if where == "before" else ["crash", "--debug"]
    code, _, err = run(args)
    assert code == 4
    assert "Traceback (most recent call last)" in err
    assert err.strip().splitlines()[-1].startswith("error: internal error (KeyError")
