"""An httpx transport over one ``aiohttp.ClientSession``, through both libraries' public APIs.

:func:`pixalert.http.make_client` puts it under an ``httpx.AsyncClient``:
httpx's API for channels, aiohttp's connection pool (which stays fast as
concurrency rises) underneath. Imported on first use, so that importing
:mod:`pixalert.http` does not import aiohttp.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ssl
import time
import weakref
from collections.abc import AsyncIterator, Callable

import aiohttp
import httpx
import yarl

from ._redact import redact

__all__ = ["AiohttpTransport", "release"]

# Bounds of the per-transport parse caches (keyed by value, cleared when full).
_CACHE_SIZE = 256

# aiohttp's exceptions and the httpx exception each becomes, most specific first.
_ERRORS: tuple[tuple[type[BaseException], type[httpx.TransportError]], ...] = (
    (aiohttp.ClientProxyConnectionError, httpx.ProxyError),
    (aiohttp.ClientHttpProxyError, httpx.ProxyError),
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.SocketTimeoutError, httpx.ReadTimeout),
    (asyncio.TimeoutError, httpx.ReadTimeout),
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx.RemoteProtocolError),
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
    (aiohttp.NonHttpUrlClientError, httpx.UnsupportedProtocol),
    (ConnectionResetError, httpx.ReadError),
    (aiohttp.ClientOSError, httpx.NetworkError),
    (aiohttp.ClientConnectionError, httpx.NetworkError),
    (OSError, httpx.NetworkError),
    (aiohttp.ClientError, httpx.TransportError),
)
_MAPPED = tuple(source for source, _ in _ERRORS)


def _as_httpx_error(exc: BaseException, request: httpx.Request) -> httpx.TransportError:
    """The httpx exception for aiohttp's ``exc``; its message holds no path or query.

    It names aiohttp's exception and keeps its text (the URL's path and query
    cut out, registered secrets masked); it is raised ``from None``, since
    aiohttp's own message may carry the whole URL.
    """
    kind = next(target for source, target in _ERRORS if isinstance(exc, source))
    text = str(exc)
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    url = request.url
    full = str(url)
    if full in text:
        text = text.replace(full, f"{url.scheme}://{url.netloc.decode('ascii')}/...")
    target = url.raw_path.decode("ascii", "replace")
    if len(target) > 1 and target in text:
        text = text.replace(target, "/...")
    return kind(redact(text), request=request)


class _Body(httpx.AsyncByteStream):
    """A response body still arriving: read from aiohttp as it comes."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except _MAPPED as exc:
            raise _as_httpx_error(exc, self._request) from None

    async def aclose(self) -> None:
        # Back to the pool when the body was read to its end, else closed.
        self._response.release()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """Sends httpx requests through one ``aiohttp.ClientSession``.

    The session is opened on the first request, in the running event loop
    (again if the loop changes), and closed by :meth:`aclose`. Requests go
    out with httpx's headers; aiohttp adds a default only for a missing
    ``Accept``, ``Accept-Encoding``, ``User-Agent`` or ``Content-Type``
    (an ``httpx.AsyncClient`` sends the first three itself). Redirects are
    not followed, and bodies are not decompressed by aiohttp (httpx decodes
    them). httpx's ``connect``, ``read`` and ``pool`` timeouts apply
    (aiohttp has no write timeout). aiohttp's errors arrive as the
    ``httpx.TransportError`` family, without the URL's path or query in
    their messages. An answer whose body has fully arrived with its headers
    (a small one) hands its connection back to the pool at once, its body
    kept in memory for reading.
    """

    def __init__(
        self, *, tls: ssl.SSLContext | bool, max_connections: int, keepalive_expiry: float | None
    ) -> None:
        self._tls = tls
        self._max_connections = max_connections
        self._keepalive = 15.0 if keepalive_expiry is None else keepalive_expiry
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._urls: dict[str, yarl.URL] = {}
        self._timeouts: dict[tuple[float | None, ...], aiohttp.ClientTimeout] = {}
        _TRANSPORTS.add(self)

    def _open(self, loop: asyncio.AbstractEventLoop) -> aiohttp.ClientSession:
        old, old_loop = self._session, self._loop
        if old is not None and old_loop is not None:
            _let_go(old, old_loop)
        connector = aiohttp.TCPConnector(
            limit=self._max_connections, ssl=self._tls, keepalive_timeout=self._keepalive
        )
        session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            trust_env=False,
        )
        self._session, self._loop = session, loop
        return session

    def _url(self, url: httpx.URL) -> yarl.URL:
        raw = str(url)
        parsed = self._urls.get(raw)
        if parsed is None:
            if len(self._urls) >= _CACHE_SIZE:
                self._urls.clear()
            parsed = self._urls[raw] = yarl.URL(raw, encoded=True)  # httpx encoded it
        return parsed

    def _timeout(self, limits: dict[str, float | None]) -> aiohttp.ClientTimeout:
        key = (limits.get("connect"), limits.get("read"), limits.get("pool"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            if len(self._timeouts) >= _CACHE_SIZE:
                self._timeouts.clear()
            timeout = self._timeouts[key] = aiohttp.ClientTimeout(
                total=None, sock_connect=key[0], sock_read=key[1], connect=key[2]
            )
        return timeout

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` and return its response, its body not read yet."""
        loop = asyncio.get_running_loop()
        session = self._session
        if session is None or self._loop is not loop:
            session = self._open(loop)
        data: bytes | httpx.AsyncByteStream | None
        # Header bytes are ASCII or Latin-1, as httpx encodes them.
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
        try:
            data = request.content or None
        except httpx.RequestNotRead:  # a streamed body: aiohttp frames it itself
            data = request.stream  # type: ignore[assignment]
            headers = [(k, v) for k, v in headers if k.lower() != "transfer-encoding"]
        start = time.perf_counter()
        try:
            response = await session.request(
                request.method,
                self._url(request.url),
                headers=headers,
                data=data,
                allow_redirects=False,
                timeout=self._timeout(request.extensions.get("timeout", {})),
                server_hostname=request.extensions.get("sni_hostname"),
            )
            body: bytes | None = None
            if response.content.is_eof():
                # The whole body has arrived (a small answer): take it and hand
                # the connection back now, rather than a stream read chunk by chunk.
                body = response.content.read_nowait()
                response.release()
        except _MAPPED as exc:
            raise _as_httpx_error(exc, request) from None
        version = response.version
        extensions = {
            "http_version": b"HTTP/1.1"
            if version is None or version == (1, 1)
            else b"HTTP/%d.%d" % (version.major, version.minor)
        }
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode("ascii", "replace")
        result = httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=_Body(response, request) if body is None else httpx.ByteStream(body),
            request=request,
            extensions=extensions,
        )
        if body is not None:
            result.elapsed = datetime.timedelta(seconds=time.perf_counter() - start)
        return result

    async def aclose(self) -> None:
        """Close the session and its connections."""
        session, loop = self._session, self._loop
        self._session = self._loop = None
        if session is None or loop is None:
            return
        if loop is asyncio.get_running_loop():
            await session.close()
        else:
            _let_go(session, loop)

    def release_if(self, dead: Callable[[asyncio.AbstractEventLoop], bool]) -> None:
        """Let go of the session when its event loop is one ``dead`` names."""
        session, loop = self._session, self._loop
        if session is not None and loop is not None and dead(loop):
            self._session = self._loop = None
            _let_go(session, loop)


# Every transport made, to let go of the sessions of event loops that have ended.
_TRANSPORTS: weakref.WeakSet[AiohttpTransport] = weakref.WeakSet()


def release(dead: Callable[[asyncio.AbstractEventLoop], bool]) -> None:
    """Let go of every transport's session whose event loop ``dead`` names."""
    for transport in list(_TRANSPORTS):
        transport.release_if(dead)


def _let_go(session: aiohttp.ClientSession, loop: asyncio.AbstractEventLoop) -> None:
    """Close ``session``, made on ``loop``, from outside that loop.

    On a loop that has not been closed, the close is handed to that loop (it
    runs there, now from another thread, or when the loop runs again). On a
    closed loop nothing can run: ``session.close()`` is stepped here, which
    marks the session and its connector closed without touching the loop (so
    neither warns when collected); their sockets close when collected.
    """
    if not loop.is_closed():
        with contextlib.suppress(RuntimeError):  # closed in the meantime
            asyncio.run_coroutine_threadsafe(session.close(), loop)
            return
    closing = session.close()
    try:
        for _ in range(8):  # bare yields only: a real wait would need the loop
            closing.send(None)
    except (StopIteration, RuntimeError):
        pass
    finally:
        closing.close()
