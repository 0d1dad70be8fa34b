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

Faults to script, each for the next ``times`` matching requests (``endpoint``
is ``"webhook"``, ``"chat.postMessage"``, ``"chat.update"`` or None for any):
:meth:`~SlackServer.rate_limit` (429 with ``Retry-After``), :meth:`~SlackServer.fail`
(any status and body), :meth:`~SlackServer.api_error` (200 ``"ok": false``),
:meth:`~SlackServer.hang` (no answer until the server stops).

Everything received is kept in :attr:`SlackServer.requests`; accepted
messages in :attr:`SlackServer.messages`. The server is also a
:class:`pixalert.channels.DemoSink` (``channel_type = "slack"``).

Install with ``pip install pixalert-slack[testing]``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import secrets
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs
from aiohttp import web

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

__all__ = ["InvalidMessage", "ReceivedRequest", "SlackMessage", "SlackServer", "check_message"]

#: Aggregate text in blocks above which Slack answers ``msg_blocks_too_long``.
MAX_BLOCKS_TEXT = 13_000
MAX_BLOCK_ID = 255
MAX_CONTEXT_ELEMENTS = 10
MAX_ATTACHMENTS = 100

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

Body = str | Callable[[web.Request], str]


@attrs.define
class ReceivedRequest:
    """One HTTP request the server received, and what it answered."""

    endpoint: str
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any = None
    status: int | None = None
    answer: Any = None
    warnings: list[str] = attrs.Factory(list)
    #: The client's (host, port): one port for many requests means a reused connection.
    peer: tuple[str, int] | None = None


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

    def texts(self) -> list[str]:
        """Every text string of the message: ``text``, blocks and fields."""
        out = [self.text] if self.text else []
        for block in _all_blocks(self.payload):
            out.extend(obj["text"] for obj in _text_objects(block))
        return out


@attrs.define
class _Fault:
    endpoint: str | None
    times: int
    status: int = 200
    body: Body | None = None
    headers: dict[str, str] = attrs.Factory(dict)
    hang: bool = False


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


