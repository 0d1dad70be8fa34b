"""Alert rules: the seed's defaults, operators, validation, and rules from TOML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pixalert import ConfigError, Priority
from pixalert_monitoring import AlertRule, MonitoringBridge, RuleError, load_rules

SEED_TABLE = [
    ("high_cpu_usage", "cpu_usage_percent", 85, Priority.MEDIUM, 10),
    ("critical_cpu_usage", "cpu_usage_percent", 95, Priority.HIGH, 5),
    ("high_memory_usage", "memory_usage_percent", 80, Priority.MEDIUM, 10),
    ("critical_memory_usage", "memory_usage_percent", 90, Priority.HIGH, 5),
    ("large_processing_queue", "queue_size", 1000, Priority.MEDIUM, 15),
    ("critical_processing_queue", "queue_size", 5000, Priority.HIGH, 10),
    ("high_error_rate", "error_rate_percent", 5, Priority.MEDIUM, 10),
    ("critical_error_rate", "error_rate_percent", 15, Priority.HIGH, 5),
]


def test_default_rules_are_exactly_the_seeds_eight(bridge: MonitoringBridge) -> None:
    bridge.setup_default_alert_rules()
    got = [
        (r.rule_name, r.metric_name, r.threshold, r.priority, r.cooldown_minutes)
        for r in bridge.alert_rules.values()
    ]
    assert got == [(n, m, float(t), p, c) for n, m, t, p, c in SEED_TABLE]
    assert {r.operator for r in bridge.alert_rules.values()} == {">"}


@pytest.mark.parametrize(
    ("operator", "value", "fires"),
    [
        (">", 10.0, False),
        (">", 10.1, True),
        (">=", 10.0, True),
        (">=", 9.9, False),
        ("<", 10.0, False),
        ("<", 9.9, True),
        ("<=", 10.0, True),
        ("<=", 10.1, False),
        ("==", 10.0, True),
        ("==", 10.1, False),
        ("!=", 10.0, False),
        ("!=", 10.1, True),
    ],
)
def test_operators(operator: str, value: float, fires: bool) -> None:
    rule = AlertRule.create("r", "m", 10, operator, "low", 1)
    assert rule.matches(value) is fires


def test_seed_custom_rule_call(bridge: MonitoringBridge) -> None:
    rule = bridge.add_alert_rule(
        rule_name="custom_metric_alert",
        metric_name="custom_metric",
        threshold=100.0,
        operator=">",
        priority="high",
        cooldown_minutes=20,
    )
    assert rule.priority is Priority.HIGH
    assert rule.cooldown_seconds == 1200
    assert bridge.alert_rules["custom_metric_alert"] is rule


@pytest.mark.parametrize("priority", [Priority.HIGH, "high", "HIGH", 3, "3"])
def test_priority_forms(priority: Any) -> None:
    assert AlertRule.create("r", "m", 1, ">", priority).priority is Priority.HIGH


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"operator": "=>"},
            "rule 'disk': operator: expected one of >, >=, <, <=, ==, !=, got '=>'",
        ),
        ({"threshold": "ninety"}, "rule 'disk': threshold: expected a number, got 'ninety'"),
        ({"threshold": True}, "rule 'disk': threshold: expected a number, got True"),
        ({"threshold": "inf"}, "rule 'disk': threshold: expected a finite number, got 'inf'"),
        (
            {"threshold": float("nan")},
            "rule 'disk': threshold: expected a finite number, got nan",
        ),
        ({"priority": "urgent"}, "rule 'disk': priority: unknown priority 'urgent'"),
        ({"cooldown_minutes": -1}, "rule 'disk': cooldown_minutes: expected a finite number >= 0"),
        ({"metric_name": ""}, "rule 'disk': metric_name: expected a non-empty string"),
    ],
)
def test_bad_rule_is_a_clear_value_error(
    bridge: MonitoringBridge, kwargs: dict[str, Any], message: str
) -> None:
    args: dict[str, Any] = {
        "rule_name": "disk",
        "metric_name": "disk_usage_percent",
        "threshold": 90,
        "operator": ">",
        "priority": "high",
        "cooldown_minutes": 5,
    }
    args.update(kwargs)
    with pytest.raises(ValueError) as info:
        bridge.add_alert_rule(**args)
    assert str(info.value).startswith(message)
    assert "disk" not in bridge.alert_rules


def test_rules_from_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(
        """
[[rules]]
rule_name = "disk_almost_full"
metric_name = "disk_usage_percent"
threshold = 90
operator = ">="
priority = "high"
cooldown_minutes = 30

