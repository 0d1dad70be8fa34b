"""The PagerDuty channel: its config and the Events API v2 client.

Wire contract (PagerDuty developer docs, ``events-API-v2``): ``POST`` a JSON
event to ``/v2/enqueue``; ``trigger`` events carry a ``payload`` (summary <= 1024
characters, source, severity, timestamp, custom_details); ``acknowledge`` and
``resolve`` events are ``routing_key`` + ``dedup_key`` + ``event_action`` only.
202 is success, 400 is a permanent "invalid event", 429 and 5xx are worth
retrying. About 120 events a minute are allowed per routing key.

httpx is imported only when a channel is built, so that declaring the channel
type (``pixalert_channels``) stays cheap.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import logging
import socket
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attrs
from pixalert import Alert, DeliveryError, Priority
from pixalert.channels import (
    AlertEvent,
    Channel,
    ChannelSpec,
    Group,
    Preview,
    RateLimiter,
    Receipt,
    Secret,
    SetupField,
    redact,
    register_secret,
)
from pixalert.storage import Clock, SystemClock

if TYPE_CHECKING:
    import httpx
    from pixalert.http import Endpoint

__all__ = [
    "EVENTS_URLS",
    "MAX_DEDUP_KEY",
    "MAX_EVENT_BYTES",
    "MAX_SUMMARY",
    "SEVERITIES",
    "PagerDutyChannel",
    "PagerDutyConfig",
    "build_event",
    "build_group_event",
    "channel_spec",
    "dedup_key_for",
    "group_dedup_key",
    "summary_for",
]

SERVICE = "pagerduty"

#: The Events API v2 endpoint of each PagerDuty service region.
EVENTS_URLS = {
    "us": "https://events.pagerduty.com/v2/enqueue",
    "eu": "https://events.eu.pagerduty.com/v2/enqueue",
}

#: Longest ``payload.summary`` PagerDuty accepts, in characters.
MAX_SUMMARY = 1024
#: Longest ``dedup_key`` PagerDuty accepts, in characters.
MAX_DEDUP_KEY = 255
#: Largest event PagerDuty accepts, in bytes (512 KB, counted as Alertmanager does).
MAX_EVENT_BYTES = 512_000
#: Longest ``component``, ``group`` or ``class`` this channel sends.
MAX_FIELD = 1024

#: ``payload.severity`` for each priority.
SEVERITIES: Mapping[Priority, str] = {
    Priority.CRITICAL: "critical",
    Priority.HIGH: "error",
    Priority.MEDIUM: "warning",
    Priority.LOW: "info",
}

_ELLIPSIS = "…"
_ERROR_DETAIL = 300
_LOOPBACK_NAMES = {"localhost"}

log = logging.getLogger("pixalert.pagerduty")


# ---------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------


def _default_source() -> str:
    try:
        name = socket.gethostname().strip()
    except OSError:  # pragma: no cover - no hostname at all
        name = ""
    return name or "pixalert"


def _check_routing_key(instance: Any, attribute: Any, value: Secret) -> None:
    key = value.get() if isinstance(value, Secret) else ""
    if not key.strip():
        raise ValueError(
            "routing_key: expected the Events API v2 integration key "
            "(PAGERDUTY_INTEGRATION_KEY), got an empty value"
        )
    if any(ch.isspace() or not ch.isprintable() for ch in key.strip()):
        # Say what is wrong without echoing the secret.
        raise ValueError(
            "routing_key: expected an integration key without spaces or control characters"
        )


def _check_region(instance: Any, attribute: Any, value: str) -> None:
    if value not in EVENTS_URLS:
        raise ValueError(f"region: expected one of {', '.join(sorted(EVENTS_URLS))}, got {value!r}")


def _check_source(instance: Any, attribute: Any, value: str) -> None:
    if not value.strip():
        raise ValueError("source: expected a non-empty string (a hostname or service name)")


def _check_positive(instance: Any, attribute: Any, value: float) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name}: expected a number > 0, got {value!r}")


def _check_rate(instance: Any, attribute: Any, value: float) -> None:
    if value < 2:
        raise ValueError(f"rate: expected at least 2 events per minute, got {value!r}")


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_events_url(url: str) -> None:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        raise ValueError(f"events_url: expected an https:// URL, got {url!r}")
    if parts.scheme == "http" and not _is_loopback(host):
        raise ValueError(
            f"events_url: expected https:// (plain http is allowed only for 127.0.0.1, ::1 "
            f"or localhost), got {url!r}"
        )
    if parts.username or parts.password:
        raise ValueError("events_url: expected a URL without credentials in it")


@attrs.define
class PagerDutyConfig:
    """Settings of a PagerDuty channel (``[channels.pagerduty]``).

    - ``routing_key``: the Events API v2 integration key (``PAGERDUTY_INTEGRATION_KEY``).
    - ``api_token``: the REST API token (``PAGERDUTY_API_TOKEN``); accepted, so that
      configurations that set it load, but not needed by the Events API, so unused.
    - ``region``: ``"us"`` or ``"eu"``; picks the default ``events_url``.
    - ``events_url``: where events are posted; defaults to the region's
      ``https://events[.eu].pagerduty.com/v2/enqueue``. Plain ``http`` only on loopback.
    - ``source``: ``payload.source`` for alerts whose own ``source`` is the default
      ``"pixalert"``; defaults to this host's name.
    - ``timeout``: seconds for one HTTP request.
    - ``rate``: at most this many events per routing key in any 60 seconds
      (PagerDuty allows about 120); ``burst``: how many may go back to back
      (default ``min(10, rate // 2)``).
    """

    routing_key: Secret = attrs.field(validator=_check_routing_key)
    api_token: Secret | None = None
    region: str = attrs.field(default="us", validator=_check_region)
    events_url: str | None = None
    source: str = attrs.field(factory=_default_source, validator=_check_source)
    timeout: float = attrs.field(default=10.0, validator=_check_positive)
    rate: float = attrs.field(default=120.0, validator=_check_rate)
    burst: int | None = None

    def __attrs_post_init__(self) -> None:
        if self.events_url is None:
            self.events_url = EVENTS_URLS[self.region]
        else:
            self.events_url = self.events_url.strip()
            _check_events_url(self.events_url)
        if self.burst is None:
            self.burst = max(1, min(10, int(self.rate) // 2))
        elif not 1 <= self.burst < self.rate:
            raise ValueError(
                f"burst: expected at least 1 and fewer than rate ({self.rate:g}), "
                f"got {self.burst!r}"
            )

    @property
    def url(self) -> str:
        """The events endpoint in use."""
        return self.events_url or EVENTS_URLS[self.region]


# ---------------------------------------------------------------------------
# Building events
# ---------------------------------------------------------------------------


def _cut(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, at a word boundary when one is near, with "…"."""
    if len(text) <= limit:
        return text
    head = text[: limit - len(_ELLIPSIS)]
    space = head.rfind(" ")
    if space >= limit - 64:
        head = head[:space]
    return head.rstrip() + _ELLIPSIS


def summary_for(alert: Alert) -> str:
    """``payload.summary``: title and message on one line, at most 1024 characters."""
    text = alert.title.strip()
    message = alert.message.strip()
    if message:
        text = f"{text}: {message}"
    return _cut(" ".join(text.split()), MAX_SUMMARY)


def dedup_key_for(alert: Alert) -> str:
    """``dedup_key``: the alert's key, or its SHA-256 when longer than 255 characters."""
    key: str = alert.key
    if len(key) <= MAX_DEDUP_KEY:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def _timestamp(alert: Alert) -> str:
    created: datetime = alert.created_at
    return created.astimezone(timezone.utc).isoformat(timespec="milliseconds")


def _encode(event: Mapping[str, Any]) -> bytes:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def build_event(
    alert: Alert,
    routing_key: str,
    *,
    source: str = "pixalert",
    dedup_key: str | None = None,
) -> dict[str, Any]:
    """The Events API v2 event for ``alert``: a ``trigger``, or a ``resolve`` when resolved.

    ``dedup_key`` overrides the key derived from ``alert.key`` (a resolve uses
    the one PagerDuty acknowledged for the trigger). ``custom_details`` are
    replaced by a note when the event would exceed 512,000 bytes.
    """
    key = dedup_key or dedup_key_for(alert)
    if alert.resolved:
        return {"routing_key": routing_key, "dedup_key": key, "event_action": "resolve"}
    payload: dict[str, Any] = {
        "summary": summary_for(alert),
        "source": _cut(alert.source if alert.source != "pixalert" else source, MAX_FIELD),
        "severity": SEVERITIES[alert.priority],
        "timestamp": _timestamp(alert),
    }
    for name in ("component", "group", "class"):
        value = alert.metadata.get(name)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            text = " ".join(str(value).split())
            if text:
                payload[name] = _cut(text, MAX_FIELD)
    if alert.metadata:
        payload["custom_details"] = dict(alert.metadata)
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": key,
        "client": "pixalert",
        "payload": payload,
    }
    if "custom_details" in payload:
        size = len(_encode(event))
        if size > MAX_EVENT_BYTES:
            log.warning(
                "pagerduty: custom_details dropped from alert %s: the event is %d bytes, "
                "PagerDuty accepts %d",
                alert.id,
                size,
                MAX_EVENT_BYTES,
            )
            payload["custom_details"] = {
                "error": (
                    f"custom details removed: the event was {size} bytes, "
                    f"over PagerDuty's limit of {MAX_EVENT_BYTES}"
                )
            }
    return event


def group_dedup_key(group: Group) -> str:
    """``dedup_key`` of a group's incident: ``pixalert-group:`` and a digest of its key
    (one incident per group, the same for every notification of it)."""
    return "pixalert-group:" + hashlib.sha256(group.key.encode("utf-8")).hexdigest()[:40]


#: Characters of each alert's message listed in a group's ``custom_details``.
MAX_GROUP_MESSAGE = 300


def _group_alert(alert: Alert) -> dict[str, Any]:
    return {
        "title": _cut(" ".join(alert.title.split()), MAX_FIELD),
        "priority": alert.priority.name,
        "status": alert.status,
        "source": _cut(alert.source, MAX_FIELD),
        "message": _cut(alert.message.strip(), MAX_GROUP_MESSAGE),
        "key": _cut(alert.key, MAX_DEDUP_KEY),
        "time": _timestamp(alert),
    }


def build_group_event(
    group: Group, routing_key: str, *, source: str = "pixalert"
) -> dict[str, Any]:
    """The Events API v2 event for a group: one incident per group (see
    :func:`group_dedup_key`), a ``trigger`` while any of its alerts fires (the
    summary its title and counts, or what a message template rendered, its alerts in
    ``custom_details`` up to 512 KB, then how many more), a ``resolve`` once every one
    has resolved."""
    key = group_dedup_key(group)
    if not group.firing:
        return {"routing_key": routing_key, "dedup_key": key, "event_action": "resolve"}
    details: dict[str, Any] = {
        "group": dict(group.labels),
        "counts": group.counts(),
        "reason": group.reason,
        "alerts": [_group_alert(a) for a in group.alerts],
        "more": 0,
    }
    if group.external_key:
        details["group_key"] = _cut(group.external_key, MAX_FIELD)
    payload: dict[str, Any] = {
        "summary": _cut(" ".join(f"{group.title()}: {group.summary()}".split()), MAX_SUMMARY)
        if group.templated is None
        else summary_for(group.templated),
        "source": _cut(group.source if group.source != "pixalert" else source, MAX_FIELD),
        "severity": SEVERITIES[group.priority],
        "timestamp": group.created_at.astimezone(timezone.utc).isoformat(timespec="milliseconds"),
        "custom_details": details,
    }
    if group.labels:
        payload["group"] = _cut(", ".join(f"{k}={v}" for k, v in group.labels.items()), MAX_FIELD)
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": key,
        "client": "pixalert",
        "payload": payload,
    }
    size = len(_encode(event))
    if size > MAX_EVENT_BYTES:
        # Keep the first alerts (highest priority first) that fit, and count the rest.
        alerts = details["alerts"]
        lo, hi = 0, len(alerts)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            details["alerts"], details["more"] = alerts[:mid], len(alerts) - mid
            if len(_encode(event)) <= MAX_EVENT_BYTES:
                lo = mid
            else:
                hi = mid - 1
        details["alerts"], details["more"] = alerts[:lo], len(alerts) - lo
    return event


