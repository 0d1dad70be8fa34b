"""pixalert-webhook: generic JSON webhooks, signed per Standard Webhooks v1.0.0.

The channel type ``webhook`` POSTs each alert as a versioned JSON document
(see :mod:`pixalert_webhook._payload` and ``docs/webhook-payload.schema.json``)
to every configured URL, and a group of alerts as one body with an ``alerts``
list (``docs/webhook-group-payload.schema.json``). Receivers check requests
with :func:`verify`; tests and ``pixalert demo`` use the local receiver in
:mod:`pixalert_webhook.testing`.

This module stays light (``pixalert --help`` loads it): the channel and its
HTTP client are imported inside the hooks, or on first attribute access.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pixalert import hookimpl
from pixalert.channels import ChannelSpec, DemoSink, SetupField

from ._signing import WebhookVerificationError, generate_secret, sign, verify

if TYPE_CHECKING:
    from ._channel import WebhookChannel, WebhookConfig
    from ._payload import (
        PAYLOAD_VERSION,
        build_group_payload,
        build_payload,
        group_payload_schema,
        payload_schema,
    )

__version__ = "0.1.0"

__all__ = [
    "PAYLOAD_VERSION",
    "WebhookChannel",
    "WebhookConfig",
    "WebhookVerificationError",
    "__version__",
    "build_group_payload",
    "build_payload",
    "generate_secret",
    "group_payload_schema",
    "payload_schema",
    "pixalert_channels",
    "pixalert_demo_sinks",
    "sign",
    "verify",
]

# What ``pixalert init`` asks, in order; each variable fills its field too.
SETUP = (
    SetupField(
        "urls",
        "Webhook URLs, comma-separated",
        env="WEBHOOK_URLS",
        kind=list,
        secret=True,
        required=True,
    ),
    SetupField("secret", "Signing secret whsec_... (optional)", env="WEBHOOK_SECRET", secret=True),
)

_LAZY = {
    "WebhookChannel": "._channel",
    "WebhookConfig": "._channel",
    "PAYLOAD_VERSION": "._payload",
    "build_payload": "._payload",
    "build_group_payload": "._payload",
    "group_payload_schema": "._payload",
    "payload_schema": "._payload",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'pixalert_webhook' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name, __name__), name)
    globals()[name] = value
    return value


@hookimpl
def pixalert_channels() -> Sequence[ChannelSpec]:
    """Declare the ``webhook`` channel type."""
    from ._channel import WebhookChannel, WebhookConfig

    return [
        ChannelSpec(
            name="webhook",
            config_type=WebhookConfig,
            factory=WebhookChannel,
            description="JSON webhooks to each URL, signed per Standard Webhooks",
            title="Webhooks",
            setup=SETUP,
            check_prompt="Send a test alert to the webhook URLs now?",
        )
    ]


@hookimpl
def pixalert_demo_sinks() -> Sequence[DemoSink]:
    """A local Standard Webhooks receiver, with a fresh signing secret, for ``pixalert demo``."""
    from .testing import WebhookReceiver

    return [WebhookReceiver(secret=generate_secret())]
