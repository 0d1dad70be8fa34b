"""``pixalert init`` with the email, Slack, PagerDuty and webhook plugins installed.

Each plugin declares its own questions (its ``ChannelSpec.setup``), with the
environment variable names EMAIL_USER, EMAIL_PASSWORD, SMTP_SERVER, SMTP_PORT,
EMAIL_RECIPIENTS, SLACK_WEBHOOK_URL, SLACK_CHANNEL, SLACK_TOKEN,
PAGERDUTY_INTEGRATION_KEY and WEBHOOK_URLS. The interactive tests answer the
prompts through a real pseudo-terminal (pexpect) as a person would, against
the plugins' local servers running in a background thread, and check what
those servers received, what file was written (and with which mode), and that
no secret ever reached the terminal. The core's own tests of ``pixalert init``
(a third-party plugin, the generic form, no terminal) are in
``core/tests/test_cli_init.py``.
"""

from __future__ import annotations

import asyncio
import io
import os
import stat
import sys
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pixalert.cli import cli

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

pexpect = pytest.importorskip("pexpect")

#: The four channel plugins these tests drive; other installed channel types
#: (pixalert-apprise...) would add their own forms to ``pixalert init``.
FOUR = "email,slack,pagerduty,webhook"


@pytest.fixture(autouse=True)
def _only_the_four_channel_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    from pixalert import _plugins

    pm = _plugins.PluginManager()
    pm.load_entrypoints(FOUR.split(","))
    monkeypatch.setattr(_plugins, "_default", pm)


def _variables() -> list[str]:
    from pixalert._plugins import get_plugin_manager

    specs = get_plugin_manager().channel_specs()
    return sorted({env for spec in specs.values() for env in spec.env})


#: Every environment variable an installed channel plugin reads.
VARIABLES = _variables()


class ServiceLoop:
    """An event loop in a background thread that serves the local test servers
    while a synchronous command (the CLI, a pseudo-terminal) runs."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run ``coro`` on the service loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def services() -> Iterator[ServiceLoop]:
    """A :class:`ServiceLoop` shared by this module's tests."""
    service_loop = ServiceLoop()
    yield service_loop
    service_loop.close()


# ---------------------------------------------------------------------------
# Local services
# ---------------------------------------------------------------------------


@pytest.fixture
def smtp() -> Iterator[Any]:
    testing = pytest.importorskip("pixalert_email.testing")
    with testing.SMTPTestServer(recipients=("ops@example.com",)) as server:
        yield server


@pytest.fixture
def slack(services: Any) -> Iterator[Any]:
    testing = pytest.importorskip("pixalert_slack.testing")
    server = testing.SlackServer()
    services.run(server.start())
    yield server
    services.run(server.stop())


@pytest.fixture
def pagerduty(services: Any) -> Iterator[Any]:
    testing = pytest.importorskip("pixalert_pagerduty.testing")
    server = testing.PagerDutyServer()
    services.run(server.start())
    yield server
    services.run(server.stop())


@pytest.fixture
def receiver(services: Any) -> Iterator[Any]:
    testing = pytest.importorskip("pixalert_webhook.testing")
    server = testing.WebhookReceiver()
    services.run(server.start())
    yield server
    services.run(server.stop())


# ---------------------------------------------------------------------------
# Driving the terminal
# ---------------------------------------------------------------------------


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in VARIABLES and not k.startswith("PIXALERT_")
    }
    env["PIXALERT_PLUGINS"] = FOUR
    env.update(extra)
    return env


