"""``pixalert routes test``: the routes, channels, groups and intervals an alert gets."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from pixalert import _plugins
from pixalert.cli import cli

CONFIG = """
history = "memory://"
[channels.slack]
type = "recording"
[channels.pagerduty]
type = "recording"
[grouping]
group_by = ["source"]
[time_intervals.always]
times = [{start_time = "00:00", end_time = "24:00"}]
location = "Europe/Berlin"
[[routes]]
match = {source = "=~db-.*", priority = ">=high"}
channels = ["pagerduty"]
for = "2m"
continue = true
[[routes]]
match = {env = "prod"}
channels = ["slack"]
mute_time_intervals = ["always"]
group_by = ["env", "service"]
occurrences = 3
occurrences_window = "10m"
"""


def run(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    path = tmp_path / "pixalert.toml"
    path.write_text(CONFIG)
    result = CliRunner().invoke(cli, ["--config", str(path), "routes", "test", *args])
    return result.exit_code, result.stdout, result.stderr


def test_json_names_routes_channels_groups_and_intervals(
    tmp_path: Path, cli_plugins: _plugins.PluginManager
) -> None:
    code, out, _ = run(
        tmp_path, "source=db-1", "priority=critical", "env=prod", "service=api", "--json"
    )
    assert code == 0
    report = json.loads(out)
    first, second = report["routes"]
    assert first["index"] == 0 and first["continue"] and first["channels"] == ["pagerduty"]
    assert first["for"] == "2m" and first["grouping"]["group"] == {"source": "db-1"}
    assert second["grouping"]["group"] == {"env": "prod", "service": "api"}
    assert second["occurrences"] == {"count": 3, "window": "10m"}
    assert second["mute_time_intervals"][0]["name"] == "always"
    assert second["mute_time_intervals"][0]["now"] == "inside"
    assert second["muted_now"]["why"].startswith("held: muted by time interval 'always'")
    assert report["channels"]["slack"]["route"] == 1 and report["default"] is None


def test_no_route_matching_shows_the_priority_table(
    tmp_path: Path, cli_plugins: _plugins.PluginManager
) -> None:
    code, out, _ = run(tmp_path, "--source", "api", "-p", "medium", "--json")
    report = json.loads(out)
    assert code == 0 and report["routes"] == []
    assert report["default"]["channels"] == ["email", "slack"]
    assert report["channels"]["email"]["configured"] is False
    assert report["default"]["grouping"]["group"] == {"source": "api"}


def test_the_tree(tmp_path: Path, cli_plugins: _plugins.PluginManager) -> None:
    code, out, _ = run(tmp_path, "source=db-1", "priority=high", "env=prod")
    assert code == 0
    assert "route 0 source=~db-.* priority>=high  (continue)" in out
    assert "for 2m: notified only if still firing then" in out
    assert "mute time interval always: inside now" in out
    assert "grouping: group env=prod, service= (group_by env, service)" in out


def test_bad_labels_and_priorities_are_usage_errors(
    tmp_path: Path, cli_plugins: _plugins.PluginManager
) -> None:
    code, _, err = run(tmp_path, "justaword")
    assert code == 2 and "expected KEY=VALUE, got 'justaword'" in err
    code, _, err = run(tmp_path, "priority=urgent")
    assert code == 2 and "unknown priority 'urgent'" in err and "Traceback" not in err
