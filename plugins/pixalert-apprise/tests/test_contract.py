"""The core's channel conformance suite, run against real Apprise services on loopback."""

from __future__ import annotations

from typing import Any

from pixalert.testing import ChannelContract
from pixalert_apprise import pixalert_channels
from pixalert_apprise.testing import AppriseSink

from .conftest import free_port


class TestAppriseJsonContract(ChannelContract):
    """Apprise's json:// service, with credentials and a token in its path."""

    spec = pixalert_channels()[0]
    kind = "json"
    bad_configs = {
        "urls[0]": {"urls": ["carrier-pigeon://coop/7"]},
        "tags": {"tags": ["ops:3"]},
        "timeout": {"timeout": 0},
    }

    def server(self) -> AppriseSink:
        return AppriseSink()

    def make_config(self, server: AppriseSink) -> dict[str, Any]:
        return {"urls": [server.url_of(self.kind, userinfo="hook-user:Hook-pass-0042")]}

    def unreachable_config(self, server: AppriseSink) -> dict[str, Any]:
        url = server.url_of(self.kind, userinfo="hook-user:Hook-pass-0042")
        return {"urls": [url.replace(f":{server.port}/", f":{free_port()}/")]}


class TestAppriseNtfyContract(TestAppriseJsonContract):
    """Apprise's ntfy:// service (its topic is the secret) on a local stand-in."""

    kind = "ntfy"