class Terminal:
    """A person at a terminal running ``pixalert init``."""

    def __init__(self, cwd: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.transcript = io.StringIO()
        self.child = pexpect.spawn(
            sys.executable,
            ["-c", "from pixalert.cli import main; main()", "init", *args],
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

    def skip(self, *titles: str) -> None:
        for title in titles:
            self.answer(f"Set up {title}?", "n")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def load(path: Path) -> dict[str, Any]:
    with path.open("rb") as f:
        return tomllib.load(f)


# ---------------------------------------------------------------------------
# Interactive
# ---------------------------------------------------------------------------


def test_a_person_sets_up_all_four_channels_and_checks_them(
    tmp_path, smtp, slack, pagerduty, receiver
):
    term = Terminal(
        tmp_path,
        "--set",
        f"email.ca_file={smtp.ca_file}",
        "--set",
        f"pagerduty.events_url={pagerduty.events_url}",
    )
    term.answer("Set up Email (SMTP)?", "y")
    term.answer("SMTP server [smtp.gmail.com]:", "127.0.0.1")
    term.answer("SMTP port [587]:", str(smtp.port))
    term.answer("SMTP username", smtp.username)
    term.answer(
        "SMTP password (for Gmail: an app password) (hidden; Enter to skip):", smtp.password
    )
    term.answer("From address", "alerts@example.com")
    term.answer("Recipients, comma-separated:", "ops@example.com, dev@example.com")
    term.see("the settings are valid")
    term.answer("Check the SMTP login now by sending a test email? [y/N]:", "y")
    term.see(f"✓ sent a test email to 2 recipients through 127.0.0.1:{smtp.port} as ")

    term.answer("Set up PagerDuty?", "y")
    term.answer("Integration key (Events API v2) (hidden):", pagerduty.routing_key)
    term.answer("REST API token", "")
    term.answer("Send a test event to PagerDuty now?", "y")
    term.see("✓ sent and resolved")

    term.answer("Set up Slack?", "y")
    term.answer("Incoming webhook URL", slack.webhook_url)
    term.answer("Slack channel", "")
    term.answer("Bot token", "")
    term.answer("Signing secret", "")
    term.answer("Send a test message to Slack now?", "y")
    term.see("✓ sent")

    term.answer("Set up Webhooks?", "y")
    term.answer("Webhook URLs, comma-separated (hidden):", receiver.url)
    term.answer("Signing secret", "")
    term.answer("Send a test alert to the webhook URLs now?", "")  # default: no

    term.see("Settings (secrets are not shown)")
    term.answer("Write pixalert.toml? [Y/n]:", "")
    term.see("Wrote pixalert.toml (mode 600")
    assert term.finish() == 0

    # What the services received from the checks.
    first, resolved = smtp.received  # the email channel resolves what it sent, too
    assert sorted(first.rcpt_tos) == ["dev@example.com", "ops@example.com"]
    assert "pixalert test alert" in first.subject and "RESOLVED" in resolved.subject.upper()
    assert first.tls and first.authenticated_as == smtp.username
    assert [a.username for a in smtp.auth_attempts] == [smtp.username]
    assert len(slack.received) == 1 and "pixalert test alert" in slack.received[0].text
    assert [e["event_action"] for e in pagerduty.received] == ["trigger", "resolve"]
    assert pagerduty.open_incidents == []
    assert receiver.received == []  # that check was declined

    # The file: owner-only, complete, usable.
    path = tmp_path / "pixalert.toml"
    assert mode(path) == 0o600
    channels = load(path)["channels"]
    assert channels["email"] == {
        "smtp_server": "127.0.0.1",
        "smtp_port": smtp.port,
        "username": smtp.username,
        "password": smtp.password,
        "sender": "alerts@example.com",
        "recipients": ["ops@example.com", "dev@example.com"],
        "ca_file": smtp.ca_file,
    }
    assert channels["slack"] == {"webhook_url": slack.webhook_url}
    assert channels["pagerduty"] == {
        "routing_key": pagerduty.routing_key,
        "events_url": pagerduty.events_url,
    }
    assert channels["webhook"] == {"urls": [receiver.url]}
    from pixalert import NotificationManager

    manager = NotificationManager(
        config_file=path, env={}, history=None, config={"history": "memory://"}
    )
    assert sorted(manager.channels) == ["email", "pagerduty", "slack", "webhook"]

    # Nothing secret ever reached the terminal; the summary masks it.
    for secret in (smtp.password, slack.secret, pagerduty.routing_key, receiver.url):
        assert secret not in term.output
    assert "••••••••" in term.output
    assert "ops@example.com, dev@example.com" in term.output


def test_a_failed_check_lets_the_person_fix_the_setting(tmp_path, slack):
    term = Terminal(tmp_path)
    term.skip("Email (SMTP)", "PagerDuty")
    term.answer("Set up Slack?", "y")
    wrong = slack.url + "/services/T0000/B0000/not-the-right-secret"
    term.answer("Incoming webhook URL", wrong)
    term.answer("Slack channel", "")
    term.answer("Bot token", "")
    term.answer("Signing secret", "")
    term.answer("Send a test message to Slack now?", "y")
    term.see("✗ the test failed: slack webhook: HTTP 404 no_service")
    term.see("(permanent)")
    term.answer("[r]e-enter the settings, [k]eep them anyway, or [s]kip this channel?", "r")
    term.answer(
        "Incoming webhook URL (https://hooks.slack.com/services/...) (hidden; Enter "
        "keeps the current one):",
        slack.webhook_url,
    )
    term.answer("Slack channel", "")
    term.answer("Bot token", "")
    term.answer("Signing secret", "")
    term.answer("Send a test message to Slack now?", "y")
    term.see("✓ sent")
    term.skip("Webhooks")
    term.answer("Write pixalert.toml?", "y")
    assert term.finish() == 0
    assert load(tmp_path / "pixalert.toml")["channels"] == {
        "slack": {"webhook_url": slack.webhook_url}
    }
    assert len(slack.received) == 1
    assert slack.secret not in term.output and "not-the-right-secret" not in term.output


def test_bad_answers_are_explained_and_asked_again(tmp_path, smtp):
    term = Terminal(tmp_path)
    term.answer("Set up Email (SMTP)?", "y")
    term.answer("SMTP server [smtp.gmail.com]:", "127.0.0.1")
    term.answer("SMTP port [587]:", "five-eight-seven")
    term.see("is not a valid integer range")
    term.answer("SMTP port [587]:", "70000")
    term.see("70000 is not in the range 1<=x<=65535")
    term.answer("SMTP port [587]:", str(smtp.port))
    term.answer("SMTP username", "")
    term.answer("SMTP password", "")
    term.answer("From address", "alerts@example.com")
    term.answer("Recipients, comma-separated:", "ops@example.com, not an address")
    term.see("These settings do not work:")
    term.see("expected an email address like name@example.com")
    term.see("@ channels.email.recipients (--email-recipients / EMAIL_RECIPIENTS)")
    term.answer("Enter the Email (SMTP) settings again? [Y/n]:", "")
    term.answer("SMTP server [127.0.0.1]:", "")
    term.answer(f"SMTP port [{smtp.port}]:", "")
    term.answer("SMTP username", "")
    term.answer("SMTP password", "")
    term.answer("From address (Enter: the username) [alerts@example.com]:", "")
    term.answer("Recipients, comma-separated [ops@example.com, not an address]:", "ops@example.com")
    term.see("the settings are valid")
    term.answer("Check the SMTP login", "n")
    term.skip("PagerDuty", "Slack", "Webhooks")
    term.answer("Write pixalert.toml?", "y")
    assert term.finish() == 0
    assert load(tmp_path / "pixalert.toml")["channels"]["email"] == {
        "smtp_server": "127.0.0.1",
        "smtp_port": smtp.port,
        "sender": "alerts@example.com",
        "recipients": ["ops@example.com"],
    }


def test_an_existing_file_is_left_alone_unless_the_person_agrees(tmp_path):
    path = tmp_path / "pixalert.toml"
    path.write_text("# mine\ncooldown_minutes = 3\n", encoding="utf-8")
    term = Terminal(tmp_path)
    term.answer("pixalert.toml exists. Update it?", "")  # default: no
    term.see("Left pixalert.toml as it was.")
    assert term.finish() == 1
    assert path.read_text(encoding="utf-8") == "# mine\ncooldown_minutes = 3\n"


def test_updating_keeps_other_settings_and_offers_current_values(tmp_path, pagerduty):
    path = tmp_path / "pixalert.toml"
    path.write_text(
        f"""cooldown_minutes = 3

[routing]
low = ["ops-hook"]

[channels.pagerduty]
routing_key = "{pagerduty.routing_key}"
events_url = "{pagerduty.events_url}"

[channels.ops-hook]
type = "webhook"
urls = ["https://hooks.example.com/ops?token=s3cr3t-t0ken"]
""",
        encoding="utf-8",
    )
    path.chmod(0o644)
    term = Terminal(tmp_path)
    term.answer("pixalert.toml exists. Update it?", "y")
    term.skip("Email (SMTP)")
    term.answer("Set up PagerDuty? [Y/n]:", "")  # it is configured: yes by default
    term.answer("Integration key (Events API v2) (hidden; Enter keeps the current one):", "")
    term.answer("REST API token", "")
    term.answer("Send a test event to PagerDuty now?", "y")
    term.see("✓ sent and resolved")
    term.skip("Slack", "Webhooks")
    term.see("ops-hook")
    term.see("(kept as it was)")
    term.answer("Write pixalert.toml?", "")
    assert term.finish() == 0
    data = load(path)
    assert data["cooldown_minutes"] == 3
    assert data["routing"] == {"low": ["ops-hook"]}
    assert data["channels"]["pagerduty"]["routing_key"] == pagerduty.routing_key
    assert data["channels"]["ops-hook"]["urls"] == [
        "https://hooks.example.com/ops?token=s3cr3t-t0ken"
    ]
    assert mode(path) == 0o600  # replaced by a file created 0600, not widened
    assert "s3cr3t-t0ken" not in term.output and pagerduty.routing_key not in term.output


def test_the_plugins_environment_variables_are_the_defaults(tmp_path, receiver):
    env = clean_env(WEBHOOK_URLS=receiver.url, SLACK_CHANNEL="#from-env")
    term = Terminal(tmp_path, "--format", "env", env=env)
    term.skip("Email (SMTP)", "PagerDuty")
    term.answer("Set up Slack? [Y/n]:", "n")  # SLACK_CHANNEL is set: yes by default
    term.answer("Set up Webhooks? [Y/n]:", "")
    term.answer("Webhook URLs, comma-separated (hidden; Enter keeps the current one):", "")
    term.answer("Signing secret", "")
    term.answer("Send a test alert to the webhook URLs now?", "y")
    term.see("✓ sent and resolved")
    term.answer("Write .env.notifications?", "y")
    assert term.finish() == 0
    path = tmp_path / ".env.notifications"
    assert mode(path) == 0o600
    assert f'WEBHOOK_URLS="{receiver.url}"' in path.read_text(encoding="utf-8")
    assert len(receiver.received) == 2  # the test alert and its resolve
    assert receiver.url not in term.output


# ---------------------------------------------------------------------------
# Without a terminal
# ---------------------------------------------------------------------------


def invoke(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    runner = CliRunner(env={k: None for k in VARIABLES} | (env or {}))
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        return runner.invoke(cli, ["init", *args], catch_exceptions=False)
    finally:
        os.chdir(cwd)


def test_no_input_from_flags(tmp_path):
    url = "https://hooks.slack.com/services/T0/B0/xyzSECRETxyz"
    result = invoke(
        tmp_path,
        "--no-input",
        "--slack-webhook-url",
        url,
        "--email-recipients",
        "a@example.com,b@example.com",
        "--email-user",
        "me@example.com",
        "--smtp-port",
        "465",
    )
    assert result.exit_code == 0, result.output
    path = tmp_path / "pixalert.toml"
    assert mode(path) == 0o600
    assert load(path)["channels"] == {
        "email": {
            "smtp_port": 465,
            "username": "me@example.com",
            "recipients": ["a@example.com", "b@example.com"],
        },
        "slack": {"webhook_url": url},
    }
    assert "xyzSECRETxyz" not in result.output
    assert "Wrote pixalert.toml" in result.output


def test_no_input_from_the_environment_as_an_env_file(tmp_path):
    env = {
        "EMAIL_USER": "admin@example.com",
        "EMAIL_PASSWORD": 'p"a$s\\w#rd',
        "SMTP_SERVER": "smtp.example.com",
        "SMTP_PORT": "587",
        "EMAIL_RECIPIENTS": "admin@company.com,ops@company.com",
        "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T1/B1/abcdefgh",
        "SLACK_CHANNEL": "#pixelated-ai-alerts",
        "SLACK_TOKEN": "xoxb-123-456",
        "PAGERDUTY_INTEGRATION_KEY": "k" * 32,
        "PAGERDUTY_API_TOKEN": "api-token",
        "WEBHOOK_URLS": "https://webhook1.com,https://webhook2.com",
    }
    result = invoke(tmp_path, "--no-input", "--format", "env", env=env)
    assert result.exit_code == 0, result.output
    path = tmp_path / ".env.notifications"
    assert mode(path) == 0o600
    from dotenv import dotenv_values

    assert dict(dotenv_values(path)) == env  # read back exactly, by the loader pixalert uses
    for secret in (
        'p"a$s\\w#rd',
        "abcdefgh",
        "xoxb-123-456",
        "k" * 32,
        "api-token",
        "webhook1.com",
    ):
        assert secret not in result.output
    from pixalert._config import load_settings
    from pixalert._plugins import default_plugin_manager

    settings = load_settings(
        env_file=path, env={}, read_files=False, specs=default_plugin_manager().channel_specs()
    )
    assert settings.channels["email"]["password"] == 'p"a$s\\w#rd'
    assert settings.channels["webhook"]["urls"] == "https://webhook1.com,https://webhook2.com"


def test_updating_an_env_file_keeps_the_variables_init_does_not_ask(tmp_path):
    path = tmp_path / ".env.notifications"
    path.write_text(
        'EMAIL_RECIPIENTS="old@example.com"\nEMAIL_SENDER="me@example.com"\n'
        'EMAIL_SECURITY="tls"\nOTHER="kept"\n',
        encoding="utf-8",
    )
    result = invoke(
        tmp_path, "--no-input", "--force", "--format", "env", "--email-recipients", "a@example.com"
    )
    assert result.exit_code == 0, result.output
    from dotenv import dotenv_values

    assert dict(dotenv_values(path)) == {
        "EMAIL_SENDER": "me@example.com",
        "EMAIL_RECIPIENTS": "a@example.com",
        "EMAIL_SECURITY": "tls",  # the email plugin's variable, though init does not ask it
        "OTHER": "kept",
    }


def test_no_input_reports_every_bad_setting_with_its_flag(tmp_path):
    result = invoke(
        tmp_path, "--no-input", "--email-recipients", "nobody", "--pagerduty-api-token", "tok"
    )
    assert result.exit_code == 2
    assert "expected an email address like name@example.com" in result.stderr
    assert "(--email-recipients / EMAIL_RECIPIENTS)" in result.stderr
    assert (
        "pagerduty: Integration key (Events API v2): required "
        "(--pagerduty-integration-key / PAGERDUTY_INTEGRATION_KEY)"
    ) in result.stderr
    assert not (tmp_path / "pixalert.toml").exists()


def test_no_input_with_nothing_given_says_how(tmp_path):
    result = invoke(tmp_path, "--no-input")
    assert result.exit_code == 2
    assert (
        "no channel settings given: pass flags such as --email-recipients or "
        "--pagerduty-integration-key or --slack-webhook-url, or set their environment "
        "variables (EMAIL_RECIPIENTS, PAGERDUTY_INTEGRATION_KEY, SLACK_WEBHOOK_URL...)"
    ) in result.stderr


def test_no_input_never_overwrites_without_force(tmp_path):
    path = tmp_path / "pixalert.toml"
    path.write_text('[routing]\nlow = ["email"]\n', encoding="utf-8")
    path.chmod(0o644)
    result = invoke(
        tmp_path,
        "--no-input",
        "--email-recipients",
        "a@example.com",
        "--email-user",
        "me@example.com",
    )
    assert result.exit_code == 2
    assert "pixalert.toml exists; use --force to overwrite it" in result.stderr
    result = invoke(
        tmp_path,
        "--no-input",
        "--force",
        "--email-recipients",
        "a@example.com",
        "--email-user",
        "me@example.com",
    )
    assert result.exit_code == 0, result.output
    data = load(path)
    assert data["routing"] == {"low": ["email"]}
    assert data["channels"]["email"]["recipients"] == ["a@example.com"]
    assert mode(path) == 0o600


def test_no_input_check_writes_only_when_every_channel_works(tmp_path, pagerduty):
    args = ["--no-input", "--check", "--set", f"pagerduty.events_url={pagerduty.events_url}"]
    env = {"PAGERDUTY_INTEGRATION_KEY": pagerduty.routing_key}
    pagerduty.fail(400, body={"status": "invalid event", "errors": ["nope"]})
    result = invoke(tmp_path, *args, env=env)
    assert result.exit_code == 1
    assert "✗ pagerduty: pagerduty: HTTP 400" in result.output
    assert "nothing written" in result.stderr
    assert not (tmp_path / "pixalert.toml").exists()
    result = invoke(tmp_path, *args, env=env)
    assert result.exit_code == 0, result.output
    assert "✓ pagerduty: sent and resolved" in result.output
    assert pagerduty.open_incidents == []
    assert pagerduty.routing_key not in result.output


def test_set_names_a_known_channel_type(tmp_path):
    result = invoke(tmp_path, "--no-input", "--set", "teams.url=x")
    assert result.exit_code == 2
    assert "--set teams.…: no such channel type" in result.stderr
    result = invoke(tmp_path, "--no-input", "--set", "nonsense")
    assert result.exit_code == 2
    assert "expected CHANNEL.KEY=VALUE" in result.stderr


def test_the_root_config_option_names_the_file(tmp_path):
    runner = CliRunner(env={k: None for k in VARIABLES})
    target = tmp_path / "conf" / "alerts.toml"
    target.parent.mkdir()
    result = runner.invoke(
        cli,
        [
            "--config",
            str(target),
            "init",
            "--no-input",
            "--webhook-urls",
            "https://example.com/hook",
        ],
    )
    assert result.exit_code == 0, result.output
    assert load(target)["channels"] == {"webhook": {"urls": ["https://example.com/hook"]}}


# ---------------------------------------------------------------------------
# The boundary
# ---------------------------------------------------------------------------

CORE_SRC = Path(__file__).resolve().parent.parent / "core" / "src"
#: Names the core uses for its own ideas that a plugin's config happens to share.
CORE_OWN = {"extra_secrets"}  # check_channel_contract(..., extra_secrets=...)


def _distinctive_names() -> set[str]:
    """The four plugins' variables, and their config fields with a distinctive name."""
    import attrs
    from pixalert._plugins import get_plugin_manager

    specs = get_plugin_manager().channel_specs()
    # ("recipients" is also the core's own key of an escalation step, which reaches
    # an email channel only through the field its spec names, recipients_field.)
    names: set[str] = set()
    for kind in ("email", "slack", "pagerduty", "webhook"):
        spec = specs[kind]
        names |= set(spec.env)
        names |= {f.name for f in attrs.fields(spec.config_type) if "_" in f.name}
    return names - CORE_OWN


def _code_words(path: Path) -> Iterator[tuple[int, str]]:
    """Identifiers and string literals of ``path``; docstrings (where examples live) skipped."""
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        for stmt in body if isinstance(body, list) else ():
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                docstrings.add(id(stmt.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) not in docstrings:
                yield node.lineno, node.value
        elif isinstance(node, ast.Name):
            yield node.lineno, node.id
        elif isinstance(node, ast.Attribute):
            yield node.lineno, node.attr
        elif isinstance(node, ast.arg):
            yield node.lineno, node.arg


def test_the_core_names_no_field_or_variable_of_these_plugins():
    """What init asks lives in the plugins: the core's code spells none of their names."""
    import re

    names = _distinctive_names()
    assert {"smtp_server", "webhook_url", "routing_key", "EMAIL_USER", "WEBHOOK_URLS"} <= names
    pattern = re.compile(r"\b(" + "|".join(sorted(names, key=len, reverse=True)) + r")\b")
    found = [
        f"{path.relative_to(CORE_SRC)}:{line}: {match.group(1)}"
        for path in sorted(CORE_SRC.rglob("*.py"))
        for line, text in _code_words(path)
        for match in [pattern.search(text)]
        if match
    ]
    assert not found, "the core names a channel plugin's setting: " + "; ".join(found)
