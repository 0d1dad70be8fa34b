"""The ntfy channel: its settings and the channel that publishes alerts as JSON."""

from __future__ import annotations

# --8<-- [start:config]
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attrs
from pixalert import Alert, DeliveryError, Priority
from pixalert.channels import Preview, Receipt, Secret, redact, register_secret

if TYPE_CHECKING:
    import httpx

#: ntfy's priorities: 1 (min) to 5 (max, "urgent").
PRIORITIES = {Priority.LOW: 2, Priority.MEDIUM: 3, Priority.HIGH: 4, Priority.CRITICAL: 5}
TAGS = {
    Priority.LOW: "information_source",
    Priority.MEDIUM: "warning",
    Priority.HIGH: "rotating_light",
    Priority.CRITICAL: "rotating_light",
}
_TOPIC = re.compile(r"[-_A-Za-z0-9]{1,64}")


def _check_server(instance: Any, attribute: Any, value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"server: expected an http(s) URL such as https://ntfy.sh, got {value!r}")


def _check_topic(instance: Any, attribute: Any, value: Secret) -> None:
    # The topic is the secret: whoever knows it can read the alerts. Never echo it.
    if not _TOPIC.fullmatch(value.get()):
        raise ValueError("topic: expected 1-64 letters, digits, '-' or '_' (value not shown)")


def _check_timeout(instance: Any, attribute: Any, value: float) -> None:
    if value <= 0:
        raise ValueError(f"timeout: expected a number of seconds > 0, got {value!r}")


@attrs.define
class NtfyConfig:
    """Settings of an ntfy channel (``[channels.ntfy]``).

    - ``topic``: the topic to publish to (``NTFY_TOPIC``); a secret.
    - ``server``: the ntfy server (``NTFY_SERVER``), default ``https://ntfy.sh``.
    - ``token``: an access token for a protected topic (``NTFY_TOKEN``).
    - ``timeout``: seconds per HTTP request.
    """

    topic: Secret = attrs.field(validator=_check_topic)
    server: str = attrs.field(default="https://ntfy.sh", validator=_check_server)
    token: Secret | None = None
    timeout: float = attrs.field(default=10.0, validator=_check_timeout)


# --8<-- [end:config]
# --8<-- [start:channel]
class NtfyChannel:
    """Publishes each alert to an ntfy topic; never retries (the core does)."""

    def __init__(self, name: str, config: NtfyConfig) -> None:
        self.name = name
        self.config = config
        self._client: httpx.AsyncClient | None = None
        register_secret(config.topic.get())  # masked in pixalert.channels.redact() and HTTP logs
        if config.token is not None:
            register_secret(config.token.get())

    def __repr__(self) -> str:
        return f"NtfyChannel({self.name!r}, server={self.config.server!r})"

    def message_for(self, alert: Alert) -> dict[str, Any]:
        """The JSON ntfy publishes: topic, title, message, priority and tags."""
        title = f"[{alert.priority.name}] {alert.title}"
        return {
            "topic": self.config.topic.get(),
            "title": f"RESOLVED {title}" if alert.resolved else title,
            "message": alert.message or alert.title,
            "priority": 3 if alert.resolved else PRIORITIES[alert.priority],
            "tags": ["white_check_mark"] if alert.resolved else [TAGS[alert.priority]],
        }

    def render(self, alert: Alert) -> Preview:
        """What :meth:`send` would publish (``pixalert render``), the topic masked."""
        body = self.message_for(alert)  # the same builder send() uses
        shown = {**body, "topic": redact(body["topic"])}  # the topic is the secret
        content = {"method": "POST", "url": self.config.server, "body": shown}
        return Preview("ntfy", content, f"{body['title']}\n\n{body['message']}")

    async def send(self, alert: Alert, *, previous: Receipt | None = None) -> Receipt | None:
        """Publish ``alert``; return ``{"id": <ntfy message id>}``."""
        import httpx
        from pixalert.http import error_for_exception, error_for_response, json_or_none, make_client

        if self._client is None:
            self._client = make_client(timeout=self.config.timeout)
        headers = {}
        if self.config.token is not None:
            headers["Authorization"] = f"Bearer {self.config.token.get()}"
        failure: DeliveryError | None = None
        try:
            response = await self._client.post(
                self.config.server.rstrip("/") + "/", json=self.message_for(alert), headers=headers
            )
        except httpx.TransportError as exc:
            # The class name only: httpx puts the URL (the topic) in its messages.
            failure = error_for_exception(exc, "ntfy")
        if failure is not None:
            raise failure  # outside the except block: no exception chain to leak from
        if response.status_code != 200:
            body = json_or_none(response)
            detail = body.get("error") if isinstance(body, dict) else None
            # 408, 429 and 5xx are retryable (with Retry-After); other 4xx are permanent.
            raise error_for_response(response, "ntfy", detail=str(detail or ""))
        body = json_or_none(response)
        message_id = body.get("id") if isinstance(body, dict) else None
        return {"id": str(message_id)} if message_id else None

    async def aclose(self) -> None:
        """Close the HTTP client; safe to call twice."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


# --8<-- [end:channel]
