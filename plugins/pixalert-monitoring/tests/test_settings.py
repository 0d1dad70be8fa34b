"""The monitoring file: receiver token and limits, severity map, monitor options, rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from pixalert import ConfigError, Priority, load_settings
from pixalert.channels import Secret, structure_config
from pixalert_monitoring import ReceiverConfig, load_monitoring_config


def test_defaults_without_a_file() -> None:
    config = load_monitoring_config(None, env={})
    assert config.receiver.token is None
    assert config.receiver.max_body == 2 * 1024 * 1024
    assert config.receiver.max_alerts == 1000
    assert config.receiver.dedup_ttl == 120.0
    assert config.interval == 60.0 and config.default_rules is True
    assert config.rules == ()


def test_full_file(tmp_path: Path) -> None:
    path = tmp_path / "monitoring.toml"
    path.write_text(
        """
[receiver]
token = "from-the-file"
max_body = 4096
max_alerts = 50
dedup_ttl = "10m"
ingest_timeout = 2.5

[severity]
page = "critical"
Notice = "low"

[monitor]
interval = "15s"
default_rules = false

[[rules]]
rule_name = "disk"
metric_name = "disk_usage_percent"
threshold = 90
operator = ">"
priority = "high"
""",
        encoding="utf-8",
    )
    config = load_monitoring_config(path, env={})
    assert isinstance(config.receiver.token, Secret)
    assert config.receiver.token.get() == "from-the-file"
    assert "from-the-file" not in repr(config) and "from-the-file" not in str(config)
    assert (config.receiver.max_body, config.receiver.max_alerts) == (4096, 50)
    assert (config.receiver.dedup_ttl, config.receiver.ingest_timeout) == (600.0, 2.5)
    assert config.severities == {"page": Priority.CRITICAL, "notice": Priority.LOW}
    assert (config.interval, config.default_rules) == (15.0, False)
    assert [r.rule_name for r in config.rules] == ["disk"]


def test_environment_token_wins_and_file_from_environment(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text('[monitoring.receiver]\ntoken = "file"\n', encoding="utf-8")
    env = {"PIXALERT_MONITORING_CONFIG": str(path), "PIXALERT_RECEIVER_TOKEN": "env"}
    token = load_monitoring_config(None, env=env).receiver.token
    assert token is not None and token.get() == "env"
    token = load_monitoring_config(path, env={}).receiver.token
    assert token is not None and token.get() == "file"


def test_errors_read_as_the_cores(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text(
        """
colour = "red"
[receiver]
max_body = "big"
port = 80
[severity]
page = "urgent"
[monitor]
interval = -1
default_rules = "maybe"
[[rules]]
name = "r"
metric = "m"
threshold = 1
operator = "~"
priority = "low"
""",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_monitoring_config(path, env={})
    assert info.value.errors == [
        f"{path}: expected int, got 'big' @ receiver.max_body",
        f"{path}: unknown key 'port'; expected one of: dedup_ttl, ingest_timeout, max_alerts, "
        "max_body, max_depth, max_inflight, token @ receiver.port",
        f"{path}: unknown priority 'urgent': expected one of low, medium, high, critical "
        "(or 1-4) @ severity['page']",
        f"{path}: expected a finite duration >= 0, got -1 @ monitor.interval",
        f"{path}: expected true or false, got 'maybe' @ monitor.default_rules",
        f"{path}: unknown key 'colour'; expected one of: monitor, receiver, severity @ colour",
        f"{path}: expected one of >, >=, <, <=, ==, !=, got '~' @ rules[0].operator",
    ]


@pytest.mark.parametrize(
    ("receiver", "error"),
    [
        ({"token": ""}, "expected a non-empty string (or no token) @ receiver.token"),
        ({"max_body": 0}, "expected a whole number >= 1, got 0 @ receiver.max_body"),
        ({"max_alerts": -1}, "expected a whole number >= 1, got -1 @ receiver.max_alerts"),
        ({"max_depth": 0}, "expected a whole number >= 1, got 0 @ receiver.max_depth"),
        ({"max_inflight": 0}, "expected a whole number >= 1, got 0 @ receiver.max_inflight"),
        (
            {"ingest_timeout": 0},
            "expected a finite duration > 0, got 0.0 @ receiver.ingest_timeout",
        ),
        ({"dedup_ttl": "0s"}, "expected a finite duration > 0, got 0.0 @ receiver.dedup_ttl"),
        (
            {"dedup_ttl": "soon"},
            "expected a duration such as 30s, 5m, 1h30m or a number of "
            "seconds, got 'soon' @ receiver.dedup_ttl",
        ),
        (
            {"dedup_ttl": float("inf")},
            "expected a finite duration >= 0, got inf @ receiver.dedup_ttl",
        ),
        ({"token": 5}, "expected a string, got int @ receiver.token"),
        ({"max_body": True}, "expected int, got a boolean @ receiver.max_body"),
    ],
)
def test_every_receiver_check(receiver: dict[str, object], error: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_monitoring_config({"receiver": receiver}, env={})
    assert info.value.errors == [f"monitoring config: {error}"]


def test_plugins_monitoring_of_the_main_config_is_named_so(tmp_path: Path) -> None:
    main = tmp_path / "pixalert.toml"
    main.write_text(
        "[plugins.monitoring.receiver]\ndedup_ttl = -5\n"
        '[plugins.monitoring.rules.disk]\nmetric = "d"\nthreshold = 1\n'
        'operator = ">"\npriority = "high"\ncooldown = "soon"\n',
        encoding="utf-8",
    )
    settings = load_settings(config_file=main, env={})
    with pytest.raises(ConfigError) as info:
        load_monitoring_config(None, env={}, settings=settings)
    assert info.value.errors == [
        f"{main}: expected a finite duration >= 0, got -5 @ plugins.monitoring.receiver.dedup_ttl",
        f"{main}: expected float, got 'soon' @ plugins.monitoring.rules.disk.cooldown_minutes",
    ]
    # A monitoring file, when given, is read instead.
    other = tmp_path / "m.toml"
    other.write_text("[monitor]\ninterval = 5\n", encoding="utf-8")
    assert load_monitoring_config(other, env={}, settings=settings).interval == 5.0


def test_the_receiver_table_through_structure_config() -> None:
    config = structure_config(ReceiverConfig, {"token": "t0ken-value", "dedup_ttl": "90s"})
    assert config.dedup_ttl == 90.0 and "t0ken-value" not in repr(config)
    assert ReceiverConfig(token="abc").token == Secret("abc")
    with pytest.raises(ValueError, match="dedup_ttl: expected a finite duration > 0"):
        ReceiverConfig(dedup_ttl=0)
