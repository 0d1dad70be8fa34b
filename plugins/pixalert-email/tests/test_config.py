"""Configuration: environment variables and flat JSON keys, defaults, clear errors, setup."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pixalert_email
import pytest
from pixalert import ConfigError, load_settings
from pixalert.channels import Secret, redact
from pixalert.plugins import get_plugin_manager
from pixalert_email import EmailConfig, email_channel_spec

from .conftest import build_config

PASSWORD = "app-specific-password-7Xq"


def email_section(tmp_path: Path, **kwargs: Any) -> dict[str, Any]:
    """Load settings as the core does and return the raw ``email`` section."""
    empty = tmp_path / "pixalert.toml"
    if not empty.exists():
        empty.write_text("")
    kwargs.setdefault("config_file", empty)
    settings = load_settings(specs={"email": email_channel_spec()}, cwd=tmp_path, **kwargs)
    section: dict[str, Any] = settings.channels["email"]
    return section


def test_seed_environment_variables(tmp_path: Path):
    env = {
        "EMAIL_USER": "admin@pixelated-ai.com",
        "EMAIL_PASSWORD": PASSWORD,
        "SMTP_SERVER": "smtp.example.com",
        "SMTP_PORT": "587",
        "EMAIL_RECIPIENTS": "admin@company.com, ops@company.com",
    }
    config = build_config(email_section(tmp_path, env=env))
    assert config.username == "admin@pixelated-ai.com"
    assert isinstance(config.password, Secret) and config.password.get() == PASSWORD
    assert config.smtp_server == "smtp.example.com"
    assert config.smtp_port == 587
    assert config.recipients == ["admin@company.com", "ops@company.com"]
    assert config.sender == "admin@pixelated-ai.com"
    assert config.security == "starttls"
    assert config.verify_certs is True
    assert PASSWORD not in repr(config)
    assert redact(f"x {PASSWORD} y") == "x ********** y"


def test_sender_and_security_variables(tmp_path: Path):
    env = {
        "EMAIL_RECIPIENTS": "ops@company.com",
        "EMAIL_SENDER": "alerts@company.com",
        "EMAIL_SECURITY": "TLS",
        "EMAIL_USER": "AKIAEXAMPLE",
        "EMAIL_PASSWORD": PASSWORD,
    }
    config = build_config(email_section(tmp_path, env=env))
    assert config.sender == "alerts@company.com"
    assert config.security == "tls"
    assert config.smtp_port == 465


def test_seed_flat_json(tmp_path: Path):
    path = tmp_path / "notification_config.json"
    path.write_text(
        json.dumps(
            {
                "smtp_server": "smtp.gmail.com",
                "smtp_port": 587,
                "email_user": "admin@pixelated-ai.com",
                "email_password": PASSWORD,
                "default_recipients": ["admin@company.com", "ops@company.com"],
            }
        )
    )
    config = build_config(email_section(tmp_path, config_file=path, env={}))
    assert config.recipients == ["admin@company.com", "ops@company.com"]
    assert config.username == "admin@pixelated-ai.com"
    assert config.password is not None and config.password.get() == PASSWORD


def test_toml_section(tmp_path: Path):
    path = tmp_path / "pixalert.toml"
    path.write_text(
        "[channels.email]\n"
        'smtp_server = "mail.internal"\n'
        'security = "none"\n'
        'sender = "pixalert@internal.example"\n'
        'recipients = ["ops@internal.example"]\n'
        "idle_close = 5\n"
    )
    config = build_config(email_section(tmp_path, config_file=path, env={}))
    assert (config.smtp_server, config.smtp_port, config.security) == ("mail.internal", 25, "none")
    assert config.idle_close == 5.0


@pytest.mark.parametrize(
    "section, port, security",
    [
        ({}, 587, "starttls"),
        ({"security": "starttls"}, 587, "starttls"),
        ({"security": "tls"}, 465, "tls"),
        ({"security": "none"}, 25, "none"),
        ({"smtp_port": 465}, 465, "tls"),  # the usual port of implicit TLS implies it
        ({"smtp_port": "2525"}, 2525, "starttls"),
        ({"smtp_port": 465, "security": "starttls"}, 465, "starttls"),  # explicit wins
    ],
)
def test_port_and_security_defaults(section: dict[str, Any], port: int, security: str):
    config = build_config({"recipients": ["ops@example.com"], "sender": "a@example.com", **section})
    assert (config.smtp_port, config.security) == (port, security)


def test_defaults_follow_the_seed():
    config = EmailConfig(recipients=["ops@example.com"], sender="a@example.com")
    assert config.smtp_server == "smtp.gmail.com"
    assert config.smtp_port == 587
    assert config.timeout > 0 and config.idle_close > 0
    assert config.max_sessions == 2
    assert config.username is None and config.password is None


BASE = {"recipients": ["ops@example.com"], "sender": "alerts@example.com"}


@pytest.mark.parametrize(
    "section, expected",
    [
        ({"sender": "a@example.com"}, "expected at least one address"),
        ({**BASE, "recipients": []}, "expected at least one address"),
        ({**BASE, "security": "ssl"}, "expected one of 'starttls', 'tls', 'none', got 'ssl'"),
        ({**BASE, "smtp_port": 70000}, "expected 1-65535, got 70000"),
        ({**BASE, "smtp_port": "abc"}, "expected int"),
        ({**BASE, "password": PASSWORD}, "expected a user name when a password is set"),
        (
            {**BASE, "security": "none", "username": "u", "password": PASSWORD},
            "'none' would send it in clear text",
        ),
        ({"recipients": ["ops@example.com"], "username": "AKIA1"}, "expected the From address"),
        ({"recipients": ["ops@example.com"]}, "expected the From address"),
        ({**BASE, "ca_file": "/nonexistent/ca.pem"}, "expected an existing PEM file"),
        ({**BASE, "timeout": 0}, "expected a number > 0"),
        ({**BASE, "idle_close": -1}, "expected a number >= 0"),
        ({**BASE, "max_sessions": 0}, "expected a whole number >= 1, got 0"),
        ({**BASE, "max_sessions": "two"}, "expected int"),
        ({**BASE, "smtp_server": "mail example com"}, "expected a host name or IP address"),
        ({**BASE, "verify_certs": "maybe"}, "expected true or false"),
        ({**BASE, "smtp_password": "x"}, "smtp_password"),
    ],
)
def test_config_errors_are_clear(section: dict[str, Any], expected: str):
    with pytest.raises(ConfigError) as info:
        build_config(section)
    [line] = info.value.errors
    assert expected in line
    assert "@ channels.email" in line
    assert PASSWORD not in str(info.value)


def test_error_names_the_field():
    with pytest.raises(ConfigError) as info:
        build_config({**BASE, "security": "ssl"})
    assert info.value.errors[0].endswith("@ channels.email.security")


def test_recipients_are_deduplicated_and_stripped():
    config = build_config({**BASE, "recipients": " a@example.com ,b@example.com,A@example.com"})
    assert config.recipients == ["a@example.com", "b@example.com"]


def test_secret_is_masked_everywhere():
    config = build_config({**BASE, "username": "u@example.com", "password": PASSWORD})
    channel = email_channel_spec().factory("email", config)
    for text in (repr(config), str(config), repr(channel), repr(config.password)):
        assert PASSWORD not in text


def test_spec_declares_its_environment_variables_and_setup_questions():
    spec = email_channel_spec()
    assert spec.name == "email"
    assert spec.config_type is EmailConfig
    for name in ("EMAIL_USER", "EMAIL_PASSWORD", "SMTP_SERVER", "SMTP_PORT", "EMAIL_RECIPIENTS"):
        assert name in spec.env
    assert spec.aliases == {"default_recipients": "recipients"}
    # What ``pixalert init`` asks, in this order.
    assert [(f.field, f.env, f.kind, f.secret, f.required) for f in spec.setup] == [
        ("smtp_server", "SMTP_SERVER", str, False, False),
        ("smtp_port", "SMTP_PORT", int, False, False),
        ("username", "EMAIL_USER", str, False, False),
        ("password", "EMAIL_PASSWORD", str, True, False),
        ("sender", "EMAIL_SENDER", str, False, False),
        ("recipients", "EMAIL_RECIPIENTS", list, False, True),
    ]
    assert spec.title == "Email (SMTP)" and spec.check is not None


async def test_the_live_check_logs_in_sends_and_says_where(smtp_server, make_channel):
    from pixalert import Alert

    spec = email_channel_spec()
    channel = make_channel(smtp_server)
    assert spec.check is not None
    line = await spec.check(channel, Alert(title="pixalert test alert", message="check"))
    assert line == (
        f"sent a test email to 1 recipient through {smtp_server.host}:{smtp_server.port} "
        f"as {smtp_server.username}"
    )
    first, resolved = smtp_server.received  # the check resolves what it sent
    assert first.authenticated_as == smtp_server.username
    assert "RESOLVED" in resolved.subject.upper()


def test_installed_plugin_is_found_through_its_entry_point():
    pm = get_plugin_manager(entrypoints=True)
    specs = pm.channel_specs()
    assert specs["email"].config_type is EmailConfig
    assert pm.get_plugin("email") is pixalert_email
    sinks = [sink for group in pm.hook.pixalert_demo_sinks() for sink in group]
    assert "email" in [sink.channel_type for sink in sinks]


def test_importing_the_plugin_stays_light():
    code = (
        "import sys, pixalert_email; "
        "pixalert_email.pixalert_channels(); "
        "print(sorted(m for m in ('aiosmtplib', 'aiosmtpd', 'trustme', 'cattrs') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
