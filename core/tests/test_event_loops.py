"""One manager across event loops: the seed's Flask endpoint makes a new loop per request."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading

import attrs
import pixalert
import pytest
from pixalert.channels import ChannelSpec
from pixalert.testing import make_manager


@attrs.define
class LoopConfig:
    pass


class LoopBoundChannel:
    """Like an HTTP client's pool: usable only on the loop it first ran on."""

    sent: list[str] = []

    def __init__(self, name: str, config: LoopConfig) -> None:
        self.name = name
        self.loop: asyncio.AbstractEventLoop | None = None

    async def send(self, alert: pixalert.Alert, *, previous: object = None) -> None:
        loop = asyncio.get_running_loop()
        if self.loop is not None and self.loop is not loop:
            raise RuntimeError("Event loop is closed")
        self.loop = loop
        self.sent.append(alert.title)

    async def aclose(self) -> None:
        pass


class LoopPlugin:
    @pixalert.hookimpl
    def pixalert_channels(self) -> list[ChannelSpec]:
        return [ChannelSpec("bound", LoopConfig, LoopBoundChannel)]


def test_a_new_event_loop_per_request_works(caplog: pytest.LogCaptureFixture) -> None:
    LoopBoundChannel.sent = []
    manager = make_manager(
        plugins=[LoopPlugin()],
        config={"channels": {"bound": {}}, "routing": {"low": ["bound"]}, "cooldown_minutes": 0},
    )
    for i in range(3):  # exactly what the seed's Flask endpoint does per request
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        results = loop.run_until_complete(manager.send_alert(f"request {i}", "m", "low"))
        loop.close()
        assert results["bound"].status == "sent", results
    asyncio.set_event_loop(None)
    gc.collect()
    assert LoopBoundChannel.sent == ["request 0", "request 1", "request 2"]
    history = manager.run_sync(manager.history())
    assert sorted(e["title"] for e in history) == ["request 0", "request 1", "request 2"]
    manager.close_sync()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []


async def test_using_a_manager_from_a_loop_in_another_thread_is_a_clear_error() -> None:
    manager = make_manager(plugins=[LoopPlugin()], config={"channels": {"bound": {}}})
    await manager.start()
    failure: list[BaseException] = []

    def other_thread() -> None:
        try:
            asyncio.run(manager.history())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=other_thread)
    thread.start()
    await asyncio.to_thread(thread.join)  # keeps this loop running meanwhile
    assert len(failure) == 1 and isinstance(failure[0], RuntimeError)
    assert "use one manager per event loop" in str(failure[0])
    await manager.aclose()
