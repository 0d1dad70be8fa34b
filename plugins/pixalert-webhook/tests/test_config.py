"""Configuration: the seed's WEBHOOK_URLS, TOML named targets, clear errors without secrets."""

from __future__ import annotations

import json
from pathlib import Path

import pixalert_webhook
import pytest
from pixalert import ConfigError, NotificationManager
from pixalert.channels import Secret, structure_config
from pixalert.plugins import get_plugin_manager
from pixalert_webhook import WebhookChannel, WebhookConfig, generate_secret, pixalert_channels

SPEC = pixalert_channels()[0]


def channels_from(**kwargs: object) -> dict[str, WebhookConfig]:
    """Build a manager the way an application does; return each webhook channel's config."""
    manager = NotificationManager(
        {"history": "memory://"},
        plugin_manager=get_plugin_manager(entrypoints=False, plugins=[pixalert_webhook]),
        **kwargs,  # type: ignore[arg-type]
    )
    return {
        str(name): channel.config
        for name, channel in manager.channels.items()
        if isinstance(channel, WebhookChannel)
    }


def errors_of(data: dict[str, object], path: str = "channels.webhook") -> list[str]:
    with pytest.raises(ConfigError) as info:
        structure_config(WebhookConfig, data, path=path)
    return info.value.errors


def test_spec_declares_its_environment_variables_and_setup_questions() -> None:
    assert SPEC.name == "webhook"
    assert SPEC.env == {"WEBHOOK_URLS": "urls", "WEBHOOK_SECRET": "secret"}
    assert SPEC.config_type is WebhookConfig
    # What ``pixalert init`` asks, in this order.
    assert [(f.field, f.env, f.kind, f.secret, f.required) for f in SPEC.setup] == [
        ("urls", "WEBHOOK_URLS", list, True, True),
        ("secret", "WEBHOOK_SECRET", str, True, False),
    ]


def test_webhook_urls_from_the_environment_comma_separated() -> None:
    secret = generate_secret()
    env = {
        "WEBHOOK_URLS": "https://webhook1.com/a?token=abc123, https://webhook2.com",
        "WEBHOOK_SECRET": secret,
    }
    config = channels_from(env=env, read_files=False)["webhook"]
    assert [u.get() for u in config.targets()] == [
        "https://webhook1.com/a?token=abc123",
        "https://webhook2.com",
    ]
    assert isinstance(config.secret, Secret) and config.secret.get() == secret


def test_seed_flat_json_webhook_urls(tmp_path: Path) -> None:
    path = tmp_path / "notification_config.json"
    path.write_text(json.dumps({"webhook_urls": ["https://webhook1.com", "https://webhook2.com"]}))
    configs = channels_from(config_file=path, env={}, read_files=False)
    assert len(configs["webhook"].targets()) == 2


def test_named_targets_in_toml_each_with_own_headers_and_secret(tmp_path: Path) -> None:
    ops, audit = generate_secret(), generate_secret()
    path = tmp_path / "pixalert.toml"
    path.write_text(
        f"""
[channels.ops-hook]
type = "webhook"
url = "https://ops.example.com/hook?token=s3cr3t-ops"
secret = "{ops}"
headers = {{ Authorization = "Bearer ops-token-1", X-Team = "ops" }}
timeout = 5

[channels.audit-hook]
type = "webhook"
urls = ["https://audit.example.com/a", "https://audit2.example.com/b"]
secret = "{audit}"
"""
    )
    configs = channels_from(config_file=path, env={}, read_files=False)
    assert set(configs) == {"ops-hook", "audit-hook"}
    ops_config = configs["ops-hook"]
    assert ops_config.headers == {"Authorization": "Bearer ops-token-1", "X-Team": "ops"}
    assert ops_config.timeout == 5.0
    assert ops_config.secret.get() == ops
    assert len(ops_config.targets()) == 1
    audit_config = configs["audit-hook"]
    assert audit_config.secret.get() == audit
    assert len(audit_config.targets()) == 2


