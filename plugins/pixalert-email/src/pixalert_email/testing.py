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

It records what it saw: :attr:`~SMTPTestServer.messages` (envelope, raw bytes
and the parsed message), :attr:`~SMTPTestServer.auth_attempts`,
:attr:`~SMTPTestServer.commands` and connection counts. It can be told to
answer the next messages with an SMTP code (:meth:`~SMTPTestServer.fail_next`),
to hang (:meth:`~SMTPTestServer.hang_next`) and to drop its connections
(:meth:`~SMTPTestServer.drop_connections`).

Example::

    from pixalert_email.testing import SMTPTestServer

    async def test_my_alert():
        async with SMTPTestServer() as server:
            manager = NotificationManager(config={"channels": {"email": server.config()}})
            await manager.send_alert("Disk full", "95% on db-1", "high", channels=["email"])
            assert server.received() == ["to ops@example.com: [HIGH] Disk full"]

It is also the ``email`` :class:`pixalert.channels.DemoSink` of ``pixalert demo``.
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

__all__ = ["AuthAttempt", "Command", "ReceivedMessage", "SMTPTestServer"]

Security = Literal["starttls", "tls", "none"]
Stage = Literal["MAIL", "RCPT", "DATA"]

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


@attrs.frozen
class Command:
    """An SMTP command as received: its verb, whether TLS was on, and its connection number."""

    verb: str
    tls: bool
    connection: int


@attrs.define
class _Failure:
    stage: str
    code: int
    text: str
    remaining: int


