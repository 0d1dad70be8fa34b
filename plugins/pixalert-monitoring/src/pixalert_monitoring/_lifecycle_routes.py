"""The receiver's endpoints for the alert's lifecycle: acknowledgements, resolves,
heartbeats, the signed links emails carry, and a channel's buttons.

- ``POST /api/alerts/{id}/ack`` and ``POST /api/alerts/{id}/resolve`` (bearer
  token): an optional JSON body ``{"by": "...", "note": "..."}``; 200 with the
  outcome (``changed`` false for a second call), 404 for an unknown id.
- ``POST /heartbeat/{name}``, ``/heartbeat/{name}/start``,
  ``/heartbeat/{name}/fail`` (bearer token): a ping; an optional text body is
  kept as its note (a failure's reason). 404 for a heartbeat not configured.
- ``GET /api/heartbeats`` and ``GET /api/escalations`` (bearer token).
- ``GET /links/{action}/{id}?expires=...&sig=...``: the page an email link
  opens, asking to confirm (a mail scanner fetching the link changes
  nothing); ``POST`` to the same address acts. The signature is the
  authority (no bearer token); an altered link gets 403, an expired one 410,
  each with a page saying so.
- ``POST /{channel}/actions``: a request from a channel's service (Slack's
  Interactivity Request URL is ``<public_url>/slack/actions``). The channel
  checks its signature (no bearer token); 401 for a forged, replayed or
  unsigned request, 200 at once otherwise (the ack runs in the background).
"""

from __future__ import annotations

import html
import json
import logging
from typing import Any
from urllib.parse import parse_qs

from pixalert import AlertNotFound, HeartbeatNotFound
from pixalert.channels import InteractionRejected, LinkError, redact
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from ._receiver import Reject, authorized, check_content_type, read_body, receiver_state

__all__ = ["LIFECYCLE_ROUTES"]

log = logging.getLogger("pixalert.receiver")

_RETRY = {"Retry-After": "1"}
#: The largest body of an ack or resolve request, and of a heartbeat's note.
MAX_SMALL_BODY = 16 * 1024
MAX_BY = 200
MAX_NOTE = 2000
_ACTIONS = {"ack": "Acknowledge", "resolve": "Resolve"}
_DONE = {"ack": "acknowledged", "resolve": "resolved"}
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}


def _unavailable(what: str, exc: Exception) -> Reject:
    log.error("receiver: %s failed: %s", what, redact(f"{type(exc).__name__}: {exc}"))
    return Reject(503, f"could not {what}", type(exc).__name__, _RETRY)


# ---------------------------------------------------------------------------
# Ack and resolve
# ---------------------------------------------------------------------------


async def _who(request: Request) -> tuple[str | None, str | None]:
    """``by`` and ``note`` from an optional JSON body (400/413/415/422 otherwise)."""
    raw = await read_body(request, MAX_SMALL_BODY)
    if not raw.strip():
        return None, None
    check_content_type(request)
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise Reject(400, "malformed JSON", str(exc)[:200]) from None
    if not isinstance(data, dict):
        raise Reject(422, "invalid body", 'expected a JSON object such as {"by": "alice"}')
    unknown = sorted(set(data) - {"by", "note"})
    if unknown:
        raise Reject(422, "invalid body", f"unknown key {unknown[0]!r}; expected by, note")
    out: list[str | None] = []
    for name, limit in (("by", MAX_BY), ("note", MAX_NOTE)):
        value = data.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            raise Reject(
                422, "invalid body", f"{name}: expected a string of at most {limit} characters"
            )
        out.append(value.strip() or None if isinstance(value, str) else None)
    return out[0], out[1]


async def _act(request: Request, action: str) -> Response:
    state = authorized(request)
    alert_id = request.path_params["id"]
    by, note = await _who(request)
    call = state.manager.ack if action == "ack" else state.manager.resolve
    try:
        outcome = await call(alert_id, by=by, note=note, via="api")
    except AlertNotFound as exc:
        raise Reject(404, "unknown alert", str(exc)) from None
    except Exception as exc:
        raise _unavailable(f"{_DONE[action][:-1]} the alert", exc) from None
    return JSONResponse(outcome.to_dict())


async def api_ack(request: Request) -> Response:
    """``POST /api/alerts/{id}/ack``: acknowledge the alert's incident."""
    return await _act(request, "ack")


