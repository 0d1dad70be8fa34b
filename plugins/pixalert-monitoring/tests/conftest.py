"""Shared fixtures: an isolated environment, a manager with a recording channel, fixtures."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pixalert.testing import FakeClock, RecordingChannel, make_manager
from pixalert_monitoring import MonitoringBridge, create_app
from pixalert_monitoring.testing import running_server

#: The copy of the real Alertmanager captures kept beside the tests.
FIXTURES = Path(__file__).parent / "fixtures" / "alertmanager"

#: Every captured webhook body (not the index).
FIXTURE_NAMES = sorted(p.stem for p in FIXTURES.glob("*.json") if p.name != "captures_index.json")

#: Route every priority to every configured channel, so the recorder sees all.
ROUTE_ALL = {"routing": {p: ["*"] for p in ("low", "medium", "high", "critical")}}


class Captures:
    """Access to the captured Alertmanager bodies (the ``am`` fixture)."""

    path = FIXTURES
    names = FIXTURE_NAMES

    @staticmethod
    def json(name: str) -> Any:
        """A captured webhook body, parsed."""
        return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))

    @staticmethod
    def raw(name: str) -> bytes:
        """A captured webhook body, byte for byte as Alertmanager sent it."""
        return (FIXTURES / "raw" / f"{name}.body").read_bytes()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test taking ``fixture_name`` runs once per captured body."""
    if "fixture_name" in metafunc.fixturenames:
        metafunc.parametrize("fixture_name", FIXTURE_NAMES)


@pytest.fixture
def am() -> type[Captures]:
    """The captured Alertmanager bodies."""
    return Captures


@pytest.fixture(autouse=True)
def _isolated_environment(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """No test reads the developer's config or writes to their history."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("PIXALERT_HISTORY", f"sqlite:///{home}/history.db")
    for name in (
        "PIXALERT_CONFIG",
        "PIXALERT_RECEIVER_TOKEN",
        "PIXALERT_MONITORING_CONFIG",
        "PIXALERT_STATE",
        "SLACK_WEBHOOK_URL",
        "EMAIL_USER",
        "EMAIL_PASSWORD",
        "PAGERDUTY_INTEGRATION_KEY",
        "WEBHOOK_URLS",
        "EMAIL_RECIPIENTS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))
    monkeypatch.chdir(home)
    yield


@pytest.fixture
def clock() -> FakeClock:
    """Time that moves only when told."""
    return FakeClock()


@pytest.fixture
def recorder() -> RecordingChannel:
    """The sink every alert is routed to."""
    return RecordingChannel("recording")


@pytest.fixture
async def manager(recorder: RecordingChannel, clock: FakeClock) -> AsyncIterator[Any]:
    """A manager with the recording channel, in-memory stores and the fake clock."""
    m = make_manager([recorder], clock=clock, config=ROUTE_ALL)
    try:
        yield m
    finally:
        await m.aclose()


@pytest.fixture
async def bridge(manager: Any) -> AsyncIterator[MonitoringBridge]:
    """A bridge on the test manager."""
    b = MonitoringBridge(manager)
    try:
        yield b
    finally:
        await b.aclose()


class Receiver:
    """A receiver running on a real uvicorn on 127.0.0.1, and a client for it."""

    def __init__(self, base_url: str, client: httpx.AsyncClient, app: Any) -> None:
        self.base_url = base_url
        self.client = client
        self.app = app

    @property
    def url(self) -> str:
        """The webhook URL."""
        return f"{self.base_url}/webhook/alerts"

    async def post_json(self, body: Any, **kwargs: Any) -> httpx.Response:
        """POST ``body`` as JSON to the webhook."""
        return await self.client.post(self.url, json=body, **kwargs)

    async def post_raw(self, raw: bytes, **kwargs: Any) -> httpx.Response:
        """POST ``raw`` bytes with Alertmanager's exact headers (plus ``headers``)."""
        headers = {"Content-Type": "application/json", "User-Agent": "Alertmanager/0.25.0"}
        headers.update(kwargs.pop("headers", {}))
        return await self.client.post(self.url, content=raw, headers=headers, **kwargs)


@pytest.fixture
def receiver_factory(manager: Any) -> Any:
    """Start receivers with given options: ``async with receiver_factory(token=...) as r``."""
    import contextlib

    @contextlib.asynccontextmanager
    async def start(**options: Any) -> AsyncIterator[Receiver]:
        app = create_app(options.pop("manager", manager), **options)
        async with running_server(app) as server:
            host, port = server.bound
            base = f"http://{host}:{port}"
            async with httpx.AsyncClient(timeout=10) as client:
                yield Receiver(base, client, app)

    return start


@pytest.fixture
async def receiver(receiver_factory: Any) -> AsyncIterator[Receiver]:
    """A receiver without a token."""
    async with receiver_factory() as r:
        yield r
