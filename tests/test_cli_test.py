"""``pixalert test``: each suite against real local servers (webhook receiver, PagerDuty).

The servers run on an event loop in a background thread while the command runs
in the test's thread, as it would against real services.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pixalert_pagerduty.testing as pagerduty_testing
import pixalert_webhook.testing as webhook_testing
import pytest
from click.testing import CliRunner
from pixalert.cli import _test as test_cmd
from pixalert.cli import cli

pytestmark = pytest.mark.usefixtures("isolated_environment")


@pytest.fixture
def receiver(services: Any) -> Iterator[Any]:
    server = webhook_testing.WebhookReceiver()
    services.run(server.start())
    yield server
    services.run(server.stop())


@pytest.fixture
def pagerduty(services: Any) -> Iterator[Any]:
    server = pagerduty_testing.PagerDutyServer()
    services.run(server.start())
    yield server
    services.run(server.stop())


@pytest.fixture
def config_file(tmp_path: Path, receiver: Any, pagerduty: Any) -> Path:
    path = tmp_path / "pixalert.toml"
    path.write_text(
        f"""
[routing]
low = ["webhook"]
medium = ["webhook", "slack"]
high = ["webhook", "pagerduty"]
critical = ["*"]

[channels.webhook]
urls = ["{receiver.url}"]

