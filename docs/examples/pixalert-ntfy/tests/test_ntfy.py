"""The ntfy channel keeps the channel contract, and alerts reach ntfy through pixalert."""

from __future__ import annotations

from typing import Any

import pixalert_ntfy
from pixalert import Alert
from pixalert.testing import ChannelContract, make_manager
from pixalert_ntfy.testing import NtfyServer


class TestNtfyContract(ChannelContract):
    """pixalert's conformance suite: one test per rule a channel must keep.

    The server is a ``FakeService``, so the suite makes it fail with its verbs
    and counts what it accepted: only the config is left to say.
    """

    (spec,) = pixalert_ntfy.pixalert_channels()

    def server(self) -> Any:
        return NtfyServer(token="tk_" + "a" * 29)

    def make_config(self, server: NtfyServer) -> dict[str, Any]:
        return server.config()

    def unreachable_config(self, server: NtfyServer) -> dict[str, Any]:
        return {**server.config(), "server": server.refused_url()}


async def test_a_critical_alert_reaches_ntfy() -> None:
    async with NtfyServer() as ntfy:
        manager = make_manager(
            plugins=[pixalert_ntfy], config={"channels": {"ntfy": ntfy.config()}}
        )
        async with manager:
            results = await manager.send_alert("Disk full", "/ is 97% full", "critical")
        assert results["ntfy"]
        assert ntfy.lines() == [f"{ntfy.topic}: [CRITICAL] Disk full"]
        assert ntfy.received[0]["priority"] == 5


async def test_the_preview_is_what_ntfy_receives() -> None:
    async with NtfyServer() as ntfy:
        manager = make_manager(
            plugins=[pixalert_ntfy], config={"channels": {"ntfy": ntfy.config()}}
        )
        async with manager:
            alert = Alert("Disk full", "/ is 97% full", "critical", channels=["ntfy"])
            preview = (await manager.render(alert))["ntfy"].preview
            assert ntfy.received == []  # rendering publishes nothing
            await manager.send_notification(alert)
        assert preview is not None and ntfy.topic not in str(preview.to_dict())
        received = dict(ntfy.received[0])
        assert {**received, "topic": preview.content["body"]["topic"]} == preview.content["body"]
