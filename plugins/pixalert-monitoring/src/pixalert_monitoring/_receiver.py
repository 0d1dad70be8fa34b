"""The HTTP receiver behind ``pixalert serve``: a Starlette app.

``POST /webhook/alerts`` takes Alertmanager, Grafana and plain JSON bodies and
answers 200 once the alerts are stored (delivery goes on in the background);
``GET /health``, ``GET /metrics`` (Prometheus text) and ``GET /api/alerts``.

The alert's lifecycle (see :mod:`pixalert_monitoring._lifecycle_routes`):
``POST /api/alerts/{id}/ack`` and ``/resolve``, ``POST /heartbeat/{name}``
(``/start``, ``/fail``), ``GET /api/heartbeats``, ``GET /api/escalations``,
the signed email links ``GET``/``POST /links/{action}/{id}``, and
``POST /{channel}/actions`` for a channel's buttons (Slack's clicks).

Bad input always gets a 4xx with a JSON body ``{"error": ..., "detail": ...}``:
400 malformed, 401 token, 413 too large, 415 content type, 422 not a known
format or an invalid field. Overload and storage trouble get 503 (never 429:
Alertmanager treats every 4xx as final but retries a 5xx).

Each endpoint is a module-level function of the request. The app's shared
state is one :class:`ReceiverState` on ``app.state.receiver``; an endpoint that
needs the bearer token starts with ``state = authorized(request)``, and
raises :class:`Reject` for any error answer. Adding an endpoint is one
function and one line in :data:`ROUTES`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs
from pixalert import Priority, SubmitError, parse_time
from pixalert.channels import Secret, redact
from pixalert.storage import RESULTS, STATUSES
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ._bridge import MonitoringBridge
from ._external import PayloadError, PayloadTooLarge
from ._metrics import ReceiverMetrics
from ._settings import (
    DEFAULT_DEDUP_TTL,
    DEFAULT_INGEST_TIMEOUT,
    DEFAULT_MAX_ALERTS,
    DEFAULT_MAX_BODY,
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_INFLIGHT,
    ReceiverConfig,
)

__all__ = [
    "DEFAULT_MAX_ALERTS",
    "DEFAULT_MAX_BODY",
    "DEFAULT_MAX_DEPTH",
    "ROUTES",
    "ReceiverState",
    "Reject",
    "authorized",
    "create_app",
    "history_filters",
    "receiver_state",
]

log = logging.getLogger("pixalert.receiver")

_MAX_HOURS = 24 * 366
_RETRY = {"Retry-After": "1"}
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="pixalert"'}
_INVALID_TOKEN = {"WWW-Authenticate": 'Bearer realm="pixalert", error="invalid_token"'}
_INVALID_BODY = "unrecognised or invalid alert body"


class Reject(Exception):
    """An error answer: ``status`` with the JSON body ``{"error": error, "detail": detail}``.

    Raised from an endpoint (or a helper it calls); the app turns it into the response.
    """

    def __init__(
        self, status: int, error: str, detail: Any = None, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = dict(headers or {})

    def response(self) -> Response:
        """The JSON error response."""
        body: dict[str, Any] = {"error": self.error}
        if self.detail is not None:
            body["detail"] = self.detail
        return JSONResponse(body, status_code=self.status, headers=self.headers)


@attrs.define
class ReceiverState:
    """What the receiver's endpoints share, kept on ``app.state.receiver``.

    Its repr shows the limits (the token masked) and the requests in flight.
    """

    manager: Any = attrs.field(repr=False)
    bridge: MonitoringBridge = attrs.field(repr=False)
    config: ReceiverConfig
    metrics: ReceiverMetrics = attrs.field(factory=ReceiverMetrics, repr=False)
    owns_bridge: bool = attrs.field(default=False, repr=False)
    inflight: int = 0

    def check_token(self, header: str | None) -> None:
        """Raise a 401 :class:`Reject` unless ``header`` is ``Bearer <the token>``.

        Without a configured token every request passes. The comparison takes
        the same time wherever the given token differs.
        """
        if self.config.token is None:
            return
        if not header:
            expected = "send the header 'Authorization: Bearer <token>'"
            raise Reject(401, "missing bearer token", expected, _CHALLENGE)
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            expected = "expected the header 'Authorization: Bearer <token>'"
            raise Reject(401, "missing bearer token", expected, _CHALLENGE)
        if not hmac.compare_digest(given.strip().encode(), self.config.token.get().encode()):
            raise Reject(401, "invalid bearer token", None, _INVALID_TOKEN)

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Count one request in flight for the block; a 503 :class:`Reject` when all are taken."""
        if self.inflight >= self.config.max_inflight:
            raise Reject(503, "overloaded", "too many requests in progress; retry", _RETRY)
        self.inflight += 1
        try:
            yield
        finally:
            self.inflight -= 1


