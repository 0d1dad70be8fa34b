"""The dashboard of ``pixalert serve``: server-rendered pages at ``/`` and their actions.

Pages: ``/`` (Now: what is firing, grouped), ``/alerts`` (the history with its
filters) and ``/alerts/{id}`` (one alert's delivery timeline), ``/channels``
(health, circuits, success rate and latency over 1 h, 24 h and 7 d),
``/silences`` and ``/heartbeats``. Each page is a Jinja2 template
(autoescaped) around one live region that the page's script polls every
second with ``If-None-Match``: an unchanged region answers 304, a changed
one is swapped in, so new alerts and state changes show without a reload.
Polling keeps no connection open, so the server stops promptly.

Reading needs what ``GET /api/alerts`` needs: the bearer token when one is
configured (the page asks for it once and keeps it in the tab's
``sessionStorage``). Without a token (``serve`` allows that on loopback, or
with ``--allow-unauthenticated``) the pages answer only requests whose
``Host`` is a loopback name when the client is local, against DNS
rebinding. Actions (``POST /api/silences``, ``DELETE /api/silences/{id}``,
``POST /api/alerts/{id}/ack`` and ``/resolve``) also need a JSON body, a
same-origin browser request (``Sec-Fetch-Site``/``Origin``), and, when no
token is configured, a client on this machine.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs
from pixalert import parse_time
from pixalert.channels import Duration, redact
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from . import _views
from ._receiver import (
    ReceiverState,
    Reject,
    authorized,
    check_content_type,
    parse_body,
    query_number,
    read_body,
    receiver_state,
)
from ._server import is_loopback

__all__ = ["ROUTES", "ActionGuard", "DashboardState", "check_action", "dashboard_routes"]

log = logging.getLogger("pixalert.dashboard")

_MAX_HOURS = 24 * 366
_LIVE_HEADER = "x-pixalert-live"
#: How long (seconds) a rendered live region is reused for other viewers.
CACHE_SECONDS = 0.75
#: How long the chart series are reused.
SERIES_SECONDS = 30.0
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


@attrs.define
class DashboardState:
    """The dashboard's own state on ``app.state.dashboard``: rendered regions for reuse."""

    cache: dict[str, tuple[float, str, str]] = attrs.field(factory=dict)

    def clear(self) -> None:
        """Forget every rendered region (after an action changed something)."""
        self.cache.clear()


def _dashboard(request: Request) -> DashboardState:
    state = getattr(request.app.state, "dashboard", None)
    if state is None:
        state = DashboardState()
        request.app.state.dashboard = state
    return state


# ---------------------------------------------------------------------------
# Templates
# ---------------------------------------------------------------------------

_ENV: Any = None


