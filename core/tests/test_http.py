"""pixalert.http: the shared client and error policy of HTTP channels, on a real local server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from pixalert.http import error_for_exception, error_for_response, make_client, parse_retry_after


@pytest.fixture
async def server(serve_app: Any) -> AsyncIterator[str]:
    async def status(request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        headers = {"Retry-After": request.query["ra"]} if "ra" in request.query else {}
        if 300 <= code < 400:
            headers["Location"] = "/elsewhere"
        return web.Response(status=code, text=f"echo {request.path_qs}", headers=headers)

    app = web.Application()
    app.router.add_route("*", "/status/{code}", status)
    yield await serve_app(app)


@pytest.mark.parametrize(
    ("code", "retryable"),
    [
        (400, False),
        (401, False),
        (404, False),
        (408, True),
        (429, True),
        (500, True),
        (503, True),
        (302, False),
    ],
)
async def test_status_classification(server: str, code: int, retryable: bool) -> None:
    async with make_client(timeout=5) as client:
        response = await client.post(f"{server}/status/{code}?token=s3cr3t-t0ken", json={})
    assert response.status_code == code  # redirects are not followed
    error = error_for_response(response, "svc", secrets=["s3cr3t-t0ken"])
    assert error.retryable is retryable
    assert "s3cr3t-t0ken" not in error.message
    assert error.message.startswith(f"svc: HTTP {code}")


async def test_retry_after_is_read(server: str) -> None:
    async with make_client() as client:
        response = await client.get(f"{server}/status/429?ra=7")
    assert error_for_response(response, "svc").retry_after == 7


async def test_refused_connection_is_a_connection_failure_without_the_url(
    refused_url: str,
) -> None:
    async with make_client(timeout=2) as client:
        with pytest.raises(Exception) as info:
            await client.get(f"{refused_url}/hook/s3cr3t-path")
    error = error_for_exception(info.value, "svc")
    assert error.message.startswith("svc: connection failed")
    assert error.retryable and "s3cr3t-path" not in error.message


def test_parse_retry_after() -> None:
    assert parse_retry_after("12") == 12
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470) == 10
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
