"""The HTTP receiver behind ``pixalert serve``: a Starlette app.

``POST /webhook/alerts`` takes Alertmanager, Grafana and plain JSON bodies and
answers 200 once the alerts are stored (delivery goes on in the background);
``GET /health``, ``GET /metrics`` (Prometheus text) and ``GET /api/alerts``.

Bad input always gets a 4xx with a JSON body ``{"error": ..., "detail": ...}``:
400 malformed, 401 token, 413 too large, 415 content type, 422 not a known
format. Overload and storage trouble get 503 (never 429: Alertmanager treats
every 4xx as final but retries a 5xx).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

from pixalert import SubmitError
from pixalert.channels import redact, register_secret

from ._bridge import DEFAULT_DEDUP_TTL, MonitoringBridge
from ._external import PayloadError, PayloadTooLarge
from ._metrics import ReceiverMetrics

__all__ = ["DEFAULT_MAX_ALERTS", "DEFAULT_MAX_BODY", "DEFAULT_MAX_DEPTH", "create_app"]

log = logging.getLogger("pixalert.receiver")

DEFAULT_MAX_BODY = 2 * 1024 * 1024
DEFAULT_MAX_ALERTS = 1000
DEFAULT_MAX_DEPTH = 32
DEFAULT_MAX_INFLIGHT = 64
DEFAULT_INGEST_TIMEOUT = 5.0
_MAX_HOURS = 24 * 366


class _Reject(Exception):
    """An early answer with a JSON error body."""

    def __init__(
        self, status: int, error: str, detail: Any = None, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = dict(headers or {})


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


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def create_app(
    manager: Any,
    *,
    token: str | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    max_alerts: int = DEFAULT_MAX_ALERTS,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_inflight: int = DEFAULT_MAX_INFLIGHT,
    ingest_timeout: float = DEFAULT_INGEST_TIMEOUT,
    bridge: MonitoringBridge | None = None,
    severities: Mapping[str, Any] | None = None,
    dedup_ttl: float = DEFAULT_DEDUP_TTL,
) -> Any:
    """Build the receiver's Starlette app around ``manager``.

    ``token``, when set, is required as ``Authorization: Bearer <token>`` on
    every endpoint but ``/health`` (compared in constant time). ``max_body``
    counts the bytes actually streamed in (chunked bodies too), ``max_alerts``
    caps the alerts of one request and ``max_depth`` the JSON nesting.
    ``max_inflight`` requests are processed at once; more get 503. The app
    starts the manager on startup and waits for background deliveries on
    shutdown; closing the manager is the caller's job.
    """
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect, Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    for name, value in (
        ("max_body", max_body),
        ("max_alerts", max_alerts),
        ("max_depth", max_depth),
        ("max_inflight", max_inflight),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected a whole number >= 1, got {value!r}")
    if token is not None and not token:
        raise ValueError("token: expected a non-empty string (or None for no token)")
    expected = token.encode() if token else None
    if token:
        register_secret(token)  # masked by pixalert.channels.redact() and in log records
    own_bridge = bridge is None
    if bridge is None:
        bridge = MonitoringBridge(manager, severities=severities, dedup_ttl=dedup_ttl)
    metrics = ReceiverMetrics()
    inflight = 0

    def error(
        status: int, message: str, detail: Any = None, headers: Mapping[str, str] | None = None
    ) -> Response:
        body: dict[str, Any] = {"error": message}
        if detail is not None:
            body["detail"] = detail
        return JSONResponse(body, status_code=status, headers=dict(headers or {}))

    def authorize(request: Request) -> None:
        if expected is None:
            return
        header = request.headers.get("authorization")
        challenge = {"WWW-Authenticate": 'Bearer realm="pixalert"'}
        if not header:
            raise _Reject(
                401,
                "missing bearer token",
                "send the header 'Authorization: Bearer <token>'",
                challenge,
            )
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise _Reject(
                401,
                "missing bearer token",
                "expected the header 'Authorization: Bearer <token>'",
                challenge,
            )
        if not hmac.compare_digest(given.strip().encode(), expected):
            raise _Reject(
                401,
                "invalid bearer token",
                None,
                {"WWW-Authenticate": 'Bearer realm="pixalert", error="invalid_token"'},
            )

    async def read_body(request: Request) -> bytes:
        length = request.headers.get("content-length")
        if length is not None and length.strip().isdigit() and int(length) > 2 * max_body:
            raise _Reject(413, "body too large", f"at most {max_body} bytes")
        chunks: list[bytes] = []
        total = 0
        try:
            async for chunk in request.stream():
                total += len(chunk)
                if total <= max_body:
                    chunks.append(chunk)
                elif total > 2 * max_body:
                    break  # stop draining; the connection closes after the answer
        except ClientDisconnect:
            raise _Reject(400, "client disconnected before the body was complete") from None
        if total > max_body:
            raise _Reject(413, "body too large", f"at most {max_body} bytes")
        return b"".join(chunks)

    def parse_json(raw: bytes) -> Any:
        if not raw.strip():
            raise _Reject(400, "empty body", "expected a JSON alert body")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise _Reject(
                400, "body is not valid UTF-8", f"invalid byte at offset {exc.start}"
            ) from None
        try:
            data = json.loads(text, parse_constant=_reject_constant)
        except RecursionError:
            raise _Reject(422, "JSON nested too deeply", f"at most {max_depth} levels") from None
        except ValueError as exc:
            raise _Reject(400, "malformed JSON", str(exc)[:200]) from None
        if _depth(data, max_depth) > max_depth:
            raise _Reject(422, "JSON nested too deeply", f"at most {max_depth} levels")
        return data

    def check_content_type(request: Request) -> None:
        content_type = request.headers.get("content-type", "")
        media, _, params = content_type.partition(";")
        media = media.strip().lower()
        if not (
            media == "application/json"
            or (media.startswith("application/") and media.endswith("+json"))
        ):
            raise _Reject(
                415,
                "unsupported content type",
                f"expected Content-Type: application/json, got {content_type[:100] or 'none'!r}",
            )
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in (
                "utf-8",
                "utf8",
            ):
                raise _Reject(415, "unsupported charset", "JSON bodies must be UTF-8")

    async def webhook(request: Request) -> Response:
        nonlocal inflight
        try:
            authorize(request)
            check_content_type(request)
            if inflight >= max_inflight:
                raise _Reject(
                    503, "overloaded", "too many requests in progress; retry", {"Retry-After": "1"}
                )
            inflight += 1
            try:
                raw = await read_body(request)
                data = parse_json(raw)
                try:
                    summary = await asyncio.wait_for(
                        bridge.process_external_alerts(data, wait=False, max_alerts=max_alerts),
                        ingest_timeout,
                    )
                except PayloadTooLarge as exc:
                    raise _Reject(413, "too many alerts", str(exc)) from None
                except PayloadError as exc:
                    raise _Reject(422, "unrecognised or invalid alert body", exc.errors) from None
                except asyncio.TimeoutError:
                    raise _Reject(
                        503, "storing the alerts timed out", "retry", {"Retry-After": "1"}
                    ) from None
                except Exception as exc:
                    log.error(
                        "receiver: could not store alerts: %s",
                        redact(f"{type(exc).__name__}: {exc}"),
                    )
                    # Name the store's own error, not the SubmitError around it.
                    cause = exc.__cause__ if isinstance(exc, SubmitError) else None
                    raise _Reject(
                        503,
                        "could not store the alerts",
                        type(cause or exc).__name__,
                        {"Retry-After": "1"},
                    ) from None
            finally:
                inflight -= 1
        except _Reject as rejected:
            metrics.requests.labels(str(rejected.status)).inc()
            return error(rejected.status, rejected.error, rejected.detail, rejected.headers)
        for entry in summary["alerts"]:
            if entry["duplicate"]:
                metrics.duplicates.labels(summary["format"]).inc()
            else:
                metrics.received.labels(summary["format"], entry["status"]).inc()
        metrics.requests.labels("200").inc()
        return JSONResponse({"status": "accepted", **summary})

    async def health(request: Request) -> Response:
        try:
            data = dict(await manager.health())
        except Exception as exc:
            return JSONResponse({"status": "error", "error": type(exc).__name__}, status_code=503)
        data["receiver"] = {"inflight": inflight, "max_inflight": max_inflight}
        code = 200 if data.get("status") in ("ok", "degraded") else 503
        return JSONResponse(data, status_code=code)

    async def metrics_endpoint(request: Request) -> Response:
        try:
            authorize(request)
        except _Reject as rejected:
            return error(rejected.status, rejected.error, rejected.detail, rejected.headers)
        body, content_type = metrics.render(request.headers.get("accept", ""))
        return Response(body, media_type=content_type)

    async def api_alerts(request: Request) -> Response:
        try:
            authorize(request)
            hours = _number_param(request, "hours", 24.0, 0, _MAX_HOURS)
            limit = int(_number_param(request, "limit", 1000, 1, 10_000, whole=True))
        except _Reject as rejected:
            return error(rejected.status, rejected.error, rejected.detail, rejected.headers)
        try:
            alerts = await manager.history(hours, limit=limit)
        except Exception as exc:
            log.error("receiver: could not read history: %s", redact(str(exc)))
            return error(
                503, "could not read the history", type(exc).__name__, {"Retry-After": "1"}
            )
        return JSONResponse({"hours": hours, "count": len(alerts), "alerts": alerts})

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return error(exc.status_code, exc.detail, headers=exc.headers)

    async def server_error(request: Request, exc: Exception) -> Response:
        log.error("receiver: unexpected error: %s", redact(f"{type(exc).__name__}: {exc}"))
        return error(500, "internal error")

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        await manager.start()
        plugins = getattr(manager, "plugins", None)
        if plugins is not None:
            plugins.register(metrics)
        try:
            yield
        finally:
            if plugins is not None:
                plugins.unregister(metrics)
            await manager.drain()
            if own_bridge:
                await bridge.aclose()

    app = Starlette(
        routes=[
            Route("/webhook/alerts", webhook, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            Route("/api/alerts", api_alerts, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error, Exception: server_error},
        lifespan=lifespan,
    )
    app.state.manager = manager
    app.state.bridge = bridge
    app.state.metrics = metrics
    return app


def _number_param(
    request: Any, name: str, default: float, low: float, high: float, *, whole: bool = False
) -> float:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not (low < value <= high) or (whole and not value.is_integer()):
        kind = "a whole number" if whole else "a number"
        raise _Reject(
            400, f"invalid {name}", f"expected {kind} > {low:g} and <= {high:g}, got {raw[:32]!r}"
        )
    return value
