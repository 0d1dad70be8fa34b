"""The public test receiver enforces the contract: it refuses what a careful receiver refuses."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from pixalert import Alert
from pixalert.channels import DemoSink
from pixalert.testing import FakeClock
from pixalert_webhook import build_payload, sign
from pixalert_webhook._payload import encode_payload
from pixalert_webhook.testing import WebhookReceiver


def signed_request(
    secret: str, now: float, body: bytes | None = None, msg_id: str = "msg_test1"
) -> tuple[bytes, dict[str, str]]:
    body = body if body is not None else encode_payload(build_payload(Alert("Disk full")))
    stamp = int(now)
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign(secret, msg_id, stamp, body),
    }
    return body, headers


async def post(url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(url, content=body, headers=headers)


async def test_a_correct_request_is_delivered_once(
    receiver: WebhookReceiver, secret: str, clock: FakeClock
) -> None:
    body, headers = signed_request(secret, clock.now())
    first = await post(receiver.url, body, headers)
    again = await post(receiver.url, body, headers)
    assert (first.status_code, again.status_code) == (200, 200)
    assert [r.outcome for r in receiver.requests] == ["accepted", "duplicate"]
    assert receiver.lines() == ["POST /hook alert.firing MEDIUM Disk full (signed)"]
    assert (await receiver.wait_for(1))[0].webhook_id == "msg_test1"


@pytest.mark.parametrize(
    ("change", "status", "reason"),
    [
        ({"content-type": "text/plain"}, 415, "expected Content-Type: application/json"),
        ({"webhook-id": ""}, 400, "missing or invalid webhook-id"),
        ({"webhook-id": "msg.1"}, 400, "missing or invalid webhook-id"),
        ({"webhook-timestamp": "soon"}, 400, "missing or invalid webhook-timestamp"),
        ({"webhook-signature": "v1,AAAA"}, 401, "no matching signature"),
        ({"webhook-signature": ""}, 401, "missing webhook-signature header"),
    ],
)
async def test_contract_violations_are_refused(
    receiver: WebhookReceiver,
    secret: str,
    clock: FakeClock,
    change: dict[str, str],
    status: int,
    reason: str,
) -> None:
    body, headers = signed_request(secret, clock.now())
    headers.update(change)
    response = await post(receiver.url, body, headers)
    assert response.status_code == status
    assert reason in response.json()["error"]
    assert receiver.received == []
    assert reason in receiver.rejections[0].reason


async def test_stale_timestamp_is_refused(
    receiver: WebhookReceiver, secret: str, clock: FakeClock
) -> None:
    body, headers = signed_request(secret, clock.now())
    clock.advance(301)
    response = await post(receiver.url, body, headers)
    assert response.status_code == 401
    assert "timestamp too old" in response.json()["error"]


async def test_a_body_off_the_schema_is_refused_even_when_signed(
    receiver: WebhookReceiver, secret: str, clock: FakeClock
) -> None:
    payload: dict[str, Any] = build_payload(Alert("Disk full"))
    payload["data"]["priority"] = "URGENT"
    body, headers = signed_request(secret, clock.now(), json.dumps(payload).encode())
    response = await post(receiver.url, body, headers)
    assert response.status_code == 400
    assert response.json()["error"].startswith("schema: 'URGENT' is not one of")
    assert response.json()["error"].endswith("at data/priority")


async def test_token_is_required_when_set(secret: str, clock: FakeClock) -> None:
    async with WebhookReceiver(secret=secret, token="t0ken", now=clock.now) as server:
        body, headers = signed_request(secret, clock.now())
        wrong = await post(server.url_for(token="nope"), body, headers)
        right = await post(server.url, body, headers)
    assert (wrong.status_code, right.status_code) == (401, 200)
    assert server.url.endswith("/hook?token=t0ken")


async def test_unsigned_receiver_accepts_json_and_checks_the_rest(clock: FakeClock) -> None:
    async with WebhookReceiver(now=clock.now, validate_schema=True) as server:
        body = encode_payload(build_payload(Alert("x")))
        headers = {"content-type": "application/json", "webhook-id": "msg_1"}
        missing_stamp = await post(server.url, body, headers)
        headers["webhook-timestamp"] = str(int(clock.now()))
        ok = await post(server.url, body, headers)
        not_json = await post(server.url, b"{", headers | {"webhook-id": "msg_2"})
    assert (missing_stamp.status_code, ok.status_code, not_json.status_code) == (400, 200, 400)
    assert server.lines() == ["POST /hook alert.firing MEDIUM x (unsigned)"]


async def test_only_post_is_served(receiver: WebhookReceiver) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(receiver.url)
    assert response.status_code == 405


async def test_faults_are_consumed_in_order_and_by_path(
    receiver: WebhookReceiver, secret: str, clock: FakeClock
) -> None:
    receiver.fail(503, endpoint="/other")
    receiver.fail(429, retry_after=3)
    body, headers = signed_request(secret, clock.now())
    first = await post(receiver.url, body, headers)
    second = await post(receiver.url, body, headers)
    other = await post(receiver.url_for("/other"), body, headers)
    assert (first.status_code, first.headers["retry-after"]) == (429, "3")
    assert (second.status_code, other.status_code) == (200, 503)


def test_receiver_is_a_demo_sink() -> None:
    sink = WebhookReceiver()
    assert isinstance(sink, DemoSink)
    assert sink.channel_type == "webhook"
    with pytest.raises(ValueError, match="2xx"):
        WebhookReceiver(success_status=500)
    with pytest.raises(RuntimeError, match="start"):
        _ = sink.url


async def test_stop_releases_hanging_requests_and_is_idempotent(secret: str) -> None:
    server = WebhookReceiver(secret=secret)
    await server.start()
    server.hang()
    body, headers = signed_request(secret, time.time())
    pending = asyncio.ensure_future(post(server.url, body, headers))
    (request,) = await server.wait_for_requests(1)
    assert (request.outcome, request.reason) == ("fault", "hang")
    await server.stop()
    await server.stop()
    with pytest.raises(httpx.HTTPError):
        await pending  # dropped unanswered as the server stopped
