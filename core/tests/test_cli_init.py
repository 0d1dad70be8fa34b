"""``pixalert init`` asks what the installed channel plugins declare.

The plugin here is a third-party one the core knows nothing about
(``acme_plugin.py``): ``acme`` declares its questions, title and live check;
``bare`` declares none, so its form comes from its config class. The
interactive tests type into a real pseudo-terminal (pexpect) running
``pixalert init`` in a subprocess; the others run it without a terminal. The
tests with the email, Slack, PagerDuty and webhook plugins are in
``tests/test_init_channels.py``.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import pixalert
import pytest
from click.testing import CliRunner
from pixalert import _plugins
from pixalert.channels import ChannelSpec, Secret, SetupField
from pixalert.cli import _init as init_cmd
from pixalert.cli import cli

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

try:
    import pexpect
except ImportError:  # pragma: no cover - a dev dependency; the other tests still run
    pexpect = None

#: The tests that type into a real pseudo-terminal.
terminal = pytest.mark.skipif(pexpect is None, reason="the terminal tests need pexpect")

PLUGIN_FILE = Path(__file__).with_name("acme_plugin.py")


def _load_plugin() -> Any:
    spec = importlib.util.spec_from_file_location("acme_plugin", PLUGIN_FILE)
    assert spec is not None and spec.loader is not None
    module = sys.modules["acme_plugin"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


acme = _load_plugin()

URL = "https://acme.example/hooks/k-5ecr3t-value"


@pytest.fixture
def acme_cli(monkeypatch: pytest.MonkeyPatch) -> _plugins.PluginManager:
    """The CLI, in this process, sees the acme plugin and no other."""
    pm = _plugins.get_plugin_manager(entrypoints=False, plugins=[acme])
    monkeypatch.setattr(_plugins, "_default", pm)
    return pm


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACME_", "BARE_", "PIXALERT_"))}
    env.update(extra)
    return env


def outbox(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def load(path: Path) -> dict[str, Any]:
    with path.open("rb") as f:
        return tomllib.load(f)


# ---------------------------------------------------------------------------
# At a terminal
# ---------------------------------------------------------------------------


class Terminal:
    """A person at a terminal running ``pixalert init`` with the acme plugin alone."""

    def __init__(self, cwd: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.transcript = io.StringIO()
        self.child = pexpect.spawn(
            sys.executable,
            ["-c", acme.BOOT, str(PLUGIN_FILE), "init", *args],
            cwd=str(cwd),
            env=env or clean_env(),
            encoding="utf-8",
            timeout=15,
            dimensions=(60, 200),
        )
        self.child.logfile_read = self.transcript

    def answer(self, prompt: str, text: str = "") -> None:
        """Wait for ``prompt``, then type ``text`` and Enter."""
        self.child.expect_exact(prompt)
        self.child.sendline(text)

    def see(self, text: str) -> None:
        self.child.expect_exact(text)

    def finish(self) -> int:
        self.child.expect(pexpect.EOF)
        self.child.close()
        return int(self.child.exitstatus)

    @property
    def output(self) -> str:
        return self.transcript.getvalue()


@terminal
def test_a_third_party_channel_is_asked_its_own_questions_and_checked(tmp_path):
    box = tmp_path / "acme.jsonl"
    term = Terminal(tmp_path)
    term.answer("Set up Acme Pager? [y/N]:", "y")  # by name: acme before bare
    term.see("From the Acme console: Settings > Integrations.")  # the field's help
    term.answer("Acme URL (hidden):", URL)
    term.answer("Outbox file:", str(box))
    term.answer("Team (optional, Enter to skip):", "")
    term.answer("Retries [3]:", "5")
    term.answer("Page urgently [y/N]:", "y")
    term.answer("Tags, comma-separated (optional, Enter to skip):", "db, night")
    term.see("✓ the settings are valid")
    term.answer("Send a test page to Acme now? [y/N]:", "y")
    term.see("✓ sent and resolved; the outbox holds 2 lines")
    term.answer("Set up bare? [y/N]:", "n")
    term.see("Settings (secrets are not shown)")
    term.answer("Write pixalert.toml? [Y/n]:", "")
    term.see("Wrote pixalert.toml (mode 600")
    assert term.finish() == 0

    assert [(m["title"], m["status"]) for m in outbox(box)] == [
        ("pixalert test alert", "firing"),
        ("pixalert test alert", "resolved"),
    ]
    path = tmp_path / "pixalert.toml"
    assert mode(path) == 0o600
    assert load(path)["channels"] == {
        "acme": {
            "url": URL,
            "outbox": str(box),
            "retries": 5,
            "urgent": True,
            "tags": ["db", "night"],
        }
    }
    assert URL not in term.output and "5ecr3t" not in term.output
    assert "••••••••" in term.output  # the summary masks the URL


@terminal
def test_a_channel_without_setup_fields_is_asked_for_its_config_fields(tmp_path):
    box = tmp_path / "bare.jsonl"
    term = Terminal(tmp_path)
    term.answer("Set up Acme Pager?", "n")
    term.see("the bare plugin declares no setup questions: asking for each field of its config")
    term.answer("Set up bare? [y/N]:", "y")
    term.answer("token (hidden):", "bare-t0ken-value")  # a Secret field: hidden
    term.answer("outbox:", str(box))
    term.answer("timeout [5.0]:", "2.5")
    term.answer("verbose [y/N]:", "")
    term.answer("Send a test alert through bare now? [y/N]:", "y")
    term.see("✓ sent and resolved")
    term.answer("Write pixalert.toml?", "y")
    assert term.finish() == 0
    assert load(tmp_path / "pixalert.toml")["channels"] == {
        "bare": {"token": "bare-t0ken-value", "outbox": str(box), "timeout": 2.5, "verbose": False}
    }
    assert len(outbox(box)) == 2
    assert "bare-t0ken-value" not in term.output


@terminal
def test_bad_answers_are_explained_with_their_flag_and_asked_again(tmp_path):
    box = tmp_path / "acme.jsonl"
    term = Terminal(tmp_path)
    term.answer("Set up Acme Pager?", "y")
    term.answer("Acme URL (hidden):", "http://plain.example/k-5ecr3t-value")
    term.answer("Outbox file:", str(box))
    term.answer("Team", "")
    term.answer("Retries [3]:", "three")
    term.see("'three' is not a valid integer")
    term.answer("Retries [3]:", "")
    term.answer("Page urgently", "")
    term.answer("Tags", "")
    term.see("These settings do not work:")
    term.see("expected an https:// URL (the value is not shown) @ channels.acme.url")
    term.see("(--acme-url / ACME_URL)")
    term.answer("Enter the Acme Pager settings again? [Y/n]:", "")
    term.answer("Acme URL (hidden; Enter keeps the current one):", URL)
    term.answer(f"Outbox file [{box}]:", "")
    term.answer("Team", "ops")
    term.answer("Retries [3]:", "")
    term.answer("Page urgently", "")
    term.answer("Tags", "")
    term.answer("Send a test page to Acme now?", "")  # default: no
    term.answer("Set up bare?", "n")
    term.answer("Write pixalert.toml?", "y")
    assert term.finish() == 0
    assert load(tmp_path / "pixalert.toml")["channels"]["acme"] == {
        "url": URL,
        "outbox": str(box),
        "team": "ops",
        "retries": 3,
        "urgent": False,
    }
    assert not box.exists()  # the check was declined
    assert "5ecr3t" not in term.output


@terminal
def test_a_failed_check_masks_the_secret_and_lets_the_person_fix_it(tmp_path):
    box = tmp_path / "acme.jsonl"
    refused = "https://acme.example/refused/k-0ld-s3cret"
    term = Terminal(tmp_path, "--set", f"acme.outbox={box}")
    term.answer("Set up Acme Pager? [Y/n]:", "")  # --set gave a value: yes by default
    term.answer("Acme URL (hidden):", refused)
    term.answer(f"Outbox file [{box}]:", "")
    for prompt in ("Team", "Retries", "Page urgently", "Tags"):
        term.answer(prompt, "")
    term.answer("Send a test page to Acme now?", "y")
    term.see("✗ the test failed: acme: HTTP 401 token refused for **********")
    term.see("(permanent)")
    term.answer("[r]e-enter the settings, [k]eep them anyway, or [s]kip this channel?", "r")
    term.answer("Acme URL (hidden; Enter keeps the current one):", URL)
    for prompt in ("Outbox file", "Team", "Retries", "Page urgently", "Tags"):
        term.answer(prompt, "")
    term.answer("Send a test page to Acme now?", "y")
    term.see("✓ sent and resolved")
    term.answer("Set up bare?", "n")
    term.answer("Write pixalert.toml?", "y")
    assert term.finish() == 0
    assert load(tmp_path / "pixalert.toml")["channels"]["acme"]["url"] == URL
    assert "k-0ld-s3cret" not in term.output and "5ecr3t" not in term.output


@terminal
def test_end_of_input_at_a_terminal_says_what_happened_and_writes_nothing(tmp_path):
    term = Terminal(tmp_path)
    term.see("Set up Acme Pager?")
    term.child.sendeof()
    term.see("the input ended before the questions were answered: nothing written")
    term.see("pixalert init --no-input")
    assert term.finish() == 2
    assert "Aborted" not in term.output
    assert not (tmp_path / "pixalert.toml").exists()


# ---------------------------------------------------------------------------
# Without a terminal
# ---------------------------------------------------------------------------


def invoke(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    runner = CliRunner(env={"ACME_URL": None, "BARE_TOKEN": None} | (env or {}))
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        return runner.invoke(cli, ["init", *args], catch_exceptions=False)
    finally:
        os.chdir(cwd)


@pytest.mark.parametrize("stdin", ["", "\n", "y\ny\n"], ids=["empty", "echo", "answers"])
def test_without_a_terminal_it_says_how_to_run_without_questions(tmp_path, stdin):
    proc = subprocess.run(
        [sys.executable, "-c", acme.BOOT, str(PLUGIN_FILE), "init"],
        input=stdin,
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith(
        "error: pixalert init asks questions, and stdin is not a terminal; to write the "
        "config without questions, run 'pixalert init --no-input' with the settings as "
        "flags or environment variables (listed by 'pixalert init --help')"
    )
    assert "Aborted" not in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_help_lists_a_flag_per_declared_variable(acme_cli):
    result = CliRunner().invoke(cli, ["init", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "--acme-url VALUE acme: Acme URL (or $ACME_URL). Prefer the variable for secrets" in text
    assert "From the Acme console: Settings > Integrations." in text
    assert "--acme-retries VALUE acme: Retries (or $ACME_RETRIES)." in text
    assert "--bare-token VALUE bare: token (or $BARE_TOKEN)." in text
    assert text.index("--bare-token") < text.index("--help Show this message")


class BareOnly:
    """A plugin declaring only the ``bare`` channel type."""

    @pixalert.hookimpl
    def pixalert_channels(self) -> list[ChannelSpec]:
        return [acme.bare_spec()]


def test_the_flags_follow_the_installed_plugins(tmp_path, monkeypatch):
    for plugins, known in (([acme], True), ([BareOnly()], False), ([acme], True)):
        pm = _plugins.get_plugin_manager(entrypoints=False, plugins=plugins)
        monkeypatch.setattr(_plugins, "_default", pm)
        result = invoke(tmp_path, "--no-input", "--acme-url", URL)
        if known:
            assert "Acme URL: required" not in result.stderr
            assert "Outbox file: required (--acme-outbox / ACME_OUTBOX)" in result.stderr
        else:
            assert "No such option" in result.stderr and "--acme-url" in result.stderr
        assert result.exit_code == 2


def test_no_input_from_flags_and_set(tmp_path, acme_cli):
    box = tmp_path / "acme.jsonl"
    result = invoke(
        tmp_path,
        "--no-input",
        "--acme-url",
        URL,
        "--acme-outbox",
        str(box),
        "--acme-retries",
        "7",
        "--acme-urgent",
        "yes",
        "--acme-tags",
        "a, b",
        "--bare-token",
        "bare-t0ken-value",
        "--set",
        f"bare.outbox={box}",
        "--set",
        "bare.timeout=1.5",
    )
    assert result.exit_code == 0, result.output
    path = tmp_path / "pixalert.toml"
    assert mode(path) == 0o600
    assert load(path)["channels"] == {
        "acme": {"url": URL, "outbox": str(box), "retries": 7, "urgent": True, "tags": ["a", "b"]},
        "bare": {"token": "bare-t0ken-value", "outbox": str(box), "timeout": 1.5},
    }
    assert "5ecr3t" not in result.output and "bare-t0ken-value" not in result.output
    assert "Wrote pixalert.toml" in result.output


def test_no_input_from_the_environment_as_an_env_file(tmp_path, acme_cli):
    from dotenv import dotenv_values

    env = {"ACME_URL": URL, "ACME_OUTBOX": str(tmp_path / "a.jsonl"), "ACME_TAGS": "x,y"}
    result = invoke(tmp_path, "--no-input", "--format", "env", env=env)
    assert result.exit_code == 0, result.output
    path = tmp_path / ".env.notifications"
    assert mode(path) == 0o600
    assert dict(dotenv_values(path)) == env
    assert "5ecr3t" not in result.output


def test_an_env_file_cannot_hold_a_field_without_a_variable(tmp_path, acme_cli):
    result = invoke(
        tmp_path,
        "--no-input",
        "--format",
        "env",
        "--bare-token",
        "bare-t0ken-value",
        "--set",
        "bare.outbox=/tmp/x",
    )
    assert result.exit_code == 2
    assert "channels.bare.outbox: has no environment variable; use --format toml" in result.stderr
    assert not (tmp_path / ".env.notifications").exists()


def test_no_input_names_the_flag_of_each_missing_or_bad_setting(tmp_path, acme_cli):
    result = invoke(
        tmp_path,
        "--no-input",
        "--acme-url",
        "http://plain.example/k-5ecr3t-value",
        "--acme-outbox",
        "/tmp/x",
        "--bare-token",
        "bare-t0ken-value",
    )
    assert result.exit_code == 2
    assert (
        "expected an https:// URL (the value is not shown) @ channels.acme.url "
        "(--acme-url / ACME_URL)"
    ) in result.stderr
    assert "bare: outbox: required (--set bare.outbox=...)" in result.stderr
    assert "5ecr3t" not in result.output and "bare-t0ken-value" not in result.output
    assert not (tmp_path / "pixalert.toml").exists()


def test_a_value_of_the_wrong_kind_names_its_flag(tmp_path, acme_cli):
    result = invoke(tmp_path, "--no-input", "--acme-retries", "many")
    assert result.exit_code == 2
    assert "Invalid value for --acme-retries: expected a whole number, got 'many'" in result.stderr
    result = invoke(tmp_path, "--no-input", "--acme-urgent", "perhaps")
    assert result.exit_code == 2
    assert "Invalid value for --acme-urgent: expected yes or no, got 'perhaps'" in result.stderr


def test_no_input_with_nothing_given_names_flags_of_the_installed_plugins(tmp_path, acme_cli):
    result = invoke(tmp_path, "--no-input")
    assert result.exit_code == 2
    assert (
        "error: no channel settings given: pass flags such as --acme-url or --bare-token, "
        "or set their environment variables (ACME_URL, BARE_TOKEN...)"
    ) in result.stderr


def test_no_input_check_runs_the_plugins_check_and_writes_only_if_it_passes(tmp_path, acme_cli):
    box = tmp_path / "acme.jsonl"
    args = ["--no-input", "--check", "--acme-outbox", str(box)]
    refused = "https://acme.example/refused/k-0ld-s3cret"
    result = invoke(tmp_path, *args, env={"ACME_URL": refused})
    assert result.exit_code == 1
    assert "✗ acme: acme: HTTP 401 token refused for ********** (permanent)" in result.output
    assert "nothing written" in result.stderr
    assert not (tmp_path / "pixalert.toml").exists()
    assert "k-0ld-s3cret" not in result.output
    result = invoke(tmp_path, *args, env={"ACME_URL": URL})
    assert result.exit_code == 0, result.output
    assert "✓ acme: sent and resolved; the outbox holds 2 lines" in result.output
    assert load(tmp_path / "pixalert.toml")["channels"]["acme"]["url"] == URL


def test_with_no_channel_plugin_there_is_nothing_to_set_up(tmp_path, monkeypatch):
    monkeypatch.setattr(_plugins, "_default", _plugins.get_plugin_manager(entrypoints=False))
    result = invoke(tmp_path, "--no-input")
    assert result.exit_code == 2
    assert "no channel plugin is installed, so there is nothing to set up" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_set_names_a_known_channel_type(tmp_path, acme_cli):
    result = invoke(tmp_path, "--no-input", "--set", "teams.url=x")
    assert result.exit_code == 2
    assert "--set teams.…: no such channel type; expected one of acme, bare" in result.stderr
    result = invoke(tmp_path, "--no-input", "--set", "nonsense")
    assert result.exit_code == 2
    assert "expected CHANNEL.KEY=VALUE" in result.stderr


def test_no_input_never_overwrites_without_force(tmp_path, acme_cli):
    path = tmp_path / "pixalert.toml"
    path.write_text('[routing]\nlow = ["acme"]\n', encoding="utf-8")
    path.chmod(0o644)
    args = ["--no-input", "--acme-url", URL, "--acme-outbox", "/tmp/x"]
    result = invoke(tmp_path, *args)
    assert result.exit_code == 2
    assert "pixalert.toml exists; use --force to overwrite it" in result.stderr
    result = invoke(tmp_path, *args, "--force")
    assert result.exit_code == 0, result.output
    data = load(path)
    assert data["routing"] == {"low": ["acme"]}
    assert data["channels"]["acme"]["url"] == URL
    assert mode(path) == 0o600


# ---------------------------------------------------------------------------
# Declaring setup fields
# ---------------------------------------------------------------------------


@attrs.define
class _Config:
    url: Secret
    team: str = ""


def _spec(*setup: SetupField, env: dict[str, str] | None = None) -> ChannelSpec:
    return ChannelSpec(
        name="x", config_type=_Config, factory=acme.OutboxChannel, env=env or {}, setup=setup
    )


def test_setup_variables_join_the_spec_environment_mapping():
    spec = _spec(SetupField("url", "URL", env="X_URL"), env={"X_TEAM": "team"})
    assert spec.env == {"X_TEAM": "team", "X_URL": "url"}
    assert spec.setup[0].flag == "--x-url"


@pytest.mark.parametrize(
    ("setup", "env", "message"),
    [
        ((SetupField("uri", "URL"),), {}, "setup field 'uri': _Config has no such field"),
        ((SetupField("url", "A"), SetupField("url", "B")), {}, "setup field 'url': asked twice"),
        (
            (SetupField("url", "URL", env="X_TEAM"),),
            {"X_TEAM": "team"},
            "setup field 'url': env 'X_TEAM' already fills 'team'",
        ),
    ],
)
def test_a_setup_field_that_cannot_work_is_refused_when_the_spec_is_made(setup, env, message):
    with pytest.raises(ValueError, match=message):
        _spec(*setup, env=env)


def test_setup_field_kinds_and_variable_names_are_checked():
    with pytest.raises(ValueError, match="kind: expected str, int, float, bool or list"):
        SetupField("url", "URL", kind=dict)
    with pytest.raises(ValueError, match="env: expected an environment variable name"):
        SetupField("url", "URL", env="X-URL")


def test_the_generic_form_follows_the_config_class():
    form = init_cmd.form_for(acme.bare_spec())
    assert form.generic and form.title == "bare"
    assert [(f.field, f.kind, f.secret, f.required, f.default, f.env) for f in form.fields] == [
        ("token", str, True, True, None, "BARE_TOKEN"),
        ("outbox", str, False, True, None, None),
        ("timeout", float, False, False, 5.0, None),
        ("verbose", bool, False, False, False, None),
    ]


def test_a_declared_field_typed_secret_is_secret_even_if_not_marked():
    spec = _spec(SetupField("url", "URL", env="X_URL"))
    (field,) = init_cmd.form_for(spec).fields
    assert field.secret


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------

TRICKY = [
    "plain",
    'quote " and \\ backslash',
    "new\nline\ttab\rcr",
    "ctrl \x01\x7f",
    "ünïcødé ✓ 🚨",
    "${HOME} $HOME",
    "'single'",
    "a = b # not a comment",
    "",
]


@pytest.mark.parametrize("text", TRICKY)
def test_toml_strings_read_back_exactly(text):
    data = {"channels": {"x y": {"value": text, "list": [text, "b"], "n": 3, "f": 0.5, "ok": True}}}
    assert tomllib.loads(init_cmd.toml_dumps(data, "header\nlines")) == data


@pytest.mark.parametrize("text", [t for t in TRICKY if "${" not in t and "\x01" not in t])
def test_env_values_read_back_exactly(tmp_path, text):
    from dotenv import dotenv_values

    path = tmp_path / "x.env"
    path.write_text(f"KEY={init_cmd.env_value('KEY', text)}\n", encoding="utf-8")
    assert dotenv_values(path)["KEY"] == text


def test_env_values_that_dotenv_would_change_are_refused():
    with pytest.raises(ValueError, match=r"contains '\$\{'"):
        init_cmd.env_value("ACME_URL", "a${B}c")
    with pytest.raises(ValueError, match="a list item contains ','"):
        init_cmd.env_value("ACME_TAGS", ["https://a/?x=1,2"])


def test_files_are_created_private_even_with_a_permissive_umask(tmp_path):
    old = os.umask(0)
    try:
        path = tmp_path / "new.toml"
        init_cmd.write_private(path, "a = 1\n", overwrite=False)
        assert mode(path) == 0o600
        with pytest.raises(FileExistsError):
            init_cmd.write_private(path, "a = 2\n", overwrite=False)
        path.chmod(0o666)
        init_cmd.write_private(path, "a = 2\n", overwrite=True)
        assert mode(path) == 0o600 and path.read_text() == "a = 2\n"
        assert [p.name for p in tmp_path.iterdir()] == ["new.toml"]  # no temp file left
    finally:
        os.umask(old)


def test_the_summary_never_shows_a_secret_whatever_its_type():
    field = SetupField("urls", "URLs", kind=list, secret=True)
    assert init_cmd._shown(field, ["https://a/secret"]) == init_cmd.MASK
    assert init_cmd._shown(field, []) == ""
