"""The email channel: aiosmtplib over STARTTLS or implicit TLS, a few sessions reused per burst."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl

import aiosmtplib
from pixalert import Alert, DeliveryError
from pixalert.channels import ActionLinks, Group, Preview, Receipt, redact, register_secret

from ._config import EmailConfig
from ._message import OutgoingEmail, build_group_message, build_message, serialise

__all__ = ["EmailChannel"]

log = logging.getLogger("pixalert.email")

_MAX_REPLY = 200

# What SMTP and the network raise (ssl.SSLError and TimeoutError are OSErrors;
# asyncio.TimeoutError is TimeoutError from 3.11 on).
_ERRORS = (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError)


class _Reconnect(Exception):
    """A reused connection failed before any message data was sent: reconnect and try again."""


class _Session:
    """One slot of the pool: an SMTP session (or none yet), used by one send at a time."""

    __slots__ = ("busy", "idle_handle", "smtp", "uses")

    def __init__(self) -> None:
        self.smtp: aiosmtplib.SMTP | None = None
        self.busy = False
        self.uses = 0
        self.idle_handle: asyncio.TimerHandle | None = None

    def cancel_idle_timer(self) -> None:
        if self.idle_handle is not None:
            self.idle_handle.cancel()
            self.idle_handle = None

    def drop(self) -> None:
        """Close the session at once, without QUIT."""
        smtp, self.smtp = self.smtp, None
        if smtp is not None:
            with contextlib.suppress(RuntimeError):  # its event loop is already closed
                smtp.close()


class EmailChannel:
    """Sends each alert as one multipart email to the configured recipients.

    Up to ``max_sessions`` SMTP sessions are kept, each authenticated once and
    reused for the alerts that follow, one alert at a time per session. A
    further session opens only while every open one is busy, so a trickle of
    alerts uses one connection. Each closes after ``idle_close`` seconds
    without use, and all close with :meth:`aclose`. A session the server
    closed is reopened transparently; one that failed is dropped.

    ``send`` raises :class:`pixalert.DeliveryError`: permanent for rejected
    credentials, 5xx replies, a missing STARTTLS and certificate failures;
    retryable for 4xx replies, connection errors and timeouts. The password
    never appears in an error.
    """

    def __init__(self, name: str, config: EmailConfig) -> None:
        self.name = name
        self.config = config
        #: How many SMTP sessions this channel has opened (for tests and diagnostics).
        self.connections = 0
        self._sessions = [_Session() for _ in range(config.max_sessions)]
        self._free = asyncio.Semaphore(config.max_sessions)  # one unit per session not busy
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tls_context: ssl.SSLContext | None = None
        self._local_hostname = config.local_hostname
        self._idle_tasks: set[asyncio.Task[None]] = set()
        self._actions: ActionLinks | None = None
        if config.password is not None:
            register_secret(config.password.get())

    def __repr__(self) -> str:
        cfg = self.config
        return (
            f"EmailChannel(name={self.name!r}, server='{cfg.smtp_server}:{cfg.smtp_port}', "
            f"security={cfg.security!r}, recipients={len(cfg.recipients)})"
        )

    @property
    def _where(self) -> str:
        return f"{self.config.smtp_server}:{self.config.smtp_port}"

    # ------------------------------------------------------------------
    # The Channel protocol
    # ------------------------------------------------------------------

    def use_actions(self, actions: ActionLinks) -> None:
        """Called by the core when ``[actions] public_url`` is set: with ``[actions]
        secret`` too, each email carries signed Acknowledge and Resolve links."""
        self._actions = actions

    async def send(self, alert: Alert, *, previous: Receipt | None = None) -> Receipt | None:
        """Email ``alert`` to every recipient; return ``{"message_id": ...}``.

        A resolved alert whose ``previous`` receipt holds a Message-ID replies
        to it, so mail clients show the resolve in the alert's thread.
        """
        return await self._send_message(self.message_for(alert, previous))

    def message_for(self, alert: Alert, previous: Receipt | None = None) -> OutgoingEmail:
        """The message :meth:`send` sends for ``alert`` (``previous``: the receipt it
        threads under)."""
        cfg = self.config
        assert cfg.sender is not None  # the config guarantees it
        links = self._actions.links(alert) if self._actions is not None else None
        return build_message(
            alert, sender=cfg.sender, recipients=cfg.recipients, previous=previous, links=links
        )

    def render(self, alert: Alert) -> Preview:
        """What :meth:`send` would send for ``alert``: its ``headers`` (name and value
        pairs, in order), ``text`` and ``html`` parts and the SMTP ``envelope``; the
        exact bytes as ``raw`` (an ``.eml`` file). Connects to nothing."""
        return self._preview(self.message_for(alert))

    def render_group(self, group: Group) -> Preview:
        """What :meth:`send_group` would send for ``group`` (see :meth:`render`)."""
        return self._preview(self._group_message(group, None))

    def _preview(self, msg: OutgoingEmail) -> Preview:
        data = serialise(msg)
        content = {
            "envelope": {"from": self.config.sender, "to": list(self.config.recipients)},
            "server": self._where,
            "headers": [[name, value] for name, value in msg.headers],
            "text": msg.text,
            "html": msg.html,
        }
        head = "\n".join(
            f"{name}: {msg[name]}" for name in ("From", "To", "Subject") if msg[name] is not None
        )
        return Preview("email", content, f"{head}\n\n{msg.text}", data, "message/rfc822")

    async def send_group(self, group: Group, *, previous: Receipt | None = None) -> Receipt | None:
        """Email one digest for a group of alerts; return ``{"message_id": ...}``.

        The digest threads under the group's previous one when ``previous``
        holds its Message-ID.
        """
        return await self._send_message(self._group_message(group, previous))

    def _group_message(self, group: Group, previous: Receipt | None) -> OutgoingEmail:
        cfg = self.config
        assert cfg.sender is not None
        return build_group_message(
            group, sender=cfg.sender, recipients=cfg.recipients, previous=previous
        )

    async def _send_message(self, msg: OutgoingEmail) -> Receipt:
        """Send a built message on a pooled session; return its receipt."""
        data = serialise(msg)
        message_id = str(msg["Message-ID"])
        self._bind_loop()
        async with self._free:
            session = self._take()
            try:
                session.cancel_idle_timer()
                session.uses += 1
                try:
                    refused = await self._deliver(session, data)
                except BaseException:
                    session.drop()
                    raise
                if self.config.idle_close == 0:
                    await self._quit(session)
                else:
                    self._schedule_idle_close(session)
            finally:
                session.busy = False
        receipt = {"message_id": message_id}
        if refused:
            listed = ", ".join(f"{r} ({code})" for r, code in refused.items())
            log.warning("email %s: some recipients were refused: %s", self.name, listed)
            receipt["refused"] = listed
        return receipt

    async def aclose(self) -> None:
        """Say QUIT and close every open session (after the sends using them). Safe twice."""
        if self._loop is not None and self._loop is not asyncio.get_running_loop():
            # Sessions of another (finished) event loop cannot say QUIT any more.
            for session in self._sessions:
                session.drop()
            return
        for session in self._sessions:
            session.cancel_idle_timer()
        tasks, self._idle_tasks = self._idle_tasks, set()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if all(session.smtp is None for session in self._sessions):
            return
        # Wait for every session to be free, then quit them all together.
        taken = 0
        try:
            for _ in self._sessions:
                await self._free.acquire()
                taken += 1
            await asyncio.gather(*(self._quit(session) for session in self._sessions))
        finally:
            for _ in range(taken):
                self._free.release()

    # ------------------------------------------------------------------
    # Sessions
    # ------------------------------------------------------------------

    def _bind_loop(self) -> None:
        """Forget the sessions and the semaphore of another (finished) event loop."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._loop is not None:
                for session in self._sessions:
                    session.drop()
                self._sessions = [_Session() for _ in self._sessions]
                self._free = asyncio.Semaphore(len(self._sessions))
                self._idle_tasks = set()
            self._loop = loop

    def _take(self) -> _Session:
        """A free session, marked busy: the first open one, else the first free slot.

        Called holding a unit of ``_free``, so at least one slot is free.
        """
        spare: _Session | None = None
        for session in self._sessions:
            if session.busy:
                continue
            if session.smtp is not None and session.smtp.is_connected:
                session.busy = True
                return session
            if spare is None:
                spare = session
        assert spare is not None
        spare.busy = True
        return spare

    async def _deliver(self, session: _Session, data: bytes) -> dict[str, int]:
        smtp = session.smtp
        if smtp is not None and smtp.is_connected:
            log.debug("email %s: reusing a session to %s", self.name, self._where)
            try:
                return await self._transaction(smtp, data, reused=True)
            except _Reconnect:
                log.debug("email %s: the server closed the session; reconnecting", self.name)
        session.drop()
        session.smtp = await self._connect()
        return await self._transaction(session.smtp, data, reused=False)

    async def _connect(self) -> aiosmtplib.SMTP:
        cfg = self.config
        tls_context = await self._get_tls_context() if cfg.security != "none" else None
        # start_tls=False here only keeps aiosmtplib from its opportunistic
        # default (upgrade if offered); STARTTLS is then required below.
        smtp = aiosmtplib.SMTP(
            hostname=cfg.smtp_server,
            port=cfg.smtp_port,
            timeout=cfg.timeout,
            use_tls=cfg.security == "tls",
            start_tls=False,
            tls_context=tls_context,
            local_hostname=self._local_hostname,
        )
        try:
            await smtp.connect()
            self._local_hostname = smtp.local_hostname
            if cfg.security == "starttls":
                await smtp.ehlo()
                if not smtp.supports_extension("starttls"):
                    raise DeliveryError.permanent(
                        f"email: the server at {self._where} does not offer STARTTLS; "
                        "refusing to go on without TLS (a misconfigured server, or a "
                        "downgrade attack). Use security = 'tls' for implicit TLS (port 465)"
                    )
                await smtp.starttls()
            if cfg.security != "none":
                await smtp.ehlo()  # RFC 3207: forget what was said before TLS
            if cfg.password is not None and cfg.username is not None:
                if smtp.get_transport_info("sslcontext") is None:  # never AUTH in clear
                    raise DeliveryError.permanent("email: refusing to authenticate without TLS")
                if not smtp.supports_extension("auth"):
                    raise DeliveryError.permanent(
                        f"email: the server at {self._where} offers no AUTH; "
                        "remove username and password, or check smtp_server"
                    )
                await self._login(smtp, cfg.username, cfg.password.get())
        except DeliveryError:
            smtp.close()
            raise
        except _ERRORS as exc:
            smtp.close()
            raise self._error(exc, "connecting") from None
        except BaseException:
            smtp.close()
            raise
        self.connections += 1
        log.debug("email %s: connected to %s (%s)", self.name, self._where, cfg.security)
        return smtp

    async def _login(self, smtp: aiosmtplib.SMTP, username: str, password: str) -> None:
        """One AUTH attempt with the best mechanism offered (aiosmtplib's ``login`` would try
        each mechanism in turn, counting several failed logins against the account)."""
        offered = smtp.server_auth_methods
        for mechanism in ("plain", "login", "cram-md5"):
            if mechanism in offered:
                method = getattr(smtp, "auth_" + mechanism.replace("-", ""))
                await method(username, password)
                return
        raise DeliveryError.permanent(
            f"email: the server at {self._where} offers no AUTH mechanism pixalert supports "
            f"(it offers: {', '.join(offered) or 'none'})"
        )

    async def _transaction(
        self, smtp: aiosmtplib.SMTP, data: bytes, *, reused: bool
    ) -> dict[str, int]:
        """MAIL, RCPT for each recipient, DATA. Returns refused recipients and their codes."""
        cfg = self.config
        assert cfg.sender is not None
        options = [f"SIZE={len(data)}"] if smtp.supports_extension("size") else []
        refused: dict[str, int] = {}
        replies: list[tuple[int, str]] = []
        stage = "MAIL FROM"
        try:
            await smtp.mail(cfg.sender, options=options)
            stage = "RCPT TO"
            for recipient in cfg.recipients:
                try:
                    await smtp.rcpt(recipient)
                except aiosmtplib.SMTPRecipientRefused as exc:
                    if exc.code == 421:
                        raise
                    refused[recipient] = exc.code
                    replies.append((exc.code, exc.message))
        except _ERRORS as exc:
            # Nothing of the message was sent yet: a reused session that the
            # server dropped (or is closing with 421) is reopened, uncounted.
            closing = isinstance(exc, aiosmtplib.SMTPServerDisconnected) or (
                isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code == 421
            )
            if reused and closing:
                raise _Reconnect from None
            raise self._error(exc, stage) from None
        if len(refused) == len(cfg.recipients):
            retryable = any(400 <= code < 500 for code, _ in replies)
            code, text = next(((c, t) for c, t in replies if (400 <= c < 500) == retryable))
            raise DeliveryError(
                f"email: every recipient was refused by {self._where} "
                f"({code} {self._reply_text(text)})",
                retryable=retryable,
            )
        try:
            await smtp.data(data)
        except _ERRORS as exc:
            raise self._error(exc, "DATA") from None
        return refused

    async def _quit(self, session: _Session) -> None:
        """Say QUIT politely, then close; errors only mean the session was already gone."""
        smtp, session.smtp = session.smtp, None
        if smtp is None:
            return
        try:
            if smtp.is_connected:
                await smtp.quit(timeout=self.config.timeout)
        except (aiosmtplib.SMTPException, OSError):
            pass
        finally:
            smtp.close()
        log.debug("email %s: closed the session to %s", self.name, self._where)

    # ------------------------------------------------------------------
    # Idle close
    # ------------------------------------------------------------------

    def _schedule_idle_close(self, session: _Session) -> None:
        if session.smtp is None:
            return
        loop = asyncio.get_running_loop()
        session.idle_handle = loop.call_later(
            self.config.idle_close, self._close_if_idle, session, session.uses
        )

    def _close_if_idle(self, session: _Session, uses: int) -> None:
        """Quit ``session`` if nothing was sent over it since the timer was set."""
        session.idle_handle = None
        if session.busy or session.uses != uses or session.smtp is None:
            return
        # The slot stays free: its session is taken out of it and quit in the
        # background, so a send arriving meanwhile simply opens a new one.
        quitting = _Session()
        quitting.smtp, session.smtp = session.smtp, None
        task = asyncio.get_running_loop().create_task(self._quit(quitting))
        self._idle_tasks.add(task)
        task.add_done_callback(self._idle_tasks.discard)

    # ------------------------------------------------------------------
    # TLS and errors
    # ------------------------------------------------------------------

    async def _get_tls_context(self) -> ssl.SSLContext:
        if self._tls_context is None:
            try:
                self._tls_context = await asyncio.to_thread(_make_tls_context, self.config)
            except (ssl.SSLError, OSError) as exc:
                raise DeliveryError.permanent(
                    f"email: cannot load the certificates of ca_file {self.config.ca_file} "
                    f"({type(exc).__name__})"
                ) from None
        return self._tls_context

    def _reply_text(self, text: str) -> str:
        password = self.config.password.get() if self.config.password else ""
        clean: str = redact(" ".join(str(text).split()), extra=[password] if password else [])
        if len(clean) > _MAX_REPLY:
            clean = clean[: _MAX_REPLY - 3] + "..."
        return clean

    def _error(self, exc: BaseException, during: str) -> DeliveryError:
        """A secret-free :class:`DeliveryError` for an aiosmtplib or network error."""
        where = self._where
        if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
            return DeliveryError.permanent(
                f"email: authentication failed at {where} "
                f"({exc.code} {self._reply_text(exc.message)}); check username and password"
            )
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            detail = f"{exc.code} {self._reply_text(exc.message)}"
            if 400 <= exc.code < 500:
                return DeliveryError(f"email: {where} answered {during} with {detail}")
            if 500 <= exc.code < 600:
                return DeliveryError.permanent(f"email: {where} refused {during}: {detail}")
            return DeliveryError(f"email: unexpected reply to {during} from {where}: {detail}")
        cert_error = _find(exc, ssl.SSLCertVerificationError)
        if cert_error is not None:
            reason = str(getattr(cert_error, "verify_message", "") or "verification failed")
            return DeliveryError.permanent(
                f"email: the TLS certificate of {where} was not accepted ({reason}); "
                "set ca_file for a private CA"
            )
        if _find(exc, TimeoutError) is not None or _find(exc, asyncio.TimeoutError) is not None:
            return DeliveryError(f"email: timed out {during} ({where})")
        if isinstance(exc, aiosmtplib.SMTPNotSupported):
            return DeliveryError.permanent(f"email: {where} does not support {during}")
        if isinstance(exc, (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPConnectError)):
            cause = exc.__cause__
            kind = type(cause).__name__ if cause is not None else type(exc).__name__
            return DeliveryError(f"email: connection to {where} failed {during} ({kind})")
        if isinstance(exc, ssl.SSLError):
            return DeliveryError(f"email: TLS with {where} failed {during} ({exc.reason})")
        if isinstance(exc, OSError):
            return DeliveryError(f"email: network error {during} ({where}): {type(exc).__name__}")
        return DeliveryError(f"email: {type(exc).__name__} {during} ({where})")


def _find(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _make_tls_context(config: EmailConfig) -> ssl.SSLContext:
    """A client context: verified against ``ca_file`` or the system store, TLS 1.2+."""
    if config.verify_certs:
        context = ssl.create_default_context(cafile=config.ca_file)
    else:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def make_channel(name: str, config: EmailConfig) -> EmailChannel:
    """The :class:`pixalert.channels.ChannelSpec` factory."""
    return EmailChannel(name, config)