def receiver_state(request: Request) -> ReceiverState:
    """The :class:`ReceiverState` of the app serving ``request`` (no token check)."""
    state: ReceiverState = request.app.state.receiver
    return state


def authorized(request: Request) -> ReceiverState:
    """The :class:`ReceiverState`, once ``request`` carries the bearer token (401 otherwise)."""
    state = receiver_state(request)
    state.check_token(request.headers.get("authorization"))
    return state


# ---------------------------------------------------------------------------
# Endpoints
# ---------------------------------------------------------------------------


async def webhook(request: Request) -> Response:
    """``POST /webhook/alerts``: store the body's alerts, answer 200 with a summary."""
    state = receiver_state(request)
    try:
        state.check_token(request.headers.get("authorization"))
        check_content_type(request)
        with state.slot():
            raw = await read_body(request, state.config.max_body)
            summary = await _ingest(state, parse_body(raw, state.config.max_depth))
    except Reject as rejected:
        state.metrics.requests.labels(str(rejected.status)).inc()
        raise
    for entry in summary["alerts"]:
        if entry["duplicate"]:
            state.metrics.duplicates.labels(summary["format"]).inc()
        else:
            state.metrics.received.labels(summary["format"], entry["status"]).inc()
    state.metrics.requests.labels("200").inc()
    return JSONResponse({"status": "accepted", **summary})


async def health(request: Request) -> Response:
    """``GET /health`` (no token): the manager's health; 503 while alerts cannot be stored."""
    state = receiver_state(request)
    try:
        data = dict(await state.manager.health())
    except Exception as exc:
        failed = redact(f"health check failed: {type(exc).__name__}: {exc}")
        return JSONResponse({"status": "unavailable", "reason": failed}, status_code=503)
    data["receiver"] = {"inflight": state.inflight, "max_inflight": state.config.max_inflight}
    reason = _unavailable(data)
    if reason is None:
        return JSONResponse(data)
    data.update(status="unavailable", reason=reason)
    return JSONResponse(data, status_code=503)


async def prometheus_metrics(request: Request) -> Response:
    """``GET /metrics``: the receiver's and deliveries' metrics in Prometheus text format."""
    state = authorized(request)
    body, content_type = state.metrics.render(request.headers.get("accept", ""))
    return Response(body, media_type=content_type)


async def api_alerts(request: Request) -> Response:
    """``GET /api/alerts``: the history as JSON, filtered by the query parameters
    ``priority`` (repeatable, or a comma list), ``status``, ``channel``, ``result``,
    ``search``, ``source``, ``key``, ``since``/``until`` (a duration ago such as
    ``2h`` or an ISO 8601 time, UTC without an offset), ``hours`` and ``limit``.
    A bad value is a 400 naming the parameter."""
    state = authorized(request)
    filters = history_filters(request, state.manager)
    shown_hours = filters.pop("_hours")
    try:
        alerts = await state.manager.history(**filters)
    except ValueError as exc:
        raise Reject(400, "invalid query", redact(str(exc))) from None
    except Exception as exc:
        log.error("receiver: could not read history: %s", redact(str(exc)))
        raise Reject(503, "could not read the history", type(exc).__name__, _RETRY) from None
    since, until = filters["since"], filters["until"]
    return JSONResponse(
        {
            "hours": shown_hours,
            "since": since.isoformat(),
            "until": until.isoformat() if until is not None else None,
            "count": len(alerts),
            "alerts": alerts,
        }
    )


_MAX_TEXT = 500


