"""A real ``pixalert serve`` with real channels, for the browser tests and the screenshots.

:class:`Stage` starts the Slack and webhook plugins' test servers on 127.0.0.1
(in a background event loop), writes a ``pixalert.toml`` whose channels
point at them (plus ``pager``, a webhook whose port refuses connections, so
its deliveries wait for their next attempt), runs ``pixalert serve`` as a
subprocess on a free port and waits for its "receiving alerts" line.
Alerts go in through ``POST /webhook/alerts``, as Alertmanager or any client
sends them.

:func:`find_chromium` finds Debian's Chromium (or ``$PIXALERT_CHROMIUM``),
and :func:`launch_browser` starts it headless through Playwright with the
flags this machine needs and an empty profile.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

#: The Chromium flags this machine needs (no sandbox for root, no network beyond loopback).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

#: The seed's channel variables, which would add channels to the stage's config.
_SEED_VARIABLES = (
    "EMAIL_USER",
    "EMAIL_PASSWORD",
    "EMAIL_RECIPIENTS",
    "SMTP_SERVER",
    "SMTP_PORT",
    "SLACK_WEBHOOK_URL",
    "SLACK_TOKEN",
    "SLACK_CHANNEL",
    "PAGERDUTY_INTEGRATION_KEY",
    "PAGERDUTY_API_TOKEN",
    "WEBHOOK_URLS",
)

_READY = re.compile(r"receiving alerts on (http://\S+?)/webhook/alerts")


def find_chromium() -> str | None:
    """The Chromium executable: ``$PIXALERT_CHROMIUM``, else Debian's ``chromium``."""
    given = os.environ.get("PIXALERT_CHROMIUM")
    if given:
        return given if os.access(given, os.X_OK) else None
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


@contextmanager
def launch_browser(executable: str, profile: Path) -> Iterator[Any]:
    """A headless Chromium context (Playwright, sync API) with an empty ``profile`` folder."""
    from playwright.sync_api import sync_playwright

    profile.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=executable,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


class _Loop:
    """An event loop in a thread, serving the channels' test servers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class Stage:
    """``pixalert serve`` on a free port with Slack, webhook and a refusing ``pager``."""

    def __init__(
        self, workdir: Path, *, token: str | None = None, extra_env: dict[str, str] | None = None
    ) -> None:
        self.workdir = workdir
        self.token = token
        self.extra_env = dict(extra_env or {})
        self.base_url = ""
        self.proc: subprocess.Popen[str] | None = None
        self.output: list[str] = []
        self._loop: _Loop | None = None
        self._servers: list[Any] = []

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> Stage:
        """Start the test servers and ``pixalert serve``; return once it listens."""
        from pixalert_slack.testing import SlackServer
        from pixalert_webhook.testing import WebhookReceiver

        self.workdir.mkdir(parents=True, exist_ok=True)
        self._loop = _Loop()
        self.slack = SlackServer()
        self.webhook = WebhookReceiver()
        for server in (self.slack, self.webhook):
            self._loop.run(server.start())
            self._servers.append(server)
        config = self.workdir / "pixalert.toml"
        config.write_text(
            "\n".join(
                [
                    f'history = "sqlite:///{self.workdir / "history.db"}"',
                    f'state = "sqlite:///{self.workdir / "history.db"}"',
                    "cooldown_minutes = 0",
                    "",
                    "[routing]",
                    'low = ["slack"]',
                    'medium = ["slack", "webhook"]',
                    'high = ["slack", "webhook", "pager"]',
                    'critical = ["*"]',
                    "",
                    "[delivery]",
                    "max_attempts = 1",
                    'retry_schedule = ["1h"]',
                    'recover_interval = "1s"',
                    "",
                    "[channels.slack]",
                    'type = "slack"',
                    f'webhook_url = "{self.slack.webhook_url}"',
                    "",
                    "[channels.webhook]",
                    'type = "webhook"',
                    f'urls = ["{self.webhook.url}"]',
                    "",
                    "[channels.pager]",
                    'type = "webhook"',
                    f'urls = ["{self.webhook.refused_url()}"]',
                    "",
                ]
            ),
            encoding="utf-8",
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIXALERT_")}
        for name in _SEED_VARIABLES:  # the developer's own channels stay out of it
            env.pop(name, None)
        env.update(
            XDG_CONFIG_HOME=str(self.workdir / "config"),
            XDG_STATE_HOME=str(self.workdir / "state"),
            PYTHONUNBUFFERED="1",
            **self.extra_env,
        )
        if self.token:
            env["PIXALERT_RECEIVER_TOKEN"] = self.token
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pixalert", "--config", str(config), "serve", "--port", "0"],
            env=env,
            cwd=self.workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            match = _READY.search(line)
            if match:
                self.base_url = match.group(1)
                break
        else:
            self.proc.wait(30)
            raise RuntimeError("pixalert serve did not start:\n" + "".join(self.output))
        threading.Thread(target=self._drain, daemon=True).start()
        return self

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    def stop(self) -> int | None:
        """Stop ``pixalert serve`` (SIGTERM) and the test servers; its exit code."""
        code = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        elif self.proc is not None:
            code = self.proc.returncode
        if self._loop is not None:
            for server in self._servers:
                self._loop.run(server.stop())
            self._loop.close()
            self._loop = None
        return code

    def __enter__(self) -> Stage:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- talking to it -----------------------------------------------------------

    def headers(self) -> dict[str, str]:
        """The bearer token header, when the stage has a token."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def send(self, body: Any) -> dict[str, Any]:
        """``POST /webhook/alerts`` with ``body``; the receiver's JSON answer."""
        response = httpx.post(
            f"{self.base_url}/webhook/alerts", json=body, headers=self.headers(), timeout=30
        )
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    def alert(self, title: str, message: str = "", priority: str = "medium", **fields: Any) -> str:
        """Send one plain alert; its id."""
        answer = self.send({"title": title, "message": message, "priority": priority, **fields})
        return str(answer["alerts"][0]["id"])

    def wait_settled(self, timeout: float = 60) -> None:
        """Return once every delivery but ``pager``'s (which always waits) is final.

        Slack's test server paces messages as Slack does, so its deliveries can
        take a few seconds. ``timeout`` only guards against a hang.
        """
        import time

        deadline = time.monotonic() + timeout
        while True:
            waiting = [
                f"{alert['title']} on {name}"
                for alert in self.history()
                for name, result in alert["results"].items()
                if name != "pager" and result["status"] in ("pending", "retrying")
            ]
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"deliveries still waiting after {timeout:g}s: {waiting}")
            time.sleep(0.1)

    def history(self) -> list[dict[str, Any]]:
        """``GET /api/alerts``."""
        response = httpx.get(f"{self.base_url}/api/alerts", headers=self.headers(), timeout=30)
        response.raise_for_status()
        return response.json()["alerts"]  # type: ignore[no-any-return]


