"""Shared HTTP plumbing for channel plugins: one fast client, one error policy.

Install with ``pixalert[http]``. Every HTTP channel in this repository uses it:

- :func:`make_client` builds an ``httpx.AsyncClient`` over aiohttp's transport
  (httpx's own pool slows down as concurrency rises), with explicit timeouts,
  TLS verified and redirects not followed.
- :class:`Endpoint` is one URL a channel posts to again and again: its
  ``httpx.Request`` is built from parts prepared once and handed straight to
  the client's transport, without ``AsyncClient.send``'s per-request layers.
- :func:`error_for_response` and :func:`error_for_exception` turn a response
  or a transport failure into a :class:`pixalert.DeliveryError` that says
  whether to retry, honours ``Retry-After``, and carries no URL or secret.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import email.utils
import functools
import http.cookiejar
import logging
import ssl
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import httpx

from ._errors import DeliveryError
from ._redact import redact

__all__ = [
    "Endpoint",
    "error_for_exception",
    "error_for_response",
    "make_client",
    "parse_retry_after",
    "release_loop",
]

_BODY_SNIPPET = 200
# The logger httpx's client writes its request lines to (Endpoint writes the same).
_httpx_log = logging.getLogger("httpx")


def make_client(
    *,
    timeout: float = 10.0,
    connect_timeout: float | None = None,
    headers: Mapping[str, str] | None = None,
    verify: bool = True,
    max_connections: int = 100,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` for one channel: pooled, fast, strict.

    Uses ``httpx_aiohttp.AiohttpTransport`` when installed, else httpx's own.
    Create it once per channel and close it in the channel's ``aclose()``.
    """
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    # Building an SSL context costs ~100 ms: share the verified default one.
    tls: ssl.SSLContext | bool = _default_ssl_context() if verify else False
    transport: httpx.AsyncBaseTransport | None
    try:
        transport_type = _fast_transport_type()
    except ImportError:  # pragma: no cover - the http extra installs it
        transport = None
    else:
        transport = transport_type(verify=tls, limits=limits)
    return httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(timeout, connect=connect_timeout or timeout),
        headers=dict(headers or {}),
        follow_redirects=False,
        verify=tls,
        limits=limits,
        # Alert endpoints are stateless: no cookie jar to fill from every response
        # (httpx builds an email.message.Message of the headers for it each time).
        cookies=_NoCookies(),
    )


class _NoCookies(http.cookiejar.CookieJar):
    """A cookie jar that neither stores nor sends cookies."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        """Ignore the response's ``Set-Cookie`` headers."""

    def add_cookie_header(self, request: Any) -> None:
        """Send no ``Cookie`` header."""


