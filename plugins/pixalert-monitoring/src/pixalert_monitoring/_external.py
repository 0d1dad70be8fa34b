"""Alerts from outside: Alertmanager (webhook v4), Grafana alerting, plain JSON objects.

Parsing is pure: :func:`parse_external` validates the whole body and returns
ready :class:`pixalert.Alert` objects, or raises :class:`PayloadError` before
anything is sent.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import attrs
from pixalert import Alert, Priority

from ._timefmt import format_timestamp, parse_timestamp

__all__ = [
    "DEFAULT_SEVERITY_MAP",
    "EXPECTED_FORMATS",
    "ExternalAlert",
    "ExternalBatch",
    "PayloadError",
    "PayloadTooLarge",
    "parse_external",
    "severity_map",
]

#: What :func:`parse_external` accepts, for error messages.
EXPECTED_FORMATS = (
    'an Alertmanager webhook (version "4", with "alerts"), a Grafana alerting webhook '
    '("orgId" and "alerts"), a {"title", "message", "priority", "metadata"} object, '
    "or a list of such objects"
)

DEFAULT_SEVERITY_MAP: Mapping[str, Priority] = {
    "critical": Priority.CRITICAL,
    "error": Priority.HIGH,
    "high": Priority.HIGH,
    "warning": Priority.MEDIUM,
    "info": Priority.LOW,
}
"""The ``severity`` label value to priority, case-insensitive."""

_MAX_TITLE = 1000
_PLAIN_KEYS = ("title", "message", "priority", "metadata", "key", "status", "source")


class PayloadError(ValueError):
    """A body that is not one of the accepted formats, or has invalid fields.

    ``errors`` holds one line per problem, each naming where it is.
    """

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = list(errors)
        shown = self.errors[:20]
        more = len(self.errors) - len(shown)
        text = "; ".join(shown) + (f"; and {more} more" if more > 0 else "")
        super().__init__(text)


class PayloadTooLarge(PayloadError):
    """More alerts in one body than allowed."""


@attrs.frozen
class ExternalAlert:
    """One parsed alert and the identity that makes its ingestion idempotent.

    ``dedup`` is None for formats without a notification identity (plain objects).
    """

    alert: Alert
    dedup: str | None = None


@attrs.frozen
class ExternalBatch:
    """A parsed body: its ``format``, its alerts, and facts about the whole body."""

    format: str
    alerts: tuple[ExternalAlert, ...]
    info: dict[str, Any] = attrs.Factory(dict)


def severity_map(mapping: Mapping[str, Any] | None = None) -> dict[str, Priority]:
    """:data:`DEFAULT_SEVERITY_MAP` updated by ``mapping`` (values parsed as priorities).

    Raises ``ValueError`` naming the severity with an unknown priority.
    """
    result = dict(DEFAULT_SEVERITY_MAP)
    for severity, value in (mapping or {}).items():
        try:
            result[str(severity).strip().lower()] = Priority.parse(value)
        except ValueError as exc:
            raise ValueError(f"severity map: {severity!r}: {exc}") from None
    return result


def parse_external(
    data: Any,
    *,
    severities: Mapping[str, Priority] | None = None,
    default_priority: Priority = Priority.MEDIUM,
    max_alerts: int | None = None,
    now: datetime | None = None,
) -> ExternalBatch:
    """Recognise and validate an external alert body; return its alerts.

    Raises :class:`PayloadError` naming the expected formats for anything
    unrecognised, with every field problem at once; :class:`PayloadTooLarge`
    when it holds more than ``max_alerts`` alerts.
    """
    sev = dict(DEFAULT_SEVERITY_MAP if severities is None else severities)
    created = now or datetime.now(timezone.utc)
    if isinstance(data, list):
        _check_count(len(data), max_alerts)
        return _parse_plain_list(data, sev, default_priority, created)
    if not isinstance(data, Mapping):
        raise PayloadError(
            [f"expected a JSON object or array: {EXPECTED_FORMATS}; got {_json_type(data)}"]
        )
    if "alerts" in data:
        version = data.get("version")
        if version == "4":
            kind = "alertmanager"
        elif "orgId" in data or version == "1":
            kind = "grafana"
        elif version is None:
            raise PayloadError(
                [
                    'body has "alerts" but no "version": expected an Alertmanager webhook '
                    '(version "4") or a Grafana alerting webhook (with "orgId")'
                ]
            )
        else:
            raise PayloadError(
                [
                    f"unsupported webhook version {version!r}: expected an Alertmanager webhook "
                    '(version "4") or a Grafana alerting webhook (with "orgId")'
                ]
            )
        alerts = data["alerts"]
        if not isinstance(alerts, list):
            raise PayloadError([f"alerts: expected an array, got {_json_type(alerts)}"])
        _check_count(len(alerts), max_alerts)
        return _parse_grouped(kind, data, alerts, sev, default_priority, created)
    if "title" in data:
        return _parse_plain_list([data], sev, default_priority, created, single=True)
    keys = ", ".join(repr(k) for k in list(data)[:10]) or "none"
    raise PayloadError([f"unrecognised alert body (keys: {keys}): expected {EXPECTED_FORMATS}"])


def _check_count(count: int, max_alerts: int | None) -> None:
    if max_alerts is not None and count > max_alerts:
        raise PayloadTooLarge([f"too many alerts in one request: {count} (at most {max_alerts})"])


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _short(text: str, limit: int = _MAX_TITLE) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _str_map(value: Any, where: str, errors: list[str], *, required: bool) -> dict[str, str]:
    if value is None and not required:
        return {}
    if not isinstance(value, Mapping):
        errors.append(f"{where}: expected an object of strings, got {_json_type(value)}")
        return {}
    out: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(item, str):
            errors.append(f"{where}.{key}: expected a string, got {_json_type(item)}")
            continue
        out[str(key)] = item
    return out


def _opt_str(data: Mapping[str, Any], key: str, where: str, errors: list[str]) -> str:
    value = data.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        errors.append(f"{where}.{key}: expected a string, got {_json_type(value)}")
        return ""
    return value


def _priority_for(severity: str | None, sev: Mapping[str, Priority], default: Priority) -> Priority:
    if severity is None:
        return default
    return sev.get(severity.strip().lower(), default)


def _identity(*parts: str) -> str:
    blob = json.dumps(parts, ensure_ascii=False, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


def _parse_grouped(
    kind: str,
    data: Mapping[str, Any],
    alerts: list[Any],
    sev: Mapping[str, Priority],
    default: Priority,
    created: datetime,
) -> ExternalBatch:
    errors: list[str] = []
    group_key = _opt_str(data, "groupKey", "body", errors)
    receiver = _opt_str(data, "receiver", "body", errors)
    external_url = _opt_str(data, "externalURL", "body", errors)
    truncated = data.get("truncatedAlerts", 0)
    if isinstance(truncated, bool) or not isinstance(truncated, int) or truncated < 0:
        errors.append(f"truncatedAlerts: expected a count, got {truncated!r}")
        truncated = 0
    top_status = data.get("status")
    if top_status not in ("firing", "resolved"):
        errors.append(f"status: expected 'firing' or 'resolved', got {top_status!r}")
    common_annotations = _str_map(
        data.get("commonAnnotations"), "commonAnnotations", errors, required=False
    )
    # What Alertmanager grouped by: pixalert keeps its group when grouping is on.
    group_labels = _str_map(data.get("groupLabels"), "groupLabels", errors, required=False)
    org_id = data.get("orgId") if kind == "grafana" else None
    info: dict[str, Any] = {
        "receiver": receiver,
        "group_key": group_key,
        "status": top_status,
        "external_url": external_url,
        "truncated_alerts": truncated,
    }
    if kind == "grafana":
        info["org_id"] = org_id
    parsed: list[ExternalAlert] = []
    for index, item in enumerate(alerts):
        where = f"alerts[{index}]"
        if not isinstance(item, Mapping):
            errors.append(f"{where}: expected an object, got {_json_type(item)}")
            continue
        before = len(errors)
        status = item.get("status")
        if status not in ("firing", "resolved"):
            errors.append(f"{where}.status: expected 'firing' or 'resolved', got {status!r}")
        labels = _str_map(item.get("labels"), f"{where}.labels", errors, required=True)
        annotations = _str_map(
            item.get("annotations"), f"{where}.annotations", errors, required=False
        )
        starts_raw = item.get("startsAt")
        ends_raw = item.get("endsAt", None)
        starts = ends = None
        try:
            starts = parse_timestamp(starts_raw, where=f"{where}.startsAt")
        except ValueError as exc:
            errors.append(str(exc))
        if ends_raw not in (None, ""):
            try:
                ends = parse_timestamp(ends_raw, where=f"{where}.endsAt")
            except ValueError as exc:
                errors.append(str(exc))
        generator_url = _opt_str(item, "generatorURL", where, errors)
        fingerprint = _opt_str(item, "fingerprint", where, errors)
        if len(errors) > before:
            continue
        if not fingerprint:
            # Alertmanager always sends one; derive a stable stand-in from the labels.
            fingerprint = _identity(*(f"{k}={v}" for k, v in sorted(labels.items())))[:16]
        title = _short(
            annotations.get("summary")
            or annotations.get("title")
            or common_annotations.get("summary")
            or labels.get("alertname")
            or f"{kind} alert {fingerprint}"
        )
        message = (
            annotations.get("description")
            or annotations.get("message")
            or common_annotations.get("description")
            or ""
        )
        metadata: dict[str, Any] = {
            "labels": labels,
            "annotations": annotations,
            "starts_at": format_timestamp(starts),
            "ends_at": format_timestamp(ends),
            "generator_url": generator_url,
            "fingerprint": fingerprint,
            "receiver": receiver,
            "group_key": group_key,
            "group_labels": group_labels,
            "external_url": external_url,
        }
        if kind == "grafana":
            metadata["org_id"] = org_id
            for src, dst in (
                ("dashboardURL", "dashboard_url"),
                ("panelURL", "panel_url"),
                ("silenceURL", "silence_url"),
                ("valueString", "value_string"),
            ):
                if isinstance(item.get(src), str) and item[src]:
                    metadata[dst] = item[src]
            if isinstance(item.get("values"), Mapping):
                metadata["values"] = dict(item["values"])
        key_prefix = "alertmanager" if kind == "alertmanager" else f"grafana:{org_id}"
        try:
            alert = Alert(
                title=title,
                message=message,
                priority=_priority_for(labels.get("severity"), sev, default),
                metadata=metadata,
                source=kind,
                key=f"{key_prefix}:{fingerprint}",
                status="resolved" if status == "resolved" else "firing",
                created_at=created,
            )
        except ValueError as exc:
            errors.append(f"{where}: {exc}")
            continue
        dedup = _identity(kind, group_key, fingerprint, str(status), str(starts_raw))
        parsed.append(ExternalAlert(alert, f"{kind}:{dedup}"))
    if errors:
        raise PayloadError([f"{kind} webhook: {e}" for e in errors])
    return ExternalBatch(kind, tuple(parsed), info)


def _parse_plain_list(
    items: list[Any],
    sev: Mapping[str, Priority],
    default: Priority,
    created: datetime,
    *,
    single: bool = False,
) -> ExternalBatch:
    errors: list[str] = []
    parsed: list[ExternalAlert] = []
    if not items:
        raise PayloadError([f"empty list: expected {EXPECTED_FORMATS}"])
    for index, item in enumerate(items):
        prefix = "plain alert" if single else f"plain alert [{index}]"

        def at(field: str, prefix: str = prefix) -> str:
            return f"{prefix}: {field}" if single else f"{prefix}.{field}"

        if not isinstance(item, Mapping):
            errors.append(
                f"{prefix}: expected a {{title, message, priority, metadata}} object, "
                f"got {_json_type(item)}"
            )
            continue
        unknown = [k for k in item if k not in _PLAIN_KEYS]
        if unknown:
            errors.append(
                f"{prefix}: unknown key(s) {', '.join(repr(k) for k in unknown)}; "
                f"expected {', '.join(_PLAIN_KEYS)}"
            )
            continue
        if "title" not in item:
            errors.append(f"{at('title')}: missing (a plain alert needs a title)")
            continue
        before = len(errors)
        kwargs: dict[str, Any] = {"created_at": created, "source": "external"}
        for field in ("title", "message", "key", "source"):
            if field in item:
                value = item[field]
                if not isinstance(value, str):
                    errors.append(f"{at(field)}: expected a string, got {_json_type(value)}")
                    continue
                kwargs[field] = value
        if isinstance(kwargs.get("title"), str):
            kwargs["title"] = _short(kwargs["title"])
        raw_priority = item.get("priority", default)
        if isinstance(raw_priority, str) and raw_priority.strip().lower() in sev:
            kwargs["priority"] = sev[raw_priority.strip().lower()]
        else:
            try:
                kwargs["priority"] = Priority.parse(raw_priority)
            except ValueError as exc:
                errors.append(f"{at('priority')}: {exc}")
        if "status" in item:
            kwargs["status"] = item["status"]
        metadata = item.get("metadata")
        if metadata is not None:
            if not isinstance(metadata, Mapping):
                errors.append(f"{at('metadata')}: expected an object, got {_json_type(metadata)}")
            else:
                kwargs["metadata"] = metadata
        if len(errors) > before:
            continue
        try:
            parsed.append(ExternalAlert(Alert(**kwargs)))
        except ValueError as exc:
            field, _, rest = str(exc).partition(": ")
            errors.append(f"{at(field)}: {rest}" if rest else f"{prefix}: {exc}")
    if errors:
        raise PayloadError(errors)
    return ExternalBatch("plain", tuple(parsed), {})
