"""A real SMTP server on 127.0.0.1 for testing email alerts end to end.

Install with ``pip install pixalert-email[testing]`` (aiosmtpd, trustme).

:class:`SMTPTestServer` runs aiosmtpd in a background thread, so it serves
async tests, sync tests and ``pixalert demo`` alike. It enforces what a
submission server enforces:

- ``security="starttls"`` (default): STARTTLS offered with a self-signed
  certificate from a throwaway CA (trustme); every command but EHLO, NOOP,
  RSET, QUIT and STARTTLS is refused until TLS is on, and AUTH is never
  offered in clear text.
- ``security="tls"``: implicit TLS from the first byte (as on port 465).
- ``security="none"``: plain SMTP, no AUTH (a local relay).
- ``offer_starttls=False``: a stripped server (a misconfiguration, or a
  man in the middle) that hides STARTTLS and happily takes AUTH in clear text,
  so a test can prove a client never falls for it.
- With ``username`` and ``password`` set, AUTH (PLAIN or LOGIN) is required
  before MAIL and checked against them.

It is a :class:`pixalert.testing.FakeService`, with the same verbs as the
HTTP ones, in SMTP's terms:

- ``requests``: every SMTP command, in order; ``endpoint`` is the verb
  (``EHLO``, ``AUTH``, ``MAIL``...), ``status`` the reply code, ``tls``
  whether TLS was on, ``connection`` its connection's number. A command
  answered 4xx or 5xx is a rejection, the reply text its ``reason``.
- ``received``: the accepted messages (:class:`ReceivedMessage`: envelope,
  raw bytes and the parsed message).
- ``fail(451)``: ``status`` is an SMTP reply code (4xx transient, 5xx
  permanent; 2xx to 5xx accepted) and ``body`` the reply text (a standard
  text for the code by default). It answers the next message at ``DATA``
  (after the content, as real servers reject content), or at ``endpoint=
  "MAIL"`` or ``"RCPT"``; a 421 at MAIL or RCPT also closes the connection.
  SMTP replies carry no delay, so ``retry_after`` is refused.
- ``hang()`` holds the reply back (at DATA unless told another endpoint)
  until ``release()``, which lets the message through, or stop; ``drop()``
  closes the connection instead of replying.

Besides: :attr:`~SMTPTestServer.auth_attempts`, connection counts, and
:meth:`~SMTPTestServer.drop_connections` (close every open connection now,
as a server's idle timeout does).

Example::

    from pixalert_email.testing import SMTPTestServer

    async def test_my_alert():
        async with SMTPTestServer() as server:
            manager = NotificationManager(config={"channels": {"email": server.config()}})
            await manager.send_alert("Disk full", "95% on db-1", "high", channels=["email"])
            assert server.received() == ["to ops@example.com: [HIGH] Disk full"]

It is also the ``email`` sink of ``pixalert demo``.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import shutil
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

import attrs
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from pixalert.testing import FakeService, Fault, ReceivedRequest

__all__ = ["AuthAttempt", "ReceivedMessage", "SMTPTestServer"]

Security = Literal["starttls", "tls", "none"]

_AUTH_MECHANISMS = ("PLAIN", "LOGIN")


@attrs.frozen
class ReceivedMessage:
    """One message the server accepted.

    ``data`` is exactly the bytes of the DATA section (after dot-unstuffing);
    ``message`` is the same bytes parsed with ``email.policy.default``.
    """

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    message: EmailMessage
    tls: bool
    authenticated_as: str | None

    @property
    def subject(self) -> str:
        """The decoded Subject header."""
        return str(self.message["Subject"])


@attrs.frozen
class AuthAttempt:
    """An AUTH command: its mechanism, whether TLS was on, and how it ended."""

    mechanism: str
    tls: bool
    username: str | None = None
    success: bool | None = None


class _Handler:
    """aiosmtpd handler: records each message, or answers the fault scripted for DATA."""

    def __init__(self, owner: SMTPTestServer) -> None:
        self.owner = owner

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(server, _SMTP)
        record = server.current
        raw = envelope.original_content or b""
        if isinstance(raw, str):  # pragma: no cover - decode_data is off
            raw = raw.encode("utf-8", "surrogateescape")
        if record is not None:
            record.body = raw
            reply = await server.fault_reply(record)
            if reply is not None:
                return reply
        received = ReceivedMessage(
            mail_from=str(envelope.mail_from),
            rcpt_tos=tuple(envelope.rcpt_tos),
            data=raw,
            message=email.message_from_bytes(raw, policy=email.policy.default),
            tls=server.tls_on(),
            authenticated_as=session.auth_data if session.authenticated else None,
        )
        line = f"to {', '.join(received.rcpt_tos)}: {received.subject}"
        self.owner.accept(record, received, line=line)
        return "250 2.0.0 Message accepted for delivery"


class _Session(Session):
    """aiosmtpd's Session without the deprecation log line on every AUTH."""

    @property
    def login_data(self) -> Any:
        """The login of the session (aiosmtpd's legacy attribute)."""
        return self._login_data

    @login_data.setter
    def login_data(self, value: Any) -> None:
        self._login_data = value


