"""pixalert.http.Endpoint: prepared requests through the client's transport, on a real server."""

from __future__ import annotations

import asyncio
import json
import logging

import httpx
import pytest
from pixalert.http import Endpoint, error_for_exception, make_client

from .conftest import header_values

BIG = 1024 * 1024


@pytest.fixture
def server(echo_server: str) -> str:
    return echo_server


async def test_sends_body_with_client_and_own_headers(server: str) -> None:
    async with make_client(headers={"X-Client": "c", "User-Agent": "client/1"}) as client:
        endpoint = Endpoint(
            client,
            f"{server}/echo?token=s3cr3t",
            headers={"Content-Type": "application/json", "User-Agent": "channel/2"},
        )
        response = await endpoint.send(b'{"a":1}', [(b"x-extra", b"one")])
        echoed = json.loads(await response.aread())
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert echoed["method"] == "POST"
    assert echoed["path_qs"] == "/echo?token=s3cr3t"
    assert echoed["body"] == '{"a":1}'
    port = server.rsplit(":", 1)[1]
    assert header_values(echoed, "host") == [f"127.0.0.1:{port}"]
    assert header_values(echoed, "content-length") == ["7"]
    assert header_values(echoed, "content-type") == ["application/json"]
    # The endpoint's own header wins over the client's, and is sent once.
    assert header_values(echoed, "user-agent") == ["channel/2"]
    assert header_values(echoed, "x-client") == ["c"]
    assert header_values(echoed, "x-extra") == ["one"]


async def test_many_requests_share_the_pool(server: str) -> None:
    async with make_client() as client:
        endpoint = Endpoint(client, f"{server}/echo")
        responses = await asyncio.gather(*(endpoint.send(b"%d" % i) for i in range(50)))
        bodies = [json.loads(await r.aread())["body"] for r in responses]
    assert bodies == [str(i) for i in range(50)]


async def test_a_large_body_streams_and_the_client_stays_usable(server: str) -> None:
    async with make_client() as client:
        big = Endpoint(client, f"{server}/big")
        response = await big.send(b"")
        first = b""
        async for chunk in response.aiter_bytes():
            first += chunk
            if len(first) >= 2048:
                break
        await response.aclose()
        assert 2048 <= len(first) < BIG
        full = await big.send(b"")
        assert len(await full.aread()) == BIG
        echo = await Endpoint(client, f"{server}/echo").send(b"after")
        assert json.loads(await echo.aread())["body"] == "after"


async def test_redirects_are_not_followed(server: str) -> None:
    async with make_client() as client:
        response = await Endpoint(client, f"{server}/moved").send(b"{}")
        await response.aclose()
    assert response.status_code == 302
    assert response.headers["location"] == "/echo"
    assert response.request.url == f"{server}/moved"  # set as the client sets it
    assert response.is_redirect


async def test_the_clients_read_timeout_applies(server: str) -> None:
    async with make_client(timeout=0.3) as client:
        with pytest.raises(httpx.TimeoutException) as info:
            await Endpoint(client, f"{server}/hang?token=s3cr3t").send(b"{}")
    error = error_for_exception(info.value, "svc")
    assert error.retryable and error.message.startswith("svc: timed out")


async def test_refused_connection_is_an_httpx_transport_error(refused_url: str) -> None:
    async with make_client(timeout=2) as client:
        with pytest.raises(httpx.TransportError) as info:
            await Endpoint(client, f"{refused_url}/hook/s3cr3t-path").send(b"{}")
    error = error_for_exception(info.value, "svc")
    assert error.message.startswith("svc: connection failed")
    assert "s3cr3t-path" not in error.message


async def test_a_mock_transport_receives_the_request() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"ok": True})

    async with httpx.AsyncClient(
        transport=httpx.MockTransport(handler), headers={"X-Client": "c"}, timeout=3
    ) as client:
        endpoint = Endpoint(client, "https://hooks.example.com/h", headers={"X-Own": "o"})
        response = await endpoint.send(b"payload", [(b"x-extra", b"e")])
        assert json.loads(await response.aread()) == {"ok": True}
    assert response.status_code == 201
    (request,) = seen
    assert request.method == "POST"
    assert str(request.url) == "https://hooks.example.com/h"
    assert request.content == b"payload"
    assert request.headers["host"] == "hooks.example.com"
    assert request.headers["content-length"] == "7"
    assert request.headers["x-client"] == "c"
    assert request.headers["x-own"] == "o"
    assert request.headers["x-extra"] == "e"
    assert request.extensions["timeout"] == httpx.Timeout(3).as_dict()


