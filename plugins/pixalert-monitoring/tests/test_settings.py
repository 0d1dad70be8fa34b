"""The monitoring file: receiver token and limits, severity map, monitor options, rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from pixalert import Priority
from pixalert_monitoring import RuleError, load_monitoring_config


def test_defaults_without_a_file() -> None:
    config = load_monitoring_config(None, env={})
    assert config.receiver.token is None
    assert config.receiver.max_body == 2 * 1024 * 1024
    assert config.receiver.max_alerts == 1000
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
dedup_ttl = 600

[severity]
page = "critical"
Notice = "low"

[monitor]
interval = 15
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
    assert config.receiver.token == "from-the-file"
    assert "from-the-file" not in repr(config)
    assert (config.receiver.max_body, config.receiver.max_alerts) == (4096, 50)
    assert config.receiver.dedup_ttl == 600.0
    assert config.severities == {"page": Priority.CRITICAL, "notice": Priority.LOW}
    assert (config.interval, config.default_rules) == (15.0, False)
    assert [r.rule_name for r in config.rules] == ["disk"]


def test_environment_token_wins_and_file_from_environment(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text('[monitoring.receiver]\ntoken = "file"\n', encoding="utf-8")
    env = {"PIXALERT_MONITORING_CONFIG": str(path), "PIXALERT_RECEIVER_TOKEN": "env"}
    assert load_monitoring_config(None, env=env).receiver.token == "env"
    assert load_monitoring_config(path, env={}).receiver.token == "file"


def test_every_error_named(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text(
        """
colour = "red"
[receiver]
token = ""
max_body = 0
port = 80
[severity]
page = "urgent"
[monitor]
interval = -1
default_rules = "yes"
[[rules]]
name = "r"
metric = "m"
threshold = 1
operator = "~"
priority = "low"
""",
        encoding="utf-8",
    )
    with pytest.raises(RuleError) as info:
        load_monitoring_config(path, env={})
    errors = info.value.errors
    expected = [
        f"{path}: unknown key 'colour'; expected receiver, severity, monitor, rules",
        f"{path}: receiver.token: expected a non-empty string",
        f"{path}: receiver.max_body: expected a whole number >= 1, got 0",
        f"{path}: severity.page: unknown priority 'urgent'",
        f"{path}: monitor.interval: expected seconds > 0, got -1",
        f"{path}: monitor.default_rules: expected true or false, got 'yes'",
        f"{path}: rules[0] (r): unknown operator '~'",
    ]
    for line in expected:
        assert any(e.startswith(line) for e in errors), line
    assert any(e.startswith(f"{path}: receiver.port: unknown key") for e in errors)
