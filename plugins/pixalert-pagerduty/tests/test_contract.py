"""The core's channel conformance suite, run against the local Events API v2."""

from __future__ import annotations

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

    def unreachable_config(self, server: PagerDutyServer) -> dict[str, Any]:
        return server.config(events_url=server.refused_url(server.events_url))
