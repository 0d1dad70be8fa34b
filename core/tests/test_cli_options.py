"""The command line's consistency: global options anywhere, pure JSON, versions, stdin, ranges."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import click
import pixalert
import pytest
from click.testing import CliRunner
from pixalert import _plugins
from pixalert.cli import GlobalOption, cli, cli_options, global_options
from pixalert.testing import recording_spec

GLOBAL_FLAGS = {"--config", "--env-file", "--verbose", "--debug", "--json"}


class Sink:
    """A demo stand-in for the recording channel (nothing to start)."""

    channel_type = "recording"

    async def start(self) -> Mapping[str, Any]:
        return {}

    def received(self) -> list[str]:
        return ["one line"]

    lines = received  # the DemoSink protocol's newer name

    async def stop(self) -> None:
        return None


class Recording:
    @pixalert.hookimpl
    def pixalert_channels(self) -> list[pixalert.channels.ChannelSpec]:
        return [recording_spec("recording")]

    @pixalert.hookimpl
    def pixalert_demo_sinks(self) -> list[Any]:
        return [Sink()]


class Extra:
    """A plugin command that does not use global_options itself."""

    @pixalert.hookimpl
    def pixalert_cli(self, cli: click.Group) -> None:
        @cli.command()
        def where() -> None:
            """Print the config file in effect."""
            from pixalert.cli import build_manager

            manager = build_manager()
            click.echo(
                f"config={cli_options().config_file} cooldown={manager.settings.cooldown_minutes}"
            )


@pytest.fixture
def plugins(monkeypatch: pytest.MonkeyPatch) -> _plugins.PluginManager:
    pm = _plugins.get_plugin_manager(entrypoints=False, plugins=[Recording(), Extra()])
    monkeypatch.setattr(_plugins, "_default", pm)
    monkeypatch.setattr(cli, "_plugins_loaded", False)
    monkeypatch.setattr(cli, "commands", dict(cli.commands))
    return pm


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "ops.toml"
    path.write_text(
        f'history = "sqlite:///{tmp_path}/h.db"\ncooldown_minutes = 7\n'
        '[routing]\nlow = ["ok"]\n[channels.ok]\ntype = "recording"\n',
        encoding="utf-8",
    )
    return path


def run(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), input=input, prog_name="pixalert")
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    return result.exit_code, result.stdout, result.stderr


def leaf_commands() -> Iterator[tuple[list[str], click.Command]]:
    ctx = click.Context(cli, info_name="pixalert")

    def walk(group: click.Group, prefix: list[str]) -> Iterator[tuple[list[str], click.Command]]:
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            if command is None:
                continue
            if isinstance(command, click.Group):
                yield from walk(command, [*prefix, name])
            else:
                yield [*prefix, name], command

    yield from walk(cli, [])


def has_json(command: click.Command) -> bool:
    return any("--json" in p.opts and getattr(p, "has_json_output", False) for p in command.params)


# ---------------------------------------------------------------------------
# Global options
# ---------------------------------------------------------------------------


def test_every_command_takes_the_global_options(plugins: Any) -> None:
    for path, command in leaf_commands():
        flags = {o for p in command.params if isinstance(p, GlobalOption) for o in p.opts}
        assert flags >= GLOBAL_FLAGS, f"pixalert {' '.join(path)} lacks {GLOBAL_FLAGS - flags}"


@pytest.mark.parametrize("where", ["before", "after"])
def test_config_before_or_after_a_core_command(plugins: Any, config: Path, where: str) -> None:
    command = ["send", "Disk", "-p", "low", "--json"]
    args = (
        ["--config", str(config), *command]
        if where == "before"
        else [*command, "--config", str(config)]
    )
    code, out, _ = run(*args)
    assert code == 0
    assert json.loads(out)["ok"]["status"] == "sent"


@pytest.mark.parametrize("where", ["before", "after"])
def test_config_before_or_after_a_plugin_command(plugins: Any, config: Path, where: str) -> None:
    args = (
        ["--config", str(config), "where"]
        if where == "before"
        else ["where", "--config", str(config)]
    )
    code, out, err = run(*args)
    assert code == 0, err
    assert out.strip() == f"config={config} cooldown=7.0"


def test_config_after_a_nested_command(plugins: Any, config: Path) -> None:
    code, out, err = run("silence", "list", "--json", "--config", str(config))
    assert code == 0, err
    assert json.loads(out) == []


def test_the_last_config_given_wins(plugins: Any, config: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.toml"
    other.write_text("cooldown_minutes = 3\n", encoding="utf-8")
    code, out, _ = run("--config", str(other), "where", "--config", str(config))
    assert code == 0 and "cooldown=7.0" in out


def test_global_options_decorator_on_a_plain_command() -> None:
    @global_options
    @click.command()
    def hello() -> None:
        click.echo("hi")

    flags = {o for p in hello.params for o in p.opts}
    assert flags >= GLOBAL_FLAGS
    result = CliRunner().invoke(hello, ["--json"])
    assert result.exit_code == 2 and "has no JSON output" in result.stderr


def test_verbose_after_the_command_logs_to_stderr(plugins: Any, config: Path) -> None:
    code, out, _ = run("send", "Disk", "-p", "low", "--json", "--config", str(config), "-vv")
    assert code == 0
    json.loads(out)  # logs went to stderr


# ---------------------------------------------------------------------------
# --json: only JSON on stdout
# ---------------------------------------------------------------------------

JSON_ARGS = {
    "send": ["send", "Disk full", "-p", "low"],
    "render": ["render", "Disk full", "-p", "low"],
    "channels": ["channels", "--check"],
    "plugins": ["plugins"],
    "history": ["history"],
    "stats": ["stats"],
    "demo": ["demo"],
    "test": ["test", "priorities"],
    "silence add": ["silence", "add", "key=x", "--for", "1h"],
    "silence list": ["silence", "list"],
    "config check": ["config", "check"],
    "config show": ["config", "show"],
    "escalations": ["escalations"],
    "routes test": ["routes", "test", "source=db"],
    "heartbeats": ["heartbeats"],
}


#: Commands whose --json needs an alert or a heartbeat that exists: their JSON is
#: checked with real ones in test_cli_lifecycle.py.
JSON_ELSEWHERE = {"ack", "resolve", "heartbeat"}


def test_every_json_command_is_checked(plugins: Any) -> None:
    with_json = {" ".join(path) for path, command in leaf_commands() if has_json(command)}
    assert with_json == set(JSON_ARGS) | JSON_ELSEWHERE


@pytest.mark.parametrize("name", sorted(JSON_ARGS))
@pytest.mark.parametrize("where", ["after", "before"])
def test_json_output_is_pure_json(plugins: Any, config: Path, name: str, where: str) -> None:
    args = JSON_ARGS[name]
    full = (
        ["--json", "--config", str(config), *args]
        if where == "before"
        else [*args, "--json", "--config", str(config)]
    )
    code, out, err = run(*full)
    assert code in (0, 1), err
    json.loads(out)  # the whole of stdout, and nothing else


@pytest.mark.parametrize(
    "args", [["silence", "remove", "x"], ["plugin", "new", "teams"], ["init", "--no-input"]]
)
def test_json_on_a_command_without_json_output_is_a_usage_error(
    plugins: Any, args: list[str]
) -> None:
    for full in ([*args, "--json"], ["--json", *args]):
        code, out, err = run(*full)
        assert code == 2
        assert out == ""
        assert err.startswith("error: 'pixalert "), err
        assert "has no JSON output" in err


# ---------------------------------------------------------------------------
# Versions, stdin, ranges
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_version_lists_the_core_and_every_plugin(flag: str) -> None:
    code, out, _ = run(flag)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"pixalert {metadata.version('pixalert')}"
    assert lines[-1].startswith("Python 3.")
    for entry_point in metadata.entry_points(group="pixalert"):
        dist = entry_point.dist
        assert dist is not None
        assert f"{dist.metadata['Name']} {dist.version}" in lines


@pytest.mark.parametrize("form", [["-"], ["-m", "-"]])
def test_message_from_stdin(plugins: Any, config: Path, form: list[str]) -> None:
    code, _, err = run(
        "--config", str(config), "send", "From a pipe", *form, "-p", "low", input="line 1\nline 2\n"
    )
    assert code == 0, err
    _, out, _ = run("--config", str(config), "history", "--json")
    assert json.loads(out)[0]["message"] == "line 1\nline 2"


def test_message_and_stdin_together_is_a_usage_error(plugins: Any, config: Path) -> None:
    code, _, err = run("--config", str(config), "send", "T", "text", "-m", "-", input="x")
    assert code == 2 and "not both" in err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["history", "--hours", "-5"], "'--hours': expected a number > 0, got '-5'"),
        (["history", "--hours", "0"], "'--hours': expected a number > 0, got '0'"),
        (["history", "--hours", "inf"], "'--hours': expected a finite number, got 'inf'"),
        (["stats", "--hours", "nan"], "'--hours': expected a finite number, got 'nan'"),
        (["history", "--limit", "0"], "'--limit': expected a whole number >= 1, got '0'"),
        (["history", "--limit", "many"], "'--limit': expected a whole number, got 'many'"),
        (["send", "T", "--cooldown", "-1"], "'--cooldown': expected a number >= 0, got '-1'"),
        (["send", "T", "--cooldown", "inf"], "'--cooldown': expected a finite number"),
    ],
)
def test_out_of_range_options_are_usage_errors(
    plugins: Any, args: list[str], expected: str
) -> None:
    code, _, err = run(*args)
    assert code == 2
    assert err.count("\n") == 1, err  # one line
    assert expected in err and f"(see 'pixalert {args[0]} --help')" in err


def test_usage_errors_are_one_line(plugins: Any) -> None:
    code, _, err = run("nosuch")
    assert code == 2
    assert err == "error: No such command 'nosuch'. (see 'pixalert --help')\n"


# ---------------------------------------------------------------------------
# pixalert demo without its test servers
# ---------------------------------------------------------------------------


class NoTestServers:
    """A plugin whose demo stand-in needs a module that is not installed."""

    @pixalert.hookimpl
    def pixalert_demo_sinks(self) -> list[Any]:
        raise ModuleNotFoundError("No module named 'aiosmtpd'", name="aiosmtpd")


def test_demo_without_the_testing_extras_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pm = _plugins.get_plugin_manager(entrypoints=False, plugins=[Recording(), NoTestServers()])
    monkeypatch.setattr(_plugins, "_default", pm)
    for args in (["demo"], ["demo", "--json"]):
        code, out, err = run(*args)
        assert code == 2
        assert out == ""
        assert err == (
            "error: pixalert demo needs the plugins' test servers, and aiosmtpd is not "
            "installed: pip install aiosmtpd\n"
        )


def test_shell_completion_completes_commands_and_options(plugins: Any) -> None:
    """click's own mechanism, as docs/cli.md tells users to enable it."""
    runner = CliRunner()

    def complete(words: str, index: int) -> list[str]:
        env = {"_PIXALERT_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(index)}
        result = runner.invoke(cli, [], env=env, prog_name="pixalert")
        return result.stdout.split()

    assert complete("pixalert hi", 1) == ["plain,history"]
    assert complete("pixalert wh", 1) == ["plain,where"]  # a plugin's command
    assert complete("pixalert history --li", 2) == ["plain,--limit"]
    assert "plain,--config" in complete("pixalert send --con", 2)
    source = runner.invoke(cli, [], env={"_PIXALERT_COMPLETE": "bash_source"}, prog_name="pixalert")
    assert "_pixalert_completion()" in source.stdout
