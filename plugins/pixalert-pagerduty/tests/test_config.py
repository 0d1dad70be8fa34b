"""Configuration: defaults, the seed's environment variables and JSON keys, clear errors."""

from __future__ import annotations

import json
import re
import socket

import pixalert_pagerduty
import pytest
from pixalert import ConfigError, NotificationManager
from pixalert._plugins import get_plugin_manager
from pixalert.channels import Secret, structure_config
from pixalert_pagerduty import PagerDutyConfig
from pixalert_pagerduty._channel import EVENTS_URLS, channel_spec

KEY = "0123456789abcdef0123456789abcdef"


def build(**data):
    return structure_config(PagerDutyConfig, data, path="channels.pagerduty")


def manager(**kwargs):
    kwargs.setdefault("config", {"history": "memory://"})
    return NotificationManager(
        plugin_manager=get_plugin_manager(entrypoints=False, plugins=[pixalert_pagerduty]),
        **kwargs,
    )


def test_defaults():
    config = build(routing_key=KEY)
    assert config.events_url == "https://events.pagerduty.com/v2/enqueue"
    assert config.region == "us"
    assert config.source == (socket.gethostname() or "pixalert")
    assert (config.timeout, config.rate, config.burst) == (10.0, 120.0, 10)
    assert config.api_token is None


def test_eu_region_picks_the_eu_endpoint():
    assert build(routing_key=KEY, region="eu").events_url == EVENTS_URLS["eu"]
    assert EVENTS_URLS["eu"] == "https://events.eu.pagerduty.com/v2/enqueue"


def test_explicit_events_url_wins():
    url = "https://pd-proxy.example.com/v2/enqueue"
    assert build(routing_key=KEY, region="eu", events_url=url).events_url == url


def test_repr_masks_secrets():
    config = build(routing_key=KEY, api_token="tok-secret-value")
    assert KEY not in repr(config) and "tok-secret-value" not in repr(config)
    assert "Secret('**********')" in repr(config)


def test_string_values_from_the_environment_are_converted():
    config = build(routing_key=KEY, timeout="2.5", rate="60", burst="5")
    assert (config.timeout, config.rate, config.burst) == (2.5, 60.0, 5)


def test_spec_maps_its_environment_variables_and_setup_questions():
    spec = channel_spec()
    assert spec.name == "pagerduty"
    assert spec.config_type is PagerDutyConfig
    assert spec.env == {
        "PAGERDUTY_INTEGRATION_KEY": "routing_key",
        "PAGERDUTY_API_TOKEN": "api_token",
    }
    # What ``pixalert init`` asks, in this order.
    assert [(f.field, f.env, f.secret, f.required) for f in spec.setup] == [
        ("routing_key", "PAGERDUTY_INTEGRATION_KEY", True, True),
        ("api_token", "PAGERDUTY_API_TOKEN", True, False),
    ]
    assert "resolves it at once" in spec.check_prompt


def test_environment_configures_the_channel():
    m = manager(
        env={"PAGERDUTY_INTEGRATION_KEY": KEY, "PAGERDUTY_API_TOKEN": "api-token-value"},
        read_files=False,
    )
    channel = m.channels["pagerduty"]
    assert channel.config.routing_key.get() == KEY
    assert channel.config.api_token.get() == "api-token-value"


def test_seed_flat_json_configures_the_channel(tmp_path):
    path = tmp_path / "notification_config.json"
    path.write_text(
        json.dumps({"pagerduty_integration_key": KEY, "pagerduty_api_token": "api-token"})
    )
    m = manager(config_file=path, env={}, config={"history": "memory://"})
    assert m.channels["pagerduty"].config.routing_key.get() == KEY


def test_toml_style_section_with_type(tmp_path):
    m = manager(
        env={},
        read_files=False,
        config={
            "history": "memory://",
            "channels": {"pd-eu": {"type": "pagerduty", "routing_key": KEY, "region": "eu"}},
        },
    )
    assert m.channels["pd-eu"].config.events_url == EVENTS_URLS["eu"]


def test_missing_routing_key_names_the_field():
    with pytest.raises(ConfigError) as caught:
        build()
    assert caught.value.errors == [
        "config: required field missing @ channels.pagerduty.routing_key"
    ]


def test_wrong_type_and_unknown_keys_are_named():
    with pytest.raises(ConfigError) as caught:
        build(routing_key=KEY, timeout="soon", colour="red")
    text = "\n".join(caught.value.errors)
    assert "expected float, got 'soon' @ channels.pagerduty.timeout" in text
    assert "unknown key 'colour'; expected one of: " in text
    assert "@ channels.pagerduty.colour" in text


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"routing_key": ""}, "routing_key: expected the Events API v2 integration key"),
        ({"routing_key": "abc def"}, "routing_key: expected an integration key without spaces"),
        ({"region": "asia"}, "region: expected one of eu, us, got 'asia'"),
        ({"events_url": "http://events.example.com/v2/enqueue"}, "events_url: expected https://"),
        ({"events_url": "ftp://x/v2"}, "events_url: expected an https:// URL"),
        (
            {"events_url": "https://u:p@events.example.com/"},
            "events_url: expected a URL without credentials",
        ),
        ({"timeout": 0}, "timeout: expected a number > 0"),
        ({"rate": 1}, "rate: expected at least 2 events per minute"),
        ({"rate": 10, "burst": 10}, "burst: expected at least 1 and fewer than rate (10)"),
        ({"burst": 0}, "burst: expected at least 1"),
        ({"source": "  "}, "source: expected a non-empty string"),
    ],
)
def test_bad_values_say_what_was_expected(data, message):
    data = {"routing_key": KEY, **data}
    kwargs = dict(data, routing_key=Secret(data["routing_key"]))
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        PagerDutyConfig(**kwargs)
    # Through the config loader the error names the field (and never the key).
    with pytest.raises(ConfigError) as caught:
        build(**data)
    field, _, expected = message.partition(": ")
    [line] = caught.value.errors
    assert line.startswith("config: " + expected)
    assert line.endswith(f"@ channels.pagerduty.{field}")
    assert KEY not in line


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/v2/enqueue",
        "http://[::1]:8080/v2/enqueue",
        "http://localhost/v2/enqueue",
        "https://events.pagerduty.com/v2/enqueue",
    ],
)
def test_plain_http_only_on_loopback(url):
    assert build(routing_key=KEY, events_url=url).events_url == url
