"""The ntfy channel keeps the channel contract, and alerts reach ntfy through pixalert."""

from __future__ import annotations

import socket
from typing import Any

import pixalert_ntfy
from pixalert.testing import ChannelContract, make_manager
from pixalert_ntfy.testing import NtfyServer


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TestNtfyContract(ChannelContract):
    """pixalert's conformance suite: one test per rule a channel must keep."""

    (spec,) = pixalert_ntfy.pixalert_channels()

    def server(self) -> Any:
        return NtfyServer(token="tk_" + "a" * 29)

    def make_config(self, server: NtfyServer) -> dict[str, Any]:
        return server.config()

    def fail_next(self, server: NtfyServer, kind: str) -> Any:
        if kind == "permanent":
            server.fail_next(400)
        elif kind == "retryable":
            server.fail_next(503)
        elif kind == "rate_limited":
            server.fail_next(429, retry_after="7")
        elif kind == "timeout":
            server.hang_next()
        else:
            return False
        return None

    def delivered(self, server: NtfyServer) -> int:
        return len(server.messages)

    def unreachable_config(self, server: NtfyServer) -> dict[str, Any]:
        return {**server.config(), "server": f"http://127.0.0.1:{_free_port()}"}


async def test_a_critical_alert_reaches_ntfy() -> None:
    async with NtfyServer() as ntfy:
        manager = make_manager(
            plugins=[pixalert_ntfy], config={"channels": {"ntfy": ntfy.config()}}
        )
        async with manager:
            results = await manager.send_alert("Disk full", "/ is 97% full", "critical")
        assert results["ntfy"]
        assert ntfy.received() == [f"{ntfy.topic}: [CRITICAL] Disk full"]
        assert ntfy.messages[0]["priority"] == 5