# ---------------------------------------------------------------------------
# The channel
# ---------------------------------------------------------------------------


class PagerDutyChannel:
    """Sends alerts to PagerDuty's Events API v2.

    Firing alerts become ``trigger`` events and resolved alerts ``resolve``
    events with the same ``dedup_key`` (the alert's key), so the incident
    closes; an acknowledgement in pixalert (``manager.ack``, a Slack button)
    sends ``acknowledge`` for it. Events for one routing key are paced under
    ``config.rate`` per minute by :meth:`pace`, which the core awaits before
    each attempt's timeout starts. ``clock`` drives the pacing (pass a
    :class:`pixalert.testing.FakeClock` in tests). The receipt is
    ``{"dedup_key": ...}``.
    """

    def __init__(self, name: str, config: PagerDutyConfig, *, clock: Clock | None = None) -> None:
        self.name = name
        self.config = config
        self._routing_key = config.routing_key.get().strip()
        register_secret(self._routing_key)
        if config.api_token:
            register_secret(config.api_token.get())
        burst = config.burst or 1
        self.limiter = RateLimiter(
            (config.rate - burst) / 60.0, burst, clock=_SteppingClock(clock or SystemClock())
        )
        # The limiter is keyed by a digest, so the key is not held in another place.
        self._pace_key = hashlib.sha256(self._routing_key.encode()).hexdigest()[:16]
        self._client: httpx.AsyncClient | None = None
        self._endpoint: Endpoint | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"PagerDutyChannel(name={self.name!r}, events_url={self.config.url!r})"

    def _secrets(self) -> list[str]:
        values = [self._routing_key]
        if self.config.api_token:
            values.append(self.config.api_token.get())
        return values

    def _http(self) -> Endpoint:
        """The Events API endpoint, prepared once (the URL parsed, the headers encoded)."""
        if self._client is None or self._endpoint is None:
            from pixalert.http import Endpoint, make_client

            from . import __version__

            client = make_client(
                timeout=self.config.timeout,
                headers={
                    "Accept": "application/json",
                    "User-Agent": f"pixalert-pagerduty/{__version__}",
                },
            )
            self._endpoint = Endpoint(
                client, self.config.url, headers={"Content-Type": "application/json"}
            )
            self._client = client
        return self._endpoint

    def event_for(self, alert: Alert, previous: Receipt | None = None) -> dict[str, Any]:
        """The event :meth:`send` would post for ``alert`` (``previous``: the trigger's receipt)."""
        return build_event(
            alert, self._routing_key, source=self.config.source, dedup_key=_earlier(previous)
        )

    def acknowledge_event(self, alert: Alert, previous: Receipt | None = None) -> dict[str, Any]:
        """The ``acknowledge`` event :meth:`acknowledge` posts: the same routing key and
        ``dedup_key`` as the trigger, and nothing else."""
        return {
            "routing_key": self._routing_key,
            "dedup_key": _earlier(previous) or dedup_key_for(alert),
            "event_action": "acknowledge",
        }

    def render(self, alert: Alert) -> Preview:
        """What :meth:`send` would post for ``alert`` (:meth:`event_for`): the events
        ``url``, ``headers`` and the event as ``body`` (its routing key masked), and
        a plain-text sketch. Sends nothing."""
        return self._preview(self.event_for(alert))

    def render_group(self, group: Group) -> Preview:
        """What :meth:`send_group` would post for ``group`` (see :meth:`render`)."""
        return self._preview(build_group_event(group, self._routing_key, source=self.config.source))

    def _preview(self, event: Mapping[str, Any]) -> Preview:
        content = {
            "method": "POST",
            "url": self.config.url,
            "headers": {"Content-Type": "application/json"},
            # The routing key is the secret: shown masked (the rest is as sent).
            "body": {**event, "routing_key": redact(str(event["routing_key"]))},
        }
        payload = event.get("payload") or {}
        lines = [f"PagerDuty {event['event_action']} (dedup_key {event['dedup_key']})"]
        if payload:
            lines.append(f"[{payload.get('severity')}] {payload.get('summary')}")
            lines.append(f"source: {payload.get('source')}")
            for name, value in (payload.get("custom_details") or {}).items():
                lines.append(f"{name}: {value}")
        return Preview("pagerduty", content, "\n".join(lines))

    async def acknowledge(
        self, alert: Alert, *, event: AlertEvent, previous: Receipt | None = None
    ) -> bool:
        """Send PagerDuty's ``acknowledge`` for ``alert``'s incident (someone is on it).

        Raises :class:`pixalert.DeliveryError` as :meth:`send` does.
        """
        await self._post(self.acknowledge_event(alert, previous))
        return True

    async def pace(self, alert: Alert) -> None:
        """Wait for a turn under ``config.rate`` events a minute for this routing key
        (``burst`` at once). The core awaits it before each attempt's timeout starts;
        code calling :meth:`send` directly calls it first."""
        await self.limiter.acquire(self._pace_key)

    async def send(self, alert: Alert, *, previous: Receipt | None = None) -> Receipt | None:
        """Post the trigger or resolve event for ``alert``; return ``{"dedup_key": ...}``.

        It does not wait for a turn: see :meth:`pace`.

        Raises :class:`pixalert.DeliveryError`: permanent for a 400 (with
        PagerDuty's message) and other 4xx, retryable for 429, 5xx and network
        errors (with ``retry_after`` from ``Retry-After``). No error carries the
        routing key or a cause chain.
        """
        dedup_key = await self._post(self.event_for(alert, previous))
        return {"dedup_key": dedup_key}

    async def _post(self, event: dict[str, Any]) -> str:
        """Post one event; return the ``dedup_key`` PagerDuty answered (the core
        paces it first, see :meth:`pace`)."""
        import aiohttp
        import httpx
        from pixalert.http import error_for_exception

        if self._closed:
            raise DeliveryError.permanent("pagerduty: channel is closed")
        body = _encode(event)
        failure: DeliveryError | None = None
        response: httpx.Response | None = None
        try:
            response = await self._http().send(body)
            await response.aread()
        except (httpx.HTTPError, aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            failure = error_for_exception(exc, SERVICE)
        # Raised outside the except block: no cause or context to carry a URL or a body.
        if failure is not None:
            try:
                raise failure
            finally:  # under Python 3.10's pure-Python tasks the wake-up's error leaks in
                failure.__context__ = None
        assert response is not None
        if not 200 <= response.status_code < 300:
            raise self._error(response)
        answer = _json(response)
        dedup_key = str(event["dedup_key"])
        if isinstance(answer, dict) and isinstance(answer.get("dedup_key"), str):
            dedup_key = answer["dedup_key"]
        log.debug(
            "pagerduty %s: %s accepted (HTTP %d, dedup %s)",
            self.name,
            event["event_action"],
            response.status_code,
            dedup_key,
        )
        return dedup_key

    async def send_group(self, group: Group, *, previous: Receipt | None = None) -> Receipt | None:
        """Trigger (or update) the group's one incident, or resolve it once every alert of
        the group has resolved (see :func:`build_group_event`); return ``{"dedup_key"}``."""
        if self._closed:
            raise DeliveryError.permanent("pagerduty: channel is closed")
        event = build_group_event(group, self._routing_key, source=self.config.source)
        return {"dedup_key": await self._post(event)}

    def _error(self, response: httpx.Response) -> DeliveryError:
        from pixalert.http import error_for_response

        answer = _json(response)
        detail = ""
        if isinstance(answer, dict):
            message = answer.get("message")
            errors = answer.get("errors")
            parts = [str(message)] if isinstance(message, str) and message else []
            if isinstance(errors, list) and errors:
                parts.append("; ".join(str(e) for e in errors))
            detail = ": ".join(parts)
        if not detail:
            try:
                detail = response.text
            except Exception:
                detail = ""
        # Mask before cutting, so a secret cut in half cannot slip through.
        detail = " ".join(redact(detail, self._secrets()).split())
        detail = _cut(detail, _ERROR_DETAIL)
        return error_for_response(response, SERVICE, detail=detail, secrets=self._secrets())

    async def aclose(self) -> None:
        """Close the HTTP client; safe to call twice."""
        self._closed = True
        client, self._client = self._client, None
        self._endpoint = None
        if client is not None:
            await client.aclose()


class _SteppingClock:
    """A clock whose waits are never shorter than a microsecond.

    pixalert's RateLimiter can compute a float-rounding remainder (~1e-16 s)
    as the wait; on a clock reading epoch seconds such a wait does not move
    the time, and a fake clock would then spin forever.
    """

    MIN_WAIT = 1e-6

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def now(self) -> float:
        """The wrapped clock's time."""
        return float(self.clock.now())

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (at least :attr:`MIN_WAIT`) on the wrapped clock."""
        await self.clock.sleep(max(seconds, self.MIN_WAIT))


def _earlier(previous: Receipt | None) -> str | None:
    """The ``dedup_key`` PagerDuty answered for the trigger, from its receipt."""
    earlier = previous.get("dedup_key") if previous is not None else None
    if isinstance(earlier, str) and 0 < len(earlier) <= MAX_DEDUP_KEY:
        return earlier
    return None


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _factory(name: str, config: PagerDutyConfig) -> Channel:
    return PagerDutyChannel(name, config)


# What ``pixalert init`` asks, in order; each variable fills its field too.
SETUP = (
    SetupField(
        "routing_key",
        "Integration key (Events API v2)",
        env="PAGERDUTY_INTEGRATION_KEY",
        secret=True,
        required=True,
    ),
    SetupField(
        "api_token", "REST API token (not needed to send)", env="PAGERDUTY_API_TOKEN", secret=True
    ),
)


def channel_spec() -> ChannelSpec:
    """The ``pagerduty`` channel type: its config, the questions ``pixalert init`` asks
    (``PAGERDUTY_INTEGRATION_KEY``, ``PAGERDUTY_API_TOKEN``), and its flat JSON keys."""
    return ChannelSpec(
        name="pagerduty",
        config_type=PagerDutyConfig,
        factory=_factory,
        aliases={"pagerduty_routing_key": "routing_key", "pagerduty_events_url": "events_url"},
        description="PagerDuty Events API v2: trigger, acknowledge and resolve incidents",
        title="PagerDuty",
        setup=SETUP,
        check_prompt=(
            "Send a test event to PagerDuty now? It opens an incident and resolves it at once."
        ),
    )
