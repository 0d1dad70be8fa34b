"""The core's channel conformance suite, run against the local Events API v2."""

from __future__ import annotations

import socket
from typing import Any

from pixalert.testing import ChannelContract
from pixalert_pagerduty import channel_spec
from pixalert_pagerduty.testing import PagerDutyServer


class TestPagerDutyContract(ChannelContract):
    spec = channel_spec()
    bad_configs = {
        "region": {"region": "mars"},
        "events_url": {"events_url": "http://events.example.com/v2/enqueue"},
        "burst": {"rate": 10, "burst": 20},
    }

    def server(self) -> PagerDutyServer:
        return PagerDutyServer()

    def make_config(self, server: PagerDutyServer) -> dict[str, Any]:
        return server.config()

    def fail_next(self, server: PagerDutyServer, kind: str) -> Any:
        if kind == "permanent":
            server.fail_next(400)
        elif kind == "retryable":
            server.fail_next(503)
        elif kind == "rate_limited":
            server.fail_next(429, retry_after=7)
        elif kind == "timeout":
            server.hang_next()
        else:
            return False
        return None

    def delivered(self, server: PagerDutyServer) -> int:
        return len(server.events)

    def unreachable_config(self, server: PagerDutyServer) -> dict[str, Any]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        return server.config(events_url=f"http://127.0.0.1:{port}/v2/enqueue")
