"""``pixalert config check`` and ``pixalert config show``; the checks registry."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import attrs
import pixalert
import pytest
from click.testing import CliRunner
from pixalert import _checks, _plugins
from pixalert.channels import Secret
from pixalert.cli import cli
from pixalert.cli._config_cmd import mask_secret
from pixalert.testing import recording_spec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10
    import tomli as tomllib

SLACK_URL = "https://hooks.slack.example/services/T000/B000/abcdefghijklmnopqrstuvwx"


class Plugins:
    @pixalert.hookimpl
    def pixalert_channels(self) -> list[pixalert.channels.ChannelSpec]:
        return [recording_spec("recording"), recording_spec("slack")]


@pytest.fixture(autouse=True)
def plugins(monkeypatch: pytest.MonkeyPatch) -> _plugins.PluginManager:
    pm = _plugins.get_plugin_manager(entrypoints=False, plugins=[Plugins()])
    monkeypatch.setattr(_plugins, "_default", pm)
    return pm


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env=env, prog_name="pixalert")
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    return result.exit_code, result.stdout, result.stderr


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pixalert.toml"
    path.write_text(text, encoding="utf-8")
    return path


GOOD = """
cooldown_minutes = 2
[routing]
low = ["ops"]
high = ["ops", "slack"]
[channels.ops]
type = "recording"
[channels.slack]
"""


# ---------------------------------------------------------------------------
# config check
# ---------------------------------------------------------------------------


def test_check_a_good_config_is_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    code, out, err = run("config", "check", "--config", str(path))
    assert code == 0, err
    assert out == f"config ok: {path}; 2 channels (ops, slack); routing checked\n"
    assert err == ""


def test_check_lists_every_problem_with_file_path_and_expectation(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
cooldown_minutes = inf
retention_dys = 3
[routing]
low = ["slak"]
[delivery]
timeout = nan
timout = 3
[channels.ops]
type = "recording"
[channels.teams]
""",
    )
    code, out, err = run("config", "check", "--config", str(path))
    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert lines[0] == "error: the configuration has 4 problems:"
    problems = lines[1:]
    assert f"  {path}: expected a finite number, got inf @ cooldown_minutes" in problems
    (timeout,) = [p for p in problems if p.endswith("@ delivery.timeout")]
    assert timeout.startswith(f"  {path}: expected a finite ")  # number, or duration
    assert timeout.endswith(", got nan @ delivery.timeout")
    assert (
        f"  {path}: unknown key 'retention_dys' (did you mean 'retention_days'?) @ retention_dys"
    ) in problems
    assert f"  {path}: unknown key 'timout' (did you mean 'timeout'?) @ delivery.timout" in (
        problems
    )


def test_check_finds_routing_typos_and_missing_plugins(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[routing]\nlow = ["slak"]\nmedium = ["ops", "email"]\n'
        '[channels.ops]\ntype = "recording"\n[channels.team-chat]\ntype = "teams"\n',
    )
    code, _, err = run("config", "check", "--config", str(path))
    assert code == 2
    assert f"note: {path}: channel 'email' is not configured" in err
    assert (
        f"  {path}: unknown channel 'slak' (did you mean 'slack'?); expected a configured "
        'channel (ops, team-chat), a channel type, or "*" @ routing.low'
    ) in err
    assert (
        f"  {path}: no installed plugin provides channel type 'teams' (installed: "
        "recording, slack); install it (pip install pixalert-teams) or fix the type "
        "@ channels.team-chat.type"
    ) in err


def test_check_json(tmp_path: Path) -> None:
    path = write(tmp_path, '[routing]\nlow = ["slak"]\n')
    code, out, _ = run("config", "check", "--json", "--config", str(path))
    assert code == 2
    data = json.loads(out)
    assert data["ok"] is False and data["files"] == [str(path)]
    assert data["problems"] == [
        {
            "source": str(path),
            "path": "routing.low",
            "message": "unknown channel 'slak' (did you mean 'slack'?); expected a configured "
            'channel (none), a channel type, or "*"',
            "severity": "error",
        }
    ]


def test_check_names_an_environment_variable(tmp_path: Path) -> None:
    code, _, err = run("config", "check", env={"PIXALERT_COOLDOWN_MINUTES": "inf"})
    assert code == 2
    assert (
        "  environment variable PIXALERT_COOLDOWN_MINUTES: expected a finite number, "
        "got 'inf' @ cooldown_minutes"
    ) in err


def test_check_an_unreadable_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[delivery\n")
    code, _, err = run("config", "check", "--config", str(path))
    assert code == 2
    assert f"  {path}: not valid TOML" in err


def test_routing_typo_is_a_warning_when_loading(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path, '[routing]\nlow = ["slak"]\n')
    with caplog.at_level(logging.WARNING, logger="pixalert.config"):
        pixalert.NotificationManager(config_file=path, plugin_manager=_plugins._default)
    assert [r.getMessage() for r in caplog.records if r.name == "pixalert.config"] == [
        f"{path}: unknown channel 'slak' (did you mean 'slack'?); expected a configured "
        'channel (none), a channel type, or "*" @ routing.low'
    ]


def test_routing_given_as_arguments_is_not_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="pixalert.config"):
        pixalert.NotificationManager(
            config={"routing": {"low": ["my-object-channel"]}},
            read_files=False,
            env={},
            plugin_manager=_plugins._default,
        )
    assert not [r for r in caplog.records if r.name == "pixalert.config"]


