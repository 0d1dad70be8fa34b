"""The core's channel conformance suite, run against a signing-checking local receiver."""

from __future__ import annotations

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

    def unreachable_config(self, server: WebhookReceiver) -> dict[str, Any]:
        return {**server.config(), "urls": [server.refused_url()]}
