"""The channel against the contract-enforcing receiver: signing, idempotency, several targets."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pixalert import Alert, DeliveryError
from pixalert.testing import FakeClock
from pixalert_webhook import WebhookChannel, generate_secret, verify
from pixalert_webhook.testing import WebhookReceiver

Build = Callable[..., WebhookChannel]


def disk_full(**kwargs: object) -> Alert:
    return Alert(
        "Disk full", "95% used on db-1", "high", metadata={"host": "db-1", "used": 0.95}, **kwargs
    )  # type: ignore[arg-type]


async def test_signed_delivery_is_verified_by_the_receiver(
    receiver: WebhookReceiver, make_channel: Build, secret: str, clock: FakeClock
) -> None:
    channel = make_channel(urls=[receiver.url], secret=secret)
    alert = disk_full()
    receipt = await channel.send(alert)

    assert receiver.rejections == []
    assert receiver.lines() == ["POST /hook alert.firing HIGH Disk full (signed)"]
    got = receiver.received[0]
    assert got.signed
    assert got.timestamp == int(clock.now())
    assert got.headers["content-type"] == "application/json"
    assert got.headers["user-agent"].startswith("pixalert-webhook/")
    assert got.webhook_id == channel.webhook_id(alert.id, 0)
    assert got.webhook_id.startswith("msg_") and "." not in got.webhook_id
    # Independently of the receiver: the raw request verifies with the public helper.
    assert verify(secret, got.headers, got.body, now=clock.now()) == got.payload
    assert got.data == {
        "id": alert.id,
        "key": alert.key,
        "title": "Disk full",
        "message": "95% used on db-1",
        "priority": "HIGH",
        "status": "firing",
        "source": "pixalert",
        "metadata": {"host": "db-1", "used": 0.95},
        "created_at": got.payload["timestamp"],
    }
    assert receipt == {"webhook_ids": got.webhook_id, "targets": "1"}


async def test_resolved_alert_is_an_alert_resolved_event(
    receiver: WebhookReceiver, make_channel: Build, secret: str
) -> None:
    channel = make_channel(url=receiver.url, secret=secret)
    firing = disk_full()
    await channel.send(firing)
    await channel.send(firing.resolve("back to 60%"))
    assert receiver.lines() == [
        "POST /hook alert.firing HIGH Disk full (signed)",
        "POST /hook alert.resolved HIGH Disk full (signed)",
    ]
    first, second = receiver.received
    assert second.data["status"] == "resolved"
    assert second.data["key"] == first.data["key"]
    assert second.webhook_id != first.webhook_id  # a new event, not a retry


async def test_unsigned_channel_still_sends_webhook_id_and_timestamp(
    clock: FakeClock, make_channel: Build
) -> None:
    async with WebhookReceiver(now=clock.now, validate_schema=True) as plain:
        channel = make_channel(urls=[plain.url])
        await channel.send(disk_full())
    assert plain.lines() == ["POST /hook alert.firing HIGH Disk full (unsigned)"]
    got = plain.received[0]
    assert got.webhook_id.startswith("msg_")
    assert got.timestamp == int(clock.now())
    assert "webhook-signature" not in got.headers


async def test_unsigned_request_is_rejected_by_a_receiver_that_expects_a_signature(
    receiver: WebhookReceiver, make_channel: Build
) -> None:
    channel = make_channel(urls=[receiver.url])
    with pytest.raises(DeliveryError) as info:
        await channel.send(disk_full())
    assert not info.value.retryable  # 401
    assert "HTTP 401" in info.value.message
    assert receiver.received == []
    assert "missing webhook-signature" in receiver.rejections[0].reason


async def test_wrong_secret_is_rejected_by_the_receiver(
    receiver: WebhookReceiver, make_channel: Build
) -> None:
    channel = make_channel(urls=[receiver.url], secret=generate_secret())
    with pytest.raises(DeliveryError, match="HTTP 401"):
        await channel.send(disk_full())
    assert receiver.rejections[0].reason.endswith("no matching signature")


async def test_configured_headers_are_sent(
    receiver: WebhookReceiver, make_channel: Build, secret: str
) -> None:
    channel = make_channel(
        urls=[receiver.url],
        secret=secret,
        headers={"Authorization": "Bearer t0ken-abc", "X-Team": "ops"},
    )
    await channel.send(disk_full())
    got = receiver.received[0].headers
    assert got["authorization"] == "Bearer t0ken-abc"
    assert got["x-team"] == "ops"


async def test_same_webhook_id_on_every_retry_new_timestamp_each_attempt(
    receiver: WebhookReceiver, make_channel: Build, secret: str, clock: FakeClock
) -> None:
    channel = make_channel(urls=[receiver.url], secret=secret)
    alert = disk_full()
    receiver.fail(503, retry_after=2)
    receiver.fail(500)
    for _ in range(2):
        with pytest.raises(DeliveryError) as info:
            await channel.send(alert)
        assert info.value.retryable
        clock.advance(30)
    await channel.send(alert)

    attempts = receiver.requests
    assert [r.status for r in attempts] == [503, 500, 200]
    assert len({r.headers["webhook-id"] for r in attempts}) == 1
    assert [int(r.headers["webhook-timestamp"]) for r in attempts] == [
        int(clock.now()) - 60,
        int(clock.now()) - 30,
        int(clock.now()),
    ]
    assert receiver.rejections == []
    assert len(receiver.received) == 1


async def test_a_delivery_the_receiver_already_has_is_not_delivered_twice(
    receiver: WebhookReceiver, make_channel: Build, secret: str
) -> None:
    # Two channel instances (say, before and after a restart) send the same alert:
    # the same webhook-id lets the receiver drop the second copy.
    alert = disk_full()
    await make_channel(urls=[receiver.url], secret=secret).send(alert)
    await make_channel(urls=[receiver.url], secret=secret).send(alert)
    assert [r.outcome for r in receiver.requests] == ["accepted", "duplicate"]
    assert len(receiver.received) == 1


async def test_several_urls_partial_failure_then_retry_only_the_failed_one(
    receiver: WebhookReceiver, make_channel: Build, secret: str
) -> None:
    urls = [receiver.url_for("/a"), receiver.url_for("/b"), receiver.url_for("/c")]
    channel = make_channel(urls=urls, secret=secret)
    alert = disk_full()
    receiver.fail(503, endpoint="/b", retry_after=5)

    with pytest.raises(DeliveryError) as info:
        await channel.send(alert)
    error = info.value
    assert error.retryable and error.retry_after == 5
    assert error.message == "webhook: 2 of 3 targets accepted; webhook target 2: HTTP 503"
    assert sorted(d.path for d in receiver.received) == ["/a", "/c"]

    receipt = await channel.send(alert)
    assert [len(receiver.requests_to(p)) for p in ("/a", "/b", "/c")] == [1, 2, 1]
    assert sorted(d.path for d in receiver.received) == ["/a", "/b", "/c"]
    assert receipt is not None and receipt["targets"] == "3"
    ids = {d.path: d.webhook_id for d in receiver.received}
    assert receipt["webhook_ids"].split() == [ids["/a"], ids["/b"], ids["/c"]]
    assert len(set(ids.values())) == 3  # one id per target
    # A later send of the same alert id (a duplicate retry) sends nothing more.
    await channel.send(alert)
    assert len(receiver.requests) == 4


async def test_a_target_that_failed_permanently_is_not_retried(
    receiver: WebhookReceiver, make_channel: Build, secret: str
) -> None:
    urls = [receiver.url_for("/ok"), receiver.url_for("/gone"), receiver.url_for("/busy")]
    channel = make_channel(urls=urls, secret=secret)
    alert = disk_full()
    receiver.fail(410, endpoint="/gone")
    receiver.fail(429, endpoint="/busy", retry_after=1)

    with pytest.raises(DeliveryError) as info:
        await channel.send(alert)
    assert info.value.retryable  # /busy may pass on retry
    assert "webhook target 2: HTTP 410 endpoint gone" in info.value.message
    assert "webhook target 3: HTTP 429" in info.value.message

    with pytest.raises(DeliveryError) as info:
        await channel.send(alert)
    # /busy accepted now; /gone stays failed and is not asked again: no more retries.
    assert not info.value.retryable
    assert info.value.message == (
        "webhook: 2 of 3 targets accepted; webhook target 2: HTTP 410 endpoint gone"
    )
    assert [len(receiver.requests_to(p)) for p in ("/ok", "/gone", "/busy")] == [1, 1, 2]


async def test_targets_are_delivered_concurrently(
    receiver: WebhookReceiver, make_channel: Build, secret: str
) -> None:
    # /slow hangs until the receiver stops; /fast must be delivered meanwhile.
    receiver.hang(endpoint="/slow")
    channel = make_channel(
        urls=[receiver.url_for("/slow"), receiver.url_for("/fast")], secret=secret, timeout=0.5
    )
    with pytest.raises(DeliveryError, match="webhook target 1: timed out"):
        await channel.send(disk_full())
    assert [d.path for d in receiver.received] == ["/fast"]


async def test_duplicate_urls_are_one_target(
    receiver: WebhookReceiver, make_channel: Build
) -> None:
    channel = make_channel(url=receiver.url, urls=[receiver.url, receiver.url], secret=None)
    assert len(channel.config.targets()) == 1


async def test_signing_with_extra_secrets_during_rotation(
    clock: FakeClock, make_channel: Build
) -> None:
    old, new = generate_secret(), generate_secret()
    async with (
        WebhookReceiver(secret=old, now=clock.now) as old_receiver,
        WebhookReceiver(secret=new, now=clock.now) as new_receiver,
    ):
        channel = make_channel(
            urls=[old_receiver.url, new_receiver.url], secret=new, extra_secrets=[old]
        )
        await channel.send(disk_full())
        assert old_receiver.lines() == new_receiver.lines()
        assert old_receiver.lines()[0].endswith("(signed)")
        signature = old_receiver.received[0].headers["webhook-signature"]
        assert len(signature.split()) == 2


async def test_progress_state_is_bounded(
    receiver: WebhookReceiver, make_channel: Build, secret: str, clock: FakeClock
) -> None:
    from pixalert_webhook import WebhookChannel

    channel = make_channel(urls=[receiver.url], secret=secret)
    small = WebhookChannel("small", channel.config, clock=clock, state_size=3)
    try:
        for i in range(5):
            await small.send(Alert(f"alert {i}"))
        assert len(small._progress) == 3
    finally:
        await small.aclose()


async def test_aclose_is_safe_twice_and_the_channel_reopens(
    receiver: WebhookReceiver, make_channel: Build, secret: str
) -> None:
    channel = make_channel(urls=[receiver.url], secret=secret)
    await channel.aclose()  # never used
    await channel.send(disk_full())
    await channel.aclose()
    await channel.aclose()
    await channel.send(Alert("again"))
    assert len(receiver.received) == 2


async def test_cancelled_send_keeps_what_was_accepted(
    receiver: WebhookReceiver, make_channel: Build, secret: str
) -> None:
    """The core cancels a send at its attempt timeout: targets that accepted stay done."""
    import asyncio

    receiver.hang(endpoint="/slow")
    channel = make_channel(
        urls=[receiver.url_for("/fast"), receiver.url_for("/slow")], secret=secret, timeout=30
    )
    alert = disk_full()
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(channel.send(alert), timeout=1)
    await channel.send(alert)  # the retry: /slow answers now
    assert [len(receiver.requests_to(p)) for p in ("/fast", "/slow")] == [1, 2]
    assert sorted(d.path for d in receiver.received) == ["/fast", "/slow"]