def templates() -> Any:
    """The Jinja2 environment (autoescaped), built on first use."""
    global _ENV
    if _ENV is None:
        import jinja2

        env = jinja2.Environment(
            loader=jinja2.PackageLoader("pixalert_monitoring", "templates"),
            autoescape=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.filters["when"] = _when
        env.filters["seconds"] = _seconds
        env.filters["percent"] = _percent
        env.filters["iso"] = _views.to_iso
        env.globals["static_version"] = _static_version()
        _ENV = env
    return _ENV


def _static_version() -> str:
    from . import __version__

    return __version__


def _when(value: Any) -> str:
    """An ISO time as ``2026-05-01 12:00:05 UTC`` (the page shows it relative too)."""
    utc = isinstance(value, str) and value[10:11] == "T" and value.endswith("+00:00")
    iso = value if utc else _views.to_iso(value)
    if iso is None:
        return "" if value is None else str(value)
    return iso[:19].replace("T", " ") + " UTC"


def _seconds(value: Any) -> str:
    """A latency in seconds as ``12 ms`` or ``1.5 s``; an en dash when unknown."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "\u2013"
    if value < 1:
        return f"{value * 1000:.0f} ms" if value >= 0.001 else "<1 ms"
    return f"{value:.2f} s"


def _percent(value: Any) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "\u2013"
    return f"{value * 100:.1f} %"


def _html(body: str, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        body,
        status_code=status,
        media_type="text/html; charset=utf-8",
        headers={**_SECURITY_HEADERS, **(headers or {})},
    )


# ---------------------------------------------------------------------------
# Who may look and who may act
# ---------------------------------------------------------------------------


def _host_name(request: Request) -> str:
    host = request.headers.get("host", "")
    return urlsplit(f"//{host}").hostname or ""


def _viewer(request: Request) -> tuple[ReceiverState, bool]:
    """The receiver's state, and whether this request may see the data.

    With a token: only a request carrying it. Without one: anyone the server
    lets in, but a local client must name a loopback ``Host`` (a page from
    another site that rebound its name to 127.0.0.1 does not).
    """
    state = receiver_state(request)
    if state.config.token is not None:
        if request.headers.get("authorization") is None:
            return state, False
        state.check_token(request.headers.get("authorization"))
        return state, True
    client = request.client.host if request.client else ""
    if is_loopback(client) and not is_loopback(_host_name(request)):
        raise Reject(
            403,
            "unexpected Host",
            "without a token the dashboard answers only http://127.0.0.1:PORT/ or "
            "http://localhost:PORT/; set a token to serve it under another name",
        )
    return state, True


def check_action(request: Request, state: ReceiverState) -> None:
    """A 403 :class:`Reject` unless ``request`` may change something.

    A browser request must be same-origin (``Sec-Fetch-Site``, ``Origin``
    against ``Host``); requests without those headers (curl, scripts) pass.
    Without a configured token, only a client on this machine that names a
    loopback ``Host`` may act.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None and site != "same-origin":
        raise Reject(403, "cross-site request refused", f"Sec-Fetch-Site: {site[:40]}")
    origin = request.headers.get("origin")
    if origin is not None:
        given = urlsplit(origin)
        if origin == "null" or given.netloc.lower() != request.headers.get("host", "").lower():
            raise Reject(403, "cross-origin request refused", f"Origin: {origin[:100]}")
    if state.config.token is None:
        client = request.client.host if request.client else ""
        if not is_loopback(client):
            raise Reject(
                403,
                "actions need a bearer token",
                "no token is configured, so actions are taken only from this machine; "
                "set PIXALERT_RECEIVER_TOKEN",
            )
        if not is_loopback(_host_name(request)):
            raise Reject(403, "unexpected Host", "use http://127.0.0.1:PORT/ or set a token")


def _actor(request: Request) -> ReceiverState:
    """The state, once ``request`` carries the token and may act (:func:`check_action`)."""
    state = authorized(request)
    check_action(request, state)
    return state


_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class ActionGuard:
    """ASGI middleware: :func:`check_action` for every ``POST``/``PUT``/``PATCH``/``DELETE``
    under ``/api/``, whichever module added the endpoint (``/webhook/alerts`` and other
    machine-to-machine endpoints are outside ``/api/``)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Answer 403 to an action request that may not act; pass everything else on.

        Any request that may change something (an action under ``/api/``, a
        webhook, a button click, a heartbeat ping) makes the pages render again
        on their next poll, whichever module answered it.
        """
        if scope["type"] != "http" or scope["method"] not in _UNSAFE:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        if str(scope["path"]).startswith("/api/"):
            try:
                check_action(request, receiver_state(request))
            except Reject as rejected:
                await rejected.response()(scope, receive, send)
                return
        try:
            await self.app(scope, receive, send)
        finally:
            _dashboard(request).clear()


async def _json_object(request: Request, state: ReceiverState) -> dict[str, Any]:
    check_content_type(request)
    raw = await read_body(request, 64 * 1024)
    if not raw.strip():
        return {}
    data = parse_body(raw, state.config.max_depth)
    if not isinstance(data, dict):
        raise Reject(422, "expected a JSON object", f"got {type(data).__name__}")
    return data


def _text(data: Mapping[str, Any], name: str, default: str = "", limit: int = 500) -> str:
    value = data.get(name, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise Reject(422, f"invalid {name}", f"expected a string, got {type(value).__name__}")
    if len(value) > limit:
        raise Reject(422, f"invalid {name}", f"at most {limit} characters")
    return value.strip()


# ---------------------------------------------------------------------------
# Query parameters
# ---------------------------------------------------------------------------


def _history_filters(request: Request) -> dict[str, Any]:
    """The Alerts page's filters, checked: the keyword arguments of ``manager.history``."""
    params = request.query_params
    filters: dict[str, Any] = {
        "hours": query_number(request, "hours", 24.0, 0, _MAX_HOURS),
        "limit": query_number(request, "limit", 100, 0, 1000, whole=True),
    }
    priorities = [p.strip().upper() for p in params.getlist("priority") if p.strip()]
    for priority in priorities:
        if priority not in _views.PRIORITIES:
            names = ", ".join(p.lower() for p in _views.PRIORITIES)
            raise ValueError(f"priority: expected one of {names}, got {priority.lower()!r}")
    filters["priorities"] = priorities or None
    for name, allowed in (
        ("status", ("firing", "resolved", "acknowledged")),
        ("result", ("sent", "failed", "retrying", "pending", "suppressed", "skipped")),
    ):
        value = params.get(name) or None
        if value is not None and value not in allowed:
            raise ValueError(f"{name}: expected one of {', '.join(allowed)}, got {value[:32]!r}")
        filters[name] = value
    for name in ("channel", "search", "source", "key"):
        value = (params.get(name) or "").strip()
        if len(value) > 500:
            raise ValueError(f"{name}: at most 500 characters")
        filters[name] = value or None
    until = (params.get("until") or "").strip()
    if until:
        try:  # as the API and the CLI read it: an ISO time, or a duration ago
            filters["until"] = parse_time(until[:64])
        except ValueError as exc:
            raise ValueError(f"until: {exc}") from None
    return filters


# ---------------------------------------------------------------------------
# Pages
# ---------------------------------------------------------------------------

Builder = Callable[[Request, ReceiverState], Awaitable[dict[str, Any]]]


async def _page(request: Request, page: str, build: Builder, *, title: str) -> Response:
    """Render ``page``: the whole page, or only its live region when the script asks
    (``X-Pixalert-Live: 1``, answered 304 when ``If-None-Match`` still holds)."""
    live = request.headers.get(_LIVE_HEADER) == "1"
    if live:
        state = authorized(request)
        _viewer(request)
    else:
        state, allowed = _viewer(request)
        if not allowed:
            return _render_page(request, page, title, state, None, locked=True)
    dashboard = _dashboard(request)
    cache_key = f"{page}?{request.url.query}"
    cached = dashboard.cache.get(cache_key)
    now = time.monotonic()
    if cached is not None and now - cached[0] < CACHE_SECONDS:
        _, region, etag = cached
    else:
        try:
            context = await build(request, state)
        except ValueError as exc:
            context = {"error": str(exc)}
        except LookupError as exc:
            return _not_found(request, page, title, state, str(exc.args[0] if exc.args else ""))
        except Exception as exc:
            reason = redact(f"{type(exc).__name__}: {exc}")
            log.error("dashboard: could not read the data of %s: %s", page, reason)
            if live:
                raise Reject(503, "could not read the data of the page", reason) from None
            region = (
                templates()
                .get_template("_missing.html")
                .render(
                    what=f"Could not read the data of this page ({reason}); it retries by itself."
                )
            )
            return _render_page(request, page, title, state, region, status=503)
        region = (
            templates().get_template(f"_{page}.html").render(**_common(request, state), **context)
        )
        etag = 'W/"' + hashlib.sha256(region.encode()).hexdigest()[:20] + '"'
        dashboard.cache[cache_key] = (now, region, etag)
        if len(dashboard.cache) > 64:
            oldest = min(dashboard.cache, key=lambda k: dashboard.cache[k][0])
            dashboard.cache.pop(oldest, None)
    headers = {"ETag": etag, "Vary": "X-Pixalert-Live, Authorization"}
    if live:
        if etag in _etags(request.headers.get("if-none-match", "")):
            return Response(status_code=304, headers={**_SECURITY_HEADERS, **headers})
        return _html(region, headers=headers)
    return _render_page(request, page, title, state, region, etag=etag, headers=headers)


def _etags(header: str) -> set[str]:
    return {part.strip() for part in header.split(",") if part.strip()}


def _common(request: Request, state: ReceiverState) -> dict[str, Any]:
    manager = state.manager
    return {
        "can_ack": callable(getattr(manager, "ack", None)),
        "can_resolve": callable(getattr(manager, "resolve", None)),
        "query": request.query_params,
    }


def _render_page(
    request: Request,
    page: str,
    title: str,
    state: ReceiverState,
    region: str | None,
    *,
    locked: bool = False,
    etag: str = "",
    headers: Mapping[str, str] | None = None,
    status: int = 200,
) -> Response:
    body = (
        templates()
        .get_template("page.html")
        .render(
            **_common(request, state),
            page=page,
            title=title,
            region=region,
            locked=locked,
            etag=etag,
            token_required=state.config.token is not None,
            live_url=str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""),
        )
    )
    return _html(body, status=status, headers=headers)


def _not_found(
    request: Request, page: str, title: str, state: ReceiverState, what: str
) -> Response:
    if request.headers.get(_LIVE_HEADER) == "1":
        raise Reject(404, what or "not found")
    region = templates().get_template("_missing.html").render(what=what)
    return _render_page(request, page, title, state, region, status=404)


async def _now(request: Request, state: ReceiverState) -> dict[str, Any]:
    hours = query_number(request, "hours", 24.0, 0, _MAX_HOURS)
    scan = query_number(request, "scan", 2000, 0, 50_000, whole=True)
    return await _views.now_view(state.manager, hours=hours, scan=int(scan))


async def _alerts(request: Request, state: ReceiverState) -> dict[str, Any]:
    try:
        filters = _history_filters(request)
    except ValueError as exc:
        return {"error": str(exc), "rows": [], "count": 0, "older": None, "limit": 0}
    return await _views.alerts_view(state.manager, filters)


async def _alert(request: Request, state: ReceiverState) -> dict[str, Any]:
    alert_id = request.path_params["alert_id"]
    found = await _views.alert_view(state.manager, alert_id)
    if found is None:
        raise LookupError(f"no alert {alert_id[:64]!r} in the history")
    return {"alert": found}


async def _channels(request: Request, state: ReceiverState) -> dict[str, Any]:
    return await _views.channels_view(state.manager)


async def _silences(request: Request, state: ReceiverState) -> dict[str, Any]:
    return await _views.silences_view(state.manager)


async def _heartbeats(request: Request, state: ReceiverState) -> dict[str, Any]:
    return await _views.heartbeats_view(state.manager)


async def now_page(request: Request) -> Response:
    """``GET /``: what is firing now, grouped."""
    return await _page(request, "now", _now, title="Now")


async def alerts_page(request: Request) -> Response:
    """``GET /alerts``: the history with filters."""
    return await _page(request, "alerts", _alerts, title="Alerts")


async def alert_page(request: Request) -> Response:
    """``GET /alerts/{id}``: one alert's delivery timeline."""
    return await _page(request, "alert", _alert, title="Alert")


async def channels_page(request: Request) -> Response:
    """``GET /channels``: health, circuits, success and latency."""
    return await _page(request, "channels", _channels, title="Channels")


async def silences_page(request: Request) -> Response:
    """``GET /silences``: the silences in effect; add and expire."""
    return await _page(request, "silences", _silences, title="Silences")


async def heartbeats_page(request: Request) -> Response:
    """``GET /heartbeats``: each heartbeat's state, last ping and next deadline."""
    return await _page(request, "heartbeats", _heartbeats, title="Heartbeats")


async def channel_series(request: Request) -> Response:
    """``GET /ui/series?range=24h|7d``: chart data of the Channels page (JSON)."""
    state = authorized(request)
    _viewer(request)
    range_name = request.query_params.get("range", "24h")
    if range_name not in _views.RANGES:
        raise Reject(400, "invalid range", f"expected one of {', '.join(_views.RANGES)}")
    dashboard = _dashboard(request)
    cache_key = f"series:{range_name}"
    cached = dashboard.cache.get(cache_key)
    now = time.monotonic()
    if cached is not None and now - cached[0] < SERIES_SECONDS:
        body = cached[1]
    else:
        import json

        clock_now = float(state.manager.clock.now())
        data = await _views.channel_series(state.manager, range_name, clock_now)
        body = json.dumps(data, separators=(",", ":"))
        dashboard.cache[cache_key] = (now, body, "")
    return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})


