"""The core's channel conformance suite, run against the local Slack: webhook and Web API."""

from __future__ import annotations

from typing import Any

from pixalert.testing import ChannelContract
from pixalert_slack import pixalert_channels
from pixalert_slack.testing import SlackServer


class TestSlackWebhookContract(ChannelContract):
    """An incoming webhook (its URL path is the secret)."""

    spec = pixalert_channels()[0]
    mode = "webhook"
    bad_configs = {
        "mode": {"mode": "carrier-pigeon"},
        "mention_on_critical": {"mention_on_critical": "everybody please"},
        "webhook_url": {"webhook_url": "hooks.slack.com/services/T/B/x"},
    }

    def server(self) -> SlackServer:
        return SlackServer()

    def make_config(self, server: SlackServer) -> dict[str, Any]:
        # A burst larger than any check sends, so pacing never waits on real time.
        return server.config(self.mode, burst=20)

    def unreachable_config(self, server: SlackServer) -> dict[str, Any]:
        section = self.make_config(server)
        if self.mode == "webhook":
            section["webhook_url"] = server.refused_url(server.webhook_url)
        else:
            section["api_url"] = server.refused_url(server.api_url)
        return section


class TestSlackApiContract(TestSlackWebhookContract):
    """chat.postMessage with a bot token; the resolve updates the message (chat.update)."""

    mode = "api"

    def provoke(self, server: SlackServer, kind: str) -> Any:
        if kind == "permanent":  # the Web API fails with HTTP 200 and "ok": false
            server.api_error("invalid_auth")
            return None
        return super().provoke(server, kind)
