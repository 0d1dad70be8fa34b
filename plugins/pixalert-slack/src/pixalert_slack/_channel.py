"""The Slack channel: incoming webhooks and the Web API (``chat.postMessage``, ``chat.update``),
and its buttons: Acknowledge and Resolve, whose clicks Slack signs and posts back."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from pixalert import Alert, DeliveryError
from pixalert.channels import (
    ActionLinks,
    AlertEvent,
    Clock,
    Group,
    Interaction,
    InteractionRejected,
    Preview,
    RateLimiter,
    Receipt,
    SystemClock,
    mask_secret_url,
    redact,
    register_secret,
)
from pixalert.http import (
    Endpoint,
    error_for_exception,
    error_for_response,
    json_or_none,
    make_client,
    parse_retry_after,
)

from ._blocks import (
    ACK_ACTION,
    ACTIONS_BLOCK,
    RESOLVE_ACTION,
    action_block_id,
    build_group_message,
    build_message,
    sketch,
)
from ._config import SlackConfig

__all__ = [
    "MAX_REQUEST_AGE",
    "PERMANENT_UPDATE_ERRORS",
    "RETRYABLE_API_ERRORS",
    "SlackChannel",
    "signature",
]

#: Seconds a signed request from Slack may be off from now (Slack's replay window).
MAX_REQUEST_AGE = 300
#: A click's ``response_url`` works this long, and this many times (Slack's limits).
RESPONSE_URL_TTL = 1800
RESPONSE_URL_USES = 5
#: The hosts a ``response_url`` may point at (and loopback, for local tests).
SLACK_HOSTS = ("slack.com",)
_ALERT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """Slack's request signature: ``v0=`` and the hex HMAC-SHA256 of
    ``v0:<timestamp>:<body>`` keyed with the app's signing secret."""
    base = b"v0:" + timestamp.encode("ascii") + b":" + body
    return "v0=" + hmac.new(secret.encode("utf-8"), base, hashlib.sha256).hexdigest()


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
    ``previous``, a resolved alert updates that message. ``pace`` waits for
    a turn under ``config.rate`` (the core calls it before each attempt's
    timeout starts, so a busy channel is not mistaken for a slow one).
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
        self._clock: Clock = clock or SystemClock()
        self._closed = False
        self._actions: ActionLinks | None = None
        # The response_url of the latest click on each incident's buttons:
        # block id -> (url, expires at, uses left).
        self._responses: dict[str, tuple[str, float, int]] = {}

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
        if config.signing_secret is not None:
            values.append(config.signing_secret.get())
        for value in values:
            register_secret(value)
        return tuple(values)

    def __repr__(self) -> str:
        where = self.config.channel if self.mode == "api" else "webhook"
        return f"SlackChannel(name={self.name!r}, mode={self.mode!r}, to={where!r})"

    # ------------------------------------------------------------------
    # Channel protocol
    # ------------------------------------------------------------------

    async def pace(self, alert: Alert) -> None:
        """Wait for a turn to post to this channel's Slack destination: ``rate``
        messages a second, ``burst`` at once (Slack allows about one a second
        per channel). The core awaits it before each attempt's timeout starts;
        code calling :meth:`send` directly calls it first."""
        await self._limiter.acquire("webhook" if self.mode == "webhook" else self.config.channel)

    def use_actions(self, actions: ActionLinks) -> None:
        """Called by the core when ``[actions] public_url`` is set: with a
        ``signing_secret`` too, messages carry Acknowledge and Resolve buttons."""
        self._actions = actions

    @property
    def buttons(self) -> bool:
        """True when messages carry buttons: a signing secret and a public URL."""
        return self._actions is not None and self.config.signing_secret is not None

    async def send(self, alert: Alert, *, previous: Receipt | None = None) -> Receipt | None:
        """Post ``alert``; with a bot token, return ``{"ts", "channel"}`` of the message.

        A resolved alert whose ``previous`` receipt names a message updates
        that message (``chat.update``) instead of posting a new one; through
        a webhook, a resolve clicked from the message updates it through the
        click's ``response_url``. It does not wait for a turn: see :meth:`pace`.
        Raises :class:`pixalert.DeliveryError` on failure.
        """
        if self._closed:
            raise DeliveryError.permanent(f"slack {self.name}: channel is closed")
        message = self.message_for(alert)
        if self.mode == "webhook":
            if alert.resolved and await self._respond(alert.key, message):
                log.debug("slack %s: alert %s updated the clicked message", self.name, alert.id)
                return None
            await self._post_webhook(message)
            log.debug("slack %s: alert %s posted to the webhook", self.name, alert.id)
            return None

        channel = self.config.channel
        assert channel is not None
        if alert.resolved and previous and previous.get("ts") and previous.get("channel"):
            body = {"channel": previous["channel"], "ts": previous["ts"], **message}
            try:
                data = await self._call("chat.update", body, update=True)
            except _UpdateFailed:
                log.debug("slack %s: message %s cannot be updated; posting", self.name, body["ts"])
            else:
                log.debug("slack %s: alert %s updated message %s", self.name, alert.id, body["ts"])
                return self._receipt(data, previous["channel"], previous["ts"])
        data = await self._call("chat.postMessage", self._post_body(message))
        log.debug("slack %s: alert %s posted as %s", self.name, alert.id, data.get("ts"))
        return self._receipt(data, channel, None)

    def message_for(self, alert: Alert) -> dict[str, Any]:
        """The message :meth:`send` posts for ``alert`` (blocks, attachments, text)."""
        return build_message(alert, mention=self.config.mention_on_critical, buttons=self.buttons)

    def _post_body(self, message: dict[str, Any]) -> dict[str, Any]:
        """The ``chat.postMessage`` body of ``message``."""
        return {
            "channel": self.config.channel,
            "unfurl_links": False,
            "unfurl_media": False,
            **message,
        }

    def _preview(self, message: dict[str, Any]) -> Preview:
        if self.mode == "webhook":
            assert self.config.webhook_url is not None
            url, body = mask_secret_url(self.config.webhook_url.get()), message
        else:
            url, body = f"{self.config.api_url}/chat.postMessage", self._post_body(message)
        headers = dict(_JSON)
        if self.config.token is not None and self.mode == "api":
            headers["Authorization"] = "Bearer " + redact(self.config.token.get())
        content = {
            "mode": self.mode,
            "method": "POST",
            "url": url,
            "headers": headers,
            "body": body,
        }
        return Preview("slack", content, sketch(message))

    def render(self, alert: Alert) -> Preview:
        """What :meth:`send` would post for ``alert`` (a new message: a resolve that
        updates an earlier one sends the same blocks): the request's ``url`` (a
        webhook's secret path masked), ``headers`` and JSON ``body``, and a
        plain-text sketch of the blocks. Sends nothing."""
        return self._preview(self.message_for(alert))

    def render_group(self, group: Group) -> Preview:
        """What :meth:`send_group` would post for ``group`` (see :meth:`render`)."""
        return self._preview(build_group_message(group, mention=self.config.mention_on_critical))

    async def acknowledge(
        self, alert: Alert, *, event: AlertEvent, previous: Receipt | None = None
    ) -> bool:
        """Show who acknowledged ``alert`` in its message, updated in place: with
        ``chat.update`` (bot token and the message's receipt), else through the
        ``response_url`` of a click on its buttons. False if neither is there
        (a webhook message nobody clicked)."""
        if self._closed:
            raise DeliveryError.permanent(f"slack {self.name}: channel is closed")
        message = build_message(alert, buttons=self.buttons, acknowledged=event)
        if self.mode == "api" and previous and previous.get("ts") and previous.get("channel"):
            body = {"channel": previous["channel"], "ts": previous["ts"], **message}
            try:
                await self._call("chat.update", body, update=True)
            except _UpdateFailed:
                return await self._respond(alert.key, message)
            return True
        return await self._respond(alert.key, message)

    async def interaction(self, headers: Mapping[str, str], body: bytes) -> Interaction | None:
        """A click on a button, as Slack posts it to the Interactivity Request URL.

        The signature (``X-Slack-Signature`` over ``v0:<X-Slack-Request-Timestamp>:<raw
        body>``, keyed with ``signing_secret``) is checked in constant time before
        the body is read, and a timestamp more than 5 minutes from now is refused
        (a replay): :class:`pixalert.channels.InteractionRejected` with 401. A body
        that is not a click on our buttons is None (nothing to do) or a 400.
        """
        secret = self.config.signing_secret
        if secret is None:
            raise InteractionRejected(
                401, f"slack {self.name}: no signing_secret is configured to check requests with"
            )
        lower = {str(k).lower(): str(v) for k, v in headers.items()}
        stamp = lower.get("x-slack-request-timestamp", "").strip()
        given = lower.get("x-slack-signature", "").strip()
        if not stamp or not given:
            raise InteractionRejected(
                401, "unsigned request: expected X-Slack-Request-Timestamp and X-Slack-Signature"
            )
        if not stamp.isdigit() or len(stamp) > 12:
            raise InteractionRejected(401, "X-Slack-Request-Timestamp: expected Unix seconds")
        if abs(self._clock.now() - int(stamp)) > MAX_REQUEST_AGE:
            raise InteractionRejected(
                401, "the request's timestamp is more than 5 minutes from now (a replay?)"
            )
        expected = signature(secret.get(), stamp, body)
        if not hmac.compare_digest(expected.encode("ascii"), given.encode("utf-8", "replace")):
            raise InteractionRejected(401, "the request's signature does not match")
        return self._read_click(body)

    def _read_click(self, body: bytes) -> Interaction | None:
        try:
            form = parse_qs(
                body.decode("utf-8"), keep_blank_values=True, max_num_fields=10, errors="strict"
            )
            raw = form["payload"][0]
            data = json.loads(raw)
        except (UnicodeDecodeError, KeyError, IndexError, ValueError):
            raise InteractionRejected(
                400, "expected a form body with a JSON 'payload' field, as Slack sends"
            ) from None
        if not isinstance(data, dict):
            raise InteractionRejected(400, "payload: expected a JSON object")
        if data.get("type") != "block_actions":
            return None  # a shortcut, a view submission: not ours
        actions = data.get("actions")
        click = next(
            (
                a
                for a in (actions if isinstance(actions, list) else [])
                if isinstance(a, dict) and a.get("action_id") in (ACK_ACTION, RESOLVE_ACTION)
            ),
            None,
        )
        if click is None:
            return None
        alert_id = click.get("value")
        if not isinstance(alert_id, str) or not _ALERT_ID.fullmatch(alert_id):
            raise InteractionRejected(400, "actions[0].value: expected an alert id")
        found = data.get("user")
        user: dict[str, Any] = found if isinstance(found, dict) else {}
        by = next(
            (
                str(user[k])[:100]
                for k in ("username", "name", "id")
                if isinstance(user.get(k), str)
            ),
            None,
        )
        block = click.get("block_id")
        url = data.get("response_url")
        if isinstance(block, str) and block.startswith(ACTIONS_BLOCK) and isinstance(url, str):
            if _slack_url(url):
                register_secret(url)
                expires = self._clock.now() + RESPONSE_URL_TTL
                self._responses[block] = (url, expires, RESPONSE_URL_USES)
                self._forget_expired()
            else:
                log.warning("slack %s: ignored a response_url outside Slack", self.name)
        if click["action_id"] == ACK_ACTION:
            return Interaction("ack", alert_id, by=by)
        return Interaction("resolve", alert_id, by=by)

    def _forget_expired(self) -> None:
        now = self._clock.now()
        for block in [
            b for b, (_, until, left) in self._responses.items() if until < now or not left
        ]:
            del self._responses[block]

    async def _respond(self, key: str, message: dict[str, Any]) -> bool:
        """Replace the clicked message of incident ``key`` through its ``response_url``;
        False when there is none (or it expired)."""
        self._forget_expired()
        block = action_block_id(key)
        found = self._responses.get(block)
        if found is None:
            return False
        url, until, left = found
        self._responses[block] = (url, until, left - 1)
        service = "slack response_url"
        response = await self._request(service, url, {"replace_original": True, **message})
        data = json_or_none(response)
        if response.status_code == 200 and not (isinstance(data, dict) and data.get("ok") is False):
            return True
        code = _error_code(data.get("error")) if isinstance(data, dict) else None
        if response.status_code == 404 or code in ("expired_url", "used_url"):
            del self._responses[block]
            return False
        raise error_for_response(
            response,
            service,
            detail=code or _error_code(response.text) or "",
            secrets=self._secrets,
        )

    async def send_group(self, group: Group, *, previous: Receipt | None = None) -> Receipt | None:
        """Post a group of alerts as one message (see :func:`build_group_message`).

        With a bot token the group's message is updated in place
        (``chat.update``) when ``previous`` names it, so the channel shows one
        message that changes as alerts join and resolve; a webhook, which
        answers no message id, posts a new message each time. Like
        :meth:`send`, it does not wait for a turn: see :meth:`pace`.
        """
        if self._closed:
            raise DeliveryError.permanent(f"slack {self.name}: channel is closed")
        message = build_group_message(group, mention=self.config.mention_on_critical)
        if self.mode == "webhook":
            await self._post_webhook(message)
            return None
        channel = self.config.channel
        assert channel is not None
        if previous and previous.get("ts") and previous.get("channel"):
            body = {"channel": previous["channel"], "ts": previous["ts"], **message}
            try:
                data = await self._call("chat.update", body, update=True)
            except _UpdateFailed:
                log.debug("slack %s: group message %s is gone; posting", self.name, body["ts"])
            else:
                return self._receipt(data, previous["channel"], previous["ts"])
        data = await self._call("chat.postMessage", self._post_body(message))
        return self._receipt(data, channel, None)

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
            try:
                raise failure
            finally:  # under Python 3.10's pure-Python tasks the wake-up's error leaks in
                failure.__context__ = None
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


def _slack_url(url: str) -> bool:
    """True for an https URL on Slack's hosts, or any http(s) URL on loopback (tests)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme == "https" and any(host == h or host.endswith("." + h) for h in SLACK_HOSTS):
        return True
    if parts.scheme not in ("http", "https"):
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