@functools.lru_cache(maxsize=1)
def _fast_transport_type() -> Any:
    """``AiohttpTransport`` with less work per request (built on first use: lazy imports)."""
    import aiohttp
    import yarl
    from httpx_aiohttp import AiohttpTransport
    from httpx_aiohttp.transport import AiohttpResponseStream, map_aiohttp_exceptions

    class FastAiohttpTransport(AiohttpTransport):
        """Caches the parsed URL and the timeout object; maps exceptions only on failure.

        A request sent again with the same ``httpx.URL`` object and timeout
        dict (what an :class:`Endpoint` passes) finds both by identity, without
        rendering the URL. An answer whose body has fully arrived comes back
        already read and closed, as ``client.post`` returns it.
        """

        _urls: dict[str, yarl.URL] = {}
        _timeouts: dict[tuple[Any, Any, Any], aiohttp.ClientTimeout] = {}
        _extensions: dict[str | None, dict[str, Any]] = {}
        # id(httpx.URL) -> (that URL, its yarl.URL): the URL object is kept alive
        # with its entry, so its id cannot be reused while the entry exists.
        _by_url: dict[int, tuple[httpx.URL, yarl.URL]] = {}
        _by_timeout: dict[int, tuple[dict[str, Any], aiohttp.ClientTimeout]] = {}

        def get_client(self) -> aiohttp.ClientSession:
            session = super().get_client()
            _SESSIONS.add(session)
            return session

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if self.proxy is not None:
                return await super().handle_async_request(request)
            if not isinstance(self.client, aiohttp.ClientSession):
                self.client = self.get_client()
            limits = request.extensions.get("timeout", {})
            seen_timeout = self._by_timeout.get(id(limits))
            if seen_timeout is not None and seen_timeout[0] is limits:
                timeout = seen_timeout[1]
            else:
                timeout = self._timeout_for(limits)
            seen_url = self._by_url.get(id(request.url))
            if seen_url is not None and seen_url[0] is request.url:
                url = seen_url[1]
            else:
                url = self._url_for(request.url)
            data: bytes | httpx.AsyncByteStream | None
            try:
                data = request.content or None
            except httpx.RequestNotRead:
                data = request.stream  # type: ignore[assignment]
                request.headers.pop("transfer-encoding", None)  # aiohttp handles it
            try:
                response = await self.client.request(
                    method=request.method,
                    url=url,
                    # Header bytes are ASCII or Latin-1 (what httpx encodes them with).
                    headers=[
                        (k.decode("latin-1"), v.decode("latin-1"))
                        for k, _, v in _header_items(request.headers)
                    ],
                    data=data,
                    allow_redirects=False,
                    auto_decompress=False,
                    compress=False,
                    timeout=timeout,
                    server_hostname=request.extensions.get("sni_hostname"),
                ).__aenter__()
                body: bytes | None = None
                content = response.content
                if content.is_eof():
                    # The whole body has arrived already (a small answer): take it
                    # from the buffer and hand the connection back now, instead
                    # of a lazy stream that costs an await per chunk and on close.
                    body = content.read_nowait()
                    response.release()
            except Exception:
                with map_aiohttp_exceptions():
                    raise
            extensions = self._extensions.get(response.reason)
            if extensions is None:
                extensions = {"http_version": b"HTTP/1.1"}
                if response.reason:
                    extensions["reason_phrase"] = response.reason.encode()
                if len(self._extensions) < 64:
                    self._extensions[response.reason] = extensions
            result = httpx.Response(
                status_code=response.status,
                headers=_headers([(k, k.lower(), v) for k, v in response.raw_headers]),
                stream=AiohttpResponseStream(response) if body is None else httpx.ByteStream(body),
                request=request,
                extensions=extensions,
            )
            if body is not None:
                _set_read(result, body)
            return result

        def _timeout_for(self, limits: dict[str, Any]) -> aiohttp.ClientTimeout:
            key = (limits.get("connect"), limits.get("read"), limits.get("pool"))
            timeout = self._timeouts.get(key)
            if timeout is None:
                timeout = self._timeouts[key] = aiohttp.ClientTimeout(
                    sock_connect=key[0], sock_read=key[1], connect=key[2]
                )
            if len(self._by_timeout) > 64:
                self._by_timeout.clear()
            self._by_timeout[id(limits)] = (limits, timeout)
            return timeout

        def _url_for(self, parsed: httpx.URL) -> yarl.URL:
            raw = str(parsed)
            url = self._urls.get(raw)
            if url is None:
                if len(self._urls) > 1024:
                    self._urls.clear()
                url = self._urls[raw] = yarl.URL(raw, encoded=True)
            if len(self._by_url) > 1024:
                self._by_url.clear()
            self._by_url[id(parsed)] = (parsed, url)
            return url

    return FastAiohttpTransport


def _headers_public(items: list[tuple[bytes, bytes, bytes]]) -> httpx.Headers:
    return httpx.Headers([(k, v) for k, _, v in items])


def _headers_direct(items: list[tuple[bytes, bytes, bytes]]) -> httpx.Headers:
    headers = object.__new__(httpx.Headers)  # its fields set below, as __init__ would
    headers._list = items
    headers._encoding = None
    return headers


def _set_read_public(response: httpx.Response, body: bytes) -> None:
    response.read()


def _set_read_direct(response: httpx.Response, body: bytes) -> None:
    # What Response.read() leaves behind, without its iterator, decoder and
    # request-context layers: the content, and the stream consumed and closed.
    response._content = body
    response.is_stream_consumed = True
    response.is_closed = True


def _header_items_public(headers: httpx.Headers) -> list[tuple[bytes, bytes, bytes]]:
    return [(k, k.lower(), v) for k, v in headers.raw]


def _header_items_direct(headers: httpx.Headers) -> list[tuple[bytes, bytes, bytes]]:
    items: list[tuple[bytes, bytes, bytes]] = headers._list
    return items


def _set_request_read_public(request: httpx.Request, body: bytes) -> None:
    request.read()


def _set_request_read_direct(request: httpx.Request, body: bytes) -> None:
    request._content = body  # what Request.read() stores for a ByteStream of body


