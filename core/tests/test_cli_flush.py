"""Short-lived commands take over no backlog; ``pixalert flush`` delivers what is due.

The backlog here is an alert a process that died left in the history file:
recorded, claimed by that process, never delivered.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from pixalert import Alert, _plugins, _timeline
from pixalert._sqlite import SQLiteHistoryStore
from pixalert.cli import cli
from pixalert.storage import SystemClock


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def left_by_a_dead_process(db: Path) -> str:
    """Record an alert claimed by an owner whose process then 'dies'; return its id."""

    async def go() -> str:
        store = SQLiteHistoryStore(f"sqlite:///{db}", SystemClock())
        await store.open_owner("dead")
        alert = Alert("left behind", "m", "low")
        await store.record(alert, ["ok"], owner="dead", lease=3600)
        await store.aclose()  # its lock goes, as with SIGKILL; the claim stays
        return alert.id

    return asyncio.run(go())


@pytest.fixture
def path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config with one channel, ``ok``; the history in ``tmp_path/h.db``."""
    monkeypatch.setenv("PIXALERT_HISTORY", f"sqlite:///{tmp_path}/h.db")
    path = tmp_path / "pixalert.toml"
    path.write_text(
        'cooldown_minutes = 0\n[routing]\nlow = ["ok"]\n[channels.ok]\ntype = "recording"\n'
    )
    return path


def results(path: Path) -> dict[str, str]:
    code, out, err = run("--config", str(path), "history", "--json")
    assert code == 0, err
    return {e["title"]: e["results"]["ok"]["status"] for e in json.loads(out)}


def test_send_delivers_its_own_alert_and_no_backlog(
    tmp_path: Path,
    path: Path,
    cli_plugins: _plugins.PluginManager,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_timeline, "START_DELAY", 0.0)  # a sweep would run at once
    left_by_a_dead_process(tmp_path / "h.db")
    code, out, err = run("--config", str(path), "send", "new", "-p", "low", "--json")
    assert code == 0, err
    assert json.loads(out)["ok"]["status"] == "sent"
    assert results(path) == {"new": "sent", "left behind": "pending"}


def test_flush_delivers_what_a_dead_process_left_then_exits(
    tmp_path: Path, path: Path, cli_plugins: _plugins.PluginManager
) -> None:
    left_by_a_dead_process(tmp_path / "h.db")
    code, out, err = run("--config", str(path), "flush")
    assert code == 0, err
    assert out.strip() == "flushed: 1 due delivery or job run"
    assert results(path) == {"left behind": "sent"}
    code, out, _ = run("--config", str(path), "flush")
    assert (code, out.strip()) == (0, "flushed: nothing was due")