async def api_resolve(request: Request) -> Response:
    """``POST /api/alerts/{id}/resolve``: resolve the alert's incident."""
    return await _act(request, "resolve")


# ---------------------------------------------------------------------------
# Heartbeats and escalations
# ---------------------------------------------------------------------------


async def _ping(request: Request, signal: str) -> Response:
    state = authorized(request)
    name = request.path_params["name"]
    raw = await read_body(request, MAX_SMALL_BODY)
    try:
        note = raw.decode("utf-8-sig").strip()[:MAX_NOTE] or None
    except UnicodeDecodeError:
        raise Reject(400, "body is not valid UTF-8", "send the note as UTF-8 text") from None
    try:
        result = await state.manager.heartbeat_ping(name, signal, note=note, via="http")
    except HeartbeatNotFound as exc:
        raise Reject(404, "unknown heartbeat", str(exc)) from None
    except Exception as exc:
        raise _unavailable("record the ping", exc) from None
    return JSONResponse(result)


async def heartbeat_ping(request: Request) -> Response:
    """``POST /heartbeat/{name}``: the job ran well."""
    return await _ping(request, "success")


async def heartbeat_start(request: Request) -> Response:
    """``POST /heartbeat/{name}/start``: a run started (its duration counts from here)."""
    return await _ping(request, "start")


async def heartbeat_fail(request: Request) -> Response:
    """``POST /heartbeat/{name}/fail``: the run failed (the body is the reason)."""
    return await _ping(request, "fail")


async def api_heartbeats(request: Request) -> Response:
    """``GET /api/heartbeats``: every heartbeat's state."""
    state = authorized(request)
    try:
        found = await state.manager.heartbeats()
    except Exception as exc:
        raise _unavailable("read the heartbeats", exc) from None
    return JSONResponse({"heartbeats": found})


async def api_escalations(request: Request) -> Response:
    """``GET /api/escalations?all=1``: the escalations under way (``all``: stopped ones too)."""
    state = authorized(request)
    include = request.query_params.get("all", "").lower() in ("1", "true", "yes")
    try:
        found = await state.manager.escalations(include_stopped=include)
    except Exception as exc:
        raise _unavailable("read the escalations", exc) from None
    return JSONResponse({"escalations": found})


# ---------------------------------------------------------------------------
# A channel's buttons
# ---------------------------------------------------------------------------


async def channel_actions(request: Request) -> Response:
    """``POST /{channel}/actions``: a click from the channel's service, verified by the channel."""
    state = receiver_state(request)
    channel = request.path_params["channel"]
    raw = await read_body(request, state.config.max_body)
    try:
        await state.manager.handle_interaction(channel, request.headers, raw)
    except LookupError:
        raise Reject(404, "not found", f"channel {channel!r} takes no actions") from None
    except InteractionRejected as exc:
        raise Reject(exc.status, "request refused", str(exc)) from None
    return Response(status_code=200)


# ---------------------------------------------------------------------------
# Email links
# ---------------------------------------------------------------------------


def _page(status: int, title: str, body: str) -> HTMLResponse:
    text = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)} - pixalert</title></head>\n"
        '<body style="font-family:sans-serif;max-width:36em;margin:2em auto;padding:0 1em">\n'
        f'<h1 style="font-size:1.4em">{html.escape(title)}</h1>\n{body}\n</body></html>\n'
    )
    return HTMLResponse(text, status_code=status, headers=_PAGE_HEADERS)


def _time(text: Any) -> str:
    """An ISO time as ``2026-01-02 03:04:05 UTC``."""
    return str(text or "")[:19].replace("T", " ") + " UTC" if text else ""


def _done_already(alert: dict[str, Any], action: str) -> str | None:
    """What the alert's own events say was done already (for the link's page), or None."""
    for event in reversed(alert.get("events") or []):
        kind = event.get("kind")
        if kind == "resolved" or (kind == "acknowledged" and action == "ack"):
            who = f" by {event['by']}" if event.get("by") else ""
            via = f" via {event['via']}" if event.get("via") else ""
            return f"Already {kind}{who}{via} at {_time(event.get('at'))}."
    return None


def _alert_facts(alert: dict[str, Any]) -> str:
    rows = [
        ("Alert", alert.get("title", "")),
        ("Priority", alert.get("priority", "")),
        ("Raised", _time(alert.get("created_at"))),
        ("Source", alert.get("source", "")),
    ]
    cells = "".join(
        f'<tr><th align="left">{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>'
        for k, v in rows
    )
    return f'<table cellpadding="4">{cells}</table>'