def history_filters(request: Request, manager: Any) -> dict[str, Any]:
    """The query parameters of ``GET /api/alerts``, checked: the keyword arguments
    of ``manager.history`` (and ``_hours``, for the answer); a 400 :class:`Reject`
    naming the first bad parameter."""
    params = request.query_params
    clock = getattr(manager, "clock", None)
    now = _from_epoch(clock.now() if clock is not None else time.time())

    def moment(name: str) -> datetime | None:
        raw = params.get(name)
        if raw is None or not raw.strip():
            return None
        try:
            return parse_time(raw, now=now)
        except ValueError as exc:
            raise Reject(400, f"invalid {name}", str(exc)[:300]) from None

    until = moment("until")
    since = moment("since")
    hours: float | None = None
    if params.get("hours") is not None:
        if since is not None:
            raise Reject(400, "invalid since", "give since or hours, not both")
        hours = _number_param(request, "hours", 24.0, 0, _MAX_HOURS)
        since = now - timedelta(hours=hours)
    elif since is None:
        hours = 24.0
        since = (until or now) - timedelta(hours=hours)
    if until is not None and until <= since:
        raise Reject(
            400,
            "invalid until",
            f"expected a time after since ({since.isoformat()}), got {until.isoformat()}",
        )
    priorities: list[Priority] = []
    for raw in params.getlist("priority"):
        for item in raw.split(","):
            if item.strip():
                try:
                    priorities.append(Priority.parse(item))
                except ValueError as exc:
                    raise Reject(400, "invalid priority", str(exc)[:300]) from None
    filters: dict[str, Any] = {
        "since": since,
        "until": until,
        "limit": int(_number_param(request, "limit", 1000, 0, 10_000, whole=True)),
        "priorities": priorities or None,
        "_hours": hours,
    }
    for name, allowed in (("status", STATUSES), ("result", RESULTS)):
        value = params.get(name) or None
        if value is not None and value not in allowed:
            detail = f"expected one of {', '.join(allowed)}, got {value[:32]!r}"
            raise Reject(400, f"invalid {name}", detail)
        filters[name] = value
    for name in ("channel", "search", "source", "key"):
        value = params.get(name)
        if value is not None and len(value) > _MAX_TEXT:
            raise Reject(400, f"invalid {name}", f"at most {_MAX_TEXT} characters")
        filters[name] = value or None
    return filters


#: The receiver's routes (``create_app`` adds the lifecycle's after them).
ROUTES = [
    Route("/webhook/alerts", webhook, methods=["POST"]),
    Route("/health", health, methods=["GET"]),
    Route("/metrics", prometheus_metrics, methods=["GET"]),
    Route("/api/alerts", api_alerts, methods=["GET"]),
]


async def _ingest(state: ReceiverState, data: Any) -> dict[str, Any]:
    """Store ``data``'s alerts through the bridge; its summary, or a :class:`Reject`."""
    try:
        return await asyncio.wait_for(
            state.bridge.process_external_alerts(
                data, wait=False, max_alerts=state.config.max_alerts
            ),
            state.config.ingest_timeout,
        )
    except PayloadTooLarge as exc:
        raise Reject(413, "too many alerts", str(exc)) from None
    except PayloadError as exc:
        raise Reject(422, _INVALID_BODY, exc.errors) from None
    except asyncio.TimeoutError:
        raise Reject(503, "storing the alerts timed out", "retry", _RETRY) from None
    except Exception as exc:
        log.error("receiver: could not store alerts: %s", redact(f"{type(exc).__name__}: {exc}"))
        # Name the store's own error, not the SubmitError around it.
        cause = exc.__cause__ if isinstance(exc, SubmitError) else None
        name = type(cause or exc).__name__
        raise Reject(503, "could not store the alerts", name, _RETRY) from None


def _unavailable(health: Mapping[str, Any]) -> str | None:
    """Why alerts cannot be taken now (the history store is down), or None."""
    history = health.get("history")
    if isinstance(history, Mapping) and history.get("status", "ok") != "ok":
        why = history.get("reason") or history.get("error") or history.get("status")
        return redact(f"history store unavailable: {why}")
    if health.get("status") not in ("ok", "degraded"):
        return f"status {health.get('status')!r}"
    return None