# ---------------------------------------------------------------------------
# Actions (JSON API)
# ---------------------------------------------------------------------------


async def api_silences(request: Request) -> Response:
    """``GET /api/silences``: the silences in effect; ``POST``: add one.

    The POST body: ``{"matchers": {"key": "..."}, "duration": "1h", "comment": "...",
    "created_by": "..."}``; the answer is 201 with the silence.
    """
    if request.method == "GET":
        state = authorized(request)
        return JSONResponse({"silences": [s.to_dict() for s in await state.manager.silences()]})
    state = _actor(request)
    data = await _json_object(request, state)
    matchers = data.get("matchers")
    if not isinstance(matchers, dict) or not matchers:
        raise Reject(422, "invalid matchers", 'expected an object such as {"key": "..."}')
    if not all(isinstance(v, str) for v in matchers.values()):
        raise Reject(422, "invalid matchers", "expected string values")
    try:
        duration = float(Duration.parse(data.get("duration", "1h"), zero=False))
    except ValueError as exc:
        raise Reject(422, "invalid duration", str(exc)) from None
    try:
        silence = await state.manager.silence(
            {str(k).strip(): v for k, v in matchers.items()},
            duration=duration,
            comment=_text(data, "comment"),
            created_by=_text(data, "created_by", limit=200),
        )
    except ValueError as exc:
        raise Reject(422, "invalid silence", str(exc)) from None
    except RuntimeError as exc:
        raise Reject(503, "could not store the silence", redact(str(exc))) from None
    _dashboard(request).clear()
    return JSONResponse(silence.to_dict(), status_code=201)


