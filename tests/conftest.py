"""Shared fixtures of the top-level tests.

``isolated_environment``: no test reads the developer's config or writes to
their history (a module opts in with ``pytestmark``). ``services``: an event
loop in a background thread serving local test servers while a synchronous
command runs.

``sinks``: the four channel plugins' public test servers (SMTP, Slack,
PagerDuty, webhook) running on 127.0.0.1, and a clean environment for a
subprocess that points the seed's variables (``EMAIL_*``, ``SMTP_*``,
``SLACK_WEBHOOK_URL``, ``PAGERDUTY_INTEGRATION_KEY``, ``WEBHOOK_URLS``) at them,
with the history in ``tmp_path``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import attrs
import pytest

EMAIL_USER = "alerts@pixelated-ai.example"
EMAIL_PASSWORD = "app-specific-password"
RECIPIENTS = ("admin@company.example", "ops@company.example")


@pytest.fixture
def isolated_environment(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """A history, config and state of the test's own; none of the seed's variables set."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("PIXALERT_HISTORY", f"sqlite:///{home}/history.db")
    monkeypatch.delenv("PIXALERT_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))
    for name in (
        "SLACK_WEBHOOK_URL",
        "SLACK_TOKEN",
        "EMAIL_USER",
        "EMAIL_PASSWORD",
        "PAGERDUTY_INTEGRATION_KEY",
        "WEBHOOK_URLS",
        "EMAIL_RECIPIENTS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(home)
    yield


class ServiceLoop:
    """An event loop in a background thread that serves local test servers
    while a synchronous command (the CLI, a pseudo-terminal) runs."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run ``coro`` on the service loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def services() -> Iterator[ServiceLoop]:
    """A :class:`ServiceLoop` shared by a module's tests."""
    service_loop = ServiceLoop()
    yield service_loop
    service_loop.close()


@attrs.frozen
class Completed:
    """A finished subprocess."""

    returncode: int
    stdout: str
    stderr: str


async def run_python(
    args: Sequence[str], *, env: dict[str, str], cwd: Path, timeout: float = 120
) -> Completed:
    """Run ``python args...`` without blocking the event loop the sinks serve on.

    ``timeout`` only guards against a hang; it is not an assertion on speed.
    """
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        env=env,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except (asyncio.TimeoutError, TimeoutError):
        proc.kill()
        out, err = await proc.communicate()
        raise AssertionError(
            f"python {' '.join(args)} did not finish in {timeout:g}s\n{err.decode()[-3000:]}"
        ) from None
    assert proc.returncode is not None
    return Completed(proc.returncode, out.decode("utf-8"), err.decode("utf-8"))


@attrs.define
class Sinks:
    """The running test servers and the environment that targets them."""

    smtp: Any
    slack: Any
    pagerduty: Any
    webhook: Any
    env: dict[str, str]
    cwd: Path

    recipients: tuple[str, ...] = RECIPIENTS

    async def run(self, *args: str) -> Completed:
        """``python args...`` with :attr:`env`, in :attr:`cwd`."""
        return await run_python(args, env=self.env, cwd=self.cwd)

    async def run_with(self, env: dict[str, str], *args: str, cwd: Path | None = None) -> Completed:
        """``python args...`` with another environment (and working directory)."""
        return await run_python(args, env=env, cwd=cwd or self.cwd)

    def lines(self) -> dict[str, list[str]]:
        """One line per message each sink accepted."""
        return {
            "email": self.smtp.lines(),
            "slack": self.slack.lines(),
            "pagerduty": self.pagerduty.lines(),
            "webhook": self.webhook.lines(),
        }


@pytest.fixture
async def sinks(tmp_path: Path) -> AsyncIterator[Sinks]:
    """Every channel's local sink, and a subprocess environment aimed at them."""
    email_testing = pytest.importorskip("pixalert_email.testing")
    slack_testing = pytest.importorskip("pixalert_slack.testing")
    pagerduty_testing = pytest.importorskip("pixalert_pagerduty.testing")
    webhook_testing = pytest.importorskip("pixalert_webhook.testing")
    async with AsyncExitStack() as stack:
        smtp = email_testing.SMTPTestServer(
            username=EMAIL_USER, password=EMAIL_PASSWORD, recipients=RECIPIENTS, sender=EMAIL_USER
        )
        slack = slack_testing.SlackServer()
        pagerduty = pagerduty_testing.PagerDutyServer()
        webhook = webhook_testing.WebhookReceiver()
        for server in (smtp, slack, pagerduty, webhook):
            await server.start()
            stack.push_async_callback(server.stop)
        cwd = tmp_path / "app"
        home = tmp_path / "home"
        cwd.mkdir()
        home.mkdir()
        # Where PagerDuty lives has no variable in the seed: the seed's flat
        # notification_config.json says it (the variables fill in the rest).
        (cwd / "notification_config.json").write_text(
            json.dumps({"pagerduty_events_url": pagerduty.events_url}), encoding="utf-8"
        )
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_STATE_HOME": str(home / ".local" / "state"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "LANG": "C.UTF-8",
            "PYTHONIOENCODING": "utf-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PIXALERT_HISTORY": f"sqlite:///{tmp_path / 'history.db'}",
            # The seed's variables.
            "EMAIL_USER": EMAIL_USER,
            "EMAIL_PASSWORD": EMAIL_PASSWORD,
            "SMTP_SERVER": "127.0.0.1",
            "SMTP_PORT": str(smtp.port),
            "EMAIL_RECIPIENTS": ",".join(RECIPIENTS),
            "SLACK_WEBHOOK_URL": slack.webhook_url,
            "SLACK_CHANNEL": "#pixelated-ai-alerts",
            "PAGERDUTY_INTEGRATION_KEY": pagerduty.routing_key,
            "WEBHOOK_URLS": f"{webhook.url_for('/hook1')},{webhook.url_for('/hook2')}",
            # The SMTP sink's certificate comes from its own throwaway CA.
            "SSL_CERT_FILE": str(smtp.ca_file),
        }
        yield Sinks(smtp, slack, pagerduty, webhook, env, cwd)