def test_repr_masks_urls_secret_and_auth_headers() -> None:
    secret = generate_secret()
    config = structure_config(
        WebhookConfig,
        {
            "urls": ["https://h.example.com/p4th-s3cret?token=q-s3cret"],
            "secret": secret,
            "headers": {
                "Authorization": "Bearer hdr-s3cret",
                "X-Api-Key": "k3y-s3cret",
                "X-Team": "ops",
            },
        },
    )
    text = repr(config)
    for needle in ("p4th-s3cret", "q-s3cret", "hdr-s3cret", "k3y-s3cret", secret):
        assert needle not in text
    assert "'X-Team': 'ops'" in text  # harmless headers stay readable


def test_a_url_given_directly_is_still_a_secret() -> None:
    config = WebhookConfig(url="https://h.example.com/hook?token=direct-s3cret")
    assert isinstance(config.url, Secret)
    assert "direct-s3cret" not in repr(config)
    from pixalert.channels import redact

    assert "direct-s3cret" not in redact("echo: direct-s3cret")


def test_no_url_is_a_clear_error() -> None:
    (line,) = errors_of({})
    assert line == (
        "config: expected a webhook URL: set `url`, `urls` or WEBHOOK_URLS @ channels.webhook.url"
    )


@pytest.mark.parametrize(
    "url",
    [
        "ftp://h.example.com/s3cretpath",
        "h.example.com/s3cretpath",
        "https:///s3cretpath",
        "http://h:99999/s3cretpath",
    ],
)
def test_bad_url_is_named_but_not_repeated(url: str) -> None:
    (line,) = errors_of({"urls": ["https://ok.example.com", url]})
    assert line == (
        "config: expected an http:// or https:// URL with a host @ channels.webhook.urls[1]"
    )
    (line,) = errors_of({"url": url})
    assert line == "config: expected an http:// or https:// URL with a host @ channels.webhook.url"


def test_bad_secret_is_a_clear_error_without_the_secret() -> None:
    (line,) = errors_of({"url": "https://h.example.com", "secret": "whsec_%%not-base64-s3cret"})
    assert line == (
        "config: expected a Standard Webhooks secret: 'whsec_' followed by base64"
        " @ channels.webhook.secret"
    )
    (line,) = errors_of({"url": "https://h.example.com", "secret": "whsec_c2hvcnQ="})
    assert line.endswith("24 to 64 random bytes, got 5 bytes @ channels.webhook.secret")


def test_extra_secrets_need_a_secret() -> None:
    (line,) = errors_of({"url": "https://h.example.com", "extra_secrets": [generate_secret()]})
    assert line.startswith("config: expected `secret` to be set too")
    assert line.endswith("@ channels.webhook.extra_secrets")


@pytest.mark.parametrize("name", ["webhook-signature", "Content-Type", "webhook-id", "Host"])
def test_headers_the_channel_sets_cannot_be_configured(name: str) -> None:
    (line,) = errors_of({"url": "https://h.example.com", "headers": {name: "x"}})
    assert line == (
        f"config: expected no {name!r} header: the webhook channel sets it itself"
        " @ channels.webhook.headers"
    )


def test_header_injection_is_refused() -> None:
    (line,) = errors_of({"url": "https://h.example.com", "headers": {"X-A": "a\r\nX-B: b"}})
    assert line == (
        "config: expected a string without control characters for 'X-A' @ channels.webhook.headers"
    )
    (line,) = errors_of({"url": "https://h.example.com", "headers": {"Bad Name": "x"}})
    assert line == (
        "config: expected valid HTTP header names, got 'Bad Name' @ channels.webhook.headers"
    )


def test_non_ascii_header_values_are_refused_without_showing_them() -> None:
    # HTTP sends header values as ASCII: such a header could never be sent.
    (line,) = errors_of(
        {"url": "https://h.example.com", "headers": {"Authorization": "Bearer tök3n"}}
    )
    assert line == "config: expected ASCII text for 'Authorization' @ channels.webhook.headers"
    assert "tök3n" not in line


def test_wrong_types_name_the_key() -> None:
    lines = errors_of({"url": "https://h.example.com", "timeout": "soon"})
    assert any("@ channels.webhook.timeout" in line for line in lines)
    (line,) = errors_of({"url": "https://h.example.com", "timeout": 0})
    assert line == "config: expected a number of seconds > 0, got 0.0 @ channels.webhook.timeout"
    lines = errors_of({"url": "https://h.example.com", "retries": 3})
    assert any("retries" in line for line in lines)
