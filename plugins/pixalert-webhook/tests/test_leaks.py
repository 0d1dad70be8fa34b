"""No secret leaks: URL (path and query token), signing secret and auth header never show.

Each failure a webhook can meet (refused connection, a receiver that hangs, a
404, a 500 whose body echoes the request URL) is provoked against a real
local server; then the error, every exception in its cause chain, the reprs,
the captured logs at DEBUG and, through the manager, the results, the history
and the history database's bytes are searched for each secret.
"""

from __future__ import annotations

import logging
import secrets as random
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pixalert_webhook
import pytest
from pixalert import Alert, DeliveryError
from pixalert.testing import make_manager
from pixalert_webhook import WebhookChannel, generate_secret
from pixalert_webhook.testing import WebhookReceiver

TOKEN = "qtok" + random.token_hex(12)
PATH_SECRET = "pth" + random.token_hex(12)
AUTH = "auth" + random.token_hex(12)
SECRET = generate_secret()
SCENARIOS = ["refused", "hang", "404", "500-echo"]


@attrs.frozen
class Setup:
    """A scenario's config section and the secrets that must never show."""

    section: dict[str, Any]
    needles: list[str]


@pytest.fixture
async def leaky_receiver() -> AsyncIterator[WebhookReceiver]:
    """A receiver that requires the URL token (and checks signatures with SECRET)."""
    async with WebhookReceiver(secret=SECRET, token=TOKEN, validate_schema=True) as server:
        yield server


def scenario_setup(name: str, receiver: WebhookReceiver) -> Setup:
    path = f"/hooks/{PATH_SECRET}"
    if name == "refused":
        url = receiver.refused_url(receiver.url_for(path))
    else:
        url = receiver.url_for(path)
        if name == "hang":
            receiver.hang(times=5)
        elif name == "404":
            receiver.fail(404, times=5, body=f"no hook at {url} (token {TOKEN})")
        else:
            receiver.fail(500, times=5, body=lambda r: f"internal error while handling {r.url}")
    section = {
        "urls": [url],
        "secret": SECRET,
        "headers": {"Authorization": f"Bearer {AUTH}", "X-Api-Key": AUTH},
        "timeout": 0.3,
    }
    needles = [url, TOKEN, PATH_SECRET, AUTH, SECRET, SECRET.removeprefix("whsec_")]
    return Setup(section, needles)


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, its __cause__ and __context__, recursively, each once."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        todo.extend(e for e in (item.__cause__, item.__context__) if e is not None)


def assert_clean(text: str, needles: list[str], where: str) -> None:
    for needle in needles:
        assert needle not in text, f"secret leaked in {where}"


def log_text(caplog: pytest.LogCaptureFixture) -> str:
    lines = [caplog.text]
    for record in caplog.records:
        lines.append(record.getMessage())
        lines.append(repr(record.args))
        if record.exc_info and record.exc_info[1] is not None:
            lines.extend(repr(e) + str(e) for e in exception_chain(record.exc_info[1]))
    return "\n".join(lines)


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_channel_errors_logs_and_reprs_hold_no_secret(
    scenario: str,
    leaky_receiver: WebhookReceiver,
    make_channel: Callable[..., WebhookChannel],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    setup = scenario_setup(scenario, leaky_receiver)
    channel = make_channel("ops-hook", **setup.section)

    with pytest.raises(DeliveryError) as info:
        await channel.send(Alert("Disk full", "95%", "high"))
    error = info.value
    assert error.retryable is (scenario != "404")
    for item in exception_chain(error):
        assert_clean(str(item), setup.needles, "an exception message")
        assert_clean(repr(item), setup.needles, "an exception repr")
        assert_clean(repr(item.args), setup.needles, "exception args")
    assert_clean(repr(channel.config), setup.needles, "repr(config)")
    assert_clean(str(channel.config), setup.needles, "str(config)")
    assert_clean(repr(channel), setup.needles, "repr(channel)")
    assert_clean(log_text(caplog), setup.needles, "the logs")
    # The scenario really happened: the receiver saw the request (except when refused).
    if scenario != "refused":
        assert leaky_receiver.requests and leaky_receiver.requests[0].outcome == "fault"


async def test_the_echoed_url_really_carried_the_token(
    leaky_receiver: WebhookReceiver, make_channel: Callable[..., WebhookChannel]
) -> None:
    """Guard for the test above: without redaction, the 500 body would leak the token."""
    import httpx

    setup = scenario_setup("500-echo", leaky_receiver)
    async with httpx.AsyncClient() as client:
        response = await client.post(setup.section["urls"][0], json={})
    assert TOKEN in response.text and PATH_SECRET in response.text


async def test_a_successful_delivery_logs_no_secret(
    leaky_receiver: WebhookReceiver,
    make_channel: Callable[..., WebhookChannel],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = leaky_receiver.url_for(f"/hooks/{PATH_SECRET}")
    channel = make_channel(urls=[url], secret=SECRET, headers={"Authorization": f"Bearer {AUTH}"})
    receipt = await channel.send(Alert("Disk full"))
    assert leaky_receiver.lines() == [
        "POST /hooks/" + PATH_SECRET + " alert.firing MEDIUM Disk full (signed)"
    ]
    needles = [url, TOKEN, PATH_SECRET, AUTH, SECRET]
    assert_clean(log_text(caplog), needles, "the logs")
    assert_clean(repr(receipt), needles, "the receipt")


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_through_the_manager_results_history_and_database_hold_no_secret(
    scenario: str,
    leaky_receiver: WebhookReceiver,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    setup = scenario_setup(scenario, leaky_receiver)
    db = tmp_path / "history.db"
    manager = make_manager(
        config={
            "channels": {"ops-hook": {"type": "webhook", **setup.section}},
            "delivery": {"timeout": 1.0, "max_attempts": 2},
        },
        plugins=[pixalert_webhook],
        history=f"sqlite:///{db}",
    )
    async with manager:
        results = await manager.send_alert(
            "Disk full", "95% on db-1", "critical", channels=["ops-hook"]
        )
        history = await manager.history()
        stats = await manager.stats()
        health = await manager.health()
    result = results["ops-hook"]
    assert not result
    assert result.error and result.error.startswith("webhook: ")
    assert result.attempts == (1 if scenario == "404" else 2)
    assert_clean(repr(results), setup.needles, "the results")
    assert_clean(repr(history), setup.needles, "the history")
    assert_clean(repr(stats) + repr(health), setup.needles, "stats and health")
    assert_clean(log_text(caplog), setup.needles, "the logs")
    raw = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    for needle in setup.needles:
        assert needle.encode() not in raw, "secret leaked in the history database"