async def api_unsilence(request: Request) -> Response:
    """``DELETE /api/silences/{id}``: end a silence now (404 if none is in effect)."""
    state = _actor(request)
    silence_id = request.path_params["silence_id"]
    try:
        removed = await state.manager.unsilence(silence_id)
    except RuntimeError as exc:
        raise Reject(503, "could not end the silence", redact(str(exc))) from None
    if not removed:
        raise Reject(404, "no such silence in effect", silence_id[:64])
    _dashboard(request).clear()
    return JSONResponse({"id": silence_id, "expired": True})


async def api_alert(request: Request) -> Response:
    """``GET /api/alerts/{id}``: one alert with its deliveries and events (404 if unknown)."""
    state = authorized(request)
    alert_id = request.path_params["alert_id"]
    found = await state.manager.get_alert(alert_id)
    if found is None:
        raise Reject(404, "no such alert", alert_id[:64])
    return JSONResponse(found)


async def _lifecycle_action(request: Request, method_name: str, done: str) -> Response:
    state = _actor(request)
    method = getattr(state.manager, method_name, None)
    if not callable(method):
        raise Reject(
            501,
            f"{method_name} is not available",
            f"this pixalert's NotificationManager has no {method_name}()",
        )
    data = await _json_object(request, state)
    alert_id = request.path_params["alert_id"]
    if await state.manager.get_alert(alert_id) is None:
        raise Reject(404, "no such alert", alert_id[:64])
    kwargs: dict[str, Any] = {"by": _text(data, "by", limit=200) or None}
    note = _text(data, "note")
    params = inspect.signature(method).parameters
    if note and ("note" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())):
        kwargs["note"] = note
    try:
        await _views.maybe_await(method(alert_id, **kwargs))
    except (KeyError, LookupError) as exc:
        raise Reject(404, "no such alert", str(exc)[:200]) from None
    except ValueError as exc:
        raise Reject(422, f"could not {method_name}", str(exc)[:500]) from None
    _dashboard(request).clear()
    return JSONResponse({"id": alert_id, "status": done})


