"""Faults of real services, classified by the channel and retried by a real NotificationManager."""

from __future__ import annotations

from typing import Any

import pytest
from pixalert import DeliveryError
from pixalert.testing import make_manager

from .conftest import MakeChannel


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(500, True), (503, True), (429, True), (408, True), (404, False), (400, False), (401, False)],
)
async def test_http_status_is_classified(
    sink: Any, make_channel: MakeChannel, status: int, retryable: bool
) -> None:
    channel = make_channel({"urls": [sink.url_of("json")]})
    sink.fail(status)
    with pytest.raises(DeliveryError) as caught:
        await channel.send(_alert())
    assert caught.value.retryable is retryable
    assert caught.value.message.startswith(f"apprise (json): HTTP {status}")
    assert caught.value.retry_after is None  # Apprise does not pass Retry-After on


async def test_refused_is_retryable(make_channel: MakeChannel, closed_port: int) -> None:
    channel = make_channel({"urls": [f"json://127.0.0.1:{closed_port}/hook/Tok3n-abc"]})
    with pytest.raises(DeliveryError) as caught:
        await channel.send(_alert())
    assert caught.value.retryable
    assert caught.value.message.startswith("apprise (json): connection failed")


async def test_a_hang_is_a_retryable_timeout(sink: Any, make_channel: MakeChannel) -> None:
    # Apprise's service_timeout (the channel's `timeout`) ends the wait.
    channel = make_channel({"urls": [sink.url_of("json")], "timeout": 0.3})
    sink.hang()
    with pytest.raises(DeliveryError) as caught:
        await channel.send(_alert())
    assert caught.value.retryable
    assert caught.value.message == "apprise (json): timed out after 0.3s"


async def test_smtp_refusals(smtp: Any, make_channel: MakeChannel) -> None:
    # One recipient of several refused: Apprise reports the SMTP code, 5xx is permanent.
    channel = make_channel({"urls": [smtp.mailto_url("a@example.com") + "&cc=b@example.com"]})
    smtp.fail(550, "5.1.1 No such user")
    with pytest.raises(DeliveryError) as caught:
        await channel.send(_alert())
    assert not caught.value.retryable
    assert caught.value.message.startswith("apprise (mailto): SMTP 550")
    smtp.fail(451, "4.3.0 Try later")
    with pytest.raises(DeliveryError) as caught:
        await channel.send(_alert("second"))
    assert caught.value.retryable
    assert caught.value.message.startswith("apprise (mailto): SMTP 451")


async def test_smtp_refusal_without_a_code_is_retryable(
    smtp: Any, make_channel: MakeChannel
) -> None:
    # Its only recipient refused: Apprise logs no code, so it may pass on retry.
    channel = make_channel({"urls": [smtp.mailto_url("a@example.com")]})
    smtp.fail(550, "5.1.1 No such user")
    with pytest.raises(DeliveryError) as caught:
        await channel.send(_alert())
    assert caught.value.retryable
    assert caught.value.message.startswith("apprise (mailto): failed")


def _manager(section: dict[str, Any], **delivery: Any) -> Any:
    import pixalert_apprise

    return make_manager(
        plugins=[pixalert_apprise],
        config={
            "channels": {"alerts": {"type": "apprise", **section}},
            "delivery": {"max_attempts": 3, "backoff": 0, "timeout": 5, **delivery},
        },
    )


async def _send(manager: Any, title: str = "Disk full") -> Any:
    results = await manager.send_alert(title, "95% on db-1", "high", channels=["alerts"])
    return results["alerts"]


async def test_manager_retries_a_500_and_sends(sink: Any) -> None:
    sink.fail(500)
    async with _manager({"urls": [sink.url_of("json")]}) as manager:
        result = await _send(manager)
    assert result.status.value == "sent" and result.attempts == 2
    assert [r.status for r in sink.requests] == [500, 200]


async def test_manager_fails_a_404_at_once(sink: Any) -> None:
    sink.fail(404, times=5)
    async with _manager({"urls": [sink.url_of("json")]}) as manager:
        result = await _send(manager)
        history = await manager.history()
    assert result.status.value == "failed" and result.attempts == 1
    assert result.error.startswith("apprise (json): HTTP 404")
    assert history[0]["results"]["alerts"]["status"] == "failed"


async def test_manager_retries_a_refused_connection(closed_port: int) -> None:
    url = f"json://127.0.0.1:{closed_port}/hook/Tok3n-abc"
    async with _manager({"urls": [url]}) as manager:
        result = await _send(manager)
    # Retried, then left on the timeline for a later round (it is not a permanent error).
    assert result.status.value == "retrying" and result.attempts == 3
    assert "connection failed" in result.error


async def test_manager_retries_a_timeout(sink: Any) -> None:
    sink.hang()
    async with _manager({"urls": [sink.url_of("json")], "timeout": 0.3}) as manager:
        result = await _send(manager)
    assert result.status.value == "sent" and result.attempts == 2
    assert len(sink.notifications) == 1


async def test_manager_cancels_a_hung_send_and_retries(sink: Any) -> None:
    # pixalert's own delivery.timeout (shorter than Apprise's) cancels the wait.
    sink.hang()
    async with _manager({"urls": [sink.url_of("json")]}, timeout=0.3) as manager:
        result = await _send(manager)
    assert result.status.value == "sent" and result.attempts == 2


def _alert(title: str = "Disk full") -> Any:
    from pixalert import Alert

    return Alert(title, "95% on db-1", "high")