[[rules]]
name = "too_few_workers"
metric = "workers"
threshold = 2
operator = "<"
priority = "critical"
""",
        encoding="utf-8",
    )
    rules = load_rules(path)
    assert [(r.rule_name, r.operator, r.priority, r.cooldown_minutes) for r in rules] == [
        ("disk_almost_full", ">=", Priority.HIGH, 30.0),
        ("too_few_workers", "<", Priority.CRITICAL, 5.0),
    ]


def test_rules_as_table_of_tables_under_monitoring() -> None:
    rules = load_rules(
        {
            "monitoring": {
                "rules": {
                    "slow": {
                        "metric": "p99_ms",
                        "threshold": 500,
                        "operator": ">",
                        "priority": "medium",
                    }
                }
            }
        }
    )
    assert rules[0].rule_name == "slow"


def test_toml_errors_name_file_and_key_as_the_core_does(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(
        """
[[rules]]
rule_name = "a"
metric_name = "m"
threshold = 1
operator = "=>"
priority = "high"

[[rules]]
rule_name = "b"
metric_name = "m"
threshold = "lots"
operator = ">"
priority = "urgent"

[[rules]]
rule_name = "c"
metric_name = "m"
operator = ">"
priority = "low"
colour = "red"

[[rules]]
rule_name = " "
metric_name = "m"
threshold = nan
operator = ">"
priority = "low"

[[rules]]
name = "e"
rule_name = "e"
metric_name = "m"
threshold = 1
operator = ">"
priority = "low"

[[rules]]
rule_name = "f"
metric_name = "m"
threshold = 1
operator = ">"
priority = "low"
cooldown_minutes = -1
""",
        encoding="utf-8",
    )
    with pytest.raises(RuleError) as info:
        load_rules(path)
    assert info.value.errors == [
        f"{path}: expected one of >, >=, <, <=, ==, !=, got '=>' @ rules[0].operator",
        f"{path}: expected float, got 'lots' @ rules[1].threshold",
        f"{path}: unknown priority 'urgent': expected one of low, medium, high, critical "
        "(or 1-4) @ rules[1].priority",
        f"{path}: required field missing @ rules[2].threshold",
        f"{path}: unknown key 'colour'; expected one of: cooldown_minutes, metric_name, "
        "operator, priority, rule_name, threshold @ rules[2].colour",
        f"{path}: expected a finite number, got nan @ rules[3].threshold",
        f"{path}: expected rule_name or name, not both @ rules[4]",
        f"{path}: expected a finite number >= 0, got -1.0 @ rules[5].cooldown_minutes",
    ]
    assert isinstance(info.value, ConfigError) and isinstance(info.value, ValueError)


def test_empty_rule_name_named_once_the_types_are_right() -> None:
    rule = {"metric": "m", "threshold": 1, "operator": ">", "priority": "low"}
    with pytest.raises(RuleError) as info:
        load_rules({"rules": {"ok": rule, "blank": {**rule, "rule_name": "  "}}})
    assert info.value.errors == [
        "rules: expected a non-empty string, got '' @ rules.blank.rule_name"
    ]


def test_rules_must_be_tables() -> None:
    with pytest.raises(RuleError) as info:
        load_rules({"rules": "cpu > 90"})
    assert info.value.errors == [
        "rules: expected an array of tables ([[rules]]) or a table of tables "
        "([rules.<name>]), got str @ rules"
    ]
    with pytest.raises(RuleError) as info:
        load_rules({"monitoring": {"rules": [5]}})
    assert info.value.errors == ["rules: expected a table, got int @ monitoring.rules[0]"]


def test_unreadable_and_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match=r"nope\.toml: cannot read"):
        load_rules(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[rules]\n", encoding="utf-8")
    with pytest.raises(RuleError, match=r"bad\.toml: not valid TOML"):
        load_rules(bad)


def test_duplicate_rule_names_rejected() -> None:
    rule = {"metric": "m", "threshold": 1, "operator": ">", "priority": "low"}
    with pytest.raises(RuleError) as info:
        load_rules({"rules": [{"name": "x", **rule}, {"name": "x", **rule}]})
    assert info.value.errors == [
        "rules: expected each rule_name once, 'x' is also at rules[0] @ rules[1]"
    ]


def test_bridge_load_rules_adds_them(bridge: MonitoringBridge) -> None:
    bridge.load_rules(
        {
            "rules": [
                {"name": "x", "metric": "m", "threshold": 1, "operator": ">", "priority": "low"}
            ]
        }
    )
    assert "x" in bridge.alert_rules
