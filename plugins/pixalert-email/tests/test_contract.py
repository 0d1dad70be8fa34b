"""The core's channel conformance suite, run against a local STARTTLS SMTP server with AUTH."""

from __future__ import annotations

from typing import Any

from pixalert.testing import ChannelContract
from pixalert_email import email_channel_spec
from pixalert_email.testing import SMTPTestServer


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

    def unreachable_config(self, server: SMTPTestServer) -> dict[str, Any]:
        return server.config(smtp_port=server.refused_port)


class TestEmailImplicitTLSContract(TestEmailContract):
    """The same contract over implicit TLS (as on port 465)."""

    def server(self) -> SMTPTestServer:
        return SMTPTestServer(security="tls")
