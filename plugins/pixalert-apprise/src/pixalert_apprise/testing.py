"""Loopback stand-ins for the services Apprise URLs point at, for tests and ``pixalert demo``.

- :class:`AppriseSink`: an HTTP server (aiohttp, 127.0.0.1, a random port)
  that takes what Apprise's ``json://``, ``form://``, ``xml://`` and
  ``ntfy://`` services send, records each notification it decoded
  (:attr:`AppriseSink.notifications`), and fails on demand (``fail``,
  ``hang``). It is the ``apprise`` sink of ``pixalert demo``.
- :class:`SMTPSink`: a plain SMTP server (aiosmtpd, no TLS, optional AUTH)
  for ``mailto://`` URLs, recording each message, refusing on demand.

Needs the ``testing`` extra: ``pip install "pixalert-apprise[testing]"``.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import secrets
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, quote
from xml.etree import ElementTree

import attrs

__all__ = ["AppriseSink", "Notification", "SMTPMessage", "SMTPSink"]


@attrs.frozen
class Notification:
    """One notification the sink accepted, decoded from what Apprise sent.

    ``kind`` is ``json``, ``form``, ``xml`` or ``ntfy`` (from the path the URL
    named: ``/json/...``, ``/form/...``, ``/xml/...``, ``/ntfy/...``; ntfy posts
    to ``/`` with the topic in its JSON); ``title``, ``message`` and ``type``
    (Apprise's notify type, where the format carries it) are as received.
    """

    kind: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    title: str
    message: str
    type: str | None
    fields: Mapping[str, Any]

    def line(self) -> str:
        """``json /json/demo: [CRITICAL] Database primary unreachable``."""
        return f"{self.kind} {self.path}: {self.title}"


@attrs.define
class _Fault:
    status: int | None  # None: never answer
    times: int
    body: str = ""


def _text(node: ElementTree.Element | None) -> str:
    return "" if node is None or node.text is None else node.text


def _decode(kind: str, body: bytes) -> tuple[str, str, str | None, dict[str, Any]]:
    if kind == "form":
        fields: dict[str, Any] = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        return fields.get("title", ""), fields.get("message", ""), fields.get("type"), fields
    if kind == "xml":
        root = ElementTree.fromstring(body)
        found = {el.tag.rsplit("}", 1)[-1]: el for el in root.iter()}
        fields = {
            k: _text(v)
            for k, v in found.items()
            if k in ("Version", "Subject", "MessageType", "Message")
        }
        return (
            _text(found.get("Subject")),
            _text(found.get("Message")),
            _text(found.get("MessageType")) or None,
            fields,
        )
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    return str(data.get("title", "")), str(data.get("message", "")), data.get("type"), data


class AppriseSink:
    """An HTTP server on 127.0.0.1 for Apprise's HTTP services.

    Point Apprise at it with :meth:`url` (``json://127.0.0.1:PORT/json/NAME``,
    ``form://...``, ``xml://...``, ``ntfy://127.0.0.1:PORT/TOPIC``). It answers
    200 and records each notification, or, for the next requests, what
    :meth:`fail` and :meth:`hang` arranged. Use it as an async context manager
    or with :meth:`start` and :meth:`stop`.
    """

    channel_type = "apprise"

    def __init__(self, *, token: str | None = None) -> None:
        #: A random path segment in every URL (as a webhook token would be): a secret.
        self.token = token or secrets.token_urlsafe(16)
        self.notifications: list[Notification] = []
        #: Every request: (method, path, status answered).
        self.requests: list[tuple[str, str, int]] = []
        self._faults: list[_Fault] = []
        self._runner: Any = None
        self._port: int | None = None
        self._hung: list[asyncio.Event] = []
        self._arrived: asyncio.Event | None = None

    async def start(self) -> dict[str, Any]:
        """Start serving; return an ``apprise`` channel config with one ``json://`` URL."""
        from aiohttp import web

        app = web.Application(client_max_size=1 << 20)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        self._port = int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        return self.config()

    def config(self, *kinds: str) -> dict[str, Any]:
        """A channel config section with one URL per kind (default: ``json``)."""
        return {"urls": [self.url(kind) for kind in (kinds or ("json",))]}

    async def stop(self) -> None:
        """Release hanging requests and stop serving (safe to call twice)."""
        for event in self._hung:
            event.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> AppriseSink:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The port it listens on (once started)."""
        if self._port is None:
            raise RuntimeError("AppriseSink is not started")
        return self._port

    def url(self, kind: str = "json", *, name: str = "demo", userinfo: str = "") -> str:
        """An Apprise URL of ``kind`` (``json``, ``form``, ``xml``, ``ntfy``) aimed at this sink.

        ``userinfo`` (``"user:password"``) adds credentials to the URL.
        """
        auth = f"{userinfo}@" if userinfo else ""
        host = f"127.0.0.1:{self.port}"
        if kind == "ntfy":
            return f"ntfy://{auth}{host}/{name}-{self.token}"
        if kind not in ("json", "form", "xml"):
            raise ValueError(f"kind: expected json, form, xml or ntfy, got {kind!r}")
        return f"{kind}://{auth}{host}/{kind}/{name}/{self.token}"

    def fail(self, status: int, *, times: int = 1, body: str = "") -> None:
        """Answer the next ``times`` requests with ``status`` (and ``body``)."""
        self._faults.append(_Fault(status, times, body))

    def hang(self, *, times: int = 1) -> None:
        """Never answer the next ``times`` requests (until :meth:`stop`)."""
        self._faults.append(_Fault(None, times))

    def lines(self) -> list[str]:
        """One line per notification accepted: ``json /json/demo/...: [HIGH] title``."""
        return [f"{n.kind}: {n.title}" for n in self.notifications]

    async def wait_for(self, count: int, *, timeout: float = 10.0) -> list[Notification]:
        """Wait until ``count`` notifications arrived; return them."""

        async def arrived() -> None:
            while len(self.notifications) < count:
                self._arrived = asyncio.Event()
                await self._arrived.wait()

        await asyncio.wait_for(arrived(), timeout)
        return list(self.notifications)

    def _next_fault(self) -> _Fault | None:
        while self._faults:
            fault = self._faults[0]
            if fault.times <= 0:
                self._faults.pop(0)
                continue
            fault.times -= 1
            return fault
        return None

    async def _handle(self, request: Any) -> Any:
        from aiohttp import web

        body = await request.read()
        path = request.path
        fault = self._next_fault()
        if fault is not None and fault.status is None:
            event = asyncio.Event()
            self._hung.append(event)
            self.requests.append((request.method, path, 0))
            await event.wait()
            return web.Response(status=503)
        if fault is not None and fault.status is not None:
            self.requests.append((request.method, path, fault.status))
            return web.Response(status=fault.status, text=fault.body)
        parts = [p for p in path.split("/") if p]
        kind = parts[0] if parts and parts[0] in ("json", "form", "xml") else "ntfy"
        try:
            title, message, kind_type, fields = _decode(kind, body)
        except (ValueError, ElementTree.ParseError, UnicodeDecodeError):
            self.requests.append((request.method, path, 400))
            return web.Response(status=400, text="cannot decode the body")
        if kind == "ntfy":
            path = "/" + str(fields.get("topic", ""))
        self.notifications.append(
            Notification(
                kind=kind,
                path=path,
                headers={k.lower(): v for k, v in request.headers.items()},
                body=body,
                title=title,
                message=message,
                type=kind_type,
                fields=fields,
            )
        )
        self.requests.append((request.method, path, 200))
        if self._arrived is not None:
            self._arrived.set()
        if kind == "ntfy":
            return web.json_response({"id": secrets.token_hex(6), "topic": fields.get("topic")})
        return web.Response(status=200, text="ok")


@attrs.frozen
class SMTPMessage:
    """One message the SMTP sink accepted."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    authenticated_as: str | None

    @property
    def message(self) -> email.message.EmailMessage:
        """The parsed message."""
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        return parsed  # type: ignore[return-value]

    @property
    def subject(self) -> str:
        """The decoded Subject header."""
        return str(self.message["Subject"])


class SMTPSink:
    """A plain SMTP server on 127.0.0.1 for ``mailto://`` URLs (no TLS on loopback).

    With ``username`` and ``password`` it offers AUTH (PLAIN, LOGIN) without
    TLS and refuses mail from a client that did not log in. :meth:`refuse`
    makes it answer the next RCPT with a code (``550`` permanent, ``451``
    temporary). Use it as a context manager or with :meth:`start`/:meth:`stop`
    (it runs in its own thread and event loop).
    """

    def __init__(self, *, username: str | None = None, password: str | None = None) -> None:
        self.username = username
        self.password = password
        self.messages: list[SMTPMessage] = []
        self.refusals: list[str] = []
        self._refuse: list[str] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Any = None
        self._port: int | None = None

    def start(self) -> SMTPSink:
        """Start serving on a free port, in its own thread and event loop."""
        from aiosmtpd.smtp import SMTP, AuthResult

        sink = self

        class Handler:
            async def handle_RCPT(
                self, server: Any, session: Any, envelope: Any, address: str, options: Any
            ) -> str:
                if sink.username is not None and not session.authenticated:
                    return "530 5.7.0 Authentication required"
                with sink._lock:
                    reply = sink._refuse.pop(0) if sink._refuse else None
                if reply is not None:
                    sink.refusals.append(address)
                    return reply
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                login = session.auth_data if session.authenticated else None
                user = login.decode() if isinstance(login, bytes) else login
                sink.messages.append(
                    SMTPMessage(
                        mail_from=envelope.mail_from,
                        rcpt_tos=tuple(envelope.rcpt_tos),
                        data=bytes(envelope.original_content or envelope.content),
                        authenticated_as=user,
                    )
                )
                return "250 Message accepted"

        def authenticate(
            server: Any, session: Any, envelope: Any, mechanism: str, auth: Any
        ) -> Any:
            login = auth.login.decode() if isinstance(auth.login, bytes) else auth.login
            word = auth.password.decode() if isinstance(auth.password, bytes) else auth.password
            ok = login == sink.username and word == sink.password
            return AuthResult(success=ok, handled=False, auth_data=login if ok else None)

        kwargs: dict[str, Any] = {"hostname": "sink.local"}
        if self.username is not None:
            kwargs.update(authenticator=authenticate, auth_require_tls=False)
        handler = Handler()
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            server = loop.run_until_complete(
                loop.create_server(lambda: SMTP(handler, **kwargs), "127.0.0.1", 0)
            )
            self._server = server
            self._port = int(server.sockets[0].getsockname()[1])
            ready.set()
            loop.run_forever()
            server.close()
            loop.run_until_complete(server.wait_closed())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="pixalert-apprise-smtp", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        """Stop serving (safe to call twice)."""
        thread, self._thread = self._thread, None
        if thread is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            thread.join(10)

    def __enter__(self) -> SMTPSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port it listens on (once started)."""
        if self._port is None:
            raise RuntimeError("SMTPSink is not started")
        return self._port

    def refuse(self, reply: str = "550 5.1.1 No such user", *, times: int = 1) -> None:
        """Answer the next ``times`` RCPT commands with ``reply``."""
        with self._lock:
            self._refuse.extend([reply] * times)

    def mailto_url(
        self, to: str = "ops@example.com", *, sender: str = "pixalert@example.com"
    ) -> str:
        """A ``mailto://`` URL for this sink: plain SMTP on its port (``mode=insecure``)."""
        auth = ""
        if self.username is not None:
            auth = f"{quote(self.username, safe='')}:{quote(self.password or '', safe='')}@"
        return f"mailto://{auth}127.0.0.1:{self.port}?from={sender}&to={to}&mode=insecure"
