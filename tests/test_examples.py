"""The seed's usage examples in docs/examples/ work as written against pixalert.

Each example runs as a real program (a subprocess with a clean environment)
whose seed variables point at the channel plugins' local test servers; the
test checks what the program printed and what each server received.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest

Sinks = Any  # tests/conftest.py: the `sinks` fixture
Completed = Any  # tests/conftest.py: what Sinks.run returns

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "docs" / "examples"
ALERTMANAGER_FIXTURES = (
    ROOT / "plugins" / "pixalert-monitoring" / "tests" / "fixtures" / "alertmanager" / "raw"
)

# Signs that a program "worked" but left something broken behind.
_BAD_STDERR = (
    "Traceback",
    "Task was destroyed",
    "never awaited",
    "Unclosed",
    "Event loop is closed",
    "ResourceWarning",
)


def assert_ok(result: Completed) -> None:
    """Exit status 0 and nothing alarming on stderr."""
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stderr[-4000:]}"
    bad = [s for s in _BAD_STDERR if s in result.stderr]
    assert not bad, f"stderr shows {bad}:\n{result.stderr[-4000:]}"


async def run_example(name: str, sinks: Sinks, *args: str) -> Completed:
    return await sinks.run(str(EXAMPLES / name), *args)


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


async def history(sinks: Sinks) -> list[dict[str, object]]:
    """What ``pixalert history --json`` shows with the same environment."""
    result = await sinks.run("-m", "pixalert", "history", "--json")
    assert_ok(result)
    return json.loads(result.stdout)  # type: ignore[no-any-return]


async def test_basic_alert(sinks: Sinks) -> None:
    result = await run_example("basic_alert.py", sinks)
    assert_ok(result)
    # MEDIUM goes to email and Slack (the seed's routing table), in that order.
    assert lines(result.stdout) == ["email: ✅", "slack: ✅"]
    (mail,) = sinks.smtp.received
    assert sorted(mail.rcpt_tos) == sorted(sinks.recipients)
    assert "High Memory Usage Detected" in mail.subject
    assert "server-01" in mail.data.decode("utf-8", "replace")
    (message,) = sinks.slack.received
    assert "High Memory Usage Detected" in json.dumps(message.payload)
    assert sinks.pagerduty.lines() == []
    assert sinks.webhook.lines() == []
    (entry,) = await history(sinks)
    assert entry["title"] == "High Memory Usage Detected"
    assert entry["metadata"] == {"server": "server-01", "memory_usage": "87%", "threshold": "85%"}
    assert {c: r["status"] for c, r in entry["results"].items()} == {  # type: ignore[attr-defined]
        "email": "sent",
        "slack": "sent",
    }


async def test_custom_channel_selection(sinks: Sinks) -> None:
    result = await run_example("custom_channels.py", sinks)
    assert_ok(result)
    assert lines(result.stdout) == ["email: ✅", "slack: ✅"]
    # HIGH would page too, but the explicit channels win.
    assert len(sinks.smtp.received) == 1
    assert len(sinks.slack.received) == 1
    assert sinks.pagerduty.lines() == []
    assert sinks.webhook.lines() == []


MONITOR_ONCE = """
import runpy, sys
from pixalert_monitoring import MonitoringBridge

original = MonitoringBridge.start_monitoring_loop

async def run_once(self, check_interval=60, **kwargs):
    # Stop the loop after its first check: no timer, no signal.
    def on_check(sent):
        print(f"loop checked {len(self.alert_rules)} rules every {check_interval}s, "
              f"sent {len(sent)}")
        self.stop()
    await original(self, check_interval, on_check=on_check, **kwargs)

MonitoringBridge.start_monitoring_loop = run_once
runpy.run_path(sys.argv[1], run_name="__main__")
"""


async def test_monitoring_integration(sinks: Sinks) -> None:
    result = await sinks.run("-c", MONITOR_ONCE, str(EXAMPLES / "monitoring_integration.py"))
    assert_ok(result)
    # The eight default rules; CPU 45.2 % and memory 67.8 % breach none of them.
    assert lines(result.stdout) == ["loop checked 8 rules every 60s, sent 0"]
    assert sinks.lines() == {"email": [], "slack": [], "pagerduty": [], "webhook": []}


async def test_custom_alert_rule(sinks: Sinks) -> None:
    result = await run_example("custom_alert_rule.py", sinks)
    assert_ok(result)
    shown = result.stdout
    for part in ("custom_metric_alert", "custom_metric", "100", ">", "HIGH", "20"):
        assert part in shown, (part, shown)


async def test_priorities_and_channels(sinks: Sinks) -> None:
    result = await run_example("priorities_and_channels.py", sinks)
    assert_ok(result)
    assert lines(result.stdout) == [
        "[<Priority.LOW: 1>, <Priority.MEDIUM: 2>, <Priority.HIGH: 3>, <Priority.CRITICAL: 4>] "
        "['email', 'slack', 'pagerduty', 'webhook']"
    ]


FLASK_CLIENT = """
import importlib.util, json, sys

