"""Loopback contract servers for tests and ``pixalert demo``: :class:`FakeService`.

A channel plugin tests against a local stand-in for its service that speaks
the real protocol and enforces the service's wire contract. :class:`FakeService`
is what those stand-ins share:

- one fault verb set: :meth:`~FakeService.fail` (a status, ``times``,
  ``Retry-After``), :meth:`~FakeService.hang` (no answer until
  :meth:`~FakeService.release` or :meth:`~FakeService.stop`) and
  :meth:`~FakeService.drop` (close the connection without answering);
- one record of what happened: :attr:`~FakeService.requests` (everything, in
  order, with what was answered and why), :attr:`~FakeService.received`
  (what was accepted), :attr:`~FakeService.rejections` (requests that broke
  the contract, with the reason) and :meth:`~FakeService.lines` (one line per
  accepted message, for ``pixalert demo``);
- addresses: :attr:`~FakeService.url` and :meth:`~FakeService.refused_url`
  (127.0.0.1, a port where nothing listens);
- ``async with``, waiting without sleeps (:meth:`~FakeService.wait_for`,
  :meth:`~FakeService.wait_until`), and the :class:`pixalert.channels.DemoSink`
  protocol.

It serves HTTP with ``aiohttp.web`` (``pip install 'pixalert[http]'``): a
subclass declares :meth:`~FakeService.routes` whose handlers receive the
aiohttp request and its :class:`ReceivedRequest`, check the contract, and
call :meth:`~FakeService.accept` or :meth:`~FakeService.reject`. A service on
another protocol (SMTP) overrides :meth:`~FakeService.serve` and
:meth:`~FakeService.shutdown` and calls the same bookkeeping from its own
transport (:meth:`~FakeService.log`, :meth:`~FakeService.take_fault`,
:meth:`~FakeService.hold`, :meth:`~FakeService.answered`). Used as is,
``FakeService()`` accepts every HTTP request with ``200 {"ok": true}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

import attrs

if TYPE_CHECKING:
    from aiohttp import web

__all__ = ["Fault", "FakeService", "ReceivedRequest"]

T = TypeVar("T")
S = TypeVar("S", bound="FakeService[Any]")

#: What a scripted fault does: answer with a status, never answer, or close the connection.
FaultAction = Literal["fail", "hang", "drop"]

#: A fault's body: text, bytes, JSON (a mapping or list), or a function of the request.
Body = Any


@attrs.define(eq=False)
class ReceivedRequest:
    """One request a :class:`FakeService` received, and what it answered.

    For HTTP, ``endpoint`` names the route (the path, unless the service
    names its routes) and ``headers`` look names up in any case. For SMTP,
    ``endpoint`` and ``method`` are the command verb and ``body`` its
    argument (the message itself for ``DATA``).

    ``status`` is what was answered (an HTTP status or an SMTP reply code;
    None while pending, or when the request hung or was dropped).
    ``outcome`` is ``pending``, ``accepted`` (it is in
    :attr:`FakeService.received`), ``rejected`` (the contract was broken:
    ``reason`` says how), ``fault`` (scripted: ``reason`` says which),
    ``answered`` (none of these), or a service's own word (``duplicate``).
    ``connection`` numbers the connection it came on (1 for the first);
    ``at`` is when it arrived (``time.monotonic()``).
    """

    endpoint: str
    method: str
    path: str = ""
    url: str = ""
    headers: Mapping[str, str] = attrs.Factory(dict)
    body: bytes = b""
    connection: int = 0
    tls: bool = False
    at: float = attrs.Factory(time.monotonic)
    status: int | None = None
    answer: Any = None
    outcome: str = "pending"
    reason: str = ""

    def json(self) -> Any:
        """The body decoded as JSON."""
        return json.loads(self.body)


@attrs.define
class Fault:
    """A scripted answer for the next ``times`` requests to ``endpoint`` (None: any)."""

    action: FaultAction
    times: int = 1
    endpoint: str | None = None
    status: int = 500
    retry_after: str | None = None
    body: Body = None
    headers: dict[str, str] = attrs.Factory(dict)


Handler = Callable[["web.Request", ReceivedRequest], Awaitable["web.StreamResponse"]]


def _settle(future: asyncio.Future[bool], value: bool) -> None:
    if not future.done():
        future.set_result(value)


class FakeService(Generic[T]):
    """The base of a loopback contract server (see the module docs); ``T`` is what it accepts.

    Subclasses call ``super().__init__()``, set :attr:`channel_type` (for
    ``pixalert demo``), override :meth:`config` and, for HTTP,
    :meth:`routes` (and :meth:`endpoint` to name them). Everything is kept
    under one lock, so a service may run its server in another thread.
    """

    #: The channel type this service stands in for (the DemoSink contract).
    channel_type: str = ""
    #: The address served on; always loopback.
    host: ClassVar[str] = "127.0.0.1"
    #: The endpoints faults may name (None: any name); a typo is a ValueError.
    endpoints: ClassVar[tuple[str, ...] | None] = None
    #: The endpoint a fault without one applies to (None: every endpoint).
    default_endpoint: ClassVar[str | None] = None
    #: The largest HTTP request body read, in bytes.
    max_body: ClassVar[int] = 1024**2
    #: The :meth:`fail` arguments the channel conformance suite uses for each
    #: kind of failure (``"timeout"`` is always :meth:`hang`); a kind missing
    #: here is skipped, as a failure this service cannot produce.
    failures: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "permanent": {"status": 400},
        "retryable": {"status": 503},
        "rate_limited": {"status": 429, "retry_after": 7},
    }

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.RLock())
        self._requests: list[ReceivedRequest] = []
        self._received: list[T] = []
        self._lines: list[str] = []
        self._faults: list[Fault] = []
        self._held: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[bool]]] = []
        self._waiters: list[Callable[[], None]] = []
        self._peers: dict[Any, int] = {}
        self._port = 0
        self._serving = False
        self._refused: socket.socket | None = None
        self._runner: web.AppRunner | None = None

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> Mapping[str, Any]:
        """Serve on 127.0.0.1 (a free port) unless serving already; return :meth:`config`."""
        if not self._serving:
            self._started(await self.serve())
        return self.config()

    async def stop(self) -> None:
        """Drop held requests, stop serving and free :meth:`refused_url`'s port; safe twice."""
        if self._stopping_now():
            await self.shutdown()
        self._stopped()

    def _started(self, port: int) -> None:
        self._port, self._serving = port, True

    def _stopping_now(self) -> bool:
        """Stop taking hangs and drop the held requests; True if it was serving."""
        serving, self._serving = self._serving, False
        self._let_go(False)
        return serving

    def _stopped(self) -> None:
        if self._refused is not None:
            self._refused.close()
            self._refused = None

    async def __aenter__(self: S) -> S:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def config(self) -> dict[str, Any]:
        """The channel config section that targets this service (override it)."""
        return {"url": self.url}

    # -- addresses ---------------------------------------------------------

    @property
    def port(self) -> int:
        """The port served on (after :meth:`start`)."""
        if not self._port:
            raise RuntimeError(f"{type(self).__name__}: not started (use 'async with' or start())")
        return self._port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (a service may add its path)."""
        return f"http://{self.host}:{self.port}"

    @property
    def refused_port(self) -> int:
        """A port on 127.0.0.1 that is bound but not listening: connecting is refused."""
        with self._cond:
            if self._refused is None:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.bind((self.host, 0))  # held until stop(), so no one else listens there
                self._refused = sock
            return int(self._refused.getsockname()[1])

    def refused_url(self, url: str | None = None) -> str:
        """``url`` (default :attr:`url`) moved to :attr:`refused_port`, where nothing listens."""
        parts = urlsplit(self.url if url is None else url)
        return urlunsplit(parts._replace(netloc=f"{self.host}:{self.refused_port}"))

    # -- scripting faults --------------------------------------------------

    def fail(
        self,
        status: int = 500,
        *,
        times: int = 1,
        retry_after: float | str | None = None,
        body: Body = None,
        headers: Mapping[str, str] | None = None,
        endpoint: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests (to ``endpoint``, or any) with ``status``.

        ``retry_after`` (seconds, or an HTTP date) becomes a ``Retry-After``
        header; ``body`` is text, bytes, JSON (a mapping or a list) or a
        function of the :class:`ReceivedRequest` returning one of those (None:
        :meth:`fault_body`); ``headers`` are added as given.
        """
        if not 100 <= status <= 599:
            raise ValueError(f"status: expected a status from 100 to 599, got {status}")
        after = None
        if retry_after is not None:
            after = retry_after if isinstance(retry_after, str) else f"{retry_after:g}"
        self._script(Fault("fail", times, endpoint, status, after, body, dict(headers or {})))

    def hang(self, *, times: int = 1, endpoint: str | None = None) -> None:
        """Hold back the answer to the next ``times`` requests until :meth:`release` or stop."""
        self._script(Fault("hang", times, endpoint))

    def drop(self, *, times: int = 1, endpoint: str | None = None) -> None:
        """Close the connection of the next ``times`` requests without answering."""
        self._script(Fault("drop", times, endpoint))

    def release(self) -> None:
        """Let held requests go on (answered as if they had not hung); cancel hangs to come."""
        with self._cond:
            self._faults = [f for f in self._faults if f.action != "hang"]
        self._let_go(True)

    def reset(self) -> None:
        """Forget requests, what was received and scripted faults."""
        with self._cond:
            self._requests.clear()
            self._received.clear()
            self._lines.clear()
            self._faults.clear()
            self._changed()

    def _script(self, fault: Fault) -> None:
        if fault.times < 1:
            raise ValueError(f"times: expected 1 or more, got {fault.times}")
        if fault.endpoint is None:
            fault.endpoint = self.default_endpoint
        if self.endpoints is not None and fault.endpoint not in (None, *self.endpoints):
            raise ValueError(
                f"endpoint: expected one of {', '.join(self.endpoints)}, got {fault.endpoint!r}"
            )
        with self._cond:
            self._faults.append(fault)
            self._changed()

    # -- what happened -----------------------------------------------------

    @property
    def requests(self) -> list[ReceivedRequest]:
        """Every request, in order of arrival: faults and rejections too."""
        with self._cond:
            return list(self._requests)

    @property
    def received(self) -> list[T]:
        """What was accepted, in order."""
        with self._cond:
            return list(self._received)

    @property
    def rejections(self) -> list[ReceivedRequest]:
        """The requests refused for breaking the contract (``reason`` says how)."""
        return [r for r in self.requests if r.outcome == "rejected"]

    def requests_to(self, endpoint: str) -> list[ReceivedRequest]:
        """Every request to ``endpoint``."""
        return [r for r in self.requests if r.endpoint == endpoint]

    @property
    def hanging(self) -> int:
        """How many requests are held back now (see :meth:`hang`)."""
        with self._cond:
            return len(self._held)

    def lines(self) -> list[str]:
        """One short line per accepted message, oldest first (the DemoSink contract)."""
        with self._cond:
            return list(self._lines)

    async def wait_until(self: S, predicate: Callable[[S], bool], timeout: float = 10.0) -> None:
        """Wait until ``predicate(service)`` is true; TimeoutError after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()

        def check() -> None:
            if not ready.done() and predicate(self):
                ready.set_result(None)

        def wake() -> None:
            loop.call_soon_threadsafe(check)

        with self._cond:
            self._waiters.append(wake)
        try:
            check()
            await asyncio.wait_for(ready, timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(
                f"{type(self).__name__}: condition not met within {timeout:g} s"
            ) from None
        finally:
            with self._cond:
                self._waiters.remove(wake)

    async def wait_for(self, count: int = 1, *, timeout: float = 10.0) -> list[T]:
        """Wait until ``count`` things were accepted; return :attr:`received`."""
        await self.wait_until(lambda s: len(s.received) >= count, timeout)
        return self.received

    async def wait_for_requests(
        self, count: int = 1, *, timeout: float = 10.0
    ) -> list[ReceivedRequest]:
        """Wait until ``count`` requests arrived (faults and rejections too); return them."""
        await self.wait_until(lambda s: len(s.requests) >= count, timeout)
        return self.requests

    # -- bookkeeping, for a service's handlers and transport ----------------

    def _changed(self) -> None:
        """Wake everyone waiting on this service (call with the lock held or not)."""
        with self._cond:
            self._cond.notify_all()
            waiters = list(self._waiters)
        for wake in waiters:
            with contextlib.suppress(RuntimeError):  # that waiter's loop has closed
                wake()

    def log(self, record: ReceivedRequest) -> ReceivedRequest:
        """Add an arriving request to :attr:`requests`; return it."""
        with self._cond:
            self._requests.append(record)
            self._changed()
        return record

    def take_fault(self, endpoint: str) -> Fault | None:
        """The scripted fault for a request to ``endpoint`` arriving now, if any (counted)."""
        with self._cond:
            for fault in self._faults:
                if fault.endpoint in (None, endpoint):
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def mark(self, record: ReceivedRequest, outcome: str, reason: str = "") -> None:
        """Set a request's ``outcome`` and ``reason``."""
        with self._cond:
            record.outcome, record.reason = outcome, reason
            self._changed()

    def accept(
        self, record: ReceivedRequest | None, item: T | None = None, *, line: str | None = None
    ) -> None:
        """Mark ``record`` accepted; add ``item`` to :attr:`received`, ``line`` to :meth:`lines`."""
        with self._cond:
            if item is not None:
                self._received.append(item)
            if line is not None:
                self._lines.append(line)
            if record is not None:
                record.outcome, record.reason = "accepted", ""
            self._changed()

    def reject(self, record: ReceivedRequest, reason: str) -> None:
        """Mark ``record`` rejected for breaking the contract, and say how."""
        self.mark(record, "rejected", reason)

    def answered(self, record: ReceivedRequest, status: int | None, answer: Any = None) -> None:
        """Note what ``record`` was answered (``pending`` becomes ``answered``)."""
        with self._cond:
            record.status, record.answer = status, answer
            if record.outcome == "pending":
                record.outcome = "answered"
            self._changed()

    def connection_number(self, key: Any) -> int:
        """A number for the connection ``key`` names (its peer address): 1, 2... in order."""
        with self._cond:
            return self._peers.setdefault(key, len(self._peers) + 1)

    async def hold(self, record: ReceivedRequest) -> bool:
        """Hold a hung request: True when :meth:`release` lets it go on, False on stop."""
        loop = asyncio.get_running_loop()
        entry = (loop, loop.create_future())
        with self._cond:
            if not self._serving:
                return False
            record.outcome, record.reason = "fault", "hang"
            self._held.append(entry)
            self._changed()
        try:
            go_on: bool = await entry[1]
        finally:
            with self._cond:
                self._held.remove(entry)
                self._changed()
        if go_on:
            self.mark(record, "pending")
        return go_on

    def _let_go(self, go_on: bool) -> None:
        with self._cond:
            held = list(self._held)
        for loop, future in held:
            with contextlib.suppress(RuntimeError):  # that loop has closed
                loop.call_soon_threadsafe(_settle, future, go_on)

    # -- HTTP (aiohttp.web) ------------------------------------------------

    def routes(self) -> Iterable[tuple[str, str, Handler]]:
        """The HTTP routes served: ``(method, path pattern, handler)`` in aiohttp's syntax.

        A handler is ``async (request, record) -> response``; a scripted fault
        answers before it is called. The default sends everything to
        :meth:`handle`.
        """
        return [("*", "/{tail:.*}", self.handle)]

    def endpoint(self, request: web.Request) -> str:
        """The name faults and records use for ``request``: its path (override to name routes)."""
        return request.path

    async def handle(self, request: web.Request, record: ReceivedRequest) -> web.StreamResponse:
        """Accept the request (it joins :attr:`received`) with ``200 {"ok": true}``."""
        from aiohttp import web

        self.accept(record, cast(T, record), line=f"{request.method} {request.path}")
        return web.json_response({"ok": True})

    def fault_body(self, fault: Fault) -> Body:
        """The body of a :meth:`fail` that gave none: empty (override to answer as the service)."""
        return ""

    async def serve(self) -> int:
        """Start serving; return the port. The default serves :meth:`routes` over HTTP."""
        from aiohttp import web

        app = web.Application(client_max_size=self.max_body)
        for method, path, handler in self.routes():
            app.router.add_route(method, path, self._http_handler(handler))
        # No access log: request lines can carry secrets (a Slack webhook's path, a token).
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, self.host, 0).start()
        self._runner = runner
        return int(runner.addresses[0][1])

    async def shutdown(self) -> None:
        """Stop what :meth:`serve` started."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    def _http_handler(self, handler: Handler) -> Callable[[web.Request], Awaitable[Any]]:
        async def run(request: web.Request) -> web.StreamResponse:
            from aiohttp import web
            from multidict import CIMultiDict

            transport = request.transport
            peer = transport.get_extra_info("peername") if transport is not None else None
            record = self.log(
                ReceivedRequest(
                    endpoint=self.endpoint(request),
                    method=request.method,
                    path=request.path,
                    url=str(request.url),
                    headers=CIMultiDict(request.headers),
                    body=await request.read(),
                    connection=self.connection_number(peer),
                )
            )
            fault = self.take_fault(record.endpoint)
            if fault is not None and fault.action == "hang":
                fault = None if await self.hold(record) else Fault("drop")
            if fault is not None and fault.action == "drop":
                if record.outcome == "pending":
                    self.mark(record, "fault", "drop")
                if transport is not None:
                    transport.close()
                return web.Response()  # never written: the connection is closed
            response = (
                await handler(request, record) if fault is None else self._fail(record, fault)
            )
            self.answered(record, response.status, _answer(response))
            return response

        return run

    def _fail(self, record: ReceivedRequest, fault: Fault) -> web.Response:
        from aiohttp import web

        self.mark(record, "fault", f"status {fault.status}")
        headers = dict(fault.headers)
        if fault.retry_after is not None:
            headers["Retry-After"] = fault.retry_after
        body = fault.body(record) if callable(fault.body) else fault.body
        if body is None:
            body = self.fault_body(fault)
        if isinstance(body, bytes):
            return web.Response(status=fault.status, body=body, headers=headers)
        if isinstance(body, str):
            return web.Response(status=fault.status, text=body, headers=headers)
        return web.json_response(body, status=fault.status, headers=headers)


def _answer(response: web.StreamResponse) -> Any:
    """A response's body as the record keeps it: decoded JSON, else text."""
    from aiohttp import web

    if not isinstance(response, web.Response) or not isinstance(response.body, bytes):
        return None
    text = response.text
    if response.content_type == "application/json":
        try:
            return json.loads(text or "null")
        except ValueError:
            pass
    return text