async def test_a_mounted_transport_is_used_for_its_urls() -> None:
    def answer(code: int) -> httpx.MockTransport:
        return httpx.MockTransport(lambda request: httpx.Response(code))

    async with httpx.AsyncClient(
        transport=answer(200), mounts={"https://special.example.com": answer(202)}
    ) as client:
        plain = await Endpoint(client, "https://other.example.com/").send(b"")
        special = await Endpoint(client, "https://special.example.com/x").send(b"")
    assert (plain.status_code, special.status_code) == (200, 202)


async def test_a_closed_client_refuses_to_send() -> None:
    client = make_client()
    endpoint = Endpoint(client, "http://127.0.0.1:9/hook")
    await client.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await endpoint.send(b"{}")


async def test_bad_urls_are_refused_without_repeating_them() -> None:
    async with make_client() as client:
        for url in (
            "ftp://example.com/s3cr3t",
            "/relative/s3cr3t",
            "http:///s3cr3t",
            "http://h:x/s3cr3t",
        ):
            with pytest.raises(ValueError) as info:
                Endpoint(client, url)
            assert "s3cr3t" not in str(info.value)
        endpoint = Endpoint(client, "https://hooks.example.com/T000/s3cr3t?token=s3cr3t")
    assert "s3cr3t" not in repr(endpoint)
    assert "hooks.example.com" in repr(endpoint)


async def test_the_request_line_is_logged_as_httpx_does_with_secrets_masked(
    server: str, caplog: pytest.LogCaptureFixture
) -> None:
    from pixalert.channels import register_secret

    register_secret("endpoint-t0ken-9f3a")
    caplog.set_level(logging.INFO, logger="httpx")
    async with make_client() as client:
        response = await Endpoint(client, f"{server}/echo?token=endpoint-t0ken-9f3a").send(b"")
        await response.aclose()
    (line,) = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert line.startswith("HTTP Request: POST http://127.0.0.1:")
    assert line.endswith('"HTTP/1.1 200 OK"')
    assert "endpoint-t0ken-9f3a" not in caplog.text


async def test_a_small_answer_frees_its_connection_and_every_way_of_reading_it_works(
    server: str,
) -> None:
    async with make_client(max_connections=1) as client:
        endpoint = Endpoint(client, f"{server}/echo")
        first = await endpoint.send(b"small")
        # One connection: the second send would wait for the pool (and time
        # out) had the first answer not handed its connection back already.
        second = await asyncio.wait_for(endpoint.send(b"again"), timeout=5)
        assert not first.is_closed  # unread, as client.send(stream=True) returns it
        assert json.loads(await first.aread())["body"] == "small"
        assert first.is_closed and first.is_stream_consumed
        assert json.loads(first.content)["body"] == "small"
        assert json.loads(first.text)["body"] == "small"
        assert first.json()["body"] == "small"
        assert json.loads(b"".join([c async for c in first.aiter_bytes()]))["body"] == "small"
        await first.aclose()  # a no-op, as on any closed response
        assert first.headers["content-type"].startswith("application/json")
        assert int(first.headers["Content-Length"]) == len(first.content)
        assert first.headers.raw[0][0][:1].isupper()  # names kept as sent
        assert first.http_version == "HTTP/1.1" and first.reason_phrase == "OK"
        assert first.elapsed.total_seconds() >= 0
        body = b"".join([c async for c in second.aiter_bytes()])
        assert json.loads(body)["body"] == "again"


async def test_endpoints_on_one_client_reach_their_own_urls(server: str) -> None:
    async with make_client() as client:
        endpoints = [Endpoint(client, f"{server}/echo?n={i}") for i in range(3)]
        for _ in range(2):  # again: the transport's per-URL cache must not mix them up
            for i, endpoint in enumerate(endpoints):
                response = await endpoint.send(b"")
                assert json.loads(await response.aread())["path_qs"] == f"/echo?n={i}"
        # A plain client request to another URL still goes where it should.
        response = await client.post(f"{server}/echo?n=plain", content=b"x")
        assert response.json()["path_qs"] == "/echo?n=plain"


async def test_per_request_headers_may_be_str_pairs(server: str) -> None:
    async with make_client() as client:
        response = await Endpoint(client, f"{server}/echo").send(b"", [("X-Str", "s")])
        echoed = json.loads(await response.aread())
    assert header_values(echoed, "x-str") == ["s"]
