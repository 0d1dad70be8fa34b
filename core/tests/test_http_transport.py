"""pixalert.http's aiohttp transport: httpx behaviour over aiohttp, on real loopback servers."""

from __future__ import annotations

import asyncio
import gc
import json
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from aiohttp import web
from pixalert.http import Endpoint, error_for_exception, make_client, release_loop

from .conftest import header_values

SECRET_PATH = "/hook/s3cr3t-path-5e1f?token=s3cr3t-query-5e1f"


@pytest.fixture
def server(echo_server: str) -> str:
    return echo_server


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def raw_server(answer: Handler) -> tuple[asyncio.Server, str]:
    """A TCP server on 127.0.0.1 that runs ``answer`` for each connection."""
    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


def assert_no_url_secret(exc: BaseException) -> None:
    text = str(exc)
    assert "s3cr3t" not in text, text


async def test_httpx_default_headers_go_once_and_aiohttp_adds_none_of_its_own(server: str) -> None:
    async with make_client(headers={"X-Client": "c"}) as client:
        echoed = (await client.post(f"{server}/echo", content=b"{}")).json()
    assert len(header_values(echoed, "user-agent")) == 1
    assert header_values(echoed, "user-agent")[0].startswith("python-httpx/")
    assert len(header_values(echoed, "accept-encoding")) == 1
    assert header_values(echoed, "accept") == ["*/*"]
    assert header_values(echoed, "x-client") == ["c"]


async def test_repeated_headers_stay_separate_both_ways(server: str) -> None:
    async with make_client() as client:
        response = await client.post(
            f"{server}/echo", content=b"", headers=[("X-Multi", "1"), ("X-Multi", "2")]
        )
    assert header_values(response.json(), "x-multi") == ["1", "2"]
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]


@pytest.mark.parametrize("size", [10, 1024 * 1024])
async def test_a_compressed_answer_is_decoded_by_httpx(server: str, size: int) -> None:
    async with make_client() as client:
        response = await client.get(f"{server}/gzip?size={size}")
        assert response.headers["content-encoding"] == "gzip"
        assert response.content == b"z" * size
        streamed = await Endpoint(client, f"{server}/gzip?size={size}", method="GET").send(b"")
        assert b"".join([c async for c in streamed.aiter_bytes()]) == b"z" * size


async def test_a_streamed_request_body_arrives_whole(server: str) -> None:
    async def parts() -> AsyncIterator[bytes]:
        for i in range(5):
            yield b"part%d;" % i

    async with make_client() as client:
        echoed = (await client.post(f"{server}/echo", content=parts())).json()
    assert echoed["body"] == "part0;part1;part2;part3;part4;"
    assert echoed["chunked"] is True


async def test_a_refused_connection_is_a_connect_error_without_the_path(refused_url: str) -> None:
    async with make_client(timeout=2) as client:
        with pytest.raises(httpx.ConnectError) as info:
            await client.get(refused_url + SECRET_PATH)
    assert_no_url_secret(info.value)
    assert str(info.value.request.url).startswith(refused_url)
    assert error_for_exception(info.value, "svc").message == "svc: connection failed (ConnectError)"


async def test_a_server_that_hangs_up_is_a_remote_protocol_error() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    server, url = await raw_server(hang_up)
    async with server, make_client(timeout=2) as client:
        with pytest.raises(httpx.RemoteProtocolError) as info:
            await client.post(url + SECRET_PATH, content=b"{}")
    assert_no_url_secret(info.value)
    assert error_for_exception(info.value, "svc").retryable


async def test_a_garbled_answer_is_a_transport_error_without_the_path() -> None:
    async def garble(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()
        writer.close()

    server, url = await raw_server(garble)
    async with server, make_client(timeout=2) as client:
        with pytest.raises(httpx.TransportError) as info:
            await client.get(url + SECRET_PATH)
    assert_no_url_secret(info.value)


async def test_waiting_for_a_pooled_connection_honours_the_pool_timeout(server: str) -> None:
    async with make_client(max_connections=1, timeout=5) as client:
        hanging = asyncio.ensure_future(client.get(f"{server}/hang"))
        await asyncio.sleep(0)  # let it take the only connection
        with pytest.raises(httpx.TimeoutException) as info:
            await client.get(f"{server}{SECRET_PATH}", timeout=httpx.Timeout(5, pool=0.2))
        hanging.cancel()
        with pytest.raises(asyncio.CancelledError):
            await hanging
    assert_no_url_secret(info.value)
    assert error_for_exception(info.value, "svc").message.startswith("svc: timed out")


async def test_an_endpoint_on_a_client_with_auth_goes_through_client_send(server: str) -> None:
    seen: list[str] = []

    async def hook(request: httpx.Request) -> None:
        seen.append(request.method)

    async with make_client() as client:
        client.auth = ("user", "pass")
        client.event_hooks = {"request": [hook], "response": []}
        response = await Endpoint(client, f"{server}/echo").send(b"x")
        echoed = json.loads(await response.aread())
    assert header_values(echoed, "authorization") == ["Basic dXNlcjpwYXNz"]
    assert seen == ["POST"]


def _aiohttp_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    texts = [str(w.message) for w in caught]
    return [t for t in texts if "Unclosed client session" in t or "Unclosed connector" in t]


def test_one_client_serves_one_event_loop_after_another(server_url: str) -> None:
    client = make_client(timeout=5)

    async def get() -> int:
        return (await client.get(f"{server_url}/echo")).status_code

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert [asyncio.run(get()) for _ in range(3)] == [200, 200, 200]
        asyncio.run(client.aclose())
        gc.collect()
    assert _aiohttp_warnings(caught) == []


def test_release_loop_lets_go_of_a_closed_loops_sessions_quietly(
    server_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    loop = asyncio.new_event_loop()
    client = make_client(timeout=5)
    response = loop.run_until_complete(client.get(f"{server_url}/echo"))
    assert response.status_code == 200  # its connection is kept in the pool
    loop.close()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        release_loop(loop)
        del client, response
        gc.collect()
    assert _aiohttp_warnings(caught) == []
    assert not [r for r in caplog.records if "Unclosed" in r.getMessage()]


@pytest.fixture
def server_url() -> Any:
    """The echo server in a thread with its own loop (for tests that run loops themselves)."""
    import threading

    ready: list[str] = []
    started = threading.Event()
    stop: list[Callable[[], None]] = []

    def run() -> None:
        loop = asyncio.new_event_loop()

        async def main() -> None:
            async def echo(request: web.Request) -> web.Response:
                await request.read()
                return web.json_response({"ok": True})

            app = web.Application()
            app.router.add_route("*", "/echo", echo)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            ready.append(f"http://127.0.0.1:{port}")
            done = asyncio.Event()
            stop.append(lambda: loop.call_soon_threadsafe(done.set))
            started.set()
            await done.wait()
            await runner.cleanup()

        loop.run_until_complete(main())
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10)
    yield ready[0]
    stop[0]()
    thread.join(10)
