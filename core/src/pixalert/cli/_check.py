"""Live checks of channels, for ``pixalert init`` and ``pixalert channels --check``.

Both run a channel type's ``check`` (:attr:`pixalert.channels.ChannelSpec.check`,
by default :func:`pixalert.channels.send_test_alert`) on a built channel with a
``LOW`` test alert, time it out, and turn what it returned or raised into one
:class:`CheckOutcome` line with secrets masked.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .._channels import Channel, ChannelSpec
    from .._types import Alert

__all__ = ["CheckOutcome", "check_channel", "check_config", "test_alert"]

#: Seconds a check may take, its resolve included.
TIMEOUT = 30.0


@attrs.frozen
class CheckOutcome:
    """What a live check found: ``ok``, one line to print, and how long it took."""

    ok: bool
    message: str
    seconds: float = 0.0


def test_alert(command: str, name: str) -> Alert:
    """The ``LOW`` test alert ``command`` sends to check channel ``name``."""
    from .._types import Alert, Priority

    return Alert(
        title="pixalert test alert",
        message=f"Sent by '{command}' to check the {name} channel. No action needed.",
        priority=Priority.LOW,
        source="pixalert-cli",
        key=f"pixalert-check-{uuid.uuid4().hex[:12]}",
        metadata={"sent_by": command},
    )


async def check_channel(
    spec: ChannelSpec | None,
    channel: Channel,
    alert: Alert,
    *,
    timeout: float = TIMEOUT,
    secrets: Sequence[str] = (),
) -> CheckOutcome:
    """Run ``spec``'s check (or :func:`~pixalert.channels.send_test_alert`) on ``channel``."""
    from .._channels import send_test_alert
    from .._errors import DeliveryError
    from .._redact import redact

    check = spec.check if spec is not None and spec.check is not None else send_test_alert
    started = time.perf_counter()
    try:
        line = await asyncio.wait_for(check(channel, alert), timeout)
    except asyncio.TimeoutError:
        return CheckOutcome(False, f"no answer within {timeout:g}s")
    except DeliveryError as exc:
        kind = "temporary: may pass later" if exc.retryable else "permanent"
        return CheckOutcome(False, f"{redact(exc.message, secrets)} ({kind})")
    except Exception as exc:
        return CheckOutcome(False, redact(f"{type(exc).__name__}: {exc}", secrets))
    message = redact(str(line), secrets) if line else "ok"
    return CheckOutcome(True, message, time.perf_counter() - started)


async def _check_built(
    spec: ChannelSpec, name: str, config: Any, command: str, secrets: Sequence[str]
) -> CheckOutcome:
    from .._redact import redact

    try:
        channel = spec.factory(name, config)
    except Exception as exc:
        return CheckOutcome(False, redact(f"could not build the channel: {exc}", secrets))
    try:
        return await check_channel(spec, channel, test_alert(command, name), secrets=secrets)
    finally:
        with contextlib.suppress(Exception):  # closing after a check is best effort
            await asyncio.wait_for(channel.aclose(), TIMEOUT)


def check_config(
    spec: ChannelSpec, name: str, config: Any, command: str, secrets: Sequence[str] = ()
) -> CheckOutcome:
    """Build a channel from ``config``, check it, close it (in a new event loop)."""
    return asyncio.run(_check_built(spec, name, config, command, secrets))
