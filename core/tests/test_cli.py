"""The command line: exit codes, output, configuration errors."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pixalert import _plugins
from pixalert.cli import cli


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def write_config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "pixalert.toml"
    path.write_text(
        f'history = "sqlite:///{tmp_path}/h.db"\n'
        '[routing]\nlow = ["ok"]\nhigh = ["ok", "bad"]\n'
        '[channels.ok]\ntype = "recording"\n'
        '[channels.bad]\ntype = "recording"\nfail_times = 9\npermanent = true\n' + extra
    )
    return path


def test_send_ok_exits_0(tmp_path: Path, cli_plugins: _plugins.PluginManager) -> None:
    code, out, _ = run(
        "--config", str(write_config(tmp_path)), "send", "Disk", "full", "-p", "low", "--json"
    )
    assert code == 0
    assert json.loads(out)["ok"]["status"] == "sent"


def test_send_with_a_failed_channel_exits_1(
    tmp_path: Path, cli_plugins: _plugins.PluginManager
) -> None:
    code, out, _ = run(
        "--config", str(write_config(tmp_path)), "send", "Disk", "-p", "high", "--json"
    )
    assert code == 1
    data = json.loads(out)
    assert data["ok"]["status"] == "sent" and data["bad"]["status"] == "failed"


def test_send_with_nothing_configured_exits_1(cli_plugins: _plugins.PluginManager) -> None:
    code, out, _ = run("send", "Disk", "-p", "medium")
    assert code == 1
    assert "not configured" in out


def test_bad_priority_exits_2(cli_plugins: _plugins.PluginManager) -> None:
    code, _, err = run("send", "Disk", "-p", "urgent")
    assert code == 2
    assert "unknown priority 'urgent'" in err


def test_config_error_exits_2_with_one_clear_message(
    tmp_path: Path, cli_plugins: _plugins.PluginManager
) -> None:
    config = write_config(tmp_path, '[delivery]\ntimeout = "soon"\n')
    code, out, err = run("--config", str(config), "send", "x")
    assert code == 2
    assert "or a number of seconds, got 'soon' @ delivery.timeout" in err
    assert "Traceback" not in err + out


def test_history_and_stats(tmp_path: Path, cli_plugins: _plugins.PluginManager) -> None:
    config = str(write_config(tmp_path))
    run("--config", config, "send", "First", "-p", "low")
    run("--config", config, "send", "Second", "-p", "high")
    code, out, _ = run("--config", config, "history", "--json")
    assert code == 0
    assert [e["title"] for e in json.loads(out)] == ["Second", "First"]
    code, out, _ = run("--config", config, "stats", "--json")
    stats = json.loads(out)
    assert stats["alerts"] == 2
    assert stats["channels"]["ok"]["sent"] == 2 and stats["channels"]["bad"]["failed"] == 1
    code, out, _ = run("--config", config, "history")
    assert code == 0 and "Second" in out and "First" in out
    code, out, _ = run("--config", config, "stats")
    assert code == 0 and "2 alerts in the last 24 h" in out


def test_channels_check(tmp_path: Path, cli_plugins: _plugins.PluginManager) -> None:
    config = str(write_config(tmp_path))
    code, out, _ = run("--config", config, "channels", "--json")
    assert code == 0
    assert json.loads(out) == {
        "ok": {"type": "recording", "status": "configured"},
        "bad": {"type": "recording", "status": "configured"},
    }
    code, out, _ = run("--config", config, "channels", "--check", "--json")
    assert code == 1
    data = json.loads(out)
    # No check declared: a test alert (send_test_alert).
    assert data["ok"]["status"] == "ok" and data["ok"]["detail"] == "sent"
    assert data["bad"]["status"] == "failed" and "(permanent)" in data["bad"]["detail"]


def _acme_plugin() -> Any:
    spec = importlib.util.spec_from_file_location(
        "acme_plugin", Path(__file__).with_name("acme_plugin.py")
    )
    assert spec is not None and spec.loader is not None
    module = sys.modules["acme_plugin"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_channels_check_runs_each_channel_types_own_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    acme = _acme_plugin()
    pm = _plugins.get_plugin_manager(entrypoints=False, plugins=[acme])
    monkeypatch.setattr(_plugins, "_default", pm)
    box = tmp_path / "out.jsonl"
    config = tmp_path / "pixalert.toml"
    config.write_text(
        'history = "memory://"\n'
        f'[channels.acme]\nurl = "https://acme.example/k-5ecr3t"\noutbox = "{box}"\n'
        f'[channels.bare]\ntoken = "bare-refused-t0ken"\noutbox = "{box}"\n'
    )
    code, out, _ = run("--config", str(config), "channels", "--check", "--json")
    assert code == 1
    data = json.loads(out)
    assert data["acme"]["status"] == "ok"
    assert data["acme"]["detail"].startswith("sent and resolved; the outbox holds ")
    assert data["bare"] == {
        "type": "bare",
        "status": "failed",
        "detail": "bare: HTTP 401 token refused for ********** (permanent)",
        "latency": None,
    }
    assert [(m["channel"], m["status"]) for m in map(json.loads, box.read_text().splitlines())] == [
        ("acme", "firing"),
        ("acme", "resolved"),
    ]


def test_plugins_lists_channels(cli_plugins: _plugins.PluginManager) -> None:
    code, out, _ = run("plugins", "--json")
    assert code == 0
    assert json.loads(out)["errors"] == []


def test_help_imports_no_core_command_module() -> None:
    code = (
        "import sys; from pixalert.cli import cli\n"
        "try:\n    cli(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith(('pixalert._manager', "
        "'pixalert.cli._', 'cattrs', 'httpx', 'aiosmtplib'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PIXALERT_PLUGINS": "", "PATH": ""},
        check=True,
    ).stdout
    assert out.strip().splitlines()[-1] == "[]"
