"""The core's channel conformance suite, run against a signing-checking local receiver."""

from __future__ import annotations

import socket
from typing import Any

from pixalert.testing import ChannelContract
from pixalert_webhook import generate_secret, pixalert_channels
from pixalert_webhook.testing import WebhookReceiver


class TestWebhookContract(ChannelContract):
    spec = pixalert_channels()[0]
    bad_configs = {
        "secret": {"secret": "whsec_not base64!"},
        "urls": {"urls": ["ftp://example.com/hook"]},
        "headers": {"headers": {"webhook-id": "mine"}},
    }

    def server(self) -> WebhookReceiver:
        return WebhookReceiver(secret=generate_secret(), validate_schema=True)

    def make_config(self, server: WebhookReceiver) -> dict[str, Any]:
        config: dict[str, Any] = server.config()
        assert "secret" in config  # signed, so the receiver verifies every request
        return config

    def fail_next(self, server: WebhookReceiver, kind: str) -> Any:
        if kind == "permanent":
            server.fail(400)
        elif kind == "retryable":
            server.fail(503)
        elif kind == "rate_limited":
            server.fail(429, retry_after=7)
        elif kind == "timeout":
            server.hang()
        else:
            return False
        return None

    def delivered(self, server: WebhookReceiver) -> int:
        return len(server.deliveries)

    def unreachable_config(self, server: WebhookReceiver) -> dict[str, Any]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        return {**server.config(), "urls": [f"http://127.0.0.1:{port}/hook"]}
