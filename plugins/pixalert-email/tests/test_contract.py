"""The core's channel conformance suite, run against a local STARTTLS SMTP server with AUTH."""

from __future__ import annotations

import socket
from typing import Any

from pixalert.testing import ChannelContract
from pixalert_email import email_channel_spec
from pixalert_email.testing import SMTPTestServer


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class TestEmailContract(ChannelContract):
    spec = email_channel_spec()
    bad_configs = {
        "security": {"security": "ssl-please"},
        "recipients": {"recipients": ["not an address"]},
        "smtp_port": {"smtp_port": 70000},
    }

    def server(self) -> SMTPTestServer:
        return SMTPTestServer()

    def make_config(self, server: SMTPTestServer) -> dict[str, Any]:
        return server.config()

    def fail_next(self, server: SMTPTestServer, kind: str) -> Any:
        if kind == "permanent":
            server.fail_next(554)
        elif kind == "retryable":
            server.fail_next(451)
        elif kind == "timeout":
            server.hang_next()
        else:
            return False  # SMTP has no rate-limit reply carrying a delay
        return None

    def delivered(self, server: SMTPTestServer) -> int:
        return len(server.messages)

    def unreachable_config(self, server: SMTPTestServer) -> dict[str, Any]:
        return server.config(smtp_port=_closed_port())


class TestEmailImplicitTLSContract(TestEmailContract):
    """The same contract over implicit TLS (as on port 465)."""

    def server(self) -> SMTPTestServer:
        return SMTPTestServer(security="tls")
