"""The local Events API v2 (pixalert_pagerduty.testing) enforces PagerDuty's contract."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from pixalert.channels import DemoSink
from pixalert_pagerduty.testing import PagerDutyServer, validate_event

KEY = "0123456789abcdef0123456789abcdef"


def trigger(**changes):
    event = {
        "routing_key": KEY,
        "event_action": "trigger",
        "dedup_key": "abc",
        "payload": {"summary": "Disk full", "source": "db1", "severity": "critical"},
    }
    payload = changes.pop("payload", None)
    if payload is not None:
        event["payload"] = {**event["payload"], **payload}
    event.update(changes)
    return {k: v for k, v in event.items() if v is not None}


@pytest.fixture
async def http():
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


async def post(http, pd, event, **kwargs):
    kwargs.setdefault("json", event)
    return await http.post(pd.events_url, **kwargs)


async def test_accepts_a_valid_trigger_as_pagerduty_does(pd, http):
    response = await post(http, pd, trigger())
    assert response.status_code == 202
    assert response.json() == {
        "status": "success",
        "message": "Event processed",
        "dedup_key": "abc",
    }
    assert pd.lines() == ["trigger critical: Disk full (dedup abc)"]


async def test_trigger_without_dedup_key_gets_a_new_one_each_time(pd, http):
    first = (await post(http, pd, trigger(dedup_key=None))).json()["dedup_key"]
    second = (await post(http, pd, trigger(dedup_key=None))).json()["dedup_key"]
    assert first != second
    assert len(pd.open_incidents) == 2


@pytest.mark.parametrize(
    ("event", "error"),
    [
        (trigger(routing_key="short"), "Length of 'routing_key' is incorrect (should be 32"),
        (trigger(routing_key=None), "'routing_key' is missing or blank"),
        (trigger(event_action="create"), "'event_action' is invalid"),
        (trigger(event_action=None), "'event_action' is missing or blank"),
        (trigger(dedup_key="d" * 256), "Length of 'dedup_key' is too long (maximum is 255"),
        (trigger(dedup_key=5), "'dedup_key' must be a string"),
        (trigger(payload=None) | {"payload": None}, "'payload' is missing or blank"),
        (trigger(payload={"summary": ""}), "'payload.summary' is missing or blank"),
        (trigger(payload={"summary": "s" * 1025}), "'payload.summary' is too long"),
        (trigger(payload={"source": None}), "'payload.source' is missing or blank"),
        (trigger(payload={"severity": None}), "'payload.severity' is missing or blank"),
        (trigger(payload={"severity": "fatal"}), "'payload.severity' is invalid"),
        (trigger(payload={"severity": "CRITICAL"}), "'payload.severity' is invalid"),
        (trigger(payload={"timestamp": "yesterday"}), "not an ISO 8601 timestamp"),
        (trigger(payload={"timestamp": "2024-13-01T00:00:00Z"}), "not an ISO 8601 timestamp"),
        (trigger(payload={"custom_details": "text"}), "'payload.custom_details' must be an object"),
        (trigger(payload={"component": 5}), "'payload.component' must be a string"),
        (trigger(payload={"details": {}}), "'payload.details' is not a known property"),
        (trigger(dedupkey="abc"), "'dedupkey' is not a known property"),
        (trigger(images=[{"src": "http://x/a.png"}]), "'images[0].src' must be served via HTTPS"),
        (trigger(links=[{"text": "no href"}]), "'links[0].href' is missing or blank"),
        (
            {"routing_key": KEY, "event_action": "resolve", "dedup_key": "a", "payload": {}},
            "resolve events carry only routing_key, dedup_key and event_action",
        ),
        ({"routing_key": KEY, "event_action": "resolve"}, "'dedup_key' is missing or blank"),
        ([1, 2], "Event must be a JSON object"),
    ],
)
async def test_rejects_what_pagerduty_rejects(pd, http, event, error):
    response = await post(http, pd, event)
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "invalid event"
    assert body["message"] == "Event object is invalid"
    assert any(error in e for e in body["errors"]), body["errors"]
    assert pd.received == [] and pd.lines() == []
    assert pd.rejections[-1].reason == "; ".join(body["errors"])


@pytest.mark.parametrize(
    "timestamp",
    ["2015-07-17T08:42:58.315+0000", "2026-01-02T03:04:05Z", "2026-01-02T03:04:05.123+00:00"],
)
def test_iso_8601_timestamps_are_accepted(timestamp):
    assert validate_event(trigger(payload={"timestamp": timestamp})) == []


def test_pagerdutys_documented_example_is_valid():
    example = trigger(
        payload={
            "timestamp": "2015-07-17T08:42:58.315+0000",
            "component": "postgres",
            "group": "prod-datapipe",
            "class": "deploy",
            "custom_details": {"ping time": "1500ms", "load avg": 0.75},
        },
        images=[{"src": "https://example.com/a.png", "href": "https://example.com/", "alt": "x"}],
        links=[{"href": "https://example.com/", "text": "Link text"}],
        client="Sample Monitoring Service",
        client_url="https://monitoring.example.com",
    )
    assert validate_event(example) == []


async def test_body_over_512000_bytes_is_rejected(pd, http):
    event = trigger(payload={"custom_details": {"blob": "x" * 512_000}})
    response = await post(http, pd, event)
    assert response.status_code == 400
    assert "Event is too large" in response.json()["errors"][0]


async def test_not_json_and_wrong_content_type_are_rejected(pd, http):
    response = await post(
        http,
        pd,
        None,
        content=b"{not json",
        json=None,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["errors"] == ["Event body is not valid JSON"]
    response = await post(
        http,
        pd,
        None,
        content=json.dumps(trigger()).encode(),
        json=None,
        headers={"Content-Type": "text/plain"},
    )
    assert response.status_code == 400
    assert "Content-Type must be application/json" in response.json()["errors"][0]


async def test_only_post_to_v2_enqueue(pd, http):
    assert (await http.get(pd.events_url)).status_code == 405
    other = pd.events_url.replace("/v2/enqueue", "/v2/change/enqueue")
    assert (await http.post(other, json=trigger())).status_code == 404


async def test_resolve_closes_only_with_the_same_routing_key(pd, http):
    await post(http, pd, trigger())
    other_key = "f" * 32
    stray = {"routing_key": other_key, "dedup_key": "abc", "event_action": "resolve"}
    response = await post(http, pd, stray)
    assert response.status_code == 202  # accepted, and dropped
    assert pd.incident("abc").open
    assert pd.lines()[-1] == "resolve: no open incident, dropped (dedup abc)"
    resolve = {"routing_key": KEY, "dedup_key": "abc", "event_action": "resolve"}
    assert (await post(http, pd, resolve)).status_code == 202
    assert not pd.incident("abc").open
    assert pd.lines()[-1] == "resolve: Disk full (dedup abc)"


async def test_acknowledge_then_resolve(pd, http):
    await post(http, pd, trigger())
    ack = {"routing_key": KEY, "dedup_key": "abc", "event_action": "acknowledge"}
    await post(http, pd, ack)
    assert pd.incident("abc").status == "acknowledged" and pd.incident("abc").open
    await post(http, pd, ack | {"event_action": "resolve"})
    assert pd.incident("abc").status == "resolved"


async def test_scripted_faults_answer_in_order_then_normal_service_resumes(pd, http):
    pd.fail(429, retry_after=5)
    pd.fail(503, body={"status": "error", "message": "down"})
    first = await post(http, pd, trigger())
    assert (first.status_code, first.headers["Retry-After"]) == (429, "5")
    second = await post(http, pd, trigger())
    assert (second.status_code, second.json()["message"]) == (503, "down")
    assert (await post(http, pd, trigger())).status_code == 202
    assert len(pd.requests) == 3 and len(pd.received) == 1


async def test_echo_fault_returns_the_request_body(pd, http):
    pd.fail(500, body=lambda r: b"error processing request: " + r.body)
    response = await post(http, pd, trigger())
    assert response.status_code == 500
    assert KEY in response.text


async def test_hang_holds_the_request_until_the_client_gives_up(pd):
    pd.hang()
    async with httpx.AsyncClient(timeout=0.2) as client:
        with pytest.raises(httpx.TimeoutException):
            await client.post(pd.events_url, json=trigger())
    await pd.wait_for_requests(1)
    assert pd.received == []


async def test_stop_drops_a_hanging_request():
    server = PagerDutyServer()
    await server.start()
    server.hang()
    async with httpx.AsyncClient(timeout=5) as client:
        request = asyncio.ensure_future(client.post(server.events_url, json=trigger()))
        await server.wait_for_requests(1)
        await server.stop()
        with pytest.raises(httpx.HTTPError):
            await request
    await server.stop()


async def test_it_is_a_demo_sink():
    server = PagerDutyServer()
    assert isinstance(server, DemoSink)
    assert server.channel_type == "pagerduty"
    config = await server.start()
    try:
        assert config == {"routing_key": server.routing_key, "events_url": server.events_url}
        assert len(server.routing_key) == 32
        assert server.events_url.startswith("http://127.0.0.1:")
        assert server.events_url.endswith("/v2/enqueue")
    finally:
        await server.stop()


async def test_reset_forgets_everything(pd, http):
    await post(http, pd, trigger())
    pd.fail(500)
    pd.reset()
    assert (pd.requests, pd.received, pd.incidents, pd.lines()) == ([], [], [], [])
    assert (await post(http, pd, trigger())).status_code == 202
