"""Routes: label matchers tried in order, first match wins unless ``continue``."""

from __future__ import annotations

from typing import Any

import pytest
from pixalert import Alert, ConfigError
from pixalert._routes import Matcher, label_value
from pixalert.testing import FakeClock, RecordingChannel, make_manager


def alert(**kwargs: Any) -> Alert:
    kwargs.setdefault("title", "Disk full")
    return Alert(**kwargs)


@pytest.mark.parametrize(
    ("name", "text", "kwargs", "expected"),
    [
        ("source", "db", {"source": "db"}, True),
        ("source", "db", {"source": "db-1"}, False),
        ("source", "=db", {"source": "db"}, True),
        ("source", "!=db", {"source": "api"}, True),
        ("source", "!=db", {"source": "db"}, False),
        ("source", "=~db-.*", {"source": "db-1"}, True),
        ("source", "=~db", {"source": "db-1"}, False),  # a regex matches the whole value
        ("source", "!~test-.*", {"source": "test-9"}, False),
        ("source", "!~test-.*", {"source": "prod-9"}, True),
        ("priority", ">=high", {"priority": "critical"}, True),
        ("priority", ">=high", {"priority": "medium"}, False),
        ("priority", "<medium", {"priority": "low"}, True),
        ("priority", "high", {"priority": "high"}, True),
        ("priority", "!=low", {"priority": "low"}, False),
        ("env", "prod", {"metadata": {"env": "prod"}}, True),
        ("env", "!=prod", {}, True),  # a missing label is "", as in Alertmanager
        ("env", "=~.*", {}, True),
        ("severity", "warning", {"metadata": {"labels": {"severity": "warning"}}}, True),
        ("labels.severity", "warning", {"metadata": {"labels": {"severity": "warning"}}}, True),
        ("metadata.n", "3", {"metadata": {"n": 3}}, True),
    ],
)
def test_matchers(name: str, text: str, kwargs: dict[str, Any], expected: bool) -> None:
    assert Matcher.parse(name, text).matches(alert(**kwargs)) is expected


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("source", "=~db-(", "expected a regular expression, got 'db-('"),
        ("priority", ">=urgent", "unknown priority 'urgent'"),
        ("source", 3, 'expected a string such as "db" or "!=db", got 3'),
    ],
)
def test_bad_matchers_say_what_was_expected(name: str, text: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("'", "'")):
        Matcher.parse(name, text)


def test_label_value_reads_fields_metadata_and_labels() -> None:
    a = alert(priority="high", metadata={"team": "ops", "labels": {"job": "node"}, "n": [1]})
    assert label_value(a, "priority") == "high"
    assert label_value(a, "team") == "ops" and label_value(a, "job") == "node"
    assert label_value(a, "n") == "[1]" and label_value(a, "missing") == ""


ROUTES = {
    "channels": {"pagerduty": {"type": "recording"}, "slack": {"type": "recording"}},
    "routes": [
        {"match": {"source": "=~db-.*", "priority": ">=high"}, "channels": ["pagerduty"]},
        {"match": {"team": "ops"}, "channels": ["slack"], "continue": True},
        {"match": {"team": "ops"}, "channels": ["pagerduty"]},
    ],
}


async def test_first_matching_route_wins_unless_continue(
    clock: FakeClock, recording_plugin: Any
) -> None:
    async with make_manager(config=ROUTES, plugins=[recording_plugin], clock=clock) as manager:
        assert manager.route(alert(source="db-1", priority="critical")) == ["pagerduty"]
        assert manager.route(alert(source="db-1", priority="low")) == ["slack"]  # the table
        assert manager.route(alert(metadata={"team": "ops"})) == ["slack", "pagerduty"]
        assert manager.route(alert(channels=["slack"], source="db-1", priority="high")) == [
            "slack"
        ]  # explicit channels win
        results = await manager.send_alert("x", "m", "critical", source="db-7")
    assert list(results) == ["pagerduty"] and results["pagerduty"].status == "sent"


def test_a_route_to_an_unconfigured_channel_is_a_config_error() -> None:
    config = {"routes": [{"match": {"source": "db"}, "channels": ["slak"]}]}
    with pytest.raises(ConfigError, match=r"channel 'slak' is not configured .* @ routes\[0\]"):
        make_manager([RecordingChannel("slack")], config=config)


def test_a_route_with_a_bad_regex_or_key_is_a_config_error() -> None:
    with pytest.raises(
        ConfigError, match=r"expected a regular expression, got .* @ routes\[0\]\.match\.source"
    ):
        make_manager(config={"routes": [{"match": {"source": "=~("}}]})
    with pytest.raises(
        ConfigError, match=r"unknown key .chanels. \(did you mean .channels.\?\) @ routes\[0\]"
    ):
        make_manager(config={"routes": [{"chanels": ["slack"]}]})