# ---------------------------------------------------------------------------
# Reading a request
# ---------------------------------------------------------------------------


def check_content_type(request: Request) -> None:
    """A 415 :class:`Reject` unless the body is declared as UTF-8 JSON."""
    content_type = request.headers.get("content-type", "")
    media, _, params = content_type.partition(";")
    media = media.strip().lower()
    if not (
        media == "application/json"
        or (media.startswith("application/") and media.endswith("+json"))
    ):
        raise Reject(
            415,
            "unsupported content type",
            f"expected Content-Type: application/json, got {content_type[:100] or 'none'!r}",
        )
    for param in params.split(";"):
        key, _, value = param.partition("=")
        charset = value.strip().strip('"').lower()
        if key.strip().lower() == "charset" and charset not in ("utf-8", "utf8"):
            raise Reject(415, "unsupported charset", "JSON bodies must be UTF-8")


async def read_body(request: Request, limit: int) -> bytes:
    """The body, counting the bytes streamed in (chunked bodies too); 413 past ``limit``."""
    length = request.headers.get("content-length")
    if length is not None and length.strip().isdigit() and int(length) > 2 * limit:
        raise Reject(413, "body too large", f"at most {limit} bytes")
    chunks: list[bytes] = []
    total = 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total <= limit:
                chunks.append(chunk)
            elif total > 2 * limit:
                break  # stop draining; the connection closes after the answer
    except ClientDisconnect:
        raise Reject(400, "client disconnected before the body was complete") from None
    if total > limit:
        raise Reject(413, "body too large", f"at most {limit} bytes")
    return b"".join(chunks)


class _NonFinite:
    """Where the JSON held ``NaN``, ``Infinity`` or a number too large for a float."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def parse_body(raw: bytes, max_depth: int) -> Any:
    """The parsed JSON body: 400 if malformed, 422 if nested past ``max_depth`` or holding a
    number that is not finite (``NaN``, ``Infinity``, ``1e999``), naming where."""
    if not raw.strip():
        raise Reject(400, "empty body", "expected a JSON alert body")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Reject(
            400, "body is not valid UTF-8", f"invalid byte at offset {exc.start}"
        ) from None
    found: list[_NonFinite] = []

    def non_finite(literal: str) -> _NonFinite:
        found.append(_NonFinite(literal))
        return found[-1]

    def number(literal: str) -> Any:
        value = float(literal)
        return value if math.isfinite(value) else non_finite(literal)

    try:
        data = json.loads(text, parse_float=number, parse_constant=non_finite)
    except RecursionError:
        raise Reject(422, "JSON nested too deeply", f"at most {max_depth} levels") from None
    except ValueError as exc:
        raise Reject(400, "malformed JSON", str(exc)[:200]) from None
    if _depth(data, max_depth) > max_depth:
        raise Reject(422, "JSON nested too deeply", f"at most {max_depth} levels")
    if found:
        paths = _non_finite_paths(data)
        problems = [f"{where}: expected a finite number, got {item.text}" for where, item in paths]
        raise Reject(422, _INVALID_BODY, problems)
    return data


def _depth(value: Any, limit: int) -> int:
    """The nesting depth of a parsed JSON value, stopping once past ``limit``."""
    if not isinstance(value, (dict, list)):
        return 0
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]  # containers only: scalars add no depth
    while stack:
        item, depth = stack.pop()
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                return deepest
        for child in item.values() if type(item) is dict else item:
            if type(child) is dict or type(child) is list:
                stack.append((child, depth + 1))
    return deepest


def _non_finite_paths(value: Any) -> list[tuple[str, _NonFinite]]:
    """Each non-finite number in ``value`` with its path (``alerts[0].values.B``), in order."""
    found: list[tuple[str, _NonFinite]] = []
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, _NonFinite):
            found.append((where or "body", item))
        elif type(item) is dict:
            stack.extend((f"{where}.{k}" if where else k, v) for k, v in reversed(item.items()))
        elif type(item) is list:
            stack.extend((f"{where}[{i}]", v) for i, v in reversed(list(enumerate(item))))
    return found


def _from_epoch(seconds: float) -> datetime:
    """Epoch ``seconds`` as an aware UTC datetime."""
    return datetime.fromtimestamp(seconds, timezone.utc)


def query_number(
    request: Request, name: str, default: float, low: float, high: float, *, whole: bool = False
) -> float:
    """Query parameter ``name`` as a number in (``low``, ``high``] (a whole one with
    ``whole``), ``default`` when absent or empty; ``ValueError`` naming it otherwise."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not (low < value <= high) or (whole and not value.is_integer()):
        kind = "a whole number" if whole else "a number"
        raise ValueError(f"{name}: expected {kind} > {low:g} and <= {high:g}, got {raw[:32]!r}")
    return int(value) if whole else value


