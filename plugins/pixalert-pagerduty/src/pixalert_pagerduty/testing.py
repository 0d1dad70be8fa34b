"""A local PagerDuty Events API v2 that enforces the contract, for tests and ``pixalert demo``.

:class:`PagerDutyServer` serves ``POST /v2/enqueue`` on 127.0.0.1 (a random
port) with :mod:`aiohttp.web`. It checks each event as PagerDuty does
(``routing_key`` of 32 characters, ``event_action``, the trigger ``payload``
with its required fields and ``severity`` values, ``summary`` <= 1024
characters, ``dedup_key`` <= 255, body <= 512,000 bytes, resolve and
acknowledge bodies of exactly ``routing_key`` + ``dedup_key`` +
``event_action``) and answers as PagerDuty does::

    202 {"status": "success", "message": "Event processed", "dedup_key": "..."}
    400 {"status": "invalid event", "message": "Event object is invalid", "errors": [...]}

It is stricter than PagerDuty in one way: unknown properties are rejected
rather than ignored, so a misspelt ``dedup_key`` fails a test instead of
silently opening a second incident.

It keeps incidents as PagerDuty does: a trigger opens one per ``routing_key``
and ``dedup_key`` (or adds to the open one), a resolve with the same routing
key and dedup key closes it, and a resolve for no open incident is accepted
and dropped.

It is a :class:`pixalert.testing.FakeService`: accepted events are in
``received``, every request in ``requests``, the 400s in ``rejections``
(``reason`` joins the errors), and faults are scripted with ``fail`` (429,
5xx, any status; PagerDuty's own error body unless another is given, such as
``body=lambda r: r.body`` to echo the request), ``hang`` and ``drop``.

Use it in your own tests::

    from pixalert_pagerduty.testing import PagerDutyServer

    async def test_disk_alert_pages_and_resolves():
        async with PagerDutyServer() as pd:
            manager = NotificationManager(config={"channels": {"pagerduty": pd.config()}})
            await manager.send_alert("Disk full", "/ is 99% full", "critical", key="disk")
            assert pd.incident("disk").open
            ...
            assert not pd.incident("disk").open

It is also the ``pagerduty`` sink of ``pixalert demo``.
"""

from __future__ import annotations

import json
import re
import secrets
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeGuard

import attrs
from aiohttp import web
from pixalert.testing import FakeService, Fault, ReceivedRequest

__all__ = ["MAX_BODY_BYTES", "Incident", "PagerDutyServer", "validate_event"]

#: Largest request body accepted, in bytes.
MAX_BODY_BYTES = 512_000
SEVERITIES = ("critical", "error", "warning", "info")
EVENT_ACTIONS = ("trigger", "acknowledge", "resolve")
PATH = "/v2/enqueue"

_TOP_KEYS = {
    "routing_key",
    "event_action",
    "dedup_key",
    "payload",
    "images",
    "links",
    "client",
    "client_url",
}
_FOLLOW_UP_KEYS = {"routing_key", "dedup_key", "event_action"}
_PAYLOAD_KEYS = {
    "summary",
    "source",
    "severity",
    "timestamp",
    "component",
    "group",
    "class",
    "custom_details",
}
_ISO_8601 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,]\d+)?)?"
    r"(?:Z|[+-]\d{2}(?::?\d{2})?)?$"
)


# ---------------------------------------------------------------------------
# The contract
# ---------------------------------------------------------------------------


def _is_iso_8601(value: str) -> bool:
    match = _ISO_8601.match(value)
    if not match:
        return False
    year, month, day, hour, minute, second = (int(g) if g else 0 for g in match.groups())
    try:
        datetime(year, month, day, hour, minute, second)
    except ValueError:
        return False
    return True


