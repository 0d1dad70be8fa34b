"""``pixalert ack``, ``resolve``, ``escalations``, ``heartbeat`` and ``heartbeats``: each a
short-lived process sharing the history file with the others."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from pixalert import _plugins
from pixalert.cli import cli


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def write_config(tmp_path: Path) -> str:
    path = tmp_path / "pixalert.toml"
    path.write_text(
        f'history = "sqlite:///{tmp_path}/h.db"\n'
        "[routing]\n"
        'low = ["ok"]\nmedium = ["ok"]\nhigh = ["ok"]\ncritical = ["ok"]\n'
        '[channels.ok]\ntype = "recording"\n'
        '[channels.pager]\ntype = "recording"\n'
        "[escalation.default]\n"
        'steps = [{ after = "10m", channels = ["pager"] }]\n'
        "[heartbeats.backup]\n"
        'period = "1d"\ngrace = "1h"\n'
    )
    return str(path)


def send(config: str, *args: str) -> str:
    code, out, err = run("--config", config, "send", "DB down", "gone", *args, "--json")
    assert code == 0, err
    return str(json.loads(out)["ok"]["status"])


def last_id(config: str) -> str:
    code, out, _ = run("--config", config, "history", "--json")
    assert code == 0
    return str(json.loads(out)[0]["id"])


def test_ack_then_resolve(tmp_path: Path, cli_plugins: _plugins.PluginManager) -> None:
    config = write_config(tmp_path)
    assert send(config, "-p", "critical", "--key", "db") == "sent"
    alert_id = last_id(config)

    code, out, _ = run("--config", config, "escalations", "--json")
    assert code == 0
    (escalation,) = json.loads(out)
    assert (escalation["alert_id"], escalation["policy"], escalation["channels"]) == (
        alert_id,
        "default",
        ["pager"],
    )
    code, out, _ = run("--config", config, "escalations")
    assert "default" in out and "1/1" in out and "pager" in out

    code, out, err = run("--config", config, "ack", alert_id, "--by", "alice", "--note", "on it")
    assert code == 0, err
    assert f"alert {alert_id}: acknowledged by alice via cli" in out
    assert "escalation stopped" in out
    code, out, _ = run("--config", config, "escalations")
    assert "No escalation under way." in out
    code, out, _ = run("--config", config, "escalations", "--all", "--json")
    assert json.loads(out)[0]["state"] == "acknowledged"

    code, out, _ = run("--config", config, "ack", alert_id, "--by", "bob", "--json")
    assert code == 0
    again = json.loads(out)
    assert again["changed"] is False and again["by"] == "alice"

    code, out, _ = run("--config", config, "resolve", alert_id, "--by", "alice")
    assert code == 0 and "resolved by alice via cli" in out and "ok: sent" in out
    code, out, _ = run("--config", config, "history", "--json")
    newest = json.loads(out)[0]
    assert newest["status"] == "resolved" and newest["key"] == "db"
    code, out, _ = run("--config", config, "resolve", alert_id)
    assert code == 0 and "already resolved" in out


@pytest.mark.parametrize("command", ["ack", "resolve"])
def test_an_unknown_id_exits_2(
    tmp_path: Path, cli_plugins: _plugins.PluginManager, command: str
) -> None:
    code, _, err = run("--config", write_config(tmp_path), command, "nope")
    assert code == 2
    assert err.strip() == "error: no alert 'nope' in the history (see 'pixalert history')"


def test_heartbeat_pings(tmp_path: Path, cli_plugins: _plugins.PluginManager) -> None:
    config = write_config(tmp_path)
    code, out, _ = run("--config", config, "heartbeats")
    assert code == 0 and "backup" in out and "new" in out and "never" in out
    code, out, err = run("--config", config, "heartbeat", "backup", "--start")
    assert code == 0, err
    assert out.startswith("heartbeat backup: start recorded; up")
    code, out, _ = run("--config", config, "heartbeat", "backup", "--json")
    state = json.loads(out)
    assert state["state"] == "up" and state["last_duration"] is not None
    code, out, _ = run("--config", config, "heartbeat", "backup", "--fail", "--note", "tar: exit 2")
    assert code == 0 and "(alert raised)" in out
    code, out, _ = run("--config", config, "history", "--json")
    assert json.loads(out)[0]["key"] == "heartbeat:backup"
    code, out, _ = run("--config", config, "heartbeats", "--json")
    assert json.loads(out)[0]["state"] == "failed"
    code, out, _ = run("--config", config, "heartbeat", "backup")
    assert code == 0 and "(alert resolved)" in out


def test_an_unknown_heartbeat_exits_2(tmp_path: Path, cli_plugins: _plugins.PluginManager) -> None:
    code, _, err = run("--config", write_config(tmp_path), "heartbeat", "nightly")
    assert code == 2
    assert "no heartbeat 'nightly' is configured (configured: backup)" in err


def test_the_commands_are_listed(cli_plugins: _plugins.PluginManager) -> None:
    code, out, _ = run("--help")
    assert code == 0
    for name in ("ack", "resolve", "escalations", "heartbeat", "heartbeats"):
        assert f"  {name} " in out
