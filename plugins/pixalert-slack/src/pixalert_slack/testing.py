"""A local Slack for tests and ``pixalert demo``: :class:`SlackServer`.

It runs on 127.0.0.1 (a random port), speaks Slack's wire contract and
enforces it, so you can test your own alerts end to end without Slack::

    from pixalert_slack.testing import SlackServer

    async def test_disk_alert_reaches_slack():
        async with SlackServer() as slack:
            manager = NotificationManager(config={"channels": {"slack": slack.config("webhook")}})
            await manager.send_alert("Disk full", "/ is 97% full", "high")
            assert slack.received() == ["#alerts: [HIGH] Disk full"]

What it serves:

- an incoming webhook at ``/services/T.../B.../<secret>`` (:attr:`SlackServer.webhook_url`):
  answers ``200 ok``, or Slack's plain-text errors: 400 ``invalid_payload``
  (not a JSON object), 400 ``no_text`` (neither ``text`` nor ``blocks``), 400
  ``invalid_blocks``, ``msg_too_long``, ``msg_blocks_too_long``; 404
  ``no_service`` for an unknown webhook path.
- the Web API at :attr:`SlackServer.api_url`: ``POST /api/chat.postMessage``
  and ``POST /api/chat.update``, checking the ``Authorization: Bearer`` token
  (``not_authed``, ``invalid_auth``), the channel (``channel_not_found``), the
  message (``no_text``, ``invalid_blocks``...) and, for updates, the ``ts``
  (``message_not_found``). Answers are HTTP 200 with ``{"ok": true, "ts": ...}``
  or ``{"ok": false, "error": ...}``, as Slack's are.

What it checks in blocks: at most 50 blocks; known block types; ``block_id``
at most 255 characters; header ``plain_text`` of 1 to 150 characters; section
text at most 3000 characters and at most 10 fields of at most 2000; context
with 1 to 10 elements; text objects typed ``plain_text`` or ``mrkdwn``; all
block text together at most 13,000 characters (Slack's observed limit for
``msg_blocks_too_long``); top-level ``text`` at most 40,000 characters
(stricter than Slack, which truncates). Lengths are counted in UTF-16 code
units, never less than Slack counts.

It is a :class:`pixalert.testing.FakeService`. Faults are scripted with its
verbs, each for the next ``times`` matching requests (``endpoint`` is
``"webhook"``, ``"chat.postMessage"``, ``"chat.update"`` or None for any):
``fail`` (any status; ``fail(429, retry_after=1)`` answers as Slack does,
``{"ok": false, "error": "ratelimited", "retry_after": 1}``; a body may be a
function of the request), ``hang`` and ``drop``; and one of Slack's own,
:meth:`~SlackServer.api_error` (HTTP 200 ``"ok": false``, the Web API's way
of failing).

With ``rate_limit=(per_second, burst)`` it also enforces Slack's posting
limit per channel (about one message a second, short bursts allowed): a
message over it is answered ``429`` with ``Retry-After`` and Slack's
``{"ok": false, "error": "ratelimited"}``, and counted in
:attr:`SlackServer.rate_limited`.

Every request is kept in ``requests`` (with its ``endpoint``, what was
answered and, for refusals, Slack's error string as ``reason``); accepted
messages in ``received`` (:class:`SlackMessage`, updated in place by
``chat.update``). The server is also the ``slack`` sink of ``pixalert demo``.

Install with ``pip install pixalert-slack[testing]``.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

import attrs
import httpx
from aiohttp import web
from pixalert.testing import FakeService, Fault, ReceivedRequest

from ._blocks import (
    MAX_BLOCKS,
    MAX_FIELD,
    MAX_FIELDS_PER_SECTION,
    MAX_HEADER,
    MAX_SECTION,
    MAX_TEXT,
    slack_len,
    unescape,
)

__all__ = ["Click", "InvalidMessage", "SlackMessage", "SlackServer", "check_message"]

#: Seconds a message may arrive early for ``rate_limit`` (the network's jitter).
RATE_JITTER = 0.1
#: Aggregate text in blocks above which Slack answers ``msg_blocks_too_long``.
MAX_BLOCKS_TEXT = 13_000
MAX_BLOCK_ID = 255
MAX_CONTEXT_ELEMENTS = 10
MAX_ATTACHMENTS = 100
MAX_ACTIONS = 25
MAX_BUTTON_TEXT = 75
MAX_ACTION_ID = 255
MAX_BUTTON_VALUE = 2000
#: How long a click's ``response_url`` works, and how many times (Slack's limits).
RESPONSE_URL_TTL = 1800
RESPONSE_URL_USES = 5

_BLOCK_TYPES = {
    "actions",
    "context",
    "divider",
    "file",
    "header",
    "image",
    "input",
    "markdown",
    "rich_text",
    "section",
    "video",
}
_NAMED_COLOURS = {"good", "warning", "danger"}
_HEX_COLOUR = re.compile(r"#?[0-9A-Fa-f]{6}")


@attrs.define
class SlackMessage:
    """A message the server accepted (``via`` is ``"webhook"`` or ``"api"``).

    ``payload`` is the latest body (after any ``chat.update``); ``updates``
    keeps each update's body, oldest first.
    """

    channel: str
    channel_id: str
    ts: str
    payload: dict[str, Any]
    via: str
    updates: list[dict[str, Any]] = attrs.Factory(list)

    @property
    def text(self) -> str:
        """The top-level ``text`` (fallback), as sent (escaped)."""
        return str(self.payload.get("text", ""))

    @property
    def header(self) -> str | None:
        """The first header block's text, if any."""
        for block in _all_blocks(self.payload):
            if block.get("type") == "header":
                return str(block.get("text", {}).get("text", ""))
        return None

    @property
    def summary(self) -> str:
        """The header, else the first line of the text (unescaped)."""
        return _summary(self.payload)

    @property
    def colour(self) -> str | None:
        """The first attachment's ``color``."""
        attachments = self.payload.get("attachments") or []
        if attachments and isinstance(attachments[0], dict):
            return attachments[0].get("color")
        return None

    @property
    def buttons(self) -> list[dict[str, Any]]:
        """The buttons of the message's actions blocks (with their ``block_id``)."""
        out = []
        for block in _all_blocks(self.payload):
            if block.get("type") == "actions":
                for element in block.get("elements") or []:
                    if isinstance(element, dict) and element.get("type") == "button":
                        out.append({**element, "block_id": block.get("block_id")})
        return out

    def texts(self) -> list[str]:
        """Every text string of the message: ``text``, blocks and fields."""
        out = [self.text] if self.text else []
        for block in _all_blocks(self.payload):
            out.extend(obj["text"] for obj in _text_objects(block))
        return out