class SlackServer:
    """A contract-enforcing stand-in for Slack on 127.0.0.1 (see the module docs).

    ``async with SlackServer() as slack:`` starts and stops it.
    :meth:`config` gives a channel config section pointing at it.
    ``channels`` names the channels the bot is in (name to ID; names may be
    given with or without ``#``); ``webhook_channel`` is where the webhook
    posts.
    """

    channel_type = "slack"

    def __init__(
        self,
        *,
        token: str | None = None,
        channels: Mapping[str, str] | Iterable[str] = ("alerts",),
        webhook_channel: str = "#alerts",
        demo_mode: str = "api",
    ) -> None:
        self.token = token or "xoxb-" + secrets.token_hex(12)
        self.team = "T" + secrets.token_hex(4).upper()
        self.bot = "B" + secrets.token_hex(4).upper()
        self.secret = secrets.token_urlsafe(18)
        if isinstance(channels, Mapping):
            pairs = dict(channels)
        else:
            pairs = {name: f"C{i:09d}" for i, name in enumerate(channels, start=1)}
        self.channel_ids: dict[str, str] = {n.lstrip("#"): cid for n, cid in pairs.items()}
        self.webhook_channel = webhook_channel
        self.demo_mode = demo_mode
        self.requests: list[ReceivedRequest] = []
        self.messages: list[SlackMessage] = []
        self._events: list[str] = []
        self._faults: list[_Fault] = []
        self._ts = itertools.count(1)
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # -- lifecycle -------------------------------------------------------

    async def __aenter__(self) -> SlackServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> dict[str, Any]:
        """Start serving (once); return :meth:`config` for ``demo_mode`` (the DemoSink contract).

        The returned section allows a burst of 5, so the demo's five messages
        are not paced.
        """
        if self._runner is None:
            self._release = asyncio.Event()
            app = web.Application()
            app.router.add_post("/services/{team}/{bot}/{secret}", self._webhook)
            app.router.add_post("/api/{method}", self._api)
            # No access log: a webhook URL's path is its secret.
            runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await runner.setup()
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            self._port = sock.getsockname()[1]
            await web.SockSite(runner, sock).start()
            self._runner = runner
        return self.config(self.demo_mode, burst=5)

    async def stop(self) -> None:
        """Release hung requests and stop serving; safe to call twice."""
        self._release.set()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    # -- addresses -------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        if self._port is None:
            raise RuntimeError("SlackServer is not started: use 'async with SlackServer()'")
        return f"http://127.0.0.1:{self._port}"

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

    def config(self, mode: str = "webhook", **extra: Any) -> dict[str, Any]:
        """A channel config section for this server: ``mode`` is ``"webhook"`` or ``"api"``."""
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

    def rate_limit(
        self,
        retry_after: int = 1,
        *,
        error: str = "ratelimited",
        endpoint: str | None = None,
        times: int = 1,
    ) -> None:
        """Answer 429 with ``Retry-After`` and ``{"ok": false, "error": error}``."""
        body = json.dumps({"ok": False, "error": error, "retry_after": retry_after})
        self._faults.append(
            _Fault(
                endpoint,
                times,
                429,
                body,
                {"Retry-After": str(retry_after), "Content-Type": "application/json"},
            )
        )

    def fail(
        self,
        status: int,
        body: Body = "",
        *,
        headers: Mapping[str, str] | None = None,
        endpoint: str | None = None,
        times: int = 1,
    ) -> None:
        """Answer ``status`` with ``body`` (a string, or a function of the aiohttp request)."""
        self._faults.append(_Fault(endpoint, times, status, body, dict(headers or {})))

    def api_error(self, error: str, *, endpoint: str | None = None, times: int = 1) -> None:
        """Answer HTTP 200 ``{"ok": false, "error": error}`` (the Web API's way of failing)."""
        body = json.dumps({"ok": False, "error": error})
        self._faults.append(
            _Fault(endpoint, times, 200, body, {"Content-Type": "application/json"})
        )

    def hang(self, *, endpoint: str | None = None, times: int = 1) -> None:
        """Do not answer (until the server stops), so the client times out."""
        self._faults.append(_Fault(endpoint, times, hang=True))

    # -- DemoSink --------------------------------------------------------

    def received(self) -> list[str]:
        """One line per accepted message or update: ``"#alerts: [HIGH] Disk full"``."""
        return list(self._events)

    # -- handlers --------------------------------------------------------

    async def _record(self, request: web.Request, endpoint: str) -> ReceivedRequest:
        body = await request.read()
        record = ReceivedRequest(
            endpoint=endpoint,
            method=request.method,
            path=request.path,
            headers=dict(request.headers),
            body=body,
        )
        peer = request.transport.get_extra_info("peername") if request.transport else None
        record.peer = (str(peer[0]), int(peer[1])) if peer else None
        self.requests.append(record)
        return record

    async def _fault(self, request: web.Request, record: ReceivedRequest) -> web.Response | None:
        for fault in self._faults:
            if fault.endpoint in (None, record.endpoint) and fault.times > 0:
                fault.times -= 1
                break
        else:
            return None
        self._faults = [f for f in self._faults if f.times > 0]
        if fault.hang:
            await self._release.wait()
            record.status = 503
            return web.Response(status=503, text="server stopped")
        body = fault.body(request) if callable(fault.body) else (fault.body or "")
        record.status, record.answer = fault.status, body
        return web.Response(status=fault.status, text=body, headers=fault.headers)

    def _reply(self, record: ReceivedRequest, status: int, text: str) -> web.Response:
        record.status, record.answer = status, text
        return web.Response(status=status, text=text, content_type="text/plain")

    async def _webhook(self, request: web.Request) -> web.Response:
        record = await self._record(request, "webhook")
        faulted = await self._fault(request, record)
        if faulted is not None:
            return faulted
        if request.path != self.webhook_path:
            return self._reply(record, 404, "no_service")
        if request.content_type != "application/json":
            return self._reply(record, 400, "invalid_payload")
        try:
            payload = json.loads(record.body)
        except ValueError:
            return self._reply(record, 400, "invalid_payload")
        record.json = payload
        try:
            record.warnings = check_message(payload)
        except InvalidMessage as exc:
            return self._reply(record, 400, exc.error)
        self._accept(payload, self.webhook_channel, self.webhook_channel, "webhook")
        return self._reply(record, 200, "ok")

    def _api_answer(self, record: ReceivedRequest, data: dict[str, Any]) -> web.Response:
        if record.warnings:
            data["warning"] = ",".join(record.warnings)
        record.status, record.answer = 200, data
        return web.json_response(data)

    def _api_error(self, record: ReceivedRequest, error: str, detail: str = "") -> web.Response:
        data: dict[str, Any] = {"ok": False, "error": error}
        if detail:
            data["response_metadata"] = {"messages": [f"[ERROR] {detail}"]}
        return self._api_answer(record, data)

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        record = await self._record(request, method)
        faulted = await self._fault(request, record)
        if faulted is not None:
            return faulted
        if method not in ("chat.postMessage", "chat.update"):
            return self._api_error(record, "unknown_method")
        payload, token = self._parse_api(request, record)
        if payload is None:
            return self._api_error(record, "invalid_json")
        if token is None:
            return self._api_error(record, "not_authed")
        if token != self.token:
            return self._api_error(record, "invalid_auth")
        channel = payload.get("channel")
        channel_id = self._channel_id(channel)
        if channel_id is None:
            return self._api_error(record, "channel_not_found")
        try:
            record.warnings.extend(check_message(payload))
        except InvalidMessage as exc:
            return self._api_error(record, exc.error, exc.detail)
        if method == "chat.update":
            ts = payload.get("ts")
            for message in self.messages:
                if message.via == "api" and message.channel_id == channel_id and message.ts == ts:
                    message.payload = payload
                    message.updates.append(payload)
                    self._events.append(f"{message.channel}: updated to {_summary(payload)}")
                    return self._api_answer(
                        record,
                        {"ok": True, "channel": channel_id, "ts": ts, "text": payload.get("text")},
                    )
            return self._api_error(record, "message_not_found")
        message = self._accept(payload, str(channel), channel_id, "api")
        return self._api_answer(
            record,
            {"ok": True, "channel": channel_id, "ts": message.ts, "message": payload},
        )

    def _parse_api(
        self, request: web.Request, record: ReceivedRequest
    ) -> tuple[dict[str, Any] | None, str | None]:
        auth = request.headers.get("Authorization", "")
        token = auth[7:].strip() if auth.startswith("Bearer ") else None
        if request.content_type == "application/json":
            if "charset" not in request.headers.get("Content-Type", "").lower():
                record.warnings.append("missing_charset")
            try:
                payload = json.loads(record.body)
            except ValueError:
                return None, token
        elif request.content_type == "application/x-www-form-urlencoded":
            from urllib.parse import parse_qsl

            payload = dict(parse_qsl(record.body.decode("utf-8", "replace")))
            token = token or payload.pop("token", None)
            for key in ("blocks", "attachments"):
                if isinstance(payload.get(key), str):
                    try:
                        payload[key] = json.loads(payload[key])
                    except ValueError:
                        payload[key] = None
        else:
            return None, token
        record.json = payload
        return (payload if isinstance(payload, dict) else None), token

    def _channel_id(self, channel: Any) -> str | None:
        if not isinstance(channel, str) or not channel:
            return None
        if channel in self.channel_ids.values():
            return channel
        return self.channel_ids.get(channel.lstrip("#"))

    def _accept(
        self, payload: dict[str, Any], channel: str, channel_id: str, via: str
    ) -> SlackMessage:
        ts = f"{int(time.time())}.{next(self._ts):06d}"
        message = SlackMessage(channel, channel_id, ts, payload, via)
        self.messages.append(message)
        self._events.append(f"{channel}: {_summary(payload)}")
        return message


def _summary(payload: Mapping[str, Any]) -> str:
    for block in _all_blocks(payload):
        if block.get("type") == "header" and isinstance(block.get("text"), dict):
            return str(block["text"].get("text", ""))
    text = unescape(str(payload.get("text") or ""))
    return (text.splitlines() or [""])[0][:150]
