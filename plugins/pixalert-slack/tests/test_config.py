"""SlackConfig: the two modes, the seed's names, clear errors, and no secret in a repr."""

from __future__ import annotations

import json
from pathlib import Path

import pixalert_slack
import pytest
from pixalert import ConfigError, load_settings
from pixalert.channels import Secret, structure_config
from pixalert_slack import SlackConfig
from pixalert_slack._config import normalize_mention

HOOK = "https://hooks.slack.com/services/T0001/B0001/s3cr3tW3bh00kPath"
TOKEN = "xoxb-111-222-s3cr3tT0ken"


def build(**data: object) -> SlackConfig:
    return structure_config(SlackConfig, data, path="channels.slack")  # type: ignore[no-any-return]


def specs() -> dict[str, object]:
    return {spec.name: spec for spec in pixalert_slack.pixalert_channels()}


def test_webhook_only_is_webhook_mode() -> None:
    config = build(webhook_url=HOOK)
    assert config.effective_mode == "webhook"
    assert isinstance(config.webhook_url, Secret)
    assert config.webhook_url.get() == HOOK


def test_token_and_channel_is_api_mode() -> None:
    config = build(token=TOKEN, channel="#alerts")
    assert config.effective_mode == "api"
    assert config.api_url == "https://slack.com/api"


def test_seed_sets_all_three_and_the_bot_token_wins_unless_told() -> None:
    # The seed's .env sets SLACK_WEBHOOK_URL, SLACK_CHANNEL and SLACK_TOKEN together.
    assert build(webhook_url=HOOK, token=TOKEN, channel="#a").effective_mode == "api"
    forced = build(webhook_url=HOOK, token=TOKEN, channel="#a", mode="webhook")
    assert forced.effective_mode == "webhook"


def test_webhook_with_channel_but_no_token_uses_the_webhook() -> None:
    # The seed's README exports SLACK_WEBHOOK_URL and SLACK_CHANNEL only.
    assert build(webhook_url=HOOK, channel="#pixelated-ai-alerts").effective_mode == "webhook"


def test_empty_values_count_as_unset() -> None:
    config = build(webhook_url=HOOK, token="", channel="  ")
    assert config.token is None and config.channel is None
    assert config.effective_mode == "webhook"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({}, "set webhook_url (SLACK_WEBHOOK_URL)"),
        ({"token": TOKEN}, "token is set but channel is not"),
        ({"channel": "#alerts"}, "set webhook_url (SLACK_WEBHOOK_URL)"),
        ({"mode": "api", "webhook_url": HOOK}, "mode 'api' needs token (SLACK_TOKEN) and channel"),
        ({"mode": "api", "token": TOKEN}, "mode 'api' needs channel (SLACK_CHANNEL)"),
        ({"mode": "webhook", "token": TOKEN, "channel": "#a"}, "mode 'webhook' needs webhook_url"),
        ({"mode": "fast", "webhook_url": HOOK}, "mode: expected one of auto, webhook, api"),
        ({"webhook_url": "hooks.slack.com/services/x"}, "webhook_url: expected an https:// URL"),
        ({"webhook_url": HOOK, "api_url": "slack.com"}, "api_url: expected an http(s) URL"),
        ({"webhook_url": HOOK, "rate": 0}, "rate: expected a number > 0"),
        ({"webhook_url": HOOK, "burst": 0}, "burst: expected an integer >= 1"),
        ({"webhook_url": HOOK, "timeout": -1}, "timeout: expected a number > 0"),
        ({"webhook_url": HOOK, "mention_on_critical": "oncall"}, "is not a Slack mention"),
    ],
)
def test_clear_errors(data: dict[str, object], expected: str) -> None:
    with pytest.raises(ValueError) as info:
        SlackConfig(**data)  # type: ignore[arg-type]
    assert expected in str(info.value)
    # Through the core's converter the error names where it is.
    with pytest.raises(ConfigError) as config_info:
        build(**data)
    assert any("channels.slack" in line for line in config_info.value.errors)


def test_error_for_a_bad_webhook_url_does_not_show_it() -> None:
    with pytest.raises(ValueError) as info:
        SlackConfig(webhook_url=Secret("hooks.slack.com/services/T/B/s3cr3tPathValue"))
    assert "s3cr3tPathValue" not in str(info.value)


def test_wrong_types_are_named() -> None:
    with pytest.raises(ConfigError) as info:
        build(webhook_url=HOOK, rate="fast")
    [line] = info.value.errors
    assert line.endswith("@ channels.slack.rate") and "float" in line
    with pytest.raises(ConfigError) as info:
        build(webhook_url=HOOK, colour="red")
    assert "colour" in info.value.errors[0]


def test_config_error_keeps_the_reason() -> None:
    with pytest.raises(ConfigError) as info:
        build(token=TOKEN)
    assert "token is set but channel is not" in " ".join(info.value.errors)


def test_environment_strings_convert() -> None:
    config = build(webhook_url=HOOK, rate="2.5", burst="4", timeout="3")
    assert (config.rate, config.burst, config.timeout) == (2.5, 4, 3.0)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("here", "<!here>"),
        ("@here", "<!here>"),
        ("<!channel>", "<!channel>"),
        ("!everyone", "<!everyone>"),
        ("U123ABC", "<@U123ABC>"),
        ("<@W99>", "<@W99>"),
        ("S0G8ABC", "<!subteam^S0G8ABC>"),
        ("<!subteam^S0G8ABC>", "<!subteam^S0G8ABC>"),
        ("here, U123ABC", "<!here> <@U123ABC>"),
        ("", None),
        (None, None),
    ],
)
def test_mentions_normalise(given: str | None, expected: str | None) -> None:
    assert normalize_mention(given) == expected


def test_repr_masks_secrets() -> None:
    config = build(webhook_url=HOOK, token=TOKEN, channel="#a")
    for text in (repr(config), str(config)):
        assert "s3cr3t" not in text
        assert "**********" in text


def test_seed_environment_variables_fill_the_config() -> None:
    env = {"SLACK_WEBHOOK_URL": HOOK, "SLACK_CHANNEL": "#pixelated-ai-alerts", "SLACK_TOKEN": TOKEN}
    settings = load_settings(env=env, specs=specs(), read_files=False)  # type: ignore[arg-type]
    config = build(**settings.channels["slack"])
    assert config.webhook_url is not None and config.webhook_url.get() == HOOK
    assert config.token is not None and config.token.get() == TOKEN
    assert config.channel == "#pixelated-ai-alerts"


def test_seed_json_flat_keys_fill_the_config(tmp_path: Path) -> None:
    path = tmp_path / "notification_config.json"
    path.write_text(
        json.dumps(
            {
                "slack_webhook_url": HOOK,
                "slack_token": TOKEN,
                "slack_channel": "#pixelated-ai-alerts",
            }
        )
    )
    settings = load_settings(config_file=path, env={}, specs=specs(), cwd=tmp_path)  # type: ignore[arg-type]
    config = build(**settings.channels["slack"])
    assert config.effective_mode == "api"
    assert config.channel == "#pixelated-ai-alerts"