@attrs.define(eq=False)
class Click:
    """A button click :meth:`SlackServer.click` sent: the message, the click's id (in
    its ``response_url``), the button's ``action_id`` and ``value``, and how often
    the ``response_url`` was used."""

    message: SlackMessage
    id: str
    action_id: str
    value: str
    uses: int = 0
    at: float = attrs.Factory(time.monotonic)


class InvalidMessage(Exception):
    """A message Slack would refuse: ``error`` is Slack's error string, ``detail`` says where."""

    def __init__(self, error: str, detail: str = "") -> None:
        super().__init__(error)
        self.error = error
        self.detail = detail


def _all_blocks(payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    blocks = [b for b in payload.get("blocks") or [] if isinstance(b, dict)]
    for attachment in payload.get("attachments") or []:
        if isinstance(attachment, dict):
            blocks.extend(b for b in attachment.get("blocks") or [] if isinstance(b, dict))
    return blocks


def _text_objects(block: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    if isinstance(block.get("text"), dict):
        out.append(block["text"])
    for key in ("fields", "elements"):
        for item in block.get(key) or []:
            if isinstance(item, dict) and isinstance(item.get("text"), str):
                out.append(item)
    return out


def _check_text_object(obj: Any, where: str, *, max_len: int, plain_only: bool = False) -> int:
    if not isinstance(obj, dict):
        raise InvalidMessage("invalid_blocks", f"expected a text object [json-pointer:{where}]")
    kind = obj.get("type")
    if kind not in ("plain_text", "mrkdwn") or (plain_only and kind != "plain_text"):
        allowed = "plain_text" if plain_only else "plain_text or mrkdwn"
        raise InvalidMessage("invalid_blocks", f"must be {allowed} [json-pointer:{where}/type]")
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        raise InvalidMessage(
            "invalid_blocks", f"must be a non-empty string [json-pointer:{where}/text]"
        )
    if slack_len(text) > max_len:
        raise InvalidMessage(
            "invalid_blocks",
            f"must be less than {max_len + 1} characters [json-pointer:{where}/text]",
        )
    if "emoji" in obj and (kind != "plain_text" or not isinstance(obj["emoji"], bool)):
        raise InvalidMessage(
            "invalid_blocks", f"emoji is for plain_text only [json-pointer:{where}]"
        )
    if "verbatim" in obj and (kind != "mrkdwn" or not isinstance(obj["verbatim"], bool)):
        raise InvalidMessage(
            "invalid_blocks", f"verbatim is for mrkdwn only [json-pointer:{where}]"
        )
    return slack_len(text)


def _check_blocks(blocks: Any, where: str) -> int:
    """Validate a list of blocks; return the characters of text they hold."""
    if not isinstance(blocks, list):
        raise InvalidMessage("invalid_blocks_format", f"must be an array [json-pointer:{where}]")
    if len(blocks) > MAX_BLOCKS:
        raise InvalidMessage(
            "invalid_blocks", f"no more than {MAX_BLOCKS} items allowed [json-pointer:{where}]"
        )
    total = 0
    for i, block in enumerate(blocks):
        at = f"{where}/{i}"
        if not isinstance(block, dict):
            raise InvalidMessage("invalid_blocks", f"expected an object [json-pointer:{at}]")
        kind = block.get("type")
        if kind not in _BLOCK_TYPES:
            raise InvalidMessage(
                "invalid_blocks", f"unsupported type {kind!r} [json-pointer:{at}/type]"
            )
        block_id = block.get("block_id")
        if block_id is not None and (not isinstance(block_id, str) or len(block_id) > MAX_BLOCK_ID):
            raise InvalidMessage("invalid_blocks", f"invalid block_id [json-pointer:{at}/block_id]")
        if kind == "header":
            total += _check_text_object(
                block.get("text"), f"{at}/text", max_len=MAX_HEADER, plain_only=True
            )
        elif kind == "section":
            text, fields = block.get("text"), block.get("fields")
            if text is None and fields is None:
                raise InvalidMessage(
                    "invalid_blocks", f"must provide text or fields [json-pointer:{at}]"
                )
            if text is not None:
                total += _check_text_object(text, f"{at}/text", max_len=MAX_SECTION)
            if fields is not None:
                if not isinstance(fields, list) or not 1 <= len(fields) <= MAX_FIELDS_PER_SECTION:
                    raise InvalidMessage(
                        "invalid_blocks",
                        f"must have 1 to {MAX_FIELDS_PER_SECTION} items [json-pointer:{at}/fields]",
                    )
                for j, field in enumerate(fields):
                    total += _check_text_object(field, f"{at}/fields/{j}", max_len=MAX_FIELD)
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= MAX_CONTEXT_ELEMENTS:
                raise InvalidMessage(
                    "invalid_blocks",
                    f"must have 1 to {MAX_CONTEXT_ELEMENTS} items [json-pointer:{at}/elements]",
                )
            for j, element in enumerate(elements):
                if isinstance(element, dict) and element.get("type") == "image":
                    continue
                total += _check_text_object(element, f"{at}/elements/{j}", max_len=MAX_FIELD)
        elif kind == "actions":
            total += _check_actions(block, at)
    return total


def _check_actions(block: Mapping[str, Any], at: str) -> int:
    """An actions block: 1 to 25 elements; buttons with a plain_text text of at most
    75 characters, an action_id of at most 255 (unique), a value of at most 2000."""
    elements = block.get("elements")
    if not isinstance(elements, list) or not 1 <= len(elements) <= MAX_ACTIONS:
        raise InvalidMessage(
            "invalid_blocks", f"must have 1 to {MAX_ACTIONS} items [json-pointer:{at}/elements]"
        )
    seen: set[str] = set()
    total = 0
    for j, element in enumerate(elements):
        where = f"{at}/elements/{j}"
        if not isinstance(element, dict) or element.get("type") != "button":
            continue  # other interactive elements are not checked here
        total += _check_text_object(
            element.get("text"), f"{where}/text", max_len=MAX_BUTTON_TEXT, plain_only=True
        )
        action_id = element.get("action_id")
        if action_id is not None:
            if not isinstance(action_id, str) or not 0 < len(action_id) <= MAX_ACTION_ID:
                raise InvalidMessage("invalid_blocks", f"invalid action_id [json-pointer:{where}]")
            if action_id in seen:
                raise InvalidMessage(
                    "invalid_blocks", f"action_id {action_id!r} used twice [json-pointer:{where}]"
                )
            seen.add(action_id)
        value = element.get("value")
        if value is not None and (not isinstance(value, str) or len(value) > MAX_BUTTON_VALUE):
            raise InvalidMessage("invalid_blocks", f"invalid value [json-pointer:{where}/value]")
        style = element.get("style")
        if style is not None and style not in ("primary", "danger"):
            raise InvalidMessage("invalid_blocks", f"invalid style [json-pointer:{where}/style]")
    return total


def check_message(payload: Any) -> list[str]:
    """Check a message body as Slack would; return warnings, or raise on an error.

    Raises :class:`InvalidMessage`, whose ``error`` is Slack's error string
    (``invalid_payload``, ``no_text``, ``invalid_blocks``, ``msg_too_long``,
    ``msg_blocks_too_long``, ``invalid_attachments``) and ``detail`` says
    where, like Slack's ``response_metadata.messages``.
    """
    if not isinstance(payload, dict):
        raise InvalidMessage("invalid_payload", "expected a JSON object")
    warnings = []
    text = payload.get("text")
    if text is not None and not isinstance(text, str):
        raise InvalidMessage("invalid_payload", "text must be a string")
    blocks = payload.get("blocks")
    attachments = payload.get("attachments")
    if not text and not blocks and not attachments:
        raise InvalidMessage("no_text", "neither text nor blocks nor attachments")
    if text and slack_len(text) > MAX_TEXT:
        raise InvalidMessage("msg_too_long", f"text longer than {MAX_TEXT} characters")
    if not text:
        warnings.append("missing_text_fallback")
    total = 0
    if blocks is not None:
        total += _check_blocks(blocks, "/blocks")
    if attachments is not None:
        if not isinstance(attachments, list) or len(attachments) > MAX_ATTACHMENTS:
            raise InvalidMessage("invalid_attachments", "attachments must be an array")
        for i, attachment in enumerate(attachments):
            if not isinstance(attachment, dict):
                raise InvalidMessage(
                    "invalid_attachments", f"expected an object [/attachments/{i}]"
                )
            colour = attachment.get("color")
            if colour is not None and not (
                isinstance(colour, str)
                and (colour in _NAMED_COLOURS or _HEX_COLOUR.fullmatch(colour))
            ):
                raise InvalidMessage("invalid_attachments", f"bad color [/attachments/{i}/color]")
            if "blocks" in attachment:
                total += _check_blocks(attachment["blocks"], f"/attachments/{i}/blocks")
    if total > MAX_BLOCKS_TEXT:
        raise InvalidMessage("msg_blocks_too_long", f"{total} characters of text in blocks")
    return warnings


class SlackServer(FakeService[SlackMessage]):
    """A contract-enforcing stand-in for Slack on 127.0.0.1 (see the module docs).

    ``async with SlackServer() as slack:`` starts and stops it.
    :meth:`config` gives a channel config section pointing at it.
    ``channels`` names the channels the bot is in (name to ID; names may be
    given with or without ``#``); ``webhook_channel`` is where the webhook
    posts.
    """

    channel_type = "slack"
    endpoints = ("webhook", "chat.postMessage", "chat.update", "response_url")
    failures = {
        "permanent": {"status": 403, "body": "invalid_token"},
        "retryable": {"status": 503, "body": "service_unavailable"},
        "rate_limited": {"status": 429, "retry_after": 7},
    }

    def __init__(
        self,
        *,
        token: str | None = None,
        channels: Mapping[str, str] | Iterable[str] = ("alerts",),
        webhook_channel: str = "#alerts",
        demo_mode: str = "api",
        rate_limit: tuple[float, int] | None = None,
    ) -> None:
        super().__init__()
        self.rate_limit = rate_limit
        #: Messages answered 429 because they came faster than ``rate_limit`` allows.
        self.rate_limited = 0
        self._buckets: dict[str, tuple[float, float]] = {}
        self.token = token or "xoxb-" + secrets.token_hex(12)
        self.team = "T" + secrets.token_hex(4).upper()
        self.bot = "B" + secrets.token_hex(4).upper()
        self.secret = secrets.token_urlsafe(18)
        #: The app's signing secret: :meth:`click` signs with it.
        self.signing_secret = secrets.token_hex(16)
        #: Every click sent, oldest first.
        self.clicks: list[Click] = []
        if isinstance(channels, Mapping):
            pairs = dict(channels)
        else:
            pairs = {name: f"C{i:09d}" for i, name in enumerate(channels, start=1)}
        self.channel_ids: dict[str, str] = {n.lstrip("#"): cid for n, cid in pairs.items()}
        self.webhook_channel = webhook_channel
        self.demo_mode = demo_mode
        self._ts = itertools.count(1)

    async def start(self) -> dict[str, Any]:
        """Start serving (once); return :meth:`config` for ``demo_mode`` (the DemoSink contract).

        The returned section allows a burst of 5, so the demo's five messages
        are not paced.
        """
        await super().start()
        return self.config(self.demo_mode, burst=5)

    # -- addresses -------------------------------------------------------

    @property
    def webhook_path(self) -> str:
        """``/services/T.../B.../<secret>``."""
        return f"/services/{self.team}/{self.bot}/{self.secret}"

    @property
    def webhook_url(self) -> str:
        """The incoming webhook's URL (its path is the secret)."""
        return self.url + self.webhook_path

    @property
    def api_url(self) -> str:
        """The Web API base URL, for the channel's ``api_url``."""
        return self.url + "/api"

    def config(
        self, mode: str = "webhook", *, interactive: bool = False, **extra: Any
    ) -> dict[str, Any]:
        """A channel config section for this server: ``mode`` is ``"webhook"`` or ``"api"``;
        ``interactive`` adds the app's ``signing_secret`` (buttons, :meth:`click`)."""
        if interactive:
            extra.setdefault("signing_secret", self.signing_secret)
        if mode == "webhook":
            section: dict[str, Any] = {"webhook_url": self.webhook_url}
        elif mode == "api":
            first = next(iter(self.channel_ids), "alerts")
            section = {"token": self.token, "channel": "#" + first, "api_url": self.api_url}
        else:
            raise ValueError(f"mode: expected 'webhook' or 'api', got {mode!r}")
        section.update(extra)
        return section

    # -- scripted faults -------------------------------------------------

    def api_error(self, error: str, *, endpoint: str | None = None, times: int = 1) -> None:
        """Answer HTTP 200 ``{"ok": false, "error": error}`` (the Web API's way of failing)."""
        self.fail(200, body={"ok": False, "error": error}, endpoint=endpoint, times=times)

    def fault_body(self, fault: Fault) -> Any:
        """For a 429, Slack's ``{"ok": false, "error": "ratelimited", "retry_after": n}``."""
        if fault.status != 429:
            return ""
        body: dict[str, Any] = {"ok": False, "error": "ratelimited"}
        if fault.retry_after is not None and fault.retry_after.isdigit():
            body["retry_after"] = int(fault.retry_after)
        return body

    # -- handlers --------------------------------------------------------

    def routes(self) -> Iterable[tuple[str, str, Any]]:
        """The incoming webhook and the Web API."""
        return [
            ("POST", "/services/{team}/{bot}/{secret}", self._webhook),
            ("POST", "/api/{method}", self._api),
            ("POST", "/actions/{team}/{click}/{secret}", self._response_url),
        ]

    def endpoint(self, request: web.Request) -> str:
        """``"webhook"``, ``"response_url"``, or the Web API method (``"chat.postMessage"``)."""
        if "click" in request.match_info:
            return "response_url"
        return request.match_info.get("method", "webhook")

    # -- buttons ----------------------------------------------------------

    def sign(self, body: bytes, timestamp: int | str, secret: str | None = None) -> dict[str, str]:
        """The headers Slack signs a request with: ``X-Slack-Request-Timestamp`` and
        ``X-Slack-Signature`` (``v0=`` + hex HMAC-SHA256 of ``v0:<timestamp>:<body>``)."""
        import hashlib
        import hmac

        stamp = str(timestamp)
        key = (secret if secret is not None else self.signing_secret).encode("utf-8")
        digest = hmac.new(key, b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
        return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": "v0=" + digest}

    def click_body(
        self,
        message: SlackMessage,
        action: str = "ack",
        *,
        user: str = "alice",
        user_id: str = "U0ALICE",
    ) -> tuple[bytes, Click]:
        """The form body Slack posts when ``user`` clicks ``action`` (``"ack"``,
        ``"resolve"`` or an ``action_id``) on ``message``, and the click's record
        (whose ``response_url`` this server answers). ``ValueError`` if the message
        has no such button."""
        action_id = {"ack": "pixalert_ack", "resolve": "pixalert_resolve"}.get(action, action)
        button = next((b for b in message.buttons if b.get("action_id") == action_id), None)
        if button is None:
            have = [b.get("action_id") for b in message.buttons]
            raise ValueError(f"the message has no {action_id!r} button (it has {have})")
        click = Click(message, secrets.token_hex(8), action_id, str(button.get("value", "")))
        self.clicks.append(click)
        now = time.time()
        payload = {
            "type": "block_actions",
            "user": {"id": user_id, "username": user, "name": user, "team_id": self.team},
            "api_app_id": "A0PIXALERT",
            "token": "deprecated-verification-token",
            "container": {
                "type": "message",
                "message_ts": message.ts,
                "channel_id": message.channel_id,
                "is_ephemeral": False,
            },
            "trigger_id": f"{int(now)}.{secrets.token_hex(6)}",
            "team": {"id": self.team, "domain": "pixalert-test"},
            "channel": {"id": message.channel_id, "name": message.channel.lstrip("#")},
            "message": {"type": "message", "ts": message.ts, **message.payload},
            "response_url": f"{self.url}/actions/{self.team}/{click.id}/{self.secret}",
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": button.get("block_id"),
                    "text": button.get("text"),
                    "value": button.get("value"),
                    "action_ts": f"{now:.6f}",
                }
            ],
        }
        body = urlencode({"payload": json.dumps(payload, separators=(",", ":"))}).encode()
        return body, click

    async def click(
        self,
        message: SlackMessage,
        action: str = "ack",
        *,
        url: str,
        user: str = "alice",
        user_id: str = "U0ALICE",
        timestamp: int | None = None,
        secret: str | None = None,
        signed: bool = True,
    ) -> httpx.Response:
        """Click ``action`` on ``message`` as Slack does: post the signed form body to
        ``url`` (the Interactivity Request URL: the receiver's ``/slack/actions``).

        ``timestamp`` (default now), ``secret`` (default :attr:`signing_secret`)
        and ``signed=False`` make forged, replayed and unsigned requests.
        """
        body, _ = self.click_body(message, action, user=user, user_id=user_id)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
        }
        if signed:
            headers.update(
                self.sign(body, int(time.time()) if timestamp is None else timestamp, secret)
            )
        async with httpx.AsyncClient(timeout=10) as client:
            return await client.post(url, content=body, headers=headers)

    async def _response_url(self, request: web.Request, record: ReceivedRequest) -> web.Response:
        click = next((c for c in self.clicks if c.id == request.match_info["click"]), None)
        if request.match_info["secret"] != self.secret or click is None:
            return self._refuse_json(record, 404, "expired_url")
        if time.monotonic() - click.at > RESPONSE_URL_TTL:
            return self._refuse_json(record, 404, "expired_url")
        if click.uses >= RESPONSE_URL_USES:
            return self._refuse_json(record, 404, "used_url")
        if request.content_type != "application/json":
            return self._refuse_json(record, 400, "invalid_payload")
        try:
            payload = json.loads(record.body)
        except ValueError:
            return self._refuse_json(record, 400, "invalid_payload")
        if not isinstance(payload, dict):
            return self._refuse_json(record, 400, "invalid_payload")
        control = {"replace_original", "delete_original", "response_type", "thread_ts"}
        message_body = {k: v for k, v in payload.items() if k not in control}
        try:
            check_message(message_body)
        except InvalidMessage as exc:
            return self._refuse_json(record, 400, exc.error)
        click.uses += 1
        message = click.message
        if payload.get("replace_original") is True:
            message.payload = message_body
            message.updates.append(message_body)
            self.accept(record, line=f"{message.channel}: updated to {_summary(message_body)}")
        else:
            self._accept(record, message_body, message.channel, message.channel_id, "response_url")
        return web.json_response({"ok": True})

    def _refuse_json(self, record: ReceivedRequest, status: int, error: str) -> web.Response:
        self.reject(record, error)
        return web.json_response({"ok": False, "error": error}, status=status)

    def _over_rate(self, record: ReceivedRequest, channel: str) -> web.Response | None:
        """429 as Slack answers it when ``channel`` posts faster than ``rate_limit``."""
        if self.rate_limit is None:
            return None
        rate, burst = self.rate_limit
        now = time.monotonic()
        tokens, last = self._buckets.get(channel, (float(burst), now))
        tokens = min(float(burst), tokens + (now - last) * rate)
        if tokens < 1.0 - RATE_JITTER * rate:  # a message a little early is network jitter
            self._buckets[channel] = (tokens, now)
            self.rate_limited += 1
            self.mark(record, "rate_limited", f"more than {rate:g} messages a second")
            return web.json_response(
                {"ok": False, "error": "ratelimited", "retry_after": 1},
                status=429,
                headers={"Retry-After": "1"},
            )
        self._buckets[channel] = (tokens - 1.0, now)
        return None

    def _refuse(self, record: ReceivedRequest, status: int, error: str) -> web.Response:
        self.reject(record, error)
        return web.Response(status=status, text=error, content_type="text/plain")

    async def _webhook(self, request: web.Request, record: ReceivedRequest) -> web.Response:
        if request.path != self.webhook_path:
            return self._refuse(record, 404, "no_service")
        if request.content_type != "application/json":
            return self._refuse(record, 400, "invalid_payload")
        try:
            payload = json.loads(record.body)
        except ValueError:
            return self._refuse(record, 400, "invalid_payload")
        try:
            check_message(payload)
        except InvalidMessage as exc:
            return self._refuse(record, 400, exc.error)
        limited = self._over_rate(record, self.webhook_channel)
        if limited is not None:
            return limited
        self._accept(record, payload, self.webhook_channel, self.webhook_channel, "webhook")
        return web.Response(text="ok", content_type="text/plain")

    def _api_error(
        self, record: ReceivedRequest, error: str, detail: str = "", warnings: Iterable[str] = ()
    ) -> web.Response:
        self.reject(record, f"{error}: {detail}" if detail else error)
        data: dict[str, Any] = {"ok": False, "error": error}
        if detail:
            data["response_metadata"] = {"messages": [f"[ERROR] {detail}"]}
        return _api_answer(data, warnings)

    async def _api(self, request: web.Request, record: ReceivedRequest) -> web.Response:
        method = record.endpoint
        if method not in ("chat.postMessage", "chat.update"):
            return self._api_error(record, "unknown_method")
        payload, token, warnings = _parse_api(request, record)
        if payload is None:
            return self._api_error(record, "invalid_json", warnings=warnings)
        if token is None:
            return self._api_error(record, "not_authed", warnings=warnings)
        if token != self.token:
            return self._api_error(record, "invalid_auth", warnings=warnings)
        channel = payload.get("channel")
        channel_id = self._channel_id(channel)
        if channel_id is None:
            return self._api_error(record, "channel_not_found", warnings=warnings)
        try:
            warnings.extend(check_message(payload))
        except InvalidMessage as exc:
            return self._api_error(record, exc.error, exc.detail, warnings)
        limited = self._over_rate(record, channel_id)
        if limited is not None:
            return limited
        if method == "chat.update":
            ts = payload.get("ts")
            for message in self.received:
                if message.via == "api" and message.channel_id == channel_id and message.ts == ts:
                    message.payload = payload
                    message.updates.append(payload)
                    line = f"{message.channel}: updated to {_summary(payload)}"
                    self.accept(record, line=line)
                    answer = {
                        "ok": True,
                        "channel": channel_id,
                        "ts": ts,
                        "text": payload.get("text"),
                    }
                    return _api_answer(answer, warnings)
            return self._api_error(record, "message_not_found", warnings=warnings)
        message = self._accept(record, payload, str(channel), channel_id, "api")
        answer = {"ok": True, "channel": channel_id, "ts": message.ts, "message": payload}
        return _api_answer(answer, warnings)

    def _channel_id(self, channel: Any) -> str | None:
        if not isinstance(channel, str) or not channel:
            return None
        if channel in self.channel_ids.values():
            return channel
        return self.channel_ids.get(channel.lstrip("#"))

    def _accept(
        self,
        record: ReceivedRequest,
        payload: dict[str, Any],
        channel: str,
        channel_id: str,
        via: str,
    ) -> SlackMessage:
        ts = f"{int(time.time())}.{next(self._ts):06d}"
        message = SlackMessage(channel, channel_id, ts, payload, via)
        self.accept(record, message, line=f"{channel}: {_summary(payload)}")
        return message


