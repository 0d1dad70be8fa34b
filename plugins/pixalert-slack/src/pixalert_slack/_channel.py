"""The Slack channel: incoming webhooks and the Web API (``chat.postMessage``, ``chat.update``)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from typing import Any

import httpx
from pixalert import Alert, DeliveryError
from pixalert.channels import Clock, Group, RateLimiter, Receipt, redact, register_secret
from pixalert.http import (
    Endpoint,
    error_for_exception,
    error_for_response,
    json_or_none,
    make_client,
    parse_retry_after,
)

from ._blocks import build_group_message, build_message
from ._config import SlackConfig

__all__ = ["PERMANENT_UPDATE_ERRORS", "RETRYABLE_API_ERRORS", "SlackChannel"]

log = logging.getLogger("pixalert.slack")

#: ``"ok": false`` errors of the Web API that a later attempt may not repeat.
RETRYABLE_API_ERRORS = frozenset(
    {
        "ratelimited",
        "rate_limited",
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
        "timeout",
    }
)
#: ``chat.update`` errors after which a new message is posted instead.
PERMANENT_UPDATE_ERRORS = frozenset(
    {"message_not_found", "cant_update_message", "edit_window_closed"}
)

# Slack's error strings are short snake_case words. Anything else in a body
# (HTML, an echoed URL) is left out of error messages.
_ERROR_CODE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
_MAX_DETAIL = 200


def _error_code(value: Any) -> str | None:
    if isinstance(value, str) and len(value) <= 80 and _ERROR_CODE.fullmatch(value.strip()):
        return value.strip()
    return None


class _UpdateFailed(Exception):
    """chat.update cannot change the message (gone, too old): post anew."""


class SlackChannel:
    """Posts alerts to Slack through an incoming webhook or a bot token.

    Built by the plugin's :class:`pixalert.channels.ChannelSpec` as
    ``SlackChannel(name, config)``; tests may pass ``clock`` (for example a
    :class:`pixalert.testing.FakeClock`) to control pacing. One pooled HTTP
    client is kept per channel and closed by :meth:`aclose`.

    ``send`` returns ``{"ts": ..., "channel": ...}`` with a bot token (None
    for a webhook, which answers no message id); given such a receipt as
    ``previous``, a resolved alert updates that message.
    """

    def __init__(self, name: str, config: SlackConfig, *, clock: Clock | None = None) -> None:
        self.name = name
        self.config = config
        self.mode = config.effective_mode
        self._secrets: tuple[str, ...] = self._register_secrets(config)
        headers = {"User-Agent": "pixalert-slack/0.1"}
        if self.mode == "api":
            assert config.token is not None
            headers["Authorization"] = f"Bearer {config.token.get()}"
        self._client = make_client(timeout=config.timeout, headers=headers)
        # One prepared endpoint per URL (the webhook, or each Web API method).
        self._endpoints: dict[str, Endpoint] = {}
        self._limiter = RateLimiter(config.rate, config.burst, clock=clock)
        # Turns taken by pace() ahead of a send (the core paces before an attempt's timeout).
        self._paid: dict[str, int] = {}
        self._closed = False

    @staticmethod
    def _register_secrets(config: SlackConfig) -> tuple[str, ...]:
        values: list[str] = []
        if config.webhook_url is not None:
            url = config.webhook_url.get()
            values.append(url)
            path = url.split("://", 1)[-1].partition("/")[2]
            if path:
                values.append("/" + path)
                values.extend(part for part in path.split("/")[2:] if len(part) >= 4)
        if config.token is not None:
            values.append(config.token.get())
        for value in values:
            register_secret(value)
        return tuple(values)

    def __repr__(self) -> str:
        where = self.config.channel if self.mode == "api" else "webhook"
        return f"SlackChannel(name={self.name!r}, mode={self.mode!r}, to={where!r})"

    # ------------------------------------------------------------------
    # Channel protocol
    # ------------------------------------------------------------------

    async def send(self, alert: Alert, *, previous: Receipt | None = None) -> Receipt | None:
        """Post ``alert``; with a bot token, return ``{"ts", "channel"}`` of the message.

        A resolved alert whose ``previous`` receipt names a message updates
        that message (``chat.update``) instead of posting a new one.
        Raises :class:`pixalert.DeliveryError` on failure.
        """
        if self._closed:
            raise DeliveryError.permanent(f"slack {self.name}: channel is closed")
        message = build_message(alert, mention=self.config.mention_on_critical)
        if self.mode == "webhook":
            await self._turn("webhook")
            await self._post_webhook(message)
            log.debug("slack %s: alert %s posted to the webhook", self.name, alert.id)
            return None

        channel = self.config.channel
        assert channel is not None
        await self._turn(channel)
        if alert.resolved and previous and previous.get("ts") and previous.get("channel"):
            body = {"channel": previous["channel"], "ts": previous["ts"], **message}
            try:
                data = await self._call("chat.update", body, update=True)
            except _UpdateFailed:
                log.debug("slack %s: message %s cannot be updated; posting", self.name, body["ts"])
            else:
                log.debug("slack %s: alert %s updated message %s", self.name, alert.id, body["ts"])
                return self._receipt(data, previous["channel"], previous["ts"])
        body = {"channel": channel, "unfurl_links": False, "unfurl_media": False, **message}
        data = await self._call("chat.postMessage", body)
        log.debug("slack %s: alert %s posted as %s", self.name, alert.id, data.get("ts"))
        return self._receipt(data, channel, None)

    async def send_group(self, group: Group, *, previous: Receipt | None = None) -> Receipt | None:
        """Post a group of alerts as one message (see :func:`build_group_message`).

        With a bot token the group's message is updated in place
        (``chat.update``) when ``previous`` names it, so the channel shows one
        message that changes as alerts join and resolve; a webhook, which
        answers no message id, posts a new message each time.
        """
        if self._closed:
            raise DeliveryError.permanent(f"slack {self.name}: channel is closed")
        message = build_group_message(group, mention=self.config.mention_on_critical)
        if self.mode == "webhook":
            await self._turn("webhook")
            await self._post_webhook(message)
            return None
        channel = self.config.channel
        assert channel is not None
        await self._turn(channel)
        if previous and previous.get("ts") and previous.get("channel"):
            body = {"channel": previous["channel"], "ts": previous["ts"], **message}
            try:
                data = await self._call("chat.update", body, update=True)
            except _UpdateFailed:
                log.debug("slack %s: group message %s is gone; posting", self.name, body["ts"])
            else:
                return self._receipt(data, previous["channel"], previous["ts"])
        body = {"channel": channel, "unfurl_links": False, "unfurl_media": False, **message}
        data = await self._call("chat.postMessage", body)
        return self._receipt(data, channel, None)

    async def pace(self, alert: Alert) -> None:
        """Wait for a posting turn under ``rate`` and ``burst`` (the core calls it before an
        attempt's timeout starts, so a busy channel is not taken for a slow one); the
        next send uses the turn."""
        key = "webhook" if self.mode == "webhook" else str(self.config.channel)
        await self._limiter.acquire(key)
        self._paid[key] = self._paid.get(key, 0) + 1

    async def _turn(self, key: str) -> None:
        """Take a turn paid by :meth:`pace`, or wait for one."""
        if self._paid.get(key):
            self._paid[key] -= 1
            return
        await self._limiter.acquire(key)

    async def aclose(self) -> None:
        """Close the HTTP client; safe to call twice."""
        self._closed = True
        await self._client.aclose()

    # ------------------------------------------------------------------
    # HTTP
    # ------------------------------------------------------------------

    async def _request(self, service: str, url: str, body: dict[str, Any]) -> httpx.Response:
        """POST ``body``; a transport failure becomes a URL-free DeliveryError.

        The error is raised outside the ``except`` block, so it has neither a
        ``__cause__`` nor a ``__context__`` that could carry the URL.
        """
        failure: DeliveryError | None = None
        try:
            endpoint = self._endpoints.get(url)
            if endpoint is None:
                endpoint = self._endpoints[url] = Endpoint(self._client, url, headers=_JSON)
            response = await endpoint.send(_json_bytes(body))
            await response.aread()
        except Exception as exc:
            failure = error_for_exception(exc, service)
        if failure is not None:
            raise failure
        return response

    def _fail(self, message: str, **kwargs: Any) -> DeliveryError:
        text = redact(message, self._secrets)
        return DeliveryError(text, **kwargs)

    async def _post_webhook(self, message: dict[str, Any]) -> None:
        assert self.config.webhook_url is not None
        service = "slack webhook"
        response = await self._request(service, self.config.webhook_url.get(), message)
        text = response.text.strip()
        if 200 <= response.status_code < 300:
            if text == "ok":
                return
            raise self._fail(
                f"{service}: HTTP {response.status_code} without 'ok' "
                "(is webhook_url a Slack incoming webhook?)",
                retryable=False,
            )
        data = json_or_none(response)
        code = _error_code(text) or (
            _error_code(data.get("error")) if isinstance(data, dict) else None
        )
        error = error_for_response(response, service, detail=code or "", secrets=self._secrets)
        self._retry_after_from_body(error, data)
        raise error

    async def _call(self, method: str, body: dict[str, Any], *, update: bool = False) -> Any:
        """Call a Web API method; return its JSON on ``"ok": true``."""
        service = f"slack {method}"
        response = await self._request(service, f"{self.config.api_url}/{method}", body)
        data = json_or_none(response)
        if response.status_code != 200:
            code = _error_code(data.get("error")) if isinstance(data, dict) else None
            code = code or _error_code(response.text)
            error = error_for_response(response, service, detail=code or "", secrets=self._secrets)
            self._retry_after_from_body(error, data)
            raise error
        if not isinstance(data, dict) or not isinstance(data.get("ok"), bool):
            raise self._fail(f"{service}: HTTP 200 without a Slack API answer", retryable=True)
        if data["ok"]:
            return data
        code = _error_code(data.get("error")) or "unknown_error"
        if update and code in PERMANENT_UPDATE_ERRORS:
            raise _UpdateFailed(code)
        reason = f"{service}: {code}"
        detail = _details(data)
        if detail:
            reason += f" ({detail})"
        retryable = code in RETRYABLE_API_ERRORS
        error = self._fail(reason, retryable=retryable)
        if retryable:
            error.retry_after = parse_retry_after(response.headers.get("retry-after"))
            self._retry_after_from_body(error, data)
        raise error

    @staticmethod
    def _retry_after_from_body(error: DeliveryError, data: Any) -> None:
        """Slack's rate-limit bodies may say ``"retry_after": 1`` without the header."""
        if error.retry_after is not None or not error.retryable or not isinstance(data, dict):
            return
        value = data.get("retry_after")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
            error.retry_after = float(value)

    @staticmethod
    def _receipt(data: Any, channel: str, ts: str | None) -> Receipt:
        got_ts = data.get("ts") if isinstance(data, dict) else None
        got_channel = data.get("channel") if isinstance(data, dict) else None
        return {
            "ts": str(got_ts or ts or ""),
            "channel": str(got_channel or channel),
        }


_JSON = {"Content-Type": "application/json; charset=utf-8"}


def _json_bytes(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _details(data: dict[str, Any]) -> str:
    """The first of Slack's ``response_metadata.messages`` (why blocks were invalid)."""
    meta = data.get("response_metadata")
    messages: Iterable[Any] = meta.get("messages", ()) if isinstance(meta, dict) else ()
    for message in messages:
        if isinstance(message, str) and message.strip():
            return message.strip()[:_MAX_DETAIL]
    return ""
