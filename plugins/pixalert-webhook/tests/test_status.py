"""How each HTTP answer is classified: success, permanent failure, or retryable with Retry-After."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
from pixalert import Alert, DeliveryError
from pixalert_webhook import WebhookChannel
from pixalert_webhook.testing import WebhookReceiver

Build = Callable[..., WebhookChannel]


@pytest.mark.parametrize("status", [200, 201, 202, 204])
async def test_2xx_is_success(status: int, clock: object, secret: str, make_channel: Build) -> None:
    async with WebhookReceiver(
        secret=secret,
        now=clock.now,
        success_status=status,  # type: ignore[attr-defined]
    ) as receiver:
        channel = make_channel(urls=[receiver.url], secret=secret)
        assert await channel.send(Alert("ok")) is not None
        assert receiver.requests[0].status == status


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_3xx_is_a_permanent_failure_and_never_followed(
    status: int, receiver: WebhookReceiver, make_channel: Build, secret: str
) -> None:
    receiver.fail(status, headers={"Location": receiver.url_for("/elsewhere")})
    channel = make_channel(urls=[receiver.url], secret=secret)
    with pytest.raises(DeliveryError) as info:
        await channel.send(Alert("moved"))
    assert not info.value.retryable
    assert f"HTTP {status}" in info.value.message
    assert "redirect not followed" in info.value.message
    assert receiver.requests_to("/elsewhere") == []
    assert len(receiver.requests) == 1


async def test_410_is_permanent_endpoint_gone(
    receiver: WebhookReceiver, make_channel: Build, secret: str
) -> None:
    receiver.fail(410, body="this endpoint was deleted")
    channel = make_channel(urls=[receiver.url], secret=secret)
    with pytest.raises(DeliveryError) as info:
        await channel.send(Alert("gone"))
    assert not info.value.retryable
    assert info.value.message == "webhook: HTTP 410 endpoint gone: this endpoint was deleted"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 413, 415, 422])
async def test_other_4xx_are_permanent_with_the_receivers_reason(
    status: int, receiver: WebhookReceiver, make_channel: Build, secret: str
) -> None:
    receiver.fail(status, body='{"error": "nope"}')
    channel = make_channel(urls=[receiver.url], secret=secret)
    with pytest.raises(DeliveryError) as info:
        await channel.send(Alert("refused"))
    assert not info.value.retryable
    assert info.value.retry_after is None
    assert info.value.message == f'webhook: HTTP {status} {{"error": "nope"}}'


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
async def test_408_429_5xx_are_retryable_honouring_retry_after(
    status: int, receiver: WebhookReceiver, make_channel: Build, secret: str
) -> None:
    receiver.fail(status, retry_after=17)
    channel = make_channel(urls=[receiver.url], secret=secret)
    with pytest.raises(DeliveryError) as info:
        await channel.send(Alert("busy"))
    assert info.value.retryable
    assert info.value.retry_after == 17
    assert info.value.message == f"webhook: HTTP {status}"


async def test_retryable_without_retry_after(
    receiver: WebhookReceiver, make_channel: Build, secret: str
) -> None:
    receiver.fail(502)
    channel = make_channel(urls=[receiver.url], secret=secret)
    with pytest.raises(DeliveryError) as info:
        await channel.send(Alert("busy"))
    assert info.value.retryable and info.value.retry_after is None


async def test_retry_after_as_an_http_date(
    receiver: WebhookReceiver, make_channel: Build, secret: str
) -> None:
    when = datetime.now(timezone.utc) + timedelta(seconds=120)
    receiver.fail(503, retry_after=format_datetime(when, usegmt=True))
    channel = make_channel(urls=[receiver.url], secret=secret)
    with pytest.raises(DeliveryError) as info:
        await channel.send(Alert("busy"))
    assert info.value.retry_after is not None
    assert 60 < info.value.retry_after <= 121


async def test_several_retryable_targets_wait_for_the_longest_retry_after(
    receiver: WebhookReceiver, make_channel: Build, secret: str
) -> None:
    receiver.fail(429, retry_after=3, endpoint="/a")
    receiver.fail(503, retry_after=9, endpoint="/b")
    channel = make_channel(urls=[receiver.url_for("/a"), receiver.url_for("/b")], secret=secret)
    with pytest.raises(DeliveryError) as info:
        await channel.send(Alert("busy"))
    assert info.value.retryable and info.value.retry_after == 9


async def test_a_huge_error_body_is_cut_short(
    receiver: WebhookReceiver, make_channel: Build, secret: str
) -> None:
    receiver.fail(500, body="x" * 100_000)
    channel = make_channel(urls=[receiver.url], secret=secret)
    with pytest.raises(DeliveryError) as info:
        await channel.send(Alert("big"))
    assert len(info.value.message) < 300


async def test_connection_refused_and_timeout_are_retryable(
    receiver: WebhookReceiver, make_channel: Build, secret: str
) -> None:
    refused = make_channel(urls=[receiver.refused_url()], secret=secret)
    with pytest.raises(DeliveryError) as info:
        await refused.send(Alert("down"))
    assert info.value.retryable
    assert info.value.message.startswith("webhook: connection failed")

    receiver.hang()
    slow = make_channel(urls=[receiver.url], secret=secret, timeout=0.3)
    with pytest.raises(DeliveryError) as info:
        await slow.send(Alert("slow"))
    assert info.value.retryable
    assert info.value.message.startswith("webhook: timed out")
