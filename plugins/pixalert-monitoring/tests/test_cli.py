"""``pixalert serve`` and ``pixalert monitor`` as real subprocesses, and a light import."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

TOKEN = "cli-test-token-0123456789"


def pixalert(*args: str) -> list[str]:
    """The command line running ``pixalert`` with this interpreter."""
    return [sys.executable, "-m", "pixalert", *args]


def finish(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``pixalert args...`` to its end (the timeout only guards against a hang)."""
    return subprocess.run(
        pixalert(*args), env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A subprocess environment with its own history and no developer config."""
    out = {k: v for k, v in os.environ.items() if not k.startswith("PIXALERT_")}
    out.update(
        PIXALERT_HISTORY=f"sqlite:///{tmp_path}/history.db",
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_STATE_HOME=str(tmp_path / "state"),
        PYTHONUNBUFFERED="1",
    )
    return out


class Process:
    """A running command whose stdout is read line by line."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            args, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines: list[str] = []

    def wait_for(self, pattern: str) -> re.Match[str]:
        """Read stdout until a line matches ``pattern`` (fails if the process ends first)."""
        assert self.proc.stdout is not None
        regex = re.compile(pattern)
        for line in self.proc.stdout:
            self.lines.append(line)
            match = regex.search(line)
            if match:
                return match
        self.proc.wait(timeout=30)
        stderr = self.proc.stderr.read() if self.proc.stderr else ""
        raise AssertionError(
            f"process ended ({self.proc.returncode}) before {pattern!r}:\n"
            f"{''.join(self.lines)}\n{stderr}"
        )

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str, str]:
        """Send ``sig``; return the exit code and the rest of stdout and stderr."""
        self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=60)
        return self.proc.returncode, "".join(self.lines) + out, err


@pytest.fixture
def run(env: dict[str, str], tmp_path: Path) -> Iterator[Any]:
    """Start commands; whatever is still running at the end is killed."""
    started: list[Process] = []

    def start(*args: str, extra_env: dict[str, str] | None = None) -> Process:
        process = Process(pixalert(*args), {**env, **(extra_env or {})}, tmp_path)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.proc.poll() is None:
            process.proc.kill()
            process.proc.communicate()


def test_serve_subprocess_receives_and_stops_on_sigterm(run: Any, am: Any) -> None:
    server = run("serve", "--port", "0", extra_env={"PIXALERT_RECEIVER_TOKEN": TOKEN})
    match = server.wait_for(
        r"receiving alerts on (http://127\.0\.0\.1:\d+)/webhook/alerts "
        r"\(bearer token required\)"
    )
    base = match.group(1)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    with httpx.Client(timeout=10) as client:
        assert (
            client.post(
                f"{base}/webhook/alerts",
                content=am.raw("firing_group"),
                headers={"Content-Type": "application/json"},
            ).status_code
            == 401
        )
        response = client.post(
            f"{base}/webhook/alerts", content=am.raw("firing_group"), headers=headers
        )
        assert response.status_code == 200, response.text
        assert response.json()["accepted"] == 2
        again = client.post(
            f"{base}/webhook/alerts", content=am.raw("firing_group"), headers=headers
        )
        assert again.json()["duplicates"] == 2
        alerts = client.get(f"{base}/api/alerts", params={"hours": 1}, headers=headers).json()
        assert {a["key"] for a in alerts["alerts"]} == {
            "alertmanager:58eb42a7154e9687",
            "alertmanager:e3d826d0c1ca4fe4",
        }
        assert client.get(f"{base}/health").json()["status"] in ("ok", "degraded")
        assert (
            "pixalert_alerts_received_total" in client.get(f"{base}/metrics", headers=headers).text
        )
    code, out, err = server.stop(signal.SIGTERM)
    assert code == 0, err
    assert "pixalert: stopped" in out
    assert "Traceback" not in err
    assert TOKEN not in out + err


def test_serve_stops_on_ctrl_c(run: Any) -> None:
    server = run("serve", "--port", "0")
    server.wait_for(r"receiving alerts on http://127\.0\.0\.1:\d+/webhook/alerts \(no token\)")
    code, out, err = server.stop(signal.SIGINT)
    assert "pixalert: stopped" in out
    assert code == 0, err
    assert "Traceback" not in err