def alertmanager_body(group: str, alerts: list[dict[str, Any]], status: str = "firing") -> Any:
    """An Alertmanager webhook (version 4) body for ``alerts`` (labels and annotations)."""
    common = {"alertname": group}
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{group}"}}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "pixalert",
        "groupLabels": common,
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": [
            {
                "status": status,
                "labels": {"alertname": group, **item.get("labels", {})},
                "annotations": item.get("annotations", {}),
                "startsAt": item.get("startsAt", "2026-01-01T00:00:00Z"),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.example:9090/graph",
                "fingerprint": item.get("fingerprint", f"{abs(hash(json.dumps(item))):016x}"),
            }
            for item in alerts
        ],
    }


def sample_data(stage: Stage) -> dict[str, str]:
    """A small, realistic history: Alertmanager groups, plain alerts, a resolve, a silence."""
    ids: dict[str, str] = {}
    stage.send(
        alertmanager_body(
            "HighLatency",
            [
                {
                    "labels": {"severity": "critical", "service": "checkout", "instance": "web-1"},
                    "annotations": {"summary": "p99 latency above 2 s on web-1"},
                    "fingerprint": "a1",
                },
                {
                    "labels": {"severity": "critical", "service": "checkout", "instance": "web-2"},
                    "annotations": {"summary": "p99 latency above 2 s on web-2"},
                    "fingerprint": "a2",
                },
            ],
        )
    )
    stage.send(
        alertmanager_body(
            "DiskFilling",
            [
                {
                    "labels": {"severity": "warning", "instance": "db-1"},
                    "annotations": {"summary": "/var/lib/postgresql is 91% full"},
                    "fingerprint": "d1",
                }
            ],
        )
    )
    ids["memory"] = stage.alert(
        "High Memory Usage Detected",
        "Memory usage has exceeded 85% threshold on server-01",
        "medium",
        metadata={"server": "server-01", "memory_usage": "87%"},
    )
    ids["queue"] = stage.alert(
        "Processing queue backing up", "queue_size 1,240 > 1,000", "low", source="worker"
    )
    ids["cert"] = stage.alert(
        "TLS certificate expires in 5 days", "api.example.com", "high", source="certwatch"
    )
    stage.alert("Nightly backup finished late", "took 3h10m", "low", source="backup")
    stage.send(
        {
            "title": "Nightly backup finished late",
            "message": "back to normal",
            "priority": "low",
            "source": "backup",
            "status": "resolved",
        }
    )
    return ids


def new_workdir(prefix: str = "pixalert-stage-") -> Path:
    """A fresh temporary folder."""
    return Path(tempfile.mkdtemp(prefix=prefix))
