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
from pixalert.channels import Channel, ChannelSpec, DemoSink, SetupField, send_test_alert

from ._config import EmailConfig

if TYPE_CHECKING:
    from pixalert import Alert

    from ._channel import EmailChannel

__version__ = "0.1.0"

__all__ = ["EmailChannel", "EmailConfig", "__version__", "email_channel_spec"]

# What ``pixalert init`` asks, in order; each variable fills its field too.
SETUP = (
    SetupField("smtp_server", "SMTP server", env="SMTP_SERVER", default="smtp.gmail.com"),
    SetupField("smtp_port", "SMTP port", env="SMTP_PORT", kind=int, default=587),
    SetupField("username", "SMTP username (usually your email address)", env="EMAIL_USER"),
    SetupField(
        "password", "SMTP password (for Gmail: an app password)", env="EMAIL_PASSWORD", secret=True
    ),
    SetupField("sender", "From address (Enter: the username)", env="EMAIL_SENDER"),
    SetupField(
        "recipients",
        "Recipients, comma-separated",
        env="EMAIL_RECIPIENTS",
        kind=list,
        required=True,
    ),
)


def _factory(name: str, config: EmailConfig) -> EmailChannel:
    from ._channel import EmailChannel

    return EmailChannel(name, config)


async def _check(channel: Channel, alert: Alert) -> str:
    """Send a test email and its resolve: this tries the connection, TLS, the login and
    the recipients, and says which server and account were used."""
    await send_test_alert(channel, alert)
    config: EmailConfig = channel.config  # type: ignore[attr-defined]  # built by _factory
    count = len(config.recipients)
    account = f" as {config.username}" if config.password is not None and config.username else ""
    return (
        f"sent a test email to {count} recipient{'' if count == 1 else 's'} "
        f"through {config.smtp_server}:{config.smtp_port}{account}"
    )


def email_channel_spec() -> ChannelSpec:
    """The ``email`` channel type, as this plugin declares it."""
    return ChannelSpec(
        name="email",
        config_type=EmailConfig,
        factory=_factory,
        env={"EMAIL_SECURITY": "security"},
        aliases={"default_recipients": "recipients"},
        description="email over SMTP (STARTTLS or TLS, aiosmtplib)",
        title="Email (SMTP)",
        setup=SETUP,
        check=_check,
        check_prompt="Check the SMTP login now by sending a test email?",
        recipients_field="recipients",
        markup="html",
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