def test_serve_refuses_a_public_address_without_token(env: dict[str, str], tmp_path: Path) -> None:
    result = finish(env, tmp_path, "serve", "--host", "0.0.0.0", "--port", "0")
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0 without a bearer token" in result.stderr
    assert "PIXALERT_RECEIVER_TOKEN" in result.stderr
    assert "--allow-unauthenticated" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_monitoring_config_exits_2_naming_file_and_key(
    env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "monitoring.toml"
    path.write_text(
        '[[rules]]\nname = "disk"\nmetric = "d"\nthreshold = "x"\noperator = ">"\n'
        'priority = "high"\n\n[[rules]]\nname = "load"\nmetric = "l"\nthreshold = 1\n'
        'operator = "=>"\npriority = "high"\n',
        encoding="utf-8",
    )
    main = tmp_path / "pixalert.toml"
    main.write_text("[plugins.monitoring.receiver]\nmax_body = 0\n", encoding="utf-8")
    for command in ("serve", "monitor"):
        result = finish(env, tmp_path, command, "--monitoring-config", str(path))
        assert result.returncode == 2, result.stderr
        assert f"{path}: expected float, got 'x' @ rules[0].threshold" in result.stderr
        assert (
            f"{path}: expected one of >, >=, <, <=, ==, !=, got '=>' @ rules[1].operator"
            in result.stderr
        )
        assert "Traceback" not in result.stderr
        # Without a monitoring file: [plugins.monitoring] of the main config, named as such.
        result = finish(env, tmp_path, "--config", str(main), command)
        assert result.returncode == 2, result.stderr
        assert (
            f"{main}: expected a whole number >= 1, got 0 @ plugins.monitoring.receiver.max_body"
            in result.stderr
        )
        assert "Traceback" not in result.stderr


def write_monitoring(tmp_path: Path) -> Path:
    """A monitoring file with one rule that fires on any host."""
    path = tmp_path / "monitoring.toml"
    path.write_text(
        """
[monitor]
default_rules = false

[[rules]]
rule_name = "memory_in_use"
metric_name = "memory_usage_percent"
threshold = 0
operator = ">"
priority = "low"
cooldown_minutes = 60
""",
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_monitor_subprocess_alerts_and_stops_on_signal(run: Any, tmp_path: Path, sig: int) -> None:
    path = write_monitoring(tmp_path)
    monitor = run(
        "monitor", "--interval", "0.2", "--service", "box-1", "--monitoring-config", str(path)
    )
    monitor.wait_for(r"monitoring box-1 every 0\.2s with 1 rules")
    monitor.wait_for(r"pixalert: firing memory_in_use on box-1 \(value [\d.]+\)")
    code, out, err = monitor.stop(sig)
    assert code == 0, err
    assert out.rstrip().endswith("pixalert: stopped")
    assert "Traceback" not in err


def test_monitor_once_with_default_rules(env: dict[str, str], tmp_path: Path) -> None:
    result = finish(env, tmp_path, "monitor", "--once", "--service", "box-2")
    assert result.returncode == 0, result.stderr
    history = finish(env, tmp_path, "history", "--json")
    assert history.returncode == 0, history.stderr
    json.loads(history.stdout)


def test_monitor_bad_disk_path(env: dict[str, str], tmp_path: Path) -> None:
    result = finish(env, tmp_path, "monitor", "--once", "--disk", str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert "--disk" in result.stderr and "nowhere" in result.stderr


def test_commands_listed_and_plugin_import_stays_light(env: dict[str, str], tmp_path: Path) -> None:
    result = finish(env, tmp_path, "--help")
    assert result.returncode == 0
    assert re.search(r"^\s+serve\s+Receive alerts over HTTP", result.stdout, re.M)
    assert re.search(r"^\s+monitor\s+Watch this host", result.stdout, re.M)
    probe = (
        "import sys, pixalert_monitoring; "
        "heavy = [m for m in ('starlette', 'uvicorn', 'psutil', 'prometheus_client') "
        "if m in sys.modules]; print(heavy)"
    )
    light = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60
    )
    assert light.stdout.strip() == "[]", light.stderr


def test_host_sampler_records_percentages(bridge: Any) -> None:
    from pixalert_monitoring import HostSampler

    sampler = HostSampler("box", "/")
    sampler.min_cpu_window = 0.0
    sampler(bridge)
    metrics = bridge.metrics["box"]
    assert set(metrics) == {"cpu_usage_percent", "memory_usage_percent", "disk_usage_percent"}
    for sample in metrics.values():
        assert 0.0 <= sample.value <= 100.0 and sample.unit == "%"


def test_monitor_once_says_when_no_rule_fired(env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "monitoring.toml"
    path.write_text(
        """
[monitor]
default_rules = false

[[rules]]
rule_name = "impossible"
metric_name = "memory_usage_percent"
threshold = 1000
operator = ">"
priority = "low"
""",
        encoding="utf-8",
    )
    result = subprocess.run(
        pixalert("monitor", "--once", "--service", "box-3", "--monitoring-config", str(path)),
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "pixalert: checked 1 rules on box-3: none fired\n"


def test_serve_on_a_busy_port_is_one_line_and_exit_3(env: dict[str, str], tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            pixalert("serve", "--port", str(port), "--log-level", "warning"),
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 3
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr == (
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use; "
        "stop what uses it or pick another --port (or --host)\n"
    )


@pytest.mark.parametrize("command", ["serve", "monitor"])
@pytest.mark.parametrize("where", ["before", "after"])
def test_global_config_before_or_after_the_command(
    env: dict[str, str], tmp_path: Path, command: str, where: str
) -> None:
    config = tmp_path / "ops.toml"
    config.write_text("cooldown_minutes = -3\n", encoding="utf-8")
    options = ["--config", str(config)]
    args = [*options, command, "--port", "0"] if where == "before" else [command, *options]
    if command == "monitor":
        args = [a for a in args if a not in ("--port", "0")] + ["--once"]
    result = subprocess.run(
        pixalert(*args), env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stderr
    assert f"{config}: expected a number >= 0, got -3.0 @ cooldown_minutes" in result.stderr


def test_json_is_refused_by_serve(env: dict[str, str], tmp_path: Path) -> None:
    result = subprocess.run(
        pixalert("serve", "--json"), env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert "'pixalert serve' has no JSON output" in result.stderr
