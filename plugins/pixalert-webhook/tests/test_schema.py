"""The versioned JSON body and its JSON Schema (docs/webhook-payload.schema.json)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pixalert import Alert
from pixalert_webhook import PAYLOAD_VERSION, build_payload, payload_schema
from pixalert_webhook._payload import encode_payload

DOCS_SCHEMA = Path(__file__).resolve().parents[3] / "docs" / "webhook-payload.schema.json"


def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(DOCS_SCHEMA.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)  # type: ignore[no-any-return]


ALERTS = {
    "firing": Alert("Disk full", "95% used", "high", metadata={"host": "db-1", "pct": 95}),
    "resolved": Alert("Disk full", "ok now", "low").resolve(),
    "critical-nested-unicode": Alert(
        "Ünïcode ☃ title",
        "multi\nline <b>&</b>",
        "critical",
        metadata={"tags": ["a", "b"], "nested": {"x": None, "y": 1.5, "ok": True}},
        source="alertmanager",
        key="custom-key",
    ),
    "empty-message": Alert("t", created_at=datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),
}


def test_docs_schema_is_the_packaged_schema() -> None:
    assert json.loads(DOCS_SCHEMA.read_text(encoding="utf-8")) == payload_schema()


@pytest.mark.parametrize("name", ALERTS)
def test_every_body_validates_against_the_schema(name: str) -> None:
    alert = ALERTS[name]
    body = encode_payload(build_payload(alert))
    payload = json.loads(body)
    validator().validate(payload)
    assert payload["version"] == PAYLOAD_VERSION == "1"
    assert payload["type"] == f"alert.{alert.status}"
    assert set(payload) == {"type", "timestamp", "version", "data"}
    assert set(payload["data"]) == {
        "id", "key", "title", "message", "priority", "status", "source", "metadata", "created_at",
    }  # fmt: skip
    assert payload["data"]["priority"] == alert.priority.name
    assert payload["timestamp"].endswith("Z")
    assert datetime.fromisoformat(payload["timestamp"].replace("Z", "+00:00")) == alert.created_at


def test_body_is_compact_utf8_json() -> None:
    body = encode_payload(build_payload(ALERTS["critical-nested-unicode"]))
    assert "☃".encode() in body
    assert body.startswith(b'{"type":"alert.firing","timestamp":"')


def broken(change: Any) -> dict[str, Any]:
    payload = build_payload(ALERTS["firing"])
    change(payload)
    return payload


@pytest.mark.parametrize(
    "change",
    [
        lambda p: p.pop("type"),
        lambda p: p.update(type="alert.acknowledged"),
        lambda p: p.update(version="2"),
        lambda p: p.update(timestamp="yesterday"),
        lambda p: p["data"].pop("key"),
        lambda p: p["data"].update(priority="URGENT"),
        lambda p: p["data"].update(metadata=["not", "an", "object"]),
        lambda p: p["data"].update(title=""),
        lambda p: p["data"].update(status="resolved"),  # contradicts type alert.firing
        lambda p: p["data"].update(created_at="2024-13-01T00:00:00Z"),
    ],
    ids=[
        "no-type",
        "unknown-type",
        "version",
        "timestamp",
        "no-key",
        "priority",
        "metadata",
        "empty-title",
        "status-mismatch",
        "bad-month",
    ],
)
def test_the_schema_rejects_broken_bodies(change: Any) -> None:
    with pytest.raises(jsonschema.ValidationError):
        validator().validate(broken(change))


def test_unknown_fields_are_allowed_for_forward_compatibility() -> None:
    payload = broken(lambda p: p["data"].update(runbook="https://example.com/rb"))
    validator().validate(payload)