def _api_answer(data: dict[str, Any], warnings: Iterable[str]) -> web.Response:
    warning = ",".join(warnings)
    if warning:
        data["warning"] = warning
    return web.json_response(data)


def _parse_api(
    request: web.Request, record: ReceivedRequest
) -> tuple[dict[str, Any] | None, str | None, list[str]]:
    """The Web API call's arguments (JSON or form), its token, and Slack's warnings."""
    auth = request.headers.get("Authorization", "")
    token = auth[7:].strip() if auth.startswith("Bearer ") else None
    warnings: list[str] = []
    if request.content_type == "application/json":
        if "charset" not in request.headers.get("Content-Type", "").lower():
            warnings.append("missing_charset")
        try:
            payload = json.loads(record.body)
        except ValueError:
            return None, token, warnings
    elif request.content_type == "application/x-www-form-urlencoded":
        payload = dict(parse_qsl(record.body.decode("utf-8", "replace")))
        token = token or payload.pop("token", None)
        for key in ("blocks", "attachments"):
            if isinstance(payload.get(key), str):
                try:
                    payload[key] = json.loads(payload[key])
                except ValueError:
                    payload[key] = None
    else:
        return None, token, warnings
    return (payload if isinstance(payload, dict) else None), token, warnings


def _summary(payload: Mapping[str, Any]) -> str:
    for block in _all_blocks(payload):
        if block.get("type") == "header" and isinstance(block.get("text"), dict):
            return str(block["text"].get("text", ""))
    text = unescape(str(payload.get("text") or ""))
    return (text.splitlines() or [""])[0][:150]