class _SMTP(SMTP):
    """aiosmtpd's SMTP with every command recorded and its reply code noted, and the
    scripted faults answered at MAIL and RCPT (DATA's are answered by the handler)."""

    def __init__(self, handler: _Handler, *, allow_clear_auth: bool, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._owner = handler.owner
        self._number = 0
        self.current: ReceivedRequest | None = None
        if allow_clear_auth:
            # Implicit TLS (the whole connection is TLS, which aiosmtpd does not
            # see) or the stripped server, which offers AUTH without TLS on purpose.
            self._auth_require_tls = False
        self._smtp_methods = {
            verb: self._recorded(verb, method) for verb, method in self._smtp_methods.items()
        }

    def _create_session(self) -> Session:
        assert self.loop is not None
        return _Session(self.loop)

    def tls_on(self) -> bool:
        """Whether this connection is encrypted now."""
        transport = self.transport
        return transport is not None and transport.get_extra_info("sslcontext") is not None

    def _recorded(self, verb: str, method: Callable[[str], Any]) -> Callable[[str], Any]:
        async def run(arg: str) -> Any:
            owner = self._owner
            secret = verb == "AUTH"  # its argument can carry the credentials
            record = ReceivedRequest(
                endpoint=verb,
                method=verb,
                body=b"" if secret else (arg or "").encode("utf-8", "surrogateescape"),
                connection=self._number,
                tls=self.tls_on(),
            )
            self.current = owner.log(record)
            if verb == "AUTH":
                owner.auth_started(AuthAttempt((arg or "").split(" ", 1)[0].upper(), record.tls))
            if verb in ("MAIL", "RCPT"):
                reply = await self.fault_reply(record)
                if reply is not None:
                    await self.push(reply)
                    if reply.startswith("421") and self.transport is not None:
                        self.transport.close()
                    return None
            return await method(arg)

        return run

    async def fault_reply(self, record: ReceivedRequest) -> str | None:
        """The reply of the fault scripted for ``record``, if one is due (hangs and drops here)."""
        owner = self._owner
        fault = owner.take_fault(record.endpoint)
        if fault is not None and fault.action == "hang":
            fault = None if await owner.hold(record) else Fault("drop")
        if fault is None:
            return None
        if fault.action == "drop":
            if record.outcome == "pending":
                owner.mark(record, "fault", "drop")
            if isinstance(self.transport, asyncio.WriteTransport):
                self.transport.abort()
            await asyncio.Future()  # connection_lost cancels this session's handler
        owner.mark(record, "fault", f"status {fault.status}")
        text = fault.body(record) if callable(fault.body) else fault.body
        return f"{fault.status} {text or _DEFAULT_TEXT.get(fault.status, _OTHER_TEXT)}"

    async def push(self, status: Any) -> None:
        """Send a reply line; the first final reply to a command is its ``status``."""
        record = self.current
        text = status if isinstance(status, str) else bytes(status).decode("utf-8", "replace")
        if record is not None and record.status is None and text[:3].isdigit():
            code = int(text[:3])
            if not 300 <= code < 400:  # 334 and 354 ask for more; the reply comes after
                if code >= 400 and record.outcome == "pending":
                    self._owner.reject(record, text)
                self._owner.answered(record, code, text)
        await super().push(status)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None
        super().connection_made(transport)
        if first:
            self._number = self._owner.connection_opened(self)

    def connection_lost(self, error: Exception | None) -> None:
        super().connection_lost(error)
        self._owner.connection_closed(self)


class SMTPTestServer(FakeService[ReceivedMessage]):
    """A contract-enforcing SMTP server on 127.0.0.1; see the module docstring.

    :param security: ``"starttls"``, ``"tls"`` or ``"none"`` (what the server speaks).
    :param username: the AUTH user; with ``password``, AUTH is required before MAIL.
    :param password: the AUTH password.
    :param offer_starttls: False makes a stripped server: no STARTTLS, AUTH
        offered in clear text (only with ``security="starttls"``).
    :param recipients: the recipients :meth:`config` puts in the channel config.
    :param sender: the sender :meth:`config` puts in the channel config.
    :param port: the port to listen on (0: a free one).

    Use it as ``async with`` / ``with``, or ``await start()`` and ``await stop()``.
    """

    channel_type = "email"
    endpoints = ("MAIL", "RCPT", "DATA")
    default_endpoint = "DATA"
    failures = {"permanent": {"status": 554}, "retryable": {"status": 451}}

    def __init__(
        self,
        *,
        security: Security = "starttls",
        username: str | None = "pixalert",
        password: str | None = "pixalert-test-password",
        offer_starttls: bool = True,
        recipients: Iterable[str] = ("ops@example.com",),
        sender: str = "alerts@example.com",
        port: int = 0,
    ) -> None:
        if security not in ("starttls", "tls", "none"):
            raise ValueError(f"security: expected 'starttls', 'tls' or 'none', got {security!r}")
        if (username is None) != (password is None):
            raise ValueError("username and password: give both or neither")
        super().__init__()
        self.security: Security = security
        self.offer_starttls = offer_starttls and security == "starttls"
        self.username = username if security != "none" else None
        self.password = password if security != "none" else None
        self.recipients = list(recipients)
        self.sender = sender
        #: PEM file of the CA that signed the server certificate (None for "none").
        self.ca_file: str | None = None
        self._listen_port = port
        self._bound_port = 0
        self._auth_attempts: list[AuthAttempt] = []
        self._connections = 0
        self._protocols: set[_SMTP] = set()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._tmpdir: str | None = None
        self._server_context: ssl.SSLContext | None = None
        self._stopping: asyncio.Event | None = None

    def __repr__(self) -> str:
        return f"SMTPTestServer({self.host}:{self._port}, security={self.security!r})"

    @property
    def url(self) -> str:
        """``smtp://127.0.0.1:<port>``."""
        return f"smtp://{self.host}:{self.port}"

    # ------------------------------------------------------------------
    # Starting and stopping
    # ------------------------------------------------------------------

    async def serve(self) -> int:
        """Start the server thread; return its port."""
        return await asyncio.to_thread(self._start_thread)

    async def shutdown(self) -> None:
        """Stop the server thread and delete the certificate files."""
        await asyncio.to_thread(self._stop_thread)

    def __enter__(self) -> SMTPTestServer:
        self.start_sync()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_sync()

    def start_sync(self) -> None:
        """Start serving, blocking until the port is bound."""
        if not self._serving:
            self._started(self._start_thread())

    def stop_sync(self) -> None:
        """Stop serving, blocking until the thread is gone. Safe to call twice."""
        if self._stopping_now():
            self._stop_thread()
        self._stopped()

    def _start_thread(self) -> int:
        if self._thread is not None:
            raise RuntimeError("SMTPTestServer: already started")
        if self.security != "none":
            self._make_certificates()
        self._ready.clear()
        self._thread = threading.Thread(target=self._run, name="pixalert-smtp-test", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            error, self._startup_error = self._startup_error, None
            self._thread.join()
            self._thread = None
            raise RuntimeError(f"SMTPTestServer: could not start: {error}") from error
        return self._bound_port

    def _stop_thread(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._shutdown)
            thread.join()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def _make_certificates(self) -> None:
        ca, cert = _certificates()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        self._server_context = context
        self._tmpdir = tempfile.mkdtemp(prefix="pixalert-smtp-")
        path = Path(self._tmpdir) / "ca.pem"
        ca.cert_pem.write_to_path(str(path))
        self.ca_file = str(path)

    def _factory(self) -> _SMTP:
        assert self._loop is not None
        starttls = self.security == "starttls" and self.offer_starttls
        auth = self.username is not None
        stripped = self.security == "starttls" and not self.offer_starttls
        exclude = [m for m in ("CRAM-MD5", "XOAUTH2") if m not in _AUTH_MECHANISMS]
        return _SMTP(
            _Handler(self),
            allow_clear_auth=self.security == "tls" or (stripped and auth),
            hostname="pixalert-test.localhost",
            tls_context=self._server_context if starttls else None,
            require_starttls=starttls,
            auth_required=auth and not stripped,
            authenticator=self._authenticate,
            auth_exclude_mechanism=exclude,
            loop=self._loop,
        )

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to the starting thread
            if not self._ready.is_set():
                self._startup_error = exc
                self._ready.set()
            else:  # pragma: no cover - the server loop itself broke
                raise

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._stopping = asyncio.Event()
        implicit = self._server_context if self.security == "tls" else None
        server = await loop.create_server(self._factory, self.host, self._listen_port, ssl=implicit)
        self._bound_port = int(server.sockets[0].getsockname()[1])
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            server.close()
            await self._close_all_and_wait()
            await server.wait_closed()

    def _shutdown(self) -> None:
        if self._stopping is not None:
            self._stopping.set()

    def _close_all(self) -> None:
        """Abort every client connection (TLS ones too, without waiting for close_notify)."""
        for protocol in list(self._protocols):
            transport = protocol.transport
            if isinstance(transport, asyncio.WriteTransport):
                transport.abort()
            elif transport is not None:
                transport.close()

    async def _close_all_and_wait(self) -> None:
        self._close_all()
        # connection_lost runs on the next loop iterations; wait for it, bounded.
        for _ in range(1000):
            if not self._protocols:
                return
            await asyncio.sleep(0)

    def connection_opened(self, protocol: _SMTP) -> int:
        """Count a new connection; return its number."""
        with self._cond:
            self._connections += 1
            self._protocols.add(protocol)
            self._changed()
            return self._connections

    def connection_closed(self, protocol: _SMTP) -> None:
        """Count a connection gone."""
        with self._cond:
            self._protocols.discard(protocol)
            self._changed()

    def auth_started(self, attempt: AuthAttempt) -> None:
        """Record an AUTH command (its outcome is filled in by the authenticator)."""
        with self._cond:
            self._auth_attempts.append(attempt)
            self._changed()

    def _authenticate(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode("utf-8", "replace")
        ok = (
            self.username is not None
            and self.password is not None
            and login == self.username
            and auth_data.password.decode("utf-8", "replace") == self.password
        )
        with self._cond:
            attempts = self._auth_attempts
            for i in range(len(attempts) - 1, -1, -1):
                if attempts[i].success is None:
                    attempts[i] = attrs.evolve(attempts[i], username=login, success=ok)
                    break
            self._changed()
        # handled=False: aiosmtpd answers 235 or "535 5.7.8 Authentication credentials invalid".
        return AuthResult(success=ok, handled=False, auth_data=login if ok else None)

    # ------------------------------------------------------------------
    # What a test uses
    # ------------------------------------------------------------------

    def config(self, **overrides: Any) -> dict[str, Any]:
        """The ``[channels.email]`` section that targets this server (plus ``overrides``).

        TLS is verified against this server's own CA (``ca_file``).
        """
        section: dict[str, Any] = {
            "smtp_server": self.host,
            "smtp_port": self.port,
            "security": self.security,
            "recipients": list(self.recipients),
            "sender": self.sender,
            "timeout": 5.0,
        }
        if self.security != "none":
            section["ca_file"] = self.ca_file
            if self.username is not None:
                section["username"] = self.username
                section["password"] = self.password
        section.update(overrides)
        return section

    def client_tls_context(self) -> ssl.SSLContext:
        """An SSL context that trusts this server's certificate."""
        if self.ca_file is None:
            raise RuntimeError("SMTPTestServer: this server has no TLS")
        return ssl.create_default_context(cafile=self.ca_file)

    def fail(
        self,
        status: int = 451,
        *,
        times: int = 1,
        retry_after: float | str | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        endpoint: str | None = None,
    ) -> None:
        """Answer the next ``times`` messages with the SMTP reply code ``status``.

        ``body`` is the reply text (a standard text for the code by default);
        the reply comes at DATA, after the message data, unless ``endpoint``
        is ``"MAIL"`` or ``"RCPT"``. A 421 at MAIL or RCPT also closes the
        connection.
        """
        if not 200 <= status <= 599:
            raise ValueError(f"status: expected an SMTP reply code (2xx to 5xx), got {status}")
        if retry_after is not None or headers:
            raise ValueError("retry_after, headers: an SMTP reply has neither")
        super().fail(status, times=times, body=body, endpoint=endpoint)

    @property
    def auth_attempts(self) -> list[AuthAttempt]:
        """Every AUTH command, with whether TLS was on and whether it succeeded."""
        with self._cond:
            return list(self._auth_attempts)

    @property
    def logins(self) -> int:
        """How many AUTH commands succeeded."""
        return sum(1 for a in self.auth_attempts if a.success)

    @property
    def connections(self) -> int:
        """How many connections were accepted in all."""
        with self._cond:
            return self._connections

    @property
    def open_connections(self) -> int:
        """How many connections are open now."""
        with self._cond:
            return len(self._protocols)

    def drop_connections(self) -> None:
        """Close every open client connection at once, as a server's idle timeout does."""
        if self._loop is None or self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._close_all_and_wait(), self._loop).result()

    def wait_sync(self, predicate: Callable[[SMTPTestServer], bool], timeout: float = 10.0) -> None:
        """Block until ``predicate(server)`` is true; TimeoutError after ``timeout`` seconds."""
        with self._cond:
            # The predicate reads the public properties, which take the same
            # (re-entrant) lock.
            if not self._cond.wait_for(lambda: predicate(self), timeout):
                raise TimeoutError(f"SMTPTestServer: condition not met within {timeout} s")


_cert_lock = threading.Lock()
_cert_cache: tuple[Any, Any] | None = None


def _certificates() -> tuple[Any, Any]:
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost (made once)."""
    global _cert_cache
    with _cert_lock:
        if _cert_cache is None:
            import trustme

            ca = trustme.CA()
            _cert_cache = (ca, ca.issue_cert("127.0.0.1", "localhost"))
        return _cert_cache


_DEFAULT_TEXT = {
    421: "4.3.2 Service not available, closing transmission channel",
    450: "4.2.1 Mailbox unavailable, try again later",
    451: "4.3.0 Local error in processing, try again later",
    452: "4.3.1 Insufficient system storage",
    535: "5.7.8 Authentication credentials invalid",
    550: "5.1.1 Mailbox unavailable",
    552: "5.3.4 Message size exceeds fixed limit",
    553: "5.1.3 Mailbox name not allowed",
    554: "5.7.1 Message rejected",
}
_OTHER_TEXT = "Requested action not taken"
