"""A local webhook receiver that enforces pixalert's webhook contract, for tests and demos.

:class:`WebhookReceiver` is a real HTTP server (aiohttp.web on 127.0.0.1, a
random port). For each ``POST`` it checks what a careful receiver checks:

- ``Content-Type: application/json`` (else 415);
- a ``webhook-id`` header without ``.`` and an integer ``webhook-timestamp`` (else 400);
- with ``secret=``: the Standard Webhooks signature and timestamp, with
  :func:`pixalert_webhook.verify` (else 401);
- with ``token=``: a ``?token=`` query parameter equal to it (else 401);
- the body against the payload's JSON Schema (else 400; needs ``jsonschema``,
  from ``pip install pixalert-webhook[testing]``).

A delivery whose ``webhook-id`` was already accepted is answered 200 and
counted as a duplicate, not delivered twice. Accepted deliveries are in
:attr:`WebhookReceiver.deliveries`; every request (faults and rejections too)
is in :attr:`WebhookReceiver.requests`. Faults are scripted: :meth:`fail`
(any status, optional ``Retry-After``), :meth:`hang` (never answer until
stopped) and :meth:`echo_url` (a 500 whose body repeats the request URL, to
test that it does not leak).

Test your own alerts end to end::

    from pixalert_webhook.testing import WebhookReceiver

    async with WebhookReceiver(secret="whsec_...") as receiver:
        manager = NotificationManager(config={"channels": {"webhook": receiver.config()}})
        await manager.send_alert("Disk full", "95% on db-1", "high", channels=["webhook"])
        assert receiver.deliveries[0].data["title"] == "Disk full"

It also serves as the ``webhook`` sink of ``pixalert demo`` (the
:class:`pixalert.channels.DemoSink` protocol: :meth:`start`, :meth:`received`, :meth:`stop`).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs
from aiohttp import web

from ._payload import payload_schema
from ._signing import SecretLike, WebhookVerificationError, verify

__all__ = ["Delivery", "Fault", "ReceivedRequest", "WebhookReceiver"]


@attrs.frozen
class Delivery:
    """One accepted (first-time, valid) webhook request; ``headers`` have lower-case names."""

    webhook_id: str
    timestamp: int
    path: str
    headers: dict[str, str]
    body: bytes
    payload: dict[str, Any]
    signed: bool

    @property
    def type(self) -> str:
        """The event type, ``alert.firing`` or ``alert.resolved``."""
        return str(self.payload["type"])

    @property
    def data(self) -> dict[str, Any]:
        """The alert, as sent (``payload["data"]``)."""
        data: dict[str, Any] = self.payload["data"]
        return data

    def line(self) -> str:
        """``POST /hook alert.firing HIGH Disk full (signed)``."""
        mark = "signed" if self.signed else "unsigned"
        return f"POST {self.path} {self.type} {self.data['priority']} {self.data['title']} ({mark})"


@attrs.frozen
class ReceivedRequest:
    """Any request the receiver answered, with what it answered and why.

    ``outcome`` is ``delivered``, ``duplicate``, ``fault`` (scripted) or
    ``rejected`` (the contract was broken; ``reason`` says how).
    """

    path: str
    webhook_id: str | None
    timestamp: str | None
    status: int
    outcome: str
    reason: str = ""


@attrs.frozen
class Fault:
    """A scripted answer for the next matching request (see :meth:`WebhookReceiver.fail`)."""

    status: int = 500
    retry_after: str | None = None
    body: str = ""
    hang: bool = False
    echo_url: bool = False
    path: str | None = None
    headers: dict[str, str] = attrs.Factory(dict)


class WebhookReceiver:
    """A contract-enforcing webhook endpoint on 127.0.0.1 (see the module docstring).

    :param secret: the ``whsec_`` secret (or several) to verify signatures
        with; None accepts unsigned requests and does not check signatures.
    :param path: the path of :attr:`url` (any path is served).
    :param token: when set, requests must carry ``?token=<token>``.
    :param tolerance: seconds of clock skew allowed on ``webhook-timestamp``.
    :param now: the receiver's clock (epoch seconds), e.g. a ``FakeClock.now``.
    :param validate_schema: check bodies against the JSON Schema; None does
        so when ``jsonschema`` is installed.
    :param success_status: the status answered for an accepted delivery.
    """

    channel_type = "webhook"

    def __init__(
        self,
        *,
        secret: SecretLike | list[SecretLike] | None = None,
        path: str = "/hook",
        token: str | None = None,
        tolerance: float = 300,
        now: Callable[[], float] | None = None,
        validate_schema: bool | None = None,
        success_status: int = 200,
    ) -> None:
        if not path.startswith("/"):
            raise ValueError("path: expected a path starting with '/'")
        if not 200 <= success_status < 300:
            raise ValueError("success_status: expected a 2xx status")
        self.secret = secret
        self.path = path
        self.token = token
        self.tolerance = tolerance
        self.now = now or time.time
        self.validate_schema = validate_schema
        self.success_status = success_status
        self.deliveries: list[Delivery] = []
        self.requests: list[ReceivedRequest] = []
        self._faults: list[Fault] = []
        self._seen: set[str] = set()
        self._validator: Any = None
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._released: asyncio.Event | None = None
        self._changed: asyncio.Condition | None = None

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> dict[str, Any]:
        """Start serving; return a ``webhook`` channel config section that targets it."""
        if self._runner is None:
            self._validator = self._make_validator()
            self._released = asyncio.Event()
            self._changed = asyncio.Condition()
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._handle)
            # No access log: request lines can hold a URL token.
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self._runner = runner
            self._port = int(runner.addresses[0][1])
        return self.config()

    def config(self) -> dict[str, Any]:
        """The channel config section for this receiver: ``urls``, and ``secret`` if a string."""
        section: dict[str, Any] = {"urls": [self.url]}
        first = self.secret[0] if isinstance(self.secret, list) and self.secret else self.secret
        if isinstance(first, str):
            section["secret"] = first
        return section

    async def stop(self) -> None:
        """Release hanging requests and stop serving (safe to call twice)."""
        if self._released is not None:
            self._released.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> WebhookReceiver:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- addresses ---------------------------------------------------------

    @property
    def port(self) -> int:
        """The port served on (after :meth:`start`)."""
        if self._port is None:
            raise RuntimeError("WebhookReceiver: call start() first")
        return self._port

    def url_for(self, path: str | None = None, *, token: str | None = None) -> str:
        """The URL of ``path`` on this receiver, with ``?token=`` when one is set or given."""
        path = self.path if path is None else path
        token = self.token if token is None else token
        query = f"?token={token}" if token else ""
        return f"http://127.0.0.1:{self.port}{path}{query}"

    @property
    def url(self) -> str:
        """The URL a channel should POST to."""
        return self.url_for()

    # -- scripting faults ----------------------------------------------------

    def fail(
        self,
        status: int = 500,
        *,
        times: int = 1,
        retry_after: str | float | None = None,
        body: str = "",
        path: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer the next ``times`` requests (to ``path``, or any) with ``status``.

        ``retry_after`` becomes a ``Retry-After`` header; ``headers`` are added
        as given (a ``Location`` for a redirect, for example).
        """
        after = None if retry_after is None else str(retry_after)
        extra = dict(headers or {})
        self._faults.extend(
            Fault(status, after, body, path=path, headers=extra) for _ in range(times)
        )

    def hang(self, *, times: int = 1, path: str | None = None) -> None:
        """Never answer the next ``times`` requests (until :meth:`stop`)."""
        self._faults.extend(Fault(hang=True, path=path) for _ in range(times))

    def echo_url(self, *, times: int = 1, path: str | None = None) -> None:
        """Answer the next requests with a 500 whose body repeats the full request URL."""
        self._faults.extend(Fault(echo_url=True, path=path) for _ in range(times))

    def _next_fault(self, path: str) -> Fault | None:
        for i, fault in enumerate(self._faults):
            if fault.path is None or fault.path == path:
                return self._faults.pop(i)
        return None

    # -- what was received ---------------------------------------------------

    def received(self) -> list[str]:
        """One line per accepted delivery: ``POST /hook alert.firing HIGH Disk full (signed)``."""
        return [d.line() for d in self.deliveries]

    @property
    def rejections(self) -> list[ReceivedRequest]:
        """Requests refused because they broke the contract."""
        return [r for r in self.requests if r.outcome == "rejected"]

    def requests_to(self, path: str) -> list[ReceivedRequest]:
        """Every request to ``path``."""
        return [r for r in self.requests if r.path == path]

    async def wait_for(self, count: int = 1, *, timeout: float = 10.0) -> list[Delivery]:
        """Wait until ``count`` deliveries were accepted; return them all."""
        await self._wait(lambda: len(self.deliveries) >= count, timeout)
        return list(self.deliveries)

    async def wait_for_requests(
        self, count: int = 1, *, timeout: float = 10.0
    ) -> list[ReceivedRequest]:
        """Wait until ``count`` requests arrived (faults and rejections too); return them all."""
        await self._wait(lambda: len(self.requests) >= count, timeout)
        return list(self.requests)

    async def _wait(self, ready: Callable[[], bool], timeout: float) -> None:
        if self._changed is None:
            raise RuntimeError("WebhookReceiver: call start() first")
        changed = self._changed

        async def wait() -> None:
            async with changed:
                await changed.wait_for(ready)

        await asyncio.wait_for(wait(), timeout)

    # -- serving -------------------------------------------------------------

    def _make_validator(self) -> Any:
        if self.validate_schema is False:
            return None
        try:
            import jsonschema
        except ImportError:
            if self.validate_schema:
                raise RuntimeError(
                    "WebhookReceiver(validate_schema=True) needs jsonschema: "
                    "pip install 'pixalert-webhook[testing]'"
                ) from None
            return None
        schema = payload_schema()
        cls = jsonschema.validators.validator_for(schema)
        return cls(schema, format_checker=cls.FORMAT_CHECKER)

    async def _record(self, request: ReceivedRequest) -> None:
        self.requests.append(request)
        if self._changed is not None:
            async with self._changed:
                self._changed.notify_all()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        path = request.path
        msg_id = request.headers.get("webhook-id")
        stamp = request.headers.get("webhook-timestamp")

        async def answer(status: int, outcome: str, reason: str = "") -> web.Response:
            await self._record(ReceivedRequest(path, msg_id, stamp, status, outcome, reason))
            if status >= 400:
                return web.json_response({"error": reason}, status=status)
            return web.Response(status=status)

        if request.method != "POST":
            return await answer(405, "rejected", f"method {request.method} not allowed")

        fault = self._next_fault(path)
        if fault is not None:
            return await self._fault(request, fault, msg_id, stamp)

        if self.token is not None:
            given = request.query.get("token", "")
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                return await answer(401, "rejected", "missing or wrong token")
        if request.content_type != "application/json":
            return await answer(415, "rejected", "expected Content-Type: application/json")
        if not msg_id or "." in msg_id:
            return await answer(400, "rejected", "missing or invalid webhook-id header")
        if not stamp or not stamp.isdigit():
            return await answer(400, "rejected", "missing or invalid webhook-timestamp header")

        signed = False
        if self.secret is not None:
            try:
                payload = verify(
                    self.secret, request.headers, body, tolerance=self.tolerance, now=self.now()
                )
            except WebhookVerificationError as exc:
                return await answer(401, "rejected", str(exc))
            signed = True
        else:
            try:
                payload = json.loads(body)
            except ValueError:
                return await answer(400, "rejected", "body is not valid JSON")

        problem = self._schema_problem(payload)
        if problem:
            return await answer(400, "rejected", problem)

        if msg_id in self._seen:
            return await answer(self.success_status, "duplicate")
        self._seen.add(msg_id)
        self.deliveries.append(
            Delivery(
                webhook_id=msg_id,
                timestamp=int(stamp),
                path=path,
                headers={k.lower(): v for k, v in request.headers.items()},
                body=body,
                payload=payload,
                signed=signed,
            )
        )
        return await answer(self.success_status, "delivered")

    def _schema_problem(self, payload: Any) -> str | None:
        if not isinstance(payload, Mapping):
            return "schema: expected a JSON object"
        if self._validator is None:
            missing = {"type", "timestamp", "version", "data"} - set(payload)
            return f"schema: missing {sorted(missing)}" if missing else None
        errors = sorted(self._validator.iter_errors(payload), key=lambda e: list(e.path))
        if not errors:
            return None
        first = errors[0]
        where = "/".join(str(p) for p in first.path) or "(root)"
        return f"schema: {first.message} at {where}"

    async def _fault(
        self, request: web.Request, fault: Fault, msg_id: str | None, stamp: str | None
    ) -> web.Response:
        path = request.path
        if fault.hang:
            await self._record(ReceivedRequest(path, msg_id, stamp, 0, "fault", "hang"))
            assert self._released is not None
            await self._released.wait()
            return web.Response(status=503)
        if fault.echo_url:
            await self._record(ReceivedRequest(path, msg_id, stamp, 500, "fault", "echo url"))
            return web.Response(status=500, text=f"internal error while handling {request.url}")
        await self._record(
            ReceivedRequest(path, msg_id, stamp, fault.status, "fault", f"status {fault.status}")
        )
        headers = dict(fault.headers)
        if fault.retry_after is not None:
            headers["Retry-After"] = fault.retry_after
        return web.Response(status=fault.status, text=fault.body, headers=headers)