def _filled(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and bool(value.strip())


def _check_unknown(data: Mapping[str, Any], allowed: set[str], where: str) -> list[str]:
    return [
        f"'{where}{key}' is not a known property (PagerDuty would ignore it; "
        "this server rejects it to catch typos)"
        for key in sorted(set(data) - allowed)
    ]


def _check_images(images: Any) -> list[str]:
    if not isinstance(images, list):
        return ["'images' must be an array"]
    errors = []
    for i, image in enumerate(images):
        if not isinstance(image, dict):
            errors.append(f"'images[{i}]' must be an object")
            continue
        src = image.get("src")
        if not _filled(src):
            errors.append(f"'images[{i}].src' is missing or blank")
        elif not src.startswith("https://"):
            errors.append(f"'images[{i}].src' must be served via HTTPS")
        for name in ("href", "alt"):
            if name in image and not isinstance(image[name], str):
                errors.append(f"'images[{i}].{name}' must be a string")
        errors += _check_unknown(image, {"src", "href", "alt"}, f"images[{i}].")
    return errors


def _check_links(links: Any) -> list[str]:
    if not isinstance(links, list):
        return ["'links' must be an array"]
    errors = []
    for i, link in enumerate(links):
        if not isinstance(link, dict):
            errors.append(f"'links[{i}]' must be an object")
            continue
        if not _filled(link.get("href")):
            errors.append(f"'links[{i}].href' is missing or blank")
        if "text" in link and not isinstance(link["text"], str):
            errors.append(f"'links[{i}].text' must be a string")
        errors += _check_unknown(link, {"href", "text"}, f"links[{i}].")
    return errors


def _check_payload(payload: Any) -> list[str]:
    if not isinstance(payload, dict) or not payload:
        return ["'payload' is missing or blank"]
    errors = []
    summary = payload.get("summary")
    if not _filled(summary):
        errors.append("'payload.summary' is missing or blank")
    elif len(summary) > 1024:
        errors.append(
            f"Length of 'payload.summary' is too long (maximum is 1024 characters, "
            f"got {len(summary)})"
        )
    if not _filled(payload.get("source")):
        errors.append("'payload.source' is missing or blank")
    _check_choice(payload.get("severity"), "payload.severity", SEVERITIES, errors)
    timestamp = payload.get("timestamp")
    if timestamp is not None and (not isinstance(timestamp, str) or not _is_iso_8601(timestamp)):
        errors.append(f"'payload.timestamp' is not an ISO 8601 timestamp: {timestamp!r}")
    for name in ("component", "group", "class"):
        if name in payload and not isinstance(payload[name], str):
            errors.append(f"'payload.{name}' must be a string")
    if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
        errors.append("'payload.custom_details' must be an object")
    return errors + _check_unknown(payload, _PAYLOAD_KEYS, "payload.")


def _check_choice(value: Any, name: str, choices: Sequence[str], errors: list[str]) -> None:
    """PagerDuty's errors for a required field that takes one of ``choices``."""
    if not _filled(value):
        errors.append(f"'{name}' is missing or blank")
    elif value not in choices:
        errors.append(f"'{name}' is invalid (must be one of: {', '.join(choices)}; got {value!r})")


def validate_event(event: Any) -> list[str]:
    """Every way ``event`` (a decoded JSON body) breaks the Events API v2 contract."""
    if not isinstance(event, dict):
        return ["Event must be a JSON object"]
    errors = []
    routing_key = event.get("routing_key")
    if not _filled(routing_key):
        errors.append("'routing_key' is missing or blank")
    elif len(routing_key) != 32:
        errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
    action = event.get("event_action")
    _check_choice(action, "event_action", EVENT_ACTIONS, errors)
    dedup_key = event.get("dedup_key")
    if dedup_key is not None:
        if not isinstance(dedup_key, str):
            errors.append("'dedup_key' must be a string")
        elif len(dedup_key) > 255:
            errors.append("Length of 'dedup_key' is too long (maximum is 255 characters)")
    if action in ("acknowledge", "resolve"):
        if not _filled(dedup_key):
            errors.append(f"'dedup_key' is missing or blank (required to {action})")
        extra = sorted(set(event) - _FOLLOW_UP_KEYS)
        if extra:
            errors.append(
                f"{action} events carry only routing_key, dedup_key and event_action; "
                f"got also: {', '.join(extra)}"
            )
        return errors
    if action == "trigger":
        errors += _check_payload(event.get("payload"))
    for name in ("client", "client_url"):
        if name in event and not isinstance(event[name], str):
            errors.append(f"'{name}' must be a string")
    if "images" in event:
        errors += _check_images(event["images"])
    if "links" in event:
        errors += _check_links(event["links"])
    return errors + _check_unknown(event, _TOP_KEYS, "")


# ---------------------------------------------------------------------------
# What the server records
# ---------------------------------------------------------------------------


@attrs.define
class Incident:
    """An alert as PagerDuty keeps it: opened by a trigger, closed by a resolve.

    ``status`` is ``"triggered"``, ``"acknowledged"`` or ``"resolved"``;
    ``events`` are every accepted event applied to it, oldest first.
    """

    routing_key: str = attrs.field(repr=False)
    dedup_key: str
    summary: str
    severity: str
    status: str = "triggered"
    events: list[dict[str, Any]] = attrs.Factory(list)

    @property
    def open(self) -> bool:
        """True until a resolve closes it."""
        return self.status != "resolved"

    @property
    def payload(self) -> dict[str, Any]:
        """The ``payload`` of the first trigger."""
        return dict(self.events[0].get("payload", {}))


# ---------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------


_DEFAULT_BODIES = {
    429: {
        "status": "throttle event",
        "message": "Requests for this service are arriving too quickly. Please retry later.",
    },
    500: {"status": "error", "message": "Internal Server Error"},
    502: {"status": "error", "message": "Bad Gateway"},
    503: {"status": "error", "message": "Service Unavailable"},
    504: {"status": "error", "message": "Gateway Timeout"},
}


class PagerDutyServer(FakeService[dict[str, Any]]):
    """A contract-enforcing Events API v2 on 127.0.0.1 (see the module docs).

    ``routing_key`` is the integration key :meth:`config` hands out (a random
    32-character one by default); events with any other 32-character key are
    accepted too, as PagerDuty would for another integration.

    After :meth:`start`: :attr:`events_url`; as it runs: ``requests``
    (everything received), ``received`` (accepted events), ``rejections``
    (400s) and :attr:`incidents`.
    """

    channel_type = "pagerduty"
    max_body = 4 * MAX_BODY_BYTES  # larger bodies are read, and refused as PagerDuty does

    def __init__(self, *, routing_key: str | None = None) -> None:
        super().__init__()
        self.routing_key = routing_key or secrets.token_hex(16)
        self.incidents: list[Incident] = []

    @property
    def events_url(self) -> str:
        """``http://127.0.0.1:<port>/v2/enqueue``."""
        return self.url + PATH

    def config(self, **overrides: Any) -> dict[str, Any]:
        """A ``[channels.pagerduty]`` section for this server (``overrides`` added)."""
        return {"routing_key": self.routing_key, "events_url": self.events_url, **overrides}

    def reset(self) -> None:
        """Forget requests, events, incidents and scripted faults."""
        super().reset()
        self.incidents.clear()

    # -- what happened ---------------------------------------------------------

    def incident(self, dedup_key: str, *, routing_key: str | None = None) -> Incident | None:
        """The latest incident for ``dedup_key`` (and ``routing_key`` when given), or None."""
        for incident in reversed(self.incidents):
            if incident.dedup_key == dedup_key and routing_key in (None, incident.routing_key):
                return incident
        return None

    @property
    def open_incidents(self) -> list[Incident]:
        """Incidents not resolved yet."""
        return [i for i in self.incidents if i.open]

    # -- handling --------------------------------------------------------------

    def routes(self) -> Iterable[tuple[str, str, Any]]:
        """``POST /v2/enqueue``."""
        return [("POST", PATH, self._enqueue)]

    def fault_body(self, fault: Fault) -> dict[str, str]:
        """PagerDuty's error body for the status."""
        return _DEFAULT_BODIES.get(fault.status, {"status": "error", "message": "error"})

    async def _enqueue(self, request: web.Request, record: ReceivedRequest) -> web.StreamResponse:
        body = record.body
        errors = self._check_request(request, body)
        event: Any = None
        if not errors:
            try:
                event = json.loads(body)
            except ValueError:
                errors = ["Event body is not valid JSON"]
            else:
                errors = validate_event(event)
        if errors:
            self.reject(record, "; ".join(errors))
            return web.json_response(
                {"status": "invalid event", "message": "Event object is invalid", "errors": errors},
                status=400,
            )
        dedup_key = self._apply(record, event)
        return web.json_response(
            {"status": "success", "message": "Event processed", "dedup_key": dedup_key},
            status=202,
        )

    def _check_request(self, request: web.Request, body: bytes) -> list[str]:
        errors = []
        if request.content_type != "application/json":
            errors.append(f"Content-Type must be application/json, got {request.content_type!r}")
        if len(body) > MAX_BODY_BYTES:
            errors.append(
                f"Event is too large ({len(body)} bytes; maximum is {MAX_BODY_BYTES} bytes)"
            )
        return errors

    def _open_incident(self, routing_key: str, dedup_key: str) -> Incident | None:
        for incident in reversed(self.incidents):
            if (
                incident.open
                and incident.dedup_key == dedup_key
                and incident.routing_key == routing_key
            ):
                return incident
        return None

    def _apply(self, record: ReceivedRequest, event: dict[str, Any]) -> str:
        action = event["event_action"]
        routing_key = event["routing_key"]
        dedup_key = event.get("dedup_key") or uuid.uuid4().hex
        incident = self._open_incident(routing_key, dedup_key)
        if action == "trigger":
            payload = event["payload"]
            if incident is None:
                incident = Incident(routing_key, dedup_key, payload["summary"], payload["severity"])
                self.incidents.append(incident)
            incident.events.append(event)
            line = f"trigger {payload['severity']}: {payload['summary']} (dedup {dedup_key})"
        elif incident is None:
            # PagerDuty accepts it and drops it: no open alert for this key on this integration.
            line = f"{action}: no open incident, dropped (dedup {dedup_key})"
        else:
            incident.events.append(event)
            incident.status = "resolved" if action == "resolve" else "acknowledged"
            line = f"{action}: {incident.summary} (dedup {dedup_key})"
        self.accept(record, event, line=line)
        return dedup_key
