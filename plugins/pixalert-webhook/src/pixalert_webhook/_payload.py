"""The webhook body: a documented, versioned JSON document (``version`` "1").

Shape (Standard Webhooks' ``{type, timestamp, data}`` guidance)::

    {"type": "alert.firing" | "alert.resolved",
     "timestamp": "2026-01-02T03:04:05.678901Z",
     "version": "1",
     "data": {"id", "key", "title", "message", "priority", "status",
              "source", "metadata", "created_at"}}

Version "1" may gain optional fields; receivers ignore fields they do not
know. A change that removes or retypes a field gets a new ``version``. The
JSON Schema ships in the package (:func:`payload_schema`) and in the
repository's ``docs/webhook-payload.schema.json``.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from pixalert import Alert
from pixalert.channels import Group

__all__ = [
    "GROUP_SCHEMA_FILE",
    "MAX_GROUP_BODY",
    "PAYLOAD_VERSION",
    "SCHEMA_FILE",
    "build_group_payload",
    "build_payload",
    "encode_payload",
    "group_payload_schema",
    "payload_schema",
]

PAYLOAD_VERSION = "1"
"""The version of the JSON document the channel posts (its ``version`` field); see
``payload_schema()``."""
SCHEMA_FILE = "webhook-payload.schema.json"
#: The JSON Schema of a group's body (also ``docs/webhook-group-payload.schema.json``).
GROUP_SCHEMA_FILE = "webhook-group-payload.schema.json"
#: Largest group body sent, in bytes: alerts beyond it are counted in ``truncated``.
MAX_GROUP_BODY = 1_000_000


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def build_payload(alert: Alert) -> dict[str, Any]:
    """The JSON-safe body for ``alert`` (see the module docstring for its shape)."""
    created = _iso(alert.created_at)
    return {
        "type": f"alert.{alert.status}",
        "timestamp": created,
        "version": PAYLOAD_VERSION,
        "data": {
            "id": alert.id,
            "key": alert.key,
            "title": alert.title,
            "message": alert.message,
            "priority": alert.priority.name,
            "status": alert.status,
            "source": alert.source,
            "metadata": alert.metadata,
            "created_at": created,
        },
    }


# One encoder for every body (json.dumps with options builds a new one per call).
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def encode_payload(payload: dict[str, Any]) -> bytes:
    """The exact bytes sent (and signed): compact UTF-8 JSON."""
    return _ENCODER.encode(payload).encode("utf-8")


@lru_cache(maxsize=1)
def _schema_text() -> str:
    from importlib.resources import files

    return (files(__package__) / SCHEMA_FILE).read_text(encoding="utf-8")


def payload_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the webhook body, as a new dict."""
    schema: dict[str, Any] = json.loads(_schema_text())
    return schema


def build_group_payload(group: Group) -> dict[str, Any]:
    """The JSON-safe body for a group of alerts notified together::

        {"type": "group.firing" | "group.resolved", "timestamp": ..., "version": "1",
         "data": {"group": {"key", "labels", "status", "priority", "reason", "counts",
                            "external_key"},
                  "alerts": [{...the alert's fields..., "new": bool}, ...],
                  "truncated": 0}}

    Alerts come firing first, each part highest priority first; past
    :data:`MAX_GROUP_BODY` bytes the rest are counted in ``truncated``. When a
    message template applies, ``group`` also has the ``title`` and ``message`` it
    rendered.
    """
    alerts = []
    for alert in group.alerts:
        data = build_payload(alert)["data"]
        data["new"] = alert.id in group.new
        alerts.append(data)
    body: dict[str, Any] = {
        "type": f"group.{group.status}",
        "timestamp": _iso(group.created_at),
        "version": PAYLOAD_VERSION,
        "data": {
            "group": {
                "key": group.key,
                "labels": dict(group.labels),
                "status": group.status,
                "priority": group.priority.name,
                "reason": group.reason,
                "counts": group.counts(),
                "external_key": group.external_key,
            },
            "alerts": alerts,
            "truncated": 0,
        },
    }
    if group.templated is not None:  # a message template's title and body for the group
        body["data"]["group"]["title"] = group.templated.title
        body["data"]["group"]["message"] = group.templated.message
    if len(encode_payload(body)) > MAX_GROUP_BODY:
        lo, hi = 0, len(alerts)
        while lo < hi:  # the most alerts that fit
            mid = (lo + hi + 1) // 2
            body["data"]["alerts"] = alerts[:mid]
            if len(encode_payload(body)) <= MAX_GROUP_BODY:
                lo = mid
            else:
                hi = mid - 1
        body["data"]["alerts"], body["data"]["truncated"] = alerts[:lo], len(alerts) - lo
    return body


@lru_cache(maxsize=1)
def _group_schema_text() -> str:
    from importlib.resources import files

    return (files(__package__) / GROUP_SCHEMA_FILE).read_text(encoding="utf-8")


def group_payload_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a group's body, as a new dict."""
    schema: dict[str, Any] = json.loads(_group_schema_text())
    return schema
