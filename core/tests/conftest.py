"""Shared fixtures for the core's tests."""

from __future__ import annotations

import asyncio
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


BIG = 1024 * 1024


@pytest.fixture
async def echo_server(serve_app: Any) -> AsyncIterator[str]:
    """A loopback HTTP server for pixalert.http's tests; returns its base URL.

    /echo answers each request as JSON (method, path_qs, headers, body,
    chunked) with two Set-Cookie headers; /big answers 1 MiB; /gzip?size=N
    answers N bytes gzip-compressed; /moved redirects to /echo; /hang never
    answers (until the test ends).
    """
    import gzip

    from aiohttp import web

    release = asyncio.Event()

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response(
            {
                "method": request.method,
                "path_qs": request.path_qs,
                "headers": [[k.lower(), v] for k, v in request.headers.items()],
                "body": body.decode(),
                "chunked": "chunked" in request.headers.get("Transfer-Encoding", ""),
            },
            headers=[("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")],  # type: ignore[arg-type]
        )

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * BIG)

    async def compressed(request: web.Request) -> web.Response:
        size = int(request.query.get("size", "10"))
        return web.Response(
            body=gzip.compress(b"z" * size),
            headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"},
        )

    async def moved(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "/echo"})

    async def hang(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="late")

    app = web.Application()
    for path, handler in (
        ("/echo", echo),
        ("/big", big),
        ("/gzip", compressed),
        ("/moved", moved),
        ("/hang", hang),
    ):
        app.router.add_route("*", path, handler)
    yield await serve_app(app)
    release.set()


def header_values(echoed: dict[str, Any], name: str) -> list[str]:
    """The values of header ``name`` (lower case) in an /echo answer of ``echo_server``."""
    return [v for k, v in echoed["headers"] if k == name]


@pytest.fixture
def refused_url() -> str:
    """An http:// URL on 127.0.0.1 where nothing listens (connections are refused)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"