async def api_ack(request: Request) -> Response:
    """``POST /api/alerts/{id}/ack`` with ``{"by": ..., "note": ...}``: acknowledge it."""
    return await _lifecycle_action(request, "ack", "acknowledged")


async def api_resolve(request: Request) -> Response:
    """``POST /api/alerts/{id}/resolve`` with ``{"by": ...}``: resolve it."""
    return await _lifecycle_action(request, "resolve", "resolved")


#: The dashboard's routes (pages, static files, chart data and actions).
ROUTES: list[BaseRoute] = [
    Route("/", now_page, methods=["GET"]),
    Route("/alerts", alerts_page, methods=["GET"]),
    Route("/alerts/{alert_id}", alert_page, methods=["GET"]),
    Route("/channels", channels_page, methods=["GET"]),
    Route("/silences", silences_page, methods=["GET"]),
    Route("/heartbeats", heartbeats_page, methods=["GET"]),
    Route("/ui/series", channel_series, methods=["GET"]),
    Mount("/ui/static", StaticFiles(packages=[("pixalert_monitoring", "static")]), name="static"),
    Route("/api/silences", api_silences, methods=["GET", "POST"]),
    Route("/api/silences/{silence_id}", api_unsilence, methods=["DELETE"]),
    Route("/api/alerts/{alert_id}", api_alert, methods=["GET"]),
    Route("/api/alerts/{alert_id}/ack", api_ack, methods=["POST"]),
    Route("/api/alerts/{alert_id}/resolve", api_resolve, methods=["POST"]),
]


def dashboard_routes(existing: list[BaseRoute]) -> list[BaseRoute]:
    """The dashboard's routes that ``existing`` does not already serve (same path)."""
    taken = {getattr(route, "path", None) for route in existing}
    return [route for route in ROUTES if getattr(route, "path", None) not in taken]
