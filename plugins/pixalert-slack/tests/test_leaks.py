"""No secret leaks: the webhook URL's path and the bot token never appear in errors, their
cause or context chains, reprs, or logs captured at DEBUG, whatever goes wrong."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator

import pytest
from aiohttp import web
from pixalert import Alert, DeliveryError
from pixalert_slack.testing import SlackServer

from .conftest import MakeChannel


def chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception reachable through ``__cause__`` and ``__context__``."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        todo.extend(getattr(current, "exceptions", ()))


def assert_clean(texts: list[str], secrets: list[str]) -> None:
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"secret leaked in: {text[:300]!r}"


def echo_everything(request: web.Request) -> str:
    return json.dumps(
        {
            "ok": False,
            "error": request.path.rsplit("/", 1)[-1],
            "url": str(request.url),
            "auth": request.headers.get("Authorization", ""),
            "response_metadata": {
                "messages": [str(request.url), request.headers.get("Authorization", "")]
            },
        }
    )


Provoke = Callable[[SlackServer], dict[str, object]]


def connect_error(slack: SlackServer) -> dict[str, object]:
    return {"webhook_url": slack.refused_url(slack.webhook_url)}


def timeout(slack: SlackServer) -> dict[str, object]:
    slack.hang()
    return slack.config("webhook", timeout=0.2)


def not_found(slack: SlackServer) -> dict[str, object]:
    slack.fail(404, body=echo_everything)
    return slack.config("webhook")


def server_error_echoing_url(slack: SlackServer) -> dict[str, object]:
    slack.fail(500, body=lambda request: f"internal error at {request.url} ({request.path})")
    return slack.config("webhook")


def bare_secret_in_body(slack: SlackServer) -> dict[str, object]:
    slack.fail(500, body=lambda request: request.path.rsplit("/", 1)[-1])
    return slack.config("webhook")


def rate_limited_echo(slack: SlackServer) -> dict[str, object]:
    slack.fail(429, body=echo_everything, headers={"Retry-After": "1"})
    return slack.config("webhook")


def redirect_to_itself(slack: SlackServer) -> dict[str, object]:
    slack.fail(301, body=lambda request: str(request.url), headers={"Location": slack.webhook_url})
    return slack.config("webhook")


def api_server_error_echo(slack: SlackServer) -> dict[str, object]:
    slack.fail(500, body=echo_everything)
    return slack.config("api")


def api_ok_false_echo(slack: SlackServer) -> dict[str, object]:
    slack.fail(200, body=echo_everything, headers={"Content-Type": "application/json"})
    return slack.config("api")


def api_connect_error(slack: SlackServer) -> dict[str, object]:
    return slack.config("api", api_url=slack.refused_url(slack.api_url))


def api_timeout(slack: SlackServer) -> dict[str, object]:
    slack.hang()
    return slack.config("api", timeout=0.2)


@pytest.mark.parametrize(
    "provoke",
    [
        connect_error,
        timeout,
        not_found,
        server_error_echoing_url,
        bare_secret_in_body,
        rate_limited_echo,
        redirect_to_itself,
        api_server_error_echo,
        api_ok_false_echo,
        api_connect_error,
        api_timeout,
    ],
)
async def test_no_secret_anywhere(
    slack: SlackServer,
    make_channel: MakeChannel,
    caplog: pytest.LogCaptureFixture,
    provoke: Provoke,
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = [slack.secret, slack.webhook_path, slack.token]
    section = provoke(slack)
    channel = make_channel(section)
    with pytest.raises(DeliveryError) as info:
        await channel.send(Alert("Disk full", "/ is 97% full", "high"))

    texts = [repr(channel), repr(channel.config), str(channel.config)]
    for exc in chain(info.value):
        texts += [str(exc), repr(exc), repr(exc.args)]
    texts += [record.getMessage() for record in caplog.records]
    texts.append(caplog.text)
    assert_clean(texts, secrets)
    # The chain was cut: nothing from httpx or aiohttp rides along.
    assert info.value.__cause__ is None and info.value.__context__ is None
    # Where a response came back, httpx logged the request line (with the URL,
    # masked), so the log check above meant something.
    if any(request.status is not None for request in slack.requests):
        logged = [r.getMessage() for r in caplog.records if r.name == "httpx"]
        assert logged
        if "webhook_url" in section:
            assert "**********" in logged[0]


async def test_successful_sends_log_no_secret(
    slack: SlackServer, make_channel: MakeChannel, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for mode in ("webhook", "api"):
        channel = make_channel(slack.config(mode))
        await channel.send(Alert("Disk full", "/ is 97% full", "high"))
    assert any(record.name == "httpx" for record in caplog.records)
    assert_clean([caplog.text], [slack.secret, slack.webhook_path, slack.token])
