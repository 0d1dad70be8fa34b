"""Groups by webhook: one body with an ``alerts`` list and the group's labels, valid against
docs/webhook-group-payload.schema.json, cut under 1 MB, checked by the test receiver."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pixalert_webhook
import pytest
from pixalert import Alert
from pixalert.channels import Group
from pixalert.testing import FakeClock, make_manager
from pixalert_webhook import build_group_payload, group_payload_schema
from pixalert_webhook._payload import MAX_GROUP_BODY, encode_payload
from pixalert_webhook.testing import WebhookReceiver

DOCS_SCHEMA = Path(__file__).resolve().parents[3] / "docs" / "webhook-group-payload.schema.json"


def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(DOCS_SCHEMA.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)  # type: ignore[no-any-return]


def test_docs_schema_is_the_packaged_schema() -> None:
    assert json.loads(DOCS_SCHEMA.read_text(encoding="utf-8")) == group_payload_schema()


GROUPS = {
    "firing": Group(
        "webhook|0|abc",
        {"source": "db"},
        [Alert("Disk full", "95%", "high", metadata={"host": "db-1"}), Alert("CPU", "", "low")],
        reason="update",
    ),
    "resolved": Group("g", {}, [Alert("Disk full", "ok", "high", status="resolved")]),
    "alertmanager": Group(
        "webhook|am|x", {"alertname": "Down"}, [Alert("Down")], external_key='{}:{a="b"}'
    ),
}


@pytest.mark.parametrize("name", GROUPS)
def test_every_group_body_validates_against_the_schema(name: str) -> None:
    validator().validate(json.loads(encode_payload(build_group_payload(GROUPS[name]))))


def test_a_group_body_names_its_group_and_marks_new_alerts() -> None:
    group = GROUPS["firing"]
    group = Group(group.key, group.labels, group.alerts, new={group.alerts[0].id})
    body = build_group_payload(group)
    assert body["type"] == "group.firing"
    assert body["data"]["group"]["labels"] == {"source": "db"}
    assert body["data"]["group"]["counts"] == {"firing": 2, "resolved": 0, "high": 1, "low": 1}
    assert [(a["title"], a["new"]) for a in body["data"]["alerts"]] == [
        ("Disk full", True),
        ("CPU", False),
    ]


def test_a_huge_group_is_cut_under_a_megabyte_with_a_count() -> None:
    alerts = [Alert(f"alert {i}", "x" * 1000) for i in range(2000)]
    body = build_group_payload(Group("g", {}, alerts))
    assert len(encode_payload(body)) <= MAX_GROUP_BODY
    assert body["data"]["truncated"] == 2000 - len(body["data"]["alerts"]) > 0
    validator().validate(body)


def test_a_body_against_the_schema_is_refused_by_the_receiver() -> None:
    receiver = WebhookReceiver()
    body = build_group_payload(GROUPS["firing"])
    del body["data"]["group"]["labels"]
    assert "labels" in (receiver._schema_problem(body) or "")


async def test_one_signed_body_per_group_notification() -> None:
    secret = pixalert_webhook.generate_secret()
    clock = FakeClock()
    grouping = {"group_by": ["source"], "group_wait": "30s", "group_interval": "5m"}
    async with WebhookReceiver(secret=secret) as receiver:
        config = {"channels": {"webhook": receiver.config()}, "grouping": grouping}
        async with make_manager(plugins=[pixalert_webhook], clock=clock, config=config) as m:
            for i in range(3):
                await m.send_alert(f"db-{i}", "m", "high", source="db", channels=["webhook"])
            clock.advance(30)
            await m.resume_pending()
            await m.send_alert(
                "db-0", "ok", "high", source="db", channels=["webhook"], status="resolved"
            )
            clock.advance(300)
            await m.resume_pending()
    first, second = receiver.received
    assert first.signed and first.is_group and not receiver.rejections
    assert [a["title"] for a in first.data["alerts"]] == ["db-0", "db-1", "db-2"]
    assert [(a["title"], a["status"]) for a in second.data["alerts"]] == [
        ("db-1", "firing"),
        ("db-2", "firing"),
        ("db-0", "resolved"),
    ]
    assert receiver.lines()[0].startswith("POST /hook group.firing HIGH 3 alerts source=db")
