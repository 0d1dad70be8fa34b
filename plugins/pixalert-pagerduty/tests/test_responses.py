"""How answers map to outcomes: 202 sent, 400 permanent, 429 and 5xx retried, network errors."""

from __future__ import annotations

import socket

import pytest
from pixalert import DeliveryError


async def test_400_is_permanent_with_pagerdutys_message(pd, make_channel, make_alert):
    # A 31-character key passes config, and PagerDuty's own check rejects it.
    channel = make_channel(routing_key="r" * 31)
    with pytest.raises(DeliveryError) as caught:
        await channel.send(make_alert())
    error = caught.value
    assert error.retryable is False
    assert "HTTP 400" in error.message
    assert "Event object is invalid" in error.message
    assert "Length of 'routing_key' is incorrect (should be 32 characters)" in error.message
    assert pd.rejections and pd.incidents == []


async def test_400_without_json_still_says_what_came_back(pd, channel, make_alert):
    pd.fail(400, body="plain words")
    with pytest.raises(DeliveryError) as caught:
        await channel.send(make_alert())
    assert caught.value.retryable is False
    assert caught.value.message == "pagerduty: HTTP 400 plain words"


async def test_429_is_retryable_with_retry_after(pd, channel, make_alert):
    pd.fail(429, retry_after=7)
    with pytest.raises(DeliveryError) as caught:
        await channel.send(make_alert())
    assert caught.value.retryable is True
    assert caught.value.retry_after == 7.0
    assert "HTTP 429" in caught.value.message
    assert "arriving too quickly" in caught.value.message
    # The next attempt goes through.
    assert await channel.send(make_alert(key="after")) == {"dedup_key": "after"}


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_5xx_is_retryable(pd, channel, make_alert, status):
    pd.fail(status)
    with pytest.raises(DeliveryError) as caught:
        await channel.send(make_alert())
    assert caught.value.retryable is True
    assert caught.value.retry_after is None
    assert f"HTTP {status}" in caught.value.message


async def test_503_with_retry_after(pd, channel, make_alert):
    pd.fail(503, retry_after=30)
    with pytest.raises(DeliveryError) as caught:
        await channel.send(make_alert())
    assert (caught.value.retryable, caught.value.retry_after) == (True, 30.0)


@pytest.mark.parametrize("status", [401, 403, 404, 413])
async def test_other_4xx_are_permanent(pd, channel, make_alert, status):
    pd.fail(status)
    with pytest.raises(DeliveryError) as caught:
        await channel.send(make_alert())
    assert caught.value.retryable is False


async def test_wrong_path_is_a_permanent_404(pd, make_channel, make_alert):
    channel = make_channel(events_url=pd.events_url.replace("/v2/enqueue", "/v2/nope"))
    with pytest.raises(DeliveryError) as caught:
        await channel.send(make_alert())
    assert caught.value.retryable is False
    assert "HTTP 404" in caught.value.message


async def test_redirect_is_not_followed(pd, channel, make_alert):
    pd.fail(301, body="{}")
    with pytest.raises(DeliveryError) as caught:
        await channel.send(make_alert())
    assert caught.value.retryable is False
    assert "redirect not followed" in caught.value.message


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_connection_refused_is_retryable(make_channel, make_alert):
    channel = make_channel(events_url=f"http://127.0.0.1:{_closed_port()}/v2/enqueue")
    with pytest.raises(DeliveryError) as caught:
        await channel.send(make_alert())
    error = caught.value
    assert error.retryable is True
    assert error.message.startswith("pagerduty: ")
    assert "127.0.0.1" not in error.message
    assert error.__cause__ is None and error.__context__ is None


async def test_a_hanging_server_times_out_retryably(pd, make_channel, make_alert):
    channel = make_channel(timeout=0.2)
    pd.hang()
    with pytest.raises(DeliveryError) as caught:
        await channel.send(make_alert())
    assert caught.value.retryable is True
    assert "timed out" in caught.value.message


async def test_send_is_cancellation_safe(pd, channel, make_alert):
    import asyncio

    pd.hang()
    task = asyncio.ensure_future(channel.send(make_alert(key="cancelled")))
    await pd.wait_for_requests(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The channel still works afterwards.
    assert await channel.send(make_alert(key="next")) == {"dedup_key": "next"}


async def test_send_after_aclose_is_a_permanent_error(channel, make_alert):
    await channel.aclose()
    await channel.aclose()
    with pytest.raises(DeliveryError) as caught:
        await channel.send(make_alert())
    assert caught.value.retryable is False