class _Recorder:
    """State shared between the server thread and the caller, under one condition."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.messages: list[ReceivedMessage] = []
        self.auth_attempts: list[AuthAttempt] = []
        self.commands: list[Command] = []
        self.connections = 0
        self.open_connections = 0
        self.failures: list[_Failure] = []
        self.hangs: dict[str, int] = {}
        self.hanging = 0

    def change(self, func: Callable[[], Any]) -> Any:
        with self.cond:
            result = func()
            self.cond.notify_all()
            return result

    def take_failure(self, stage: str) -> _Failure | None:
        with self.cond:
            for failure in self.failures:
                if failure.stage == stage and failure.remaining > 0:
                    failure.remaining -= 1
                    if failure.remaining == 0:
                        self.failures.remove(failure)
                    return failure
            return None

    def take_hang(self, stage: str) -> bool:
        with self.cond:
            if self.hangs.get(stage, 0) > 0:
                self.hangs[stage] -= 1
                return True
            return False


class _Handler:
    """aiosmtpd handler: records each message, or fails or hangs when told to."""

    def __init__(self, owner: SMTPTestServer) -> None:
        self.owner = owner

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        owner = self.owner
        rec = owner._rec
        if rec.take_hang("DATA"):
            event = owner._hang_release_event()
            rec.change(lambda: setattr(rec, "hanging", rec.hanging + 1))
            try:
                await event.wait()
            finally:
                rec.change(lambda: setattr(rec, "hanging", rec.hanging - 1))
        failure = rec.take_failure("DATA")
        if failure is not None:
            return f"{failure.code} {failure.text}"
        raw = envelope.original_content or b""
        if isinstance(raw, str):  # pragma: no cover - decode_data is off
            raw = raw.encode("utf-8", "surrogateescape")
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        transport = server.transport
        received = ReceivedMessage(
            mail_from=str(envelope.mail_from),
            rcpt_tos=tuple(envelope.rcpt_tos),
            data=raw,
            message=parsed,
            tls=transport is not None and transport.get_extra_info("sslcontext") is not None,
            authenticated_as=session.auth_data if session.authenticated else None,
        )
        rec.change(lambda: rec.messages.append(received))
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
    """aiosmtpd's SMTP with every command recorded, and failures injected at MAIL and RCPT."""

    def __init__(self, handler: _Handler, *, allow_clear_auth: bool, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._owner = handler.owner
        self._number = 0
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

    def _tls_on(self) -> bool:
        transport = self.transport
        return transport is not None and transport.get_extra_info("sslcontext") is not None

    def _recorded(self, verb: str, method: Callable[[str], Any]) -> Callable[[str], Any]:
        async def run(arg: str) -> Any:
            rec = self._owner._rec
            command = Command(verb, self._tls_on(), self._number)
            rec.change(lambda: rec.commands.append(command))
            if verb == "AUTH":
                mechanism = (arg or "").split(" ", 1)[0].upper()
                attempt = AuthAttempt(mechanism, self._tls_on())
                rec.change(lambda: rec.auth_attempts.append(attempt))
            if verb in ("MAIL", "RCPT"):
                failure = rec.take_failure(verb)
                if failure is not None:
                    await self.push(f"{failure.code} {failure.text}")
                    if failure.code == 421 and self.transport is not None:
                        self.transport.close()
                    return None
            return await method(arg)

        return run

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None
        super().connection_made(transport)
        if first:
            rec = self._owner._rec

            def opened() -> None:
                rec.connections += 1
                rec.open_connections += 1
                self._number = rec.connections

            rec.change(opened)
            self._owner._protocols.add(self)

    def connection_lost(self, error: Exception | None) -> None:
        super().connection_lost(error)
        if self in self._owner._protocols:
            self._owner._protocols.discard(self)
            rec = self._owner._rec

            def closed() -> None:
                rec.open_connections -= 1

            rec.change(closed)


class SMTPTestServer:
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
        self.security: Security = security
        self.offer_starttls = offer_starttls and security == "starttls"
        self.username = username if security != "none" else None
        self.password = password if security != "none" else None
        self.recipients = list(recipients)
        self.sender = sender
        self.host = "127.0.0.1"
        self.port = port
        #: PEM file of the CA that signed the server certificate (None for "none").
        self.ca_file: str | None = None
        self._rec = _Recorder()
        self._protocols: set[_SMTP] = set()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._tmpdir: str | None = None
        self._server_context: ssl.SSLContext | None = None
        self._release: asyncio.Event | None = None
        self._stopping: asyncio.Event | None = None
        self._ca: Any = None

    def __repr__(self) -> str:
        return f"SMTPTestServer({self.host}:{self.port}, security={self.security!r})"

    # ------------------------------------------------------------------
    # Starting and stopping
    # ------------------------------------------------------------------

    async def start(self) -> Mapping[str, Any]:
        """Start serving (in a background thread); return :meth:`config`."""
        await asyncio.to_thread(self.start_sync)
        return self.config()

    async def stop(self) -> None:
        """Stop serving and delete the certificate files."""
        await asyncio.to_thread(self.stop_sync)

    async def __aenter__(self) -> SMTPTestServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def __enter__(self) -> SMTPTestServer:
        self.start_sync()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_sync()

    def start_sync(self) -> None:
        """Start serving, blocking until the port is bound."""
        if self._thread is not None:
            raise RuntimeError("SMTPTestServer: already started")
        if self.security != "none":
            self._make_certificates()
        self._thread = threading.Thread(target=self._run, name="pixalert-smtp-test", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            error, self._startup_error = self._startup_error, None
            self._thread.join()
            self._thread = None
            raise RuntimeError(f"SMTPTestServer: could not start: {error}") from error

    def stop_sync(self) -> None:
        """Stop serving, blocking until the thread is gone. Safe to call twice."""
        thread, self._thread = self._thread, None
        if thread is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._shutdown)
            thread.join()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def _make_certificates(self) -> None:
        self._ca, cert = _certificates()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        self._server_context = context
        self._tmpdir = tempfile.mkdtemp(prefix="pixalert-smtp-")
        path = Path(self._tmpdir) / "ca.pem"
        self._ca.cert_pem.write_to_path(str(path))
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
        self._release = asyncio.Event()
        implicit = self._server_context if self.security == "tls" else None
        server = await loop.create_server(self._factory, self.host, self.port, ssl=implicit)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            self._release.set()
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

    def _hang_release_event(self) -> asyncio.Event:
        assert self._release is not None
        return self._release

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
        rec = self._rec

        def record() -> None:
            for i in range(len(rec.auth_attempts) - 1, -1, -1):
                if rec.auth_attempts[i].success is None:
                    rec.auth_attempts[i] = attrs.evolve(
                        rec.auth_attempts[i], username=login, success=ok
                    )
                    break

        rec.change(record)
        # handled=False: aiosmtpd answers 235 or "535 5.7.8 Authentication credentials invalid".
        return AuthResult(success=ok, handled=False, auth_data=login if ok else None)

    # ------------------------------------------------------------------
    # What a test uses
    # ------------------------------------------------------------------

    def config(self, **overrides: Any) -> dict[str, Any]:
        """The ``[channels.email]`` section that targets this server (plus ``overrides``).

        TLS is verified against this server's own CA (``ca_file``).
        """
        if self._thread is None and self.port == 0:
            raise RuntimeError("SMTPTestServer: start the server before asking for its config")
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

    @property
    def messages(self) -> list[ReceivedMessage]:
        """Every message accepted, oldest first."""
        with self._rec.cond:
            return list(self._rec.messages)

    @property
    def auth_attempts(self) -> list[AuthAttempt]:
        """Every AUTH command, with whether TLS was on and whether it succeeded."""
        with self._rec.cond:
            return list(self._rec.auth_attempts)

    @property
    def logins(self) -> int:
        """How many AUTH commands succeeded."""
        return sum(1 for a in self.auth_attempts if a.success)

    @property
    def commands(self) -> list[Command]:
        """Every SMTP command received, in order."""
        with self._rec.cond:
            return list(self._rec.commands)

    @property
    def hanging(self) -> int:
        """How many DATA replies are being held back now (see :meth:`hang_next`)."""
        with self._rec.cond:
            return self._rec.hanging

    @property
    def connections(self) -> int:
        """How many connections were accepted in all."""
        with self._rec.cond:
            return self._rec.connections

    @property
    def open_connections(self) -> int:
        """How many connections are open now."""
        with self._rec.cond:
            return self._rec.open_connections

    def received(self) -> list[str]:
        """One line per accepted message: ``to ops@example.com: [HIGH] Disk full``."""
        return [f"to {', '.join(m.rcpt_tos)}: {m.subject}" for m in self.messages]

    def fail_next(
        self, code: int, message: str | None = None, *, count: int = 1, stage: Stage = "DATA"
    ) -> None:
        """Answer the next ``count`` commands of ``stage`` (MAIL, RCPT or DATA) with ``code``.

        At DATA the reply comes after the message data, as real servers
        reject content. A 421 at MAIL or RCPT also closes the connection.
        """
        if stage not in ("MAIL", "RCPT", "DATA"):
            raise ValueError(f"stage: expected 'MAIL', 'RCPT' or 'DATA', got {stage!r}")
        if not 200 <= code < 600:
            raise ValueError(f"code: expected an SMTP reply code, got {code}")
        text = message or _DEFAULT_TEXT.get(code, "Requested action not taken")
        failure = _Failure(stage, code, text, count)
        self._rec.change(lambda: self._rec.failures.append(failure))

    def hang_next(self, count: int = 1) -> None:
        """Never answer the next ``count`` DATA commands (until :meth:`release` or stop)."""
        rec = self._rec
        rec.change(lambda: rec.hangs.__setitem__("DATA", rec.hangs.get("DATA", 0) + count))

    def release(self) -> None:
        """Let every hanging DATA go on, and cancel hangs not started yet."""
        rec = self._rec
        rec.change(rec.hangs.clear)
        if self._loop is None:
            return

        def release() -> None:
            old, self._release = self._release, asyncio.Event()
            if old is not None:
                old.set()

        self._loop.call_soon_threadsafe(release)

    def drop_connections(self) -> None:
        """Close every open client connection at once, as a server's idle timeout does."""
        if self._loop is None or self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._close_all_and_wait(), self._loop).result()

    def wait_sync(self, predicate: Callable[[SMTPTestServer], bool], timeout: float = 10.0) -> None:
        """Block until ``predicate(server)`` is true; TimeoutError after ``timeout`` seconds."""
        with self._rec.cond:
            # The predicate reads the public properties, which take the same
            # (re-entrant) condition lock.
            if not self._rec.cond.wait_for(lambda: predicate(self), timeout):
                raise TimeoutError(f"SMTPTestServer: condition not met within {timeout} s")

    async def wait_for(
        self, predicate: Callable[[SMTPTestServer], bool], timeout: float = 10.0
    ) -> None:
        """Wait until ``predicate(server)`` is true (without blocking the event loop)."""
        await asyncio.to_thread(self.wait_sync, predicate, timeout)

    async def wait_for_messages(self, count: int, timeout: float = 10.0) -> list[ReceivedMessage]:
        """Wait until ``count`` messages arrived; return them all."""
        await self.wait_for(lambda s: len(s.messages) >= count, timeout)
        return self.messages


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