[channels.pagerduty]
routing_key = "{pagerduty.routing_key}"
events_url = "{pagerduty.events_url}"
""",
        encoding="utf-8",
    )
    return path


def invoke(tmp_path: Path, *args: str, config: Path | None = None) -> Any:
    # Run in an empty directory of its own, so no stray pixalert.toml is read.
    workdir = tmp_path / "cwd"
    workdir.mkdir(exist_ok=True)
    previous = os.getcwd()
    os.chdir(workdir)
    try:
        options = ["--config", str(config)] if config else []
        return CliRunner().invoke(cli, [*options, "test", *args], catch_exceptions=False)
    finally:
        os.chdir(previous)


def as_json(result: Any) -> dict[str, Any]:
    return json.loads(result.stdout)  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------
# channels
# ---------------------------------------------------------------------------


def test_channels_sends_one_message_per_channel(tmp_path, config_file, receiver, pagerduty):
    result = invoke(tmp_path, "channels", "--json", config=config_file)
    assert result.exit_code == 0, result.output
    suite = as_json(result)["suites"]["channels"]
    assert suite["ok"] is True
    assert {(r["channel"], r["type"], r["status"], r["attempts"]) for r in suite["results"]} == {
        ("webhook", "webhook", "sent", 1),
        ("pagerduty", "pagerduty", "sent", 1),
    }
    assert receiver.lines()[0].startswith("POST /hook alert.firing LOW pixalert test")
    # The incident the test opened in PagerDuty was resolved at once.
    assert [e["event_action"] for e in pagerduty.received] == ["trigger", "resolve"]
    assert pagerduty.open_incidents == []


def test_channels_reports_a_failing_channel_and_exits_1(tmp_path, config_file, pagerduty):
    pagerduty.fail(400, times=1, body={"status": "invalid event", "errors": ["bad"]})
    result = invoke(tmp_path, "channels", config=config_file)
    assert result.exit_code == 1
    assert "pagerduty" in result.stdout and "failed" in result.stdout
    assert "permanent, not retried" in result.stdout
    assert "channels: FAILED" in result.stdout
    assert pagerduty.routing_key not in result.output


def test_channels_can_be_limited(tmp_path, config_file, receiver, pagerduty):
    result = invoke(tmp_path, "channels", "-c", "webhook", "--json", config=config_file)
    assert result.exit_code == 0
    assert [r["channel"] for r in as_json(result)["suites"]["channels"]["results"]] == ["webhook"]
    assert pagerduty.received == []


def test_an_unknown_channel_is_a_usage_error(tmp_path, config_file):
    result = invoke(tmp_path, "channels", "-c", "teams", config=config_file)
    assert result.exit_code == 2
    assert "unknown channel 'teams': configured are webhook, pagerduty" in result.stderr


def test_with_no_channel_configured_the_suites_fail_and_say_what_to_do(tmp_path):
    empty = tmp_path / "empty.toml"
    empty.write_text("cooldown_minutes = 1\n", encoding="utf-8")
    result = invoke(tmp_path, "channels", config=empty)
    assert result.exit_code == 1
    assert "No channels configured: run 'pixalert init'." in result.stdout


def test_a_channel_whose_plugin_is_missing_is_reported(tmp_path, config_file):
    config_file.write_text(
        config_file.read_text() + '\n[channels.teams]\nwebhook = "x"\n', encoding="utf-8"
    )
    result = invoke(tmp_path, "channels", "--json", config=config_file)
    assert result.exit_code == 1
    rows = {r["channel"]: r for r in as_json(result)["suites"]["channels"]["results"]}
    assert rows["teams"]["status"] == "unavailable"
    assert "pip install pixalert-teams" in rows["teams"]["detail"]
    assert rows["webhook"]["status"] == "sent"


# ---------------------------------------------------------------------------
# priorities
# ---------------------------------------------------------------------------


def test_priorities_shows_the_routing_and_proves_it(tmp_path, config_file, receiver, pagerduty):
    result = invoke(tmp_path, "priorities", "--json", config=config_file)
    assert result.exit_code == 0, result.output
    rows = {r["priority"]: r for r in as_json(result)["suites"]["priorities"]["results"]}
    assert rows["LOW"]["routed"] == ["webhook"] and rows["LOW"]["reached"] == ["webhook"]
    assert rows["MEDIUM"]["reached"] == ["webhook"]
    assert rows["MEDIUM"]["skipped"] == ["slack"]  # routed, not configured: shown, not a failure
    assert rows["HIGH"]["reached"] == ["webhook", "pagerduty"]
    assert sorted(rows["CRITICAL"]["reached"]) == ["pagerduty", "webhook"]
    # Proof: what the services received, priority by priority.
    firing = [line.split()[3] for line in receiver.lines() if "alert.firing" in line]
    assert firing == ["LOW", "MEDIUM", "HIGH", "CRITICAL"]
    triggers = [
        e["payload"]["severity"] for e in pagerduty.received if e["event_action"] == "trigger"
    ]
    assert triggers == ["error", "critical"]
    assert pagerduty.open_incidents == []


def test_priorities_table_names_unreached_priorities(tmp_path, receiver):
    config = tmp_path / "c.toml"
    config.write_text(f'[channels.webhook]\nurls = ["{receiver.url}"]\n', encoding="utf-8")
    result = invoke(tmp_path, "priorities", config=config)
    assert result.exit_code == 0
    assert "LOW alerts reach no configured channel (routed to: slack)" in result.stdout
    assert "priorities: passed" in result.stdout


# ---------------------------------------------------------------------------
# concurrent
# ---------------------------------------------------------------------------


def test_concurrent_sends_a_burst_and_reports_percentiles(tmp_path, config_file, receiver):
    result = invoke(
        tmp_path, "concurrent", "--count", "8", "-c", "webhook", "--json", config=config_file
    )
    assert result.exit_code == 0, result.output
    suite = as_json(result)["suites"]["concurrent"]
    assert suite["ok"] is True
    summary = suite["summary"]
    assert summary["alerts"] == 8 and summary["deliveries"] == 8 and summary["failed"] == 0
    assert summary["alerts_per_second"] > 0
    latency = summary["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    assert suite["results"][0]["sent"] == 8
    firing = [d for d in receiver.received if d.type == "alert.firing"]
    assert len(firing) == 8 and len({d.webhook_id for d in firing}) == 8
    # The burst shares one incident key: one resolve closes it where receipts are kept.
    assert [d.type for d in receiver.received].count("alert.resolved") == 1


def test_concurrent_groups_a_tracked_burst_in_one_incident(tmp_path, config_file, pagerduty):
    result = invoke(tmp_path, "concurrent", "--count", "4", "-c", "pagerduty", config=config_file)
    assert result.exit_code == 0, result.output
    assert "4 alerts x 1 channel(s) = 4 deliveries" in result.stdout
    assert len(pagerduty.incidents) == 1 and pagerduty.open_incidents == []


def test_concurrent_counts_failures(tmp_path, config_file, receiver):
    receiver.fail(400, times=2)
    result = invoke(
        tmp_path, "concurrent", "--count", "4", "-c", "webhook", "--json", config=config_file
    )
    assert result.exit_code == 1
    row = as_json(result)["suites"]["concurrent"]["results"][0]
    assert (row["sent"], row["failed"]) == (2, 2)
    assert row["errors"] == ["webhook: HTTP 400 (permanent, not retried)"]


# ---------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------


def test_errors_shows_each_failure_handled_as_it_should_be(tmp_path):
    result = invoke(tmp_path, "errors", "--json")
    assert result.exit_code == 0, result.output
    suite = as_json(result)["suites"]["errors"]
    assert suite["summary"]["mode"] == "http"
    rows = {r["case"]: r for r in suite["results"]}
    assert all(r["ok"] for r in rows.values()), rows
    assert rows["unreachable"]["attempts"] == 3 and rows["unreachable"]["retried"]
    assert rows["bad_credentials"]["attempts"] == 1 and rows["bad_credentials"]["permanent"]
    assert rows["bad_credentials"]["requests_seen"] == 1
    limited = rows["rate_limited"]
    assert limited["status"] == "sent" and limited["attempts"] == 2
    assert limited["waited"] >= test_cmd.RETRY_AFTER - 0.05  # measured by the server
    assert rows["timeout"]["detail"].startswith("timed out after 0.5s")
    assert rows["baseline"]["status"] == "sent" and rows["baseline"]["requests_seen"] == 1
    assert rows["server_error"]["requests_seen"] == 3


def test_errors_needs_no_configuration(tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text("[channels.webhook]\nurls = 5\n", encoding="utf-8")
    result = invoke(tmp_path, "errors", config=broken)
    assert result.exit_code == 0, result.output
    assert "errors: passed" in result.stdout
    # (the table wraps its cells to the terminal's width)
    assert "honoured" in result.stdout and "NOT honoured" not in result.stdout


def test_errors_without_the_webhook_plugin_simulates_the_failures(tmp_path, monkeypatch):
    monkeypatch.setattr(test_cmd, "_webhook_spec", lambda: None)
    result = invoke(tmp_path, "errors", "--json")
    assert result.exit_code == 0, result.output
    suite = as_json(result)["suites"]["errors"]
    assert suite["summary"]["mode"] == "simulated"
    assert all(r["ok"] for r in suite["results"])


def test_errors_flags_a_failure_handled_the_wrong_way(tmp_path, monkeypatch):
    from pixalert import DeliveryError

    real = test_cmd._simulated_channel

    def misclassifying(case: Any) -> Any:
        channel = real(case)
        if case.key == "bad_credentials":  # a channel that says 401 is worth retrying
            channel.fail = [DeliveryError("HTTP 401")] * 3
        return channel

    monkeypatch.setattr(test_cmd, "_webhook_spec", lambda: None)
    monkeypatch.setattr(test_cmd, "_simulated_channel", misclassifying)
    result = invoke(tmp_path, "errors")
    assert result.exit_code == 1
    assert "unexpected" in result.stdout and "errors: FAILED" in result.stdout


# ---------------------------------------------------------------------------
# all, and helpers
# ---------------------------------------------------------------------------


def test_all_runs_every_suite_in_a_real_process(tmp_path, config_file, receiver, pagerduty):
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from pixalert.cli import main; main()",
            "--config",
            str(config_file),
            "test",
            "--count",
            "3",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for title in ("Channels:", "Priorities:", "Concurrent: 3 alerts at once", "Errors:"):
        assert title in done.stdout
    assert "All suites passed." in done.stdout
    assert pagerduty.routing_key not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([], 50, None),
        ([5.0], 99, 5.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.5),
        ([1.0, 2.0, 3.0, 4.0], 100, 4.0),
        ([4.0, 1.0, 3.0, 2.0], 0, 1.0),
    ],
)
def test_percentile(values, q, expected):
    assert test_cmd.percentile(values, q) == expected


def test_concurrent_shows_a_progress_bar_on_a_terminal(tmp_path, config_file, receiver):
    pexpect = pytest.importorskip("pexpect")
    child = pexpect.spawn(
        sys.executable,
        [
            "-c",
            "from pixalert.cli import main; main()",
            "--config",
            str(config_file),
            "test",
            "concurrent",
            "--count",
            "30",
            "-c",
            "webhook",
        ],
        cwd=str(tmp_path),
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 120),
    )
    child.expect_exact("sending")  # the bar, drawn on the terminal while the burst runs
    child.expect_exact("30/30")
    child.expect_exact("concurrent: ")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert len([d for d in receiver.received if d.type == "alert.firing"]) == 30
