"""The core's channel conformance suite, run against the local Slack: webhook and Web API."""

from __future__ import annotations

import socket
from typing import Any

from pixalert.testing import ChannelContract
from pixalert_slack import pixalert_channels
from pixalert_slack.testing import SlackServer


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


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

    def fail_next(self, server: SlackServer, kind: str) -> Any:
        if kind == "permanent":
            server.fail(403, "invalid_token")
        elif kind == "retryable":
            server.fail(503, "service_unavailable")
        elif kind == "rate_limited":
            server.rate_limit(retry_after=7)
        elif kind == "timeout":
            server.hang()
        else:
            return False
        return None

    def delivered(self, server: SlackServer) -> int:
        return len(server.messages)

    def unreachable_config(self, server: SlackServer) -> dict[str, Any]:
        port = _closed_port()
        section = self.make_config(server)
        if self.mode == "webhook":
            section["webhook_url"] = server.webhook_url.replace(
                server.url, f"http://127.0.0.1:{port}"
            )
        else:
            section["api_url"] = f"http://127.0.0.1:{port}/api"
        return section


class TestSlackApiContract(TestSlackWebhookContract):
    """chat.postMessage with a bot token; the resolve updates the message (chat.update)."""

    mode = "api"

    def fail_next(self, server: SlackServer, kind: str) -> Any:
        if kind == "permanent":
            server.api_error("invalid_auth")
            return None
        return super().fail_next(server, kind)