def _fast_paths_work() -> bool:
    """Whether this httpx keeps headers and read bodies where the fast paths put them."""
    try:
        items = [(b"Host", b"host", b"h"), (b"X-A", b"x-a", b"\xe9")]
        fast = _headers_direct(list(items))
        if fast.raw != _headers_public(items).raw or fast.get("x-a") != "\xe9":
            return False
        if httpx.Headers(fast).raw != fast.raw:
            return False
        if _header_items_direct(fast) != items:
            return False
        request = httpx.Request("POST", "http://h/", headers=fast, stream=httpx.ByteStream(b"q"))
        _set_request_read_direct(request, b"q")
        if request.content != b"q":
            return False
        response = httpx.Response(200, stream=httpx.ByteStream(b"ok"), request=request)
        _set_read_direct(response, b"ok")
        return response.content == b"ok" and response.text == "ok"
    except Exception:  # pragma: no cover - a future httpx with other internals
        return False


#: Builds ``httpx.Headers`` from ``(name, lowercased name, value)`` byte triples.
_headers: Callable[[list[tuple[bytes, bytes, bytes]]], httpx.Headers]
#: The ``(name, lowercased name, value)`` byte triples of ``httpx.Headers``.
_header_items: Callable[[httpx.Headers], list[tuple[bytes, bytes, bytes]]]
#: Marks a response as read with ``body`` (its stream already holds exactly that).
_set_read: Callable[[httpx.Response, bytes], None]
#: Marks a request as read with ``body`` (its stream already holds exactly that).
_set_request_read: Callable[[httpx.Request, bytes], None]
if _fast_paths_work():
    _headers, _header_items = _headers_direct, _header_items_direct
    _set_read, _set_request_read = _set_read_direct, _set_request_read_direct
else:  # pragma: no cover - a future httpx with other internals
    _headers, _header_items = _headers_public, _header_items_public
    _set_read, _set_request_read = _set_read_public, _set_request_read_public


class Endpoint:
    """One URL that a channel sends to again and again, prepared once.

    ``client.post(url, ...)`` pays on every call for httpx's request building
    (URL merge, header normalising) and for the auth, redirect, event-hook
    and cookie layers of ``AsyncClient.send``: together more CPU than the
    HTTP exchange over aiohttp. An endpoint parses the URL, merges the
    client's headers with its own and takes the client's timeout once;
    :meth:`send` builds a plain ``httpx.Request`` from those parts and hands
    it to the transport the client uses for that URL (pixalert's aiohttp
    transport, a proxy mount, or an ``httpx.MockTransport`` in tests).
    Errors are httpx's exceptions, as from the client; the request line is
    logged at INFO on the ``httpx`` logger, as the client does (pixalert masks
    registered secrets in it). Redirects are not followed; the client's
    ``auth``, cookies and event hooks are not applied (put credentials in
    ``headers``). Close the client as usual.
    """

    __slots__ = ("_client", "_extensions", "_head", "_items", "_method", "_transport", "url")

    def __init__(
        self,
        client: httpx.AsyncClient,
        url: str | httpx.URL,
        *,
        headers: Mapping[str, str] | None = None,
        method: str = "POST",
    ) -> None:
        try:
            self.url = httpx.URL(url)
            valid = self.url.scheme in ("http", "https") and bool(self.url.host)
        except (httpx.InvalidURL, TypeError, ValueError):
            valid = False
        if not valid:
            # The URL may be a secret: it is not repeated here.
            raise ValueError("url: expected an http:// or https:// URL with a host")
        self._client = client
        self._method = method.upper()
        own = httpx.Headers(headers).raw  # normalised as httpx does: ASCII, once
        skip = {b"host", b"content-length", *(name.lower() for name, _ in own)}
        # Host first, as httpx puts it; then the client's headers, then our own.
        self._head: list[tuple[bytes, bytes]] = [
            (b"Host", self.url.netloc),
            *((k, v) for k, v in client.headers.raw if k.lower() not in skip),
            *((k, v) for k, v in own if k.lower() not in (b"host", b"content-length")),
        ]
        # The same triples httpx.Headers keeps (name, lowercased name, value).
        self._items = [(k, k.lower(), v) for k, v in self._head]
        self._extensions = {"timeout": client.timeout.as_dict()}
        # The transport httpx would pick for this URL (a proxy mount or the default).
        find = getattr(client, "_transport_for_url", None)
        self._transport: httpx.AsyncBaseTransport | None = (
            find(self.url) if callable(find) else None
        )

    def __repr__(self) -> str:
        # The URL's path and query may carry a token: only scheme and host are shown.
        return f"Endpoint({self._method} {self.url.scheme}://{self.url.host}/...)"

    async def send(
        self, content: bytes, headers: Iterable[tuple[bytes, bytes]] = ()
    ) -> httpx.Response:
        """Send ``content`` with the prepared headers plus ``headers`` (byte pairs).

        Returns the response with its body possibly unread: read it (``aread``,
        ``aiter_bytes``) or ``aclose`` it. Raises what the client would
        (``httpx.TransportError`` and its kin; ``RuntimeError`` once the client
        is closed).
        """
        if self._client.is_closed:
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        items = [*self._items, (b"Content-Length", b"content-length", b"%d" % len(content))]
        for name, value in headers:
            if name.__class__ is not bytes or value.__class__ is not bytes:
                # str pairs are encoded as httpx encodes them (ASCII).
                ((name, value),) = httpx.Headers([(name, value)]).raw
            items.append((name, name.lower(), value))
        request = httpx.Request(
            self._method,
            self.url,
            headers=_headers(items),
            stream=httpx.ByteStream(content),
            extensions=self._extensions,
        )
        _set_request_read(request, content)
        # The endpoint's own URL object (Request copies it): the aiohttp transport
        # finds its parsed form by identity instead of rendering it again.
        request.url = self.url
        if self._transport is None:  # an httpx without the lookup: the client's own path
            return await self._client.send(request, stream=True)
        response = await self._transport.handle_async_request(request)
        response.request = request  # as the client sets it (raise_for_status needs it)
        if _httpx_log.isEnabledFor(logging.INFO):
            _httpx_log.info(
                'HTTP Request: %s %s "%s %d %s"',
                request.method,
                request.url,
                response.http_version,
                response.status_code,
                response.reason_phrase,
            )
        return response