def _number_param(
    request: Request, name: str, default: float, low: float, high: float, *, whole: bool = False
) -> float:
    """:func:`query_number`, its error a 400 answer."""
    try:
        return query_number(request, name, default, low, high, whole=whole)
    except ValueError as exc:
        raise Reject(400, f"invalid {name}", str(exc).removeprefix(f"{name}: ")) from None


# ---------------------------------------------------------------------------
# The app
# ---------------------------------------------------------------------------


async def _rejected(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Reject)
    return exc.response()


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return Reject(exc.status_code, exc.detail, headers=exc.headers).response()


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("receiver: unexpected error: %s", redact(f"{type(exc).__name__}: {exc}"))
    return Reject(500, "internal error").response()


@contextlib.asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    """Start the manager and count its deliveries; on shutdown wait for them."""
    state: ReceiverState = app.state.receiver
    await state.manager.start()
    plugins = getattr(state.manager, "plugins", None)
    if plugins is not None:
        plugins.register(state.metrics)
    try:
        yield
    finally:
        if plugins is not None:
            plugins.unregister(state.metrics)
        await state.manager.drain()
        if state.owns_bridge:
            await state.bridge.aclose()


def create_app(
    manager: Any,
    *,
    token: str | Secret | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    max_alerts: int = DEFAULT_MAX_ALERTS,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_inflight: int = DEFAULT_MAX_INFLIGHT,
    ingest_timeout: float = DEFAULT_INGEST_TIMEOUT,
    bridge: MonitoringBridge | None = None,
    severities: Mapping[str, Any] | None = None,
    dedup_ttl: float = DEFAULT_DEDUP_TTL,
) -> Starlette:
    """Build the receiver's Starlette app around ``manager``.

    ``token``, when set, is required as ``Authorization: Bearer <token>`` on
    every endpoint but ``/health`` (compared in constant time). ``max_body``
    counts the bytes actually streamed in (chunked bodies too), ``max_alerts``
    caps the alerts of one request and ``max_depth`` the JSON nesting.
    ``max_inflight`` requests are processed at once; more get 503.
    ``dedup_ttl`` (seconds) is how long a notification taken is remembered,
    so that its redeliveries are not taken again. A bad option is a
    ``ValueError`` naming it. The app starts the manager on startup and waits
    for background deliveries on shutdown; closing the manager is the caller's job.
    """
    config = ReceiverConfig(
        token=token,
        max_body=max_body,
        max_alerts=max_alerts,
        max_depth=max_depth,
        max_inflight=max_inflight,
        ingest_timeout=ingest_timeout,
        dedup_ttl=dedup_ttl,
    )
    owns_bridge = bridge is None
    if bridge is None:
        bridge = MonitoringBridge(manager, severities=severities, dedup_ttl=config.dedup_ttl)
    from ._dashboard import ActionGuard, dashboard_routes  # the dashboard, CSRF for /api/
    from ._lifecycle_routes import LIFECYCLE_ROUTES

    routes = [*ROUTES, *LIFECYCLE_ROUTES]
    app = Starlette(
        routes=[*routes, *dashboard_routes(routes)],
        middleware=[Middleware(ActionGuard)],
        exception_handlers={
            Reject: _rejected,
            HTTPException: _http_error,
            Exception: _server_error,
        },
        lifespan=_lifespan,
    )
    app.state.receiver = ReceiverState(manager, bridge, config, owns_bridge=owns_bridge)
    return app
