"""``pixalert render`` and ``pixalert send --dry-run`` with the real channel plugins:
what each channel would send, nothing sent, no history, no secret printed."""

from __future__ import annotations

import email
import email.policy
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from pixalert.cli import cli

pytestmark = pytest.mark.usefixtures("isolated_environment")

SLACK_URL = "https://hooks.slack.com/services/T0001/B0001/slackSecretPath1234"
ROUTING_KEY = "0123456789abcdef0123456789abcdef"
WEBHOOK_URL = "https://hooks.example.com/in/hookSecretPath5678?token=hookQueryToken9"
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
PASSWORD = "smtp-password-secret-42"
SECRETS = (SLACK_URL, "slackSecretPath1234", ROUTING_KEY, "hookSecretPath5678", "hookQueryToken9")
SECRETS += (WEBHOOK_SECRET, PASSWORD)


def config(tmp_path: Path) -> Path:
    path = tmp_path / "pixalert.toml"
    path.write_text(
        f'history = "sqlite:///{tmp_path}/history.db"\n'
        "cooldown_minutes = 10\n"
        '[routing]\nhigh = ["slack", "email", "pagerduty", "webhook"]\n'
        'low = ["slack"]\nmedium = []\n'
        f'[channels.slack]\nwebhook_url = "{SLACK_URL}"\n'
        '[channels.email]\nsmtp_server = "127.0.0.1"\nsmtp_port = 1\n'
        f'username = "alerts@example.com"\npassword = "{PASSWORD}"\n'
        'recipients = ["ops@example.com"]\n'
        f'[channels.pagerduty]\nrouting_key = "{ROUTING_KEY}"\n'
        f'[channels.webhook]\nurl = "{WEBHOOK_URL}"\nsecret = "{WEBHOOK_SECRET}"\n'
    )
    return path


def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


def history(path: Path) -> list[object]:
    code, out, _ = run("--config", str(path), "history", "--json")
    assert code == 0
    return list(json.loads(out))


def test_render_json_shows_every_channel_and_nothing_secret(tmp_path: Path) -> None:
    path = config(tmp_path)
    code, out, err = run(
        "render", "Disk full", "/ is 97% full", "-p", "high", "-m", "host=db-1",
        "--config", str(path), "--json",
    )  # fmt: skip
    assert code == 0, err
    data = json.loads(out)  # pure JSON on stdout
    assert data["dry_run"] is True
    channels = data["channels"]
    assert list(channels) == ["slack", "email", "pagerduty", "webhook"]
    assert {c["decision"] for c in channels.values()} == {"send"}
    slack = channels["slack"]["preview"]
    assert slack["content"]["body"]["blocks"][0]["text"]["text"] == "[HIGH] Disk full"
    assert "Disk full" in slack["sketch"]
    mail = channels["email"]["preview"]
    headers = dict(mail["content"]["headers"])
    assert (
        headers["Subject"].startswith("[HIGH] Disk full") and "97% full" in mail["content"]["text"]
    )
    assert "<html" in mail["content"]["html"].lower()
    event = channels["pagerduty"]["preview"]["content"]["body"]
    assert event["event_action"] == "trigger" and event["payload"]["severity"] == "error"
    [target] = channels["webhook"]["preview"]["content"]["targets"]
    assert target["headers"]["webhook-signature"].startswith("v1,")
    assert target["url"].startswith("https:/") and target["url"].endswith("/\u2026")
    for secret in SECRETS:
        assert secret not in out + err
    assert history(path) == []  # nothing written


def test_send_dry_run_prints_previews_and_sends_nothing(tmp_path: Path) -> None:
    path = config(tmp_path)
    code, out, err = run(
        "--config", str(path), "send", "Disk full", "-", "-p", "high", "--dry-run",
        stdin="line one\nline two\n",
    )  # fmt: skip
    assert code == 0, err
    assert "dry run: nothing sent" in out
    assert "slack (slack): would send now" in out
    assert "webhook-signature" in out and "Subject" in out
    assert "line two" in out
    for secret in SECRETS:
        assert secret not in out + err
    assert history(path) == []


def test_out_writes_an_eml_that_parses(tmp_path: Path) -> None:
    path = config(tmp_path)
    eml = tmp_path / "alert.eml"
    code, out, err = run(
        "--config", str(path), "render", "Disk full", "97%", "-p", "high",
        "--channel", "email", "--out", str(eml), "--json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["files"] == {"email": str(eml)}
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert message["Subject"].startswith("[HIGH] Disk full")
    assert message["To"] == "ops@example.com"
    body = message.get_body(("plain",))
    assert body is not None and "97%" in body.get_content()
    assert eml.stat().st_mode & 0o077 == 0
    folder = tmp_path / "previews"
    folder.mkdir()
    code, _, err = run(
        "--config", str(path), "send", "x", "-p", "high", "--dry-run", "--out", str(folder)
    )
    assert code == 0, err
    assert (folder / "email.eml").exists() and (folder / "webhook.json").exists()


def test_render_takes_no_cooldown(tmp_path: Path) -> None:
    path = config(tmp_path)
    for _ in range(2):
        code, out, _ = run("--config", str(path), "render", "CPU", "-p", "low", "--json")
        assert code == 0 and json.loads(out)["channels"]["slack"]["decision"] == "send"


def test_silenced_alerts_show_suppressed(tmp_path: Path) -> None:
    path = config(tmp_path)
    code, _, err = run("--config", str(path), "silence", "add", "source=db-*", "--for", "1h")
    assert code == 0, err
    code, out, _ = run(
        "--config", str(path), "render", "Disk", "-p", "low", "--source", "db-1", "--json"
    )
    assert code == 0
    slack = json.loads(out)["channels"]["slack"]
    assert slack["decision"] == "suppressed" and slack["reason"].startswith("silenced by")


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    path = config(tmp_path)
    code, _, err = run("--config", str(path), "send", "x", "--out", str(tmp_path))
    assert code == 2 and "--dry-run" in err
    code, _, err = run("--config", str(path), "render", "x", "--channel", "nope")
    assert code == 2 and "nope" in err and "Traceback" not in err
    code, _, err = run("--config", str(path), "render", "x", "-p", "low", "--out", str(tmp_path))
    assert code == 2 and "no routed channel has a file preview" in err


def test_nothing_routed_exits_1(tmp_path: Path) -> None:
    path = config(tmp_path)
    code, out, _ = run("--config", str(path), "render", "x", "-p", "medium")
    assert code == 1
    assert "no channel is routed" in out
