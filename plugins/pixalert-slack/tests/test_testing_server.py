"""The local Slack enforces Slack's contract: raw requests get Slack's answers and errors."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pixalert_slack.testing import InvalidMessage, SlackServer, check_message


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as c:
        yield c


def header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": text}}


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


@pytest.mark.parametrize(
    ("body", "status", "answer"),
    [
        ({"text": "hello"}, 200, "ok"),
        ({"blocks": [section("hi")]}, 200, "ok"),
        ({}, 400, "no_text"),
        ({"text": ""}, 400, "no_text"),
        ([1, 2], 400, "invalid_payload"),
        ({"text": 5}, 400, "invalid_payload"),
        ({"text": "x", "blocks": [header("h" * 151)]}, 400, "invalid_blocks"),
        ({"text": "x", "blocks": [header("h" * 150)]}, 200, "ok"),
        ({"text": "x", "blocks": [section("s" * 3001)]}, 400, "invalid_blocks"),
        ({"text": "x", "blocks": [section("s")] * 51}, 400, "invalid_blocks"),
        ({"text": "x", "blocks": [{"type": "bogus"}]}, 400, "invalid_blocks"),
        ({"text": "x", "blocks": [{"type": "section"}]}, 400, "invalid_blocks"),
        (
            {"text": "x", "blocks": [{"type": "section", "fields": [section("f")["text"]] * 11}]},
            400,
            "invalid_blocks",
        ),
        (
            {
                "text": "x",
                "blocks": [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 2001}]}],
            },
            400,
            "invalid_blocks",
        ),
        (
            {"text": "x", "blocks": [{"type": "header", "text": section("md")["text"]}]},
            400,
            "invalid_blocks",
        ),
        ({"text": "x" * 40_001}, 400, "msg_too_long"),
        ({"text": "x", "blocks": [section("s" * 3000)] * 5}, 400, "msg_blocks_too_long"),
        ({"text": "x", "attachments": [{"color": "red"}]}, 400, "invalid_attachments"),
        ({"text": "x", "attachments": [{"color": "#E01E5A", "blocks": [section("s")]}]}, 200, "ok"),
    ],
)
async def test_webhook_validates(
    slack: SlackServer, client: httpx.AsyncClient, body: Any, status: int, answer: str
) -> None:
    response = await client.post(slack.webhook_url, json=body)
    assert (response.status_code, response.text) == (status, answer)
    assert len(slack.received) == (1 if status == 200 else 0)


async def test_webhook_wants_json(slack: SlackServer, client: httpx.AsyncClient) -> None:
    response = await client.post(slack.webhook_url, content=b"text=hi")
    assert (response.status_code, response.text) == (400, "invalid_payload")


async def test_webhook_unknown_path(slack: SlackServer, client: httpx.AsyncClient) -> None:
    response = await client.post(slack.url + "/services/T/B/nope", json={"text": "hi"})
    assert (response.status_code, response.text) == (404, "no_service")


async def api(
    slack: SlackServer, client: httpx.AsyncClient, method: str, body: Any, token: str | None = ""
) -> dict[str, Any]:
    headers = {"Content-Type": "application/json; charset=utf-8"}
    token = slack.token if token == "" else token
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    response = await client.post(
        f"{slack.api_url}/{method}", content=json.dumps(body).encode(), headers=headers
    )
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


async def test_api_post_and_update(slack: SlackServer, client: httpx.AsyncClient) -> None:
    posted = await api(slack, client, "chat.postMessage", {"channel": "#alerts", "text": "hi"})
    assert posted["ok"] is True and posted["channel"] == "C000000001"
    updated = await api(
        slack,
        client,
        "chat.update",
        {"channel": posted["channel"], "ts": posted["ts"], "text": "bye"},
    )
    assert updated == {"ok": True, "channel": "C000000001", "ts": posted["ts"], "text": "bye"}
    assert slack.received[0].text == "bye"
    assert slack.lines() == ["#alerts: hi", "#alerts: updated to bye"]


@pytest.mark.parametrize(
    ("method", "body", "token", "error"),
    [
        ("chat.postMessage", {"channel": "#alerts", "text": "x"}, None, "not_authed"),
        ("chat.postMessage", {"channel": "#alerts", "text": "x"}, "xoxb-wrong", "invalid_auth"),
        ("chat.postMessage", {"text": "x"}, "", "channel_not_found"),
        ("chat.postMessage", {"channel": "#elsewhere", "text": "x"}, "", "channel_not_found"),
        ("chat.postMessage", {"channel": "#alerts"}, "", "no_text"),
        ("chat.postMessage", {"channel": "#alerts", "blocks": [header("")]}, "", "invalid_blocks"),
        ("chat.update", {"channel": "#alerts", "ts": "1.2", "text": "x"}, "", "message_not_found"),
        ("chat.delete", {"channel": "#alerts"}, "", "unknown_method"),
    ],
)
async def test_api_errors_are_ok_false(
    slack: SlackServer,
    client: httpx.AsyncClient,
    method: str,
    body: dict[str, Any],
    token: str | None,
    error: str,
) -> None:
    answer = await api(slack, client, method, body, token)
    assert answer["ok"] is False and answer["error"] == error
    assert slack.received == []


async def test_api_explains_invalid_blocks(slack: SlackServer, client: httpx.AsyncClient) -> None:
    answer = await api(
        slack,
        client,
        "chat.postMessage",
        {"channel": "#alerts", "text": "x", "blocks": [header("h" * 151)]},
    )
    assert answer["response_metadata"]["messages"] == [
        "[ERROR] must be less than 151 characters [json-pointer:/blocks/0/text/text]"
    ]


async def test_api_warns_about_a_missing_charset(
    slack: SlackServer, client: httpx.AsyncClient
) -> None:
    response = await client.post(
        f"{slack.api_url}/chat.postMessage",
        json={"channel": "#alerts", "text": "x"},
        headers={"Authorization": f"Bearer {slack.token}"},
    )
    assert response.json()["warning"] == "missing_charset"


async def test_api_accepts_form_encoding(slack: SlackServer, client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{slack.api_url}/chat.postMessage",
        data={
            "token": slack.token,
            "channel": "alerts",
            "text": "x",
            "blocks": json.dumps([section("s")]),
        },
    )
    assert response.json()["ok"] is True


async def test_faults_are_consumed_in_order(slack: SlackServer, client: httpx.AsyncClient) -> None:
    slack.fail(
        429,
        retry_after=3,
        body={"ok": False, "error": "rate_limited", "retry_after": 3},
        endpoint="webhook",
    )
    slack.fail(503, body="busy", times=2)
    first = await client.post(slack.webhook_url, json={"text": "x"})
    assert first.status_code == 429
    assert first.headers["Retry-After"] == "3"
    assert first.json() == {"ok": False, "error": "rate_limited", "retry_after": 3}
    for _ in range(2):
        response = await client.post(slack.webhook_url, json={"text": "x"})
        assert (response.status_code, response.text) == (503, "busy")
    assert (await client.post(slack.webhook_url, json={"text": "x"})).text == "ok"
    assert [r.status for r in slack.requests] == [429, 503, 503, 200]


async def test_api_error_fault_only_for_its_endpoint(
    slack: SlackServer, client: httpx.AsyncClient
) -> None:
    slack.api_error("not_in_channel", endpoint="chat.postMessage")
    assert (await client.post(slack.webhook_url, json={"text": "x"})).text == "ok"
    answer = await api(slack, client, "chat.postMessage", {"channel": "#alerts", "text": "x"})
    assert answer == {"ok": False, "error": "not_in_channel"}


async def test_hang_until_stopped(client: httpx.AsyncClient) -> None:
    server = SlackServer()
    await server.start()
    server.hang()
    with pytest.raises(httpx.ReadTimeout):
        await client.post(server.webhook_url, json={"text": "x"}, timeout=0.2)
    await server.stop()  # releases the hung handler
    assert len(server.requests) == 1


def test_check_message_is_public() -> None:
    assert check_message({"text": "x"}) == []
    assert check_message({"blocks": [section("s")]}) == ["missing_text_fallback"]
    with pytest.raises(InvalidMessage) as info:
        check_message({"text": "x", "blocks": [header("h" * 151)]})
    assert info.value.error == "invalid_blocks"
    assert info.value.detail.endswith("[json-pointer:/blocks/0/text/text]")


async def test_url_before_start_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="not started"):
        _ = SlackServer().webhook_url