@pytest.fixture
def extra_check() -> Iterator[None]:
    @_checks.config_check
    def no_long_cooldowns(ctx: _checks.CheckContext) -> Iterator[_checks.ConfigProblem]:
        if ctx.settings.cooldown_minutes > 60:
            yield ctx.error("cooldown_minutes", "expected at most 60 minutes")

    @_checks.config_check
    def broken(ctx: _checks.CheckContext) -> Iterator[_checks.ConfigProblem]:
        raise RuntimeError("oops")

    yield
    _checks._CHECKS.remove(no_long_cooldowns)
    _checks._CHECKS.remove(broken)


def test_a_registered_check_runs_without_changing_the_command(
    tmp_path: Path, extra_check: None
) -> None:
    path = write(tmp_path, "cooldown_minutes = 90\n")
    code, _, err = run("config", "check", "--config", str(path))
    assert code == 2
    assert f"  {path}: expected at most 60 minutes @ cooldown_minutes" in err
    assert "  pixalert: check broken failed: RuntimeError('oops')" in err


# ---------------------------------------------------------------------------
# config show
# ---------------------------------------------------------------------------


def test_mask_secret() -> None:
    assert mask_secret("abcdefghijklmnop") == "…op"
    assert mask_secret("short-one") == "…"
    assert mask_secret("") == "…"


def test_show_says_where_each_value_came_from(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + '[plugins.monitoring.receiver]\ntoken = "receiver-token-xyz"\n')
    env = {
        "PIXALERT_RETENTION_DAYS": "9",
        "PIXALERT_HISTORY": "postgresql://app:hunter2-secret@db.example/alerts",
    }
    code, out, err = run("config", "show", "--config", str(path), env=env)
    assert code == 0, err
    lines = out.splitlines()
    assert f"cooldown_minutes = 2.0  # {path}" in lines
    assert "retention_days = 9.0  # environment variable PIXALERT_RETENTION_DAYS" in lines
    assert (
        'history = "postgresql://app:***@db.example/alerts"  '
        "# environment variable PIXALERT_HISTORY"
    ) in lines
    assert "max_attempts = 3  # default" in lines
    assert f'low = ["ops"]  # {path}' in lines
    assert 'medium = ["email", "slack"]  # default' in lines
    assert f'type = "recording"  # {path}' in lines
    assert "[plugins.monitoring.receiver]" in lines
    assert f'token = "…yz"  # {path}' in lines
    assert "hunter2" not in out and "receiver-token" not in out
    # Masked values aside, the output is TOML.
    shown = tomllib.loads(out)
    assert shown["delivery"]["max_attempts"] == 3
    assert shown["channels"]["ops"]["type"] == "recording"


@attrs.define
class VaultConfig:
    """A channel config with a secret field."""

    url: Secret = attrs.field(factory=lambda: Secret(SLACK_URL))
    name: str = "ops"


class VaultPlugin:
    @pixalert.hookimpl
    def pixalert_channels(self) -> list[pixalert.channels.ChannelSpec]:
        return [attrs.evolve(recording_spec("vault"), config_type=VaultConfig)]


def test_show_masks_secret_fields_of_channel_configs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pm = _plugins.get_plugin_manager(entrypoints=False, plugins=[VaultPlugin()])
    monkeypatch.setattr(_plugins, "_default", pm)
    path = write(tmp_path, f'[channels.v]\ntype = "vault"\nurl = "{SLACK_URL}"\n')
    code, out, err = run("config", "show", "--config", str(path))
    assert code == 0, err
    assert f'url = "…wx"  # {path}' in out.splitlines()
    assert 'name = "ops"  # default' in out.splitlines()
    assert SLACK_URL not in out and "services" not in out


def test_show_json(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    code, out, _ = run("--json", "config", "show", "--config", str(path))
    assert code == 0
    data = json.loads(out)
    assert data["files"] == [str(path)]
    assert data["config"]["cooldown_minutes"] == {"value": 2.0, "source": str(path)}
    assert data["config"]["delivery"]["max_attempts"] == {"value": 3, "source": "default"}
    assert data["config"]["channels"]["slack"]["type"] == {
        "value": "slack",
        "source": "default (the section's name)",
    }


def test_show_an_unusable_section(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[channels.chat]\ntype = "teams"\napi_token = "abcdefghijklmnop"\n'
        'endpoint = "https://hooks.teams.example/webhook/abcdefghij0123456789"\n'
        'base = "https://teams.example/"\n',
    )
    code, out, _ = run("config", "show", "--config", str(path))
    assert code == 0
    lines = out.splitlines()
    assert "# not used: no installed plugin provides channel type 'teams'" in out
    assert f'api_token = "…op"  # {path}' in lines
    # A URL no plugin has typed may carry its secret in its path: only the host is shown.
    assert f'endpoint = "https://hooks.teams.example/…89"  # {path}' in lines
    assert f'base = "https://teams.example/"  # {path}' in lines


def test_show_a_broken_config_points_to_check(tmp_path: Path) -> None:
    path = write(tmp_path, "cooldown_minutes = nan\n")
    code, out, err = run("config", "show", "--config", str(path))
    assert code == 2 and out == ""
    assert err.startswith("error: invalid configuration (see 'pixalert config check'):")


def test_show_reports_lists_of_tables() -> None:
    """Sections added later ([[routes]], [time_intervals.NAME]) are shown with no change here."""
    from pixalert.cli import _config_cmd

    tree = _config_cmd._raw_tree(
        {"routes": [{"match": {"source": "db"}, "channels": ["ops"]}]}, "", {"routes": "f.toml"}
    )
    text = "\n".join(_config_cmd._toml_lines(tree, ()))
    assert tomllib.loads(text) == {"routes": [{"match": {"source": "db"}, "channels": ["ops"]}]}
    assert 'channels = ["ops"]  # f.toml' in text