spec = importlib.util.spec_from_file_location("app_under_test", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
client = module.app.test_client()
for request in sys.argv[2:]:
    url, _, path = request.partition("=")
    body = open(path, "rb").read() if path else b"{}"
    response = client.post(url, data=body, content_type="application/json")
    print(json.dumps({"status": response.status_code, "body": response.get_json()}))
"""


async def test_flask_endpoint(sinks: Sinks, tmp_path: Path) -> None:
    pytest.importorskip("flask")
    pytest.importorskip("pixalert_monitoring")
    critical = ALERTMANAGER_FIXTURES / "critical_route.body"
    if not critical.is_file():
        pytest.skip(f"no Alertmanager capture at {critical}")
    plain = tmp_path / "plain.json"
    plain.write_text(
        json.dumps({"title": "Queue backlog", "message": "5200 jobs waiting", "priority": "high"}),
        encoding="utf-8",
    )
    # The Alertmanager body twice: the second is a redelivery and is taken once.
    result = await sinks.run(
        "-c",
        FLASK_CLIENT,
        str(EXAMPLES / "flask_endpoint.py"),
        f"/webhook/alerts={critical}",
        f"/webhook/alerts={plain}",
        f"/webhook/alerts={critical}",
    )
    assert_ok(result)
    answers = [json.loads(line) for line in lines(result.stdout)]
    assert [a["status"] for a in answers] == [200, 200, 200]
    assert all(a["body"]["status"] == "processed" for a in answers)
    first, second, again = (a["body"]["results"] for a in answers)

    # The real Alertmanager capture: one critical alert, "web-1 is down".
    assert first["format"] == "alertmanager"
    (alert,) = first["alerts"]
    assert alert["priority"] == "CRITICAL"
    assert alert["results"] == {
        "email": "sent",
        "slack": "sent",
        "pagerduty": "sent",
        "webhook": "sent",
    }
    # The plain body, priority high: email, Slack, PagerDuty.
    (alert,) = second["alerts"]
    assert alert["results"] == {"email": "sent", "slack": "sent", "pagerduty": "sent"}
    # The redelivery is recognised and not sent again.
    assert again["duplicates"] == 1 and again["accepted"] == 0

    assert len(sinks.smtp.received) == 2
    assert len(sinks.slack.received) == 2
    assert [i.summary.split(":")[0] for i in sinks.pagerduty.incidents] == [
        "web-1 is down",
        "Queue backlog",
    ]
    # WEBHOOK_URLS has two URLs: CRITICAL reaches both.
    assert sorted(d.path for d in sinks.webhook.received) == ["/hook1", "/hook2"]


async def test_health_checks(sinks: Sinks) -> None:
    assert_ok(await run_example("basic_alert.py", sinks))  # something in the history
    result = await run_example("health_checks.py", sinks)
    assert_ok(result)
    text, _, tail = result.stdout.rpartition("Alerts in last 24h: ")
    health = json.loads(text)
    assert isinstance(health, dict) and health
    assert tail.strip() == "1"


async def test_quick_reference(sinks: Sinks) -> None:
    result = await run_example("quick_reference.py", sinks)
    assert_ok(result)
    assert lines(result.stdout)
    # HIGH: email, Slack and PagerDuty.
    assert len(sinks.smtp.received) == 1
    assert len(sinks.slack.received) == 1
    assert [i.summary for i in sinks.pagerduty.incidents] == ["Title: Message"]
    assert sinks.webhook.lines() == []


async def test_flask_sync(sinks: Sinks, tmp_path: Path) -> None:
    """The synchronous path: many requests, one manager, no event loop in the app."""
    pytest.importorskip("flask")
    critical = ALERTMANAGER_FIXTURES / "critical_route.body"
    if not critical.is_file():
        pytest.skip(f"no Alertmanager capture at {critical}")
    plain = tmp_path / "plain.json"
    plain.write_text(
        json.dumps({"title": "Queue backlog", "message": "5200 jobs waiting", "priority": "high"}),
        encoding="utf-8",
    )
    result = await sinks.run(
        "-c",
        FLASK_CLIENT,
        str(EXAMPLES / "flask_sync.py"),
        "/orders/1001/failed",
        f"/webhook/alerts={critical}",
        f"/webhook/alerts={plain}",
        f"/webhook/alerts={critical}",
        "/orders/1002/failed",
    )
    assert_ok(result)
    answers = [json.loads(line) for line in lines(result.stdout)]
    assert [a["status"] for a in answers] == [200] * 5
    paged = {"email": "sent", "slack": "sent", "pagerduty": "sent"}
    assert answers[0]["body"] == paged
    (alert,) = answers[1]["body"]["results"]["alerts"]
    assert alert["results"] == {**paged, "webhook": "sent"}
    (alert,) = answers[2]["body"]["results"]["alerts"]
    assert alert["results"] == paged
    assert answers[3]["body"]["results"]["duplicates"] == 1
    # Same title from the same source: the same incident, inside its cooldown.
    assert answers[4]["body"] == dict.fromkeys(paged, "suppressed")

    assert len(sinks.smtp.received) == 3
    assert len(sinks.slack.received) == 3
    assert [i.summary.split(":")[0] for i in sinks.pagerduty.incidents] == [
        "Payment failed",
        "web-1 is down",
        "Queue backlog",
    ]
    assert sorted(d.path for d in sinks.webhook.received) == ["/hook1", "/hook2"]


async def test_plugin_guide_example(sinks: Sinks, tmp_path: Path) -> None:
    """The plugin guide's example passes its own tests, builds, installs, and is found."""
    example = EXAMPLES / "pixalert-ntfy"
    env = dict(sinks.env, PYTHONPATH=str(example / "src"))
    tests = await sinks.run_with(
        env, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(example / "tests"), cwd=ROOT
    )
    assert tests.returncode == 0, tests.stdout[-4000:]
    assert "13 passed" in tests.stdout  # the contract suite's 11 checks and the example's 2

    # Published: a wheel, installed where nothing else is; pixalert finds its entry point.
    dist, site = tmp_path / "dist", tmp_path / "site"
    built = await sinks.run_with(
        sinks.env,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "-q",
        "-w",
        str(dist),
        str(example),
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = dist.glob("pixalert_ntfy-0.1.0-*.whl")
    installed = await sinks.run_with(
        sinks.env,
        "-m",
        "pip",
        "install",
        "--no-deps",
        "--no-index",
        "-q",
        "--target",
        str(site),
        str(wheel),
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    env = dict(sinks.env, PYTHONPATH=str(site))
    listed = await sinks.run_with(env, "-m", "pixalert", "plugins", "--json")
    assert_ok(listed)
    (ntfy,) = [p for p in json.loads(listed.stdout)["plugins"] if p["name"] == "ntfy"]
    assert ntfy["distribution"] == "pixalert-ntfy" and ntfy["version"] == "0.1.0"
    assert ntfy["channels"] == ["ntfy"]
    assert sorted(ntfy["hooks"]) == ["pixalert_channels", "pixalert_demo_sinks"]

    # pixalert demo starts its stand-in too; CRITICAL ("every channel") reaches it.
    demo = await sinks.run_with(env, "-m", "pixalert", "demo", "--json")
    assert_ok(demo)
    outcome = json.loads(demo.stdout)  # --json: nothing but JSON on stdout
    assert [line.split(": ", 1)[1] for line in outcome["sinks"]["ntfy"]] == [
        "[CRITICAL] Database primary unreachable",
        "RESOLVED [CRITICAL] Database primary unreachable",
    ]


async def test_cooldown_test_example() -> None:
    """The test shown on the plugin testing page passes."""
    spec = importlib.util.spec_from_file_location(
        "cooldown_test_example", EXAMPLES / "cooldown_test_example.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    await module.test_a_repeat_is_held_back_by_the_cooldown()


# What a page must not show: notes for the people who keep the examples working.
_MAINTAINER_NOTES = ("# fmt:", "# ruff:", "noqa", "tests/test_examples.py", "type: ignore")


def _included(page: Path) -> list[str]:
    """The text each ``--8<-- "examples/..."`` line of ``page`` includes (its section, if named)."""
    texts = []
    for match in re.finditer(r'^--8<-- "(examples/[^":]+)(?::([\w-]+))?"$', page.read_text(), re.M):
        text = (ROOT / "docs" / match.group(1)).read_text(encoding="utf-8")
        if match.group(2):
            start = f"--8<-- [start:{match.group(2)}]"
            end = f"--8<-- [end:{match.group(2)}]"
            text = text.split(start, 1)[1].split(end, 1)[0]
        texts.append(text)
    return texts


@pytest.mark.parametrize("page", ["getting-started.md", "embedding.md"])
def test_pages_show_the_examples_without_maintainer_notes(page: str) -> None:
    shown = _included(ROOT / "docs" / page)
    assert shown, f"{page} includes no example"
    for text in shown:
        notes = [line for line in text.splitlines() if any(n in line for n in _MAINTAINER_NOTES)]
        assert notes == [], f"{page} would show: {notes}"