# Every aiohttp session our transports opened, to let go of a dead loop's ones.
_SESSIONS: weakref.WeakSet[Any] = weakref.WeakSet()


def release_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Let go of the connections of a closed event loop, without warnings.

    Code that runs a new event loop per call and closes it (the seed's Flask
    endpoint) leaves sessions that can no longer be closed properly; the
    manager calls this when it moves to a new loop. Their sockets are closed
    when collected.
    """
    if not loop.is_closed():
        return
    _release(lambda session_loop: session_loop is loop)


def _release(dead: Callable[[Any], bool]) -> None:
    for session in list(_SESSIONS):
        if session.closed or not dead(getattr(session, "_loop", None)):
            continue
        connector = session.connector
        with contextlib.suppress(Exception):
            if connector is not None:
                connector._conns.clear()
                connector._closed = True
            session._connector = None
        _SESSIONS.discard(session)


# At exit, the sessions of loops that were closed without closing them (the last
# request of a loop-per-request app) go quietly too.
atexit.register(_release, lambda loop: loop is not None and loop.is_closed())


@functools.lru_cache(maxsize=1)
def _default_ssl_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def error_for_response(
    response: httpx.Response,
    service: str,
    *,
    detail: str | None = None,
    secrets: Iterable[str] = (),
) -> DeliveryError:
    """The :class:`DeliveryError` for a non-success ``response``.

    408, 429 and 5xx are retryable (with ``Retry-After`` when given); 3xx and
    other 4xx are permanent. ``detail`` (the service's own error text) goes in
    the message, else a short snippet of the body; secrets are masked.
    """
    status = response.status_code
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    if detail is None:
        try:
            detail = response.text[:_BODY_SNIPPET].strip()
        except Exception:
            detail = ""
    reason = f"{service}: HTTP {status}"
    if detail:
        reason += f" {detail}"
    reason = redact(reason, secrets)
    if 300 <= status < 400:
        return DeliveryError(reason + " (redirect not followed)", retryable=False)
    retryable = status in (408, 429) or status >= 500
    return DeliveryError(reason, retryable=retryable, retry_after=retry_after)


def error_for_exception(exc: BaseException, service: str) -> DeliveryError:
    """The :class:`DeliveryError` for a transport failure, without its URL.

    httpx's (and aiohttp's) exception messages can hold the request URL, so
    only the exception's class name is kept. Raise the result ``from None``.
    """
    kind = type(exc).__name__
    cause = exc.__cause__
    refused = isinstance(cause, OSError) and not isinstance(cause, TimeoutError)
    if isinstance(exc, httpx.ConnectTimeout) and refused:
        # aiohttp's transport reports a refused connection as ConnectTimeout.
        return DeliveryError(f"{service}: connection failed ({type(cause).__name__})")
    if isinstance(exc, httpx.TimeoutException):
        return DeliveryError(f"{service}: timed out ({kind})")
    if isinstance(exc, httpx.TransportError):
        return DeliveryError(f"{service}: connection failed ({kind})")
    return DeliveryError(f"{service}: request failed ({kind})")


def json_or_none(response: httpx.Response) -> Any:
    """The response body as JSON, or None when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return None