async def email_link(request: Request) -> Response:
    """``GET`` (confirm) and ``POST`` (act) ``/links/{action}/{id}`` from an email."""
    state = receiver_state(request)
    action = request.path_params["action"]
    alert_id = request.path_params["id"]
    links = getattr(state.manager, "action_links", None)
    if links is None or not links.signs or action not in _ACTIONS:
        return _page(404, "Link not found", "<p>This pixalert does not take links like this.</p>")
    try:
        links.verify(
            action,
            alert_id,
            request.query_params.get("expires", ""),
            request.query_params.get("sig", ""),
        )
    except LinkError as exc:
        if exc.reason == "expired":
            return _page(
                410,
                "This link has expired",
                f"<p>{html.escape(str(exc).capitalize())}. Nothing was changed.</p>"
                "<p>Use the alert's newer notification, or <code>pixalert ack</code>.</p>",
            )
        return _page(
            403,
            "This link is not valid",
            "<p>The link was altered or cut short. Nothing was changed.</p>"
            "<p>Open it again from the email, whole.</p>",
        )
    try:
        alert = await state.manager.get_alert(alert_id)
    except Exception as exc:
        log.error("receiver: could not read alert %s: %s", alert_id, redact(str(exc)))
        return _page(503, "Try again in a moment", "<p>The history could not be read.</p>")
    if alert is None:
        return _page(404, "Alert not found", "<p>This alert is no longer in the history.</p>")
    verb = _ACTIONS[action]
    if request.method == "GET":
        already = _done_already(alert, action)
        if already is not None:
            note = f"<p>{html.escape(already)} Nothing more to do.</p>"
            return _page(200, already.split(" by ")[0].split(" at ")[0], _alert_facts(alert) + note)
        # No action: the form posts to this very address, whatever prefix a proxy added.
        form = (
            '<form method="post">'
            '<p><label>Your name (optional): <input name="by" maxlength="200" '
            'autocomplete="name"></label></p>'
            f'<p><button type="submit" style="padding:8px 16px;font-weight:bold">{verb}</button>'
            "</p></form>"
        )
        return _page(200, f"{verb} this alert?", _alert_facts(alert) + form)
    if request.headers.get("content-type", "").split(";")[0].strip().lower() not in (
        "application/x-www-form-urlencoded",
        "",
    ):
        return _page(415, "Unsupported request", "<p>Use the form on the link's page.</p>")
    raw = await read_body(request, MAX_SMALL_BODY)
    try:
        form_data = parse_qs(raw.decode("utf-8"), max_num_fields=10, errors="strict")
    except (UnicodeDecodeError, ValueError):
        return _page(400, "Unreadable request", "<p>Use the form on the link's page.</p>")
    by = (form_data.get("by") or [""])[0].strip()[:MAX_BY] or None
    call = state.manager.ack if action == "ack" else state.manager.resolve
    try:
        outcome = await call(alert_id, by=by, via="email")
    except AlertNotFound:
        return _page(404, "Alert not found", "<p>This alert is no longer in the history.</p>")
    except Exception as exc:
        log.error("receiver: %s from a link failed: %s", action, redact(str(exc)))
        return _page(503, "Try again in a moment", "<p>Nothing was changed yet.</p>")
    title = f"Alert {_DONE[action]}" if outcome.changed else f"Already {outcome.state}"
    detail = html.escape(outcome.detail[:1].upper() + outcome.detail[1:])
    return _page(200, title, _alert_facts(alert) + f"<p>{detail}.</p>")


#: The lifecycle's routes, after the receiver's own.
LIFECYCLE_ROUTES = [
    Route("/api/alerts/{id}/ack", api_ack, methods=["POST"]),
    Route("/api/alerts/{id}/resolve", api_resolve, methods=["POST"]),
    Route("/api/heartbeats", api_heartbeats, methods=["GET"]),
    Route("/api/escalations", api_escalations, methods=["GET"]),
    Route("/heartbeat/{name}", heartbeat_ping, methods=["POST"]),
    Route("/heartbeat/{name}/start", heartbeat_start, methods=["POST"]),
    Route("/heartbeat/{name}/fail", heartbeat_fail, methods=["POST"]),
    Route("/links/{action}/{id}", email_link, methods=["GET", "POST"]),
    Route("/{channel}/actions", channel_actions, methods=["POST"]),
]
