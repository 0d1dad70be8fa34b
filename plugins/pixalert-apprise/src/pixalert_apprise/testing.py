"""Loopback stand-ins for the services Apprise URLs point at, for tests and ``pixalert demo``.

- :class:`AppriseSink`: an HTTP server (aiohttp, 127.0.0.1, a random port)
  that takes what Apprise's ``json://``, ``form://``, ``xml://`` and
  ``ntfy://`` services send, records each notification it decoded
  (:attr:`AppriseSink.notifications`), and fails on demand with the
  :class:`pixalert.testing.FakeService` verbs (``fail``, ``hang``, ``drop``).
  It is the ``apprise`` sink of ``pixalert demo``.
- :class:`SMTPSink`: a plain SMTP server (aiosmtpd, no TLS, optional AUTH)
  for ``mailto://`` URLs, recording each message, failing on demand (``fail``).

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
from typing import Any, ClassVar
from urllib.parse import parse_qsl, quote
from xml.etree import ElementTree

import attrs
from pixalert.testing import FakeService, ReceivedRequest

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


class AppriseSink(FakeService[Notification]):
    """An HTTP server on 127.0.0.1 for Apprise's HTTP services (a
    :class:`pixalert.testing.FakeService`).

    Point Apprise at it with :meth:`url` (``json://127.0.0.1:PORT/json/NAME``,
    ``form://...``, ``xml://...``, ``ntfy://127.0.0.1:PORT/TOPIC``). It answers
    200 and records each notification it decoded (:attr:`notifications`,
    also :attr:`received`), or what ``fail``, ``hang`` and ``drop`` arranged.
    A body it cannot decode is rejected with 400.
    """

    channel_type = "apprise"
    #: Apprise reports a 404 as permanent and a 503 as worth retrying; its results
    #: carry no ``Retry-After``, so there is no rate-limit failure to check.
    failures: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "permanent": {"status": 404},
        "retryable": {"status": 503},
    }

    def __init__(self, *, token: str | None = None) -> None:
        super().__init__()
        #: A random path segment in every URL (as a webhook token would be): a secret.
        self.token = token or secrets.token_urlsafe(16)

    @property
    def notifications(self) -> list[Notification]:
        """Every notification accepted, in order."""
        return self.received

    def config(self, *kinds: str) -> dict[str, Any]:
        """A channel config section with one URL per kind (default: ``json``)."""
        return {"urls": [self.url_of(kind) for kind in (kinds or ("json",))]}

    def url_of(self, kind: str = "json", *, name: str = "demo", userinfo: str = "") -> str:
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

    async def handle(self, request: Any, record: ReceivedRequest) -> Any:
        """Decode what Apprise sent; record it."""
        from aiohttp import web

        parts = [p for p in record.path.split("/") if p]
        kind = parts[0] if parts and parts[0] in ("json", "form", "xml") else "ntfy"
        try:
            title, message, kind_type, fields = _decode(kind, record.body)
        except (ValueError, ElementTree.ParseError, UnicodeDecodeError):
            self.reject(record, "cannot decode the body")
            return web.Response(status=400, text="cannot decode the body")
        path = "/" + str(fields.get("topic", "")) if kind == "ntfy" else record.path
        notification = Notification(
            kind=kind,
            path=path,
            headers={k.lower(): v for k, v in record.headers.items()},
            body=record.body,
            title=title,
            message=message,
            type=kind_type,
            fields=fields,
        )
        self.accept(record, notification, line=f"{kind}: {title}")
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
    TLS and refuses mail from a client that did not log in. :meth:`fail`
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

    def fail(self, status: int = 550, text: str = "5.1.1 No such user", *, times: int = 1) -> None:
        """Answer the next ``times`` RCPT commands with the SMTP reply ``status text``
        (the :class:`pixalert.testing.FakeService` verb, with SMTP's codes: 4xx
        temporary, 5xx permanent)."""
        if not 400 <= status < 600:
            raise ValueError(f"status: expected an SMTP error code (4xx or 5xx), got {status}")
        with self._lock:
            self._refuse.extend([f"{status} {text}"] * times)

    def mailto_url(
        self, to: str = "ops@example.com", *, sender: str = "pixalert@example.com"
    ) -> str:
        """A ``mailto://`` URL for this sink: plain SMTP on its port (``mode=insecure``)."""
        auth = ""
        if self.username is not None:
            auth = f"{quote(self.username, safe='')}:{quote(self.password or '', safe='')}@"
        return f"mailto://{auth}127.0.0.1:{self.port}?from={sender}&to={to}&mode=insecure"
