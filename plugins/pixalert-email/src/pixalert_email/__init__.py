"""pixalert-email: the ``email`` channel for pixalert, over SMTP with aiosmtplib.

Installed next to ``pixalert``, it registers itself through the ``pixalert``
entry point group. This module stays light (``pixalert --help`` imports it):
aiosmtplib and the test server load only when used.

- :class:`EmailConfig` (in :mod:`pixalert_email._config`): the settings.
- :mod:`pixalert_email.testing`: a local SMTP server for tests and ``pixalert demo``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pixalert import hookimpl
from pixalert.channels import ChannelSpec, DemoSink

from ._config import EmailConfig

if TYPE_CHECKING:
    from ._channel import EmailChannel

__version__ = "0.1.0"

__all__ = ["EmailChannel", "EmailConfig", "__version__", "email_channel_spec"]

#: The seed's environment variable names (and two more) to config fields.
ENV = {
    "EMAIL_USER": "username",
    "EMAIL_PASSWORD": "password",
    "SMTP_SERVER": "smtp_server",
    "SMTP_PORT": "smtp_port",
    "EMAIL_RECIPIENTS": "recipients",
    "EMAIL_SENDER": "sender",
    "EMAIL_SECURITY": "security",
}


def _factory(name: str, config: EmailConfig) -> EmailChannel:
    from ._channel import EmailChannel

    return EmailChannel(name, config)


def email_channel_spec() -> ChannelSpec:
    """The ``email`` channel type, as this plugin declares it."""
    return ChannelSpec(
        name="email",
        config_type=EmailConfig,
        factory=_factory,
        env=ENV,
        aliases={"default_recipients": "recipients"},
        description="email over SMTP (STARTTLS or TLS, aiosmtplib)",
    )


@hookimpl  # type: ignore[untyped-decorator, unused-ignore]  # core lacks py.typed
def pixalert_channels() -> Sequence[ChannelSpec]:
    """Declare the ``email`` channel type."""
    return [email_channel_spec()]


@hookimpl  # type: ignore[untyped-decorator, unused-ignore]  # core lacks py.typed
def pixalert_demo_sinks() -> Sequence[DemoSink]:
    """A local SMTP server (STARTTLS, AUTH) standing in for the mail server in ``pixalert demo``."""
    from .testing import SMTPTestServer

    return [SMTPTestServer()]


def __getattr__(name: str) -> Any:
    if name == "EmailChannel":
        from ._channel import EmailChannel

        return EmailChannel
    raise AttributeError(f"module 'pixalert_email' has no attribute {name!r}")
