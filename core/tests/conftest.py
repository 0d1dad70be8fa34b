"""Shared fixtures for the core's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pixalert
import pixalert.channels
import pytest
from pixalert import _plugins
from pixalert.testing import FakeClock, recording_spec


@pytest.fixture(autouse=True)
def _isolated_environment(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """No test reads the developer's config or writes to their history."""
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


@pytest.fixture
def clock() -> FakeClock:
    """A controllable clock."""
    return FakeClock()


class RecordingPlugin:
    """A plugin providing the ``recording`` channel type (and ``slack``-named copies)."""

    @pixalert.hookimpl
    def pixalert_channels(self) -> list[pixalert.channels.ChannelSpec]:
        return [recording_spec("recording")]


@pytest.fixture
def recording_plugin() -> RecordingPlugin:
    """A plugin object to pass to ``make_manager(plugins=[...])``."""
    return RecordingPlugin()


@pytest.fixture
def cli_plugins(monkeypatch: pytest.MonkeyPatch) -> _plugins.PluginManager:
    """Make the CLI see only the recording plugin."""
    pm = _plugins.get_plugin_manager(entrypoints=False, plugins=[RecordingPlugin()])
    monkeypatch.setattr(_plugins, "_default", pm)
    return pm


@pytest.fixture
async def serve_app() -> AsyncIterator[Callable[[Any], Awaitable[str]]]:
    """``await serve_app(aiohttp_app)`` serves it on 127.0.0.1 and returns its base URL."""
    from aiohttp import web

    runners: list[web.AppRunner] = []

    async def serve(app: web.Application) -> str:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}"

    yield serve
    for runner in runners:
        await runner.cleanup()
