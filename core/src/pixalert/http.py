"""Shared HTTP plumbing for channel plugins: one fast client, one error policy.

Install with ``pixalert[http]``. Every HTTP channel in this repository uses it:

- :func:`make_client` builds an ``httpx.AsyncClient`` over an aiohttp
  transport (httpx's own pool slows down as concurrency rises), with explicit
  timeouts, TLS verified and redirects not followed.
- :class:`Endpoint` is one URL a channel posts to again and again: the URL,
  headers and timeout are prepared once, and each send builds a plain
  ``httpx.Request`` from them for the client to send.
- :func:`error_for_response` and :func:`error_for_exception` turn a response
  or a transport failure into a :class:`pixalert.DeliveryError` that says
  whether to retry, honours ``Retry-After``, and carries no URL or secret.

httpx and aiohttp are used through their public APIs only.
"""

from __future__ import annotations

import asyncio
import atexit
import email.utils
import functools
import http.cookiejar
import logging
import ssl
import sys
import time
from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from ._errors import DeliveryError
from ._redact import redact

__all__ = [
    "Endpoint",
    "error_for_exception",
    "error_for_response",
    "json_or_none",
    "make_client",
    "parse_retry_after",
    "release_loop",
]

_BODY_SNIPPET = 200
# The logger httpx writes its request lines to (an Endpoint writes the same).
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

    Its transport sends through one ``aiohttp.ClientSession`` (opened on the
    first request, in the running event loop); aiohttp's errors arrive as
    the ``httpx.TransportError`` family, without the URL's path or query in
    their messages. Redirects are not followed, TLS is verified unless
    ``verify`` is false, no cookies are kept, and proxies from the
    environment are not used (mount an httpx transport for a proxy). Create
    it once per channel and close it in the channel's ``aclose()``.
    """
    from ._aiohttp import AiohttpTransport
    from ._redact import attach_log_filter

    attach_log_filter()  # httpx's and aiohttp's loggers exist now: mask secrets in them

    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    # Building an SSL context costs ~100 ms: share the verified default one.
    tls: ssl.SSLContext | bool = _default_ssl_context() if verify else False
    return _Client(
        AiohttpTransport(
            tls=tls, max_connections=max_connections, keepalive_expiry=limits.keepalive_expiry
        ),
        timeout=httpx.Timeout(timeout, connect=connect_timeout or timeout),
        headers=dict(headers or {}),
        follow_redirects=False,
        verify=tls,
        limits=limits,
        # Alert endpoints are stateless: no cookie jar to fill from every response
        # (httpx builds an email.message.Message of the headers for it each time).
        cookies=_NoCookies(),
    )


class _Client(httpx.AsyncClient):
    """The client :func:`make_client` returns: one transport for every URL.

    It is given its transport and no mounts (and, given a transport, httpx
    takes no proxy from the environment), so an :class:`Endpoint` on it may
    hand requests to that transport itself.
    """

    def __init__(self, transport: httpx.AsyncBaseTransport, **options: Any) -> None:
        super().__init__(transport=transport, **options)
        self._pixalert_transport = transport


class _NoCookies(http.cookiejar.CookieJar):
    """A cookie jar that neither stores nor sends cookies."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        """Ignore the response's ``Set-Cookie`` headers."""

    def add_cookie_header(self, request: Any) -> None:
        """Send no ``Cookie`` header."""


class Endpoint:
    """One URL that a channel sends to again and again, prepared once.

    The URL is parsed and checked, the client's headers merged with the
    endpoint's own and the client's timeout taken once; :meth:`send` builds
    a plain ``httpx.Request`` from those parts. On a client from
    :func:`make_client` (one transport for every URL) with no ``auth`` and
    no event hooks, the request goes straight to that transport, without
    ``AsyncClient.send``'s per-request layers (auth and redirect flows, and
    a cookie-jar adapter built for every response even when no jar keeps
    cookies); on any other client it is sent with ``client.send``, so
    mounted transports, proxies and an ``httpx.MockTransport`` carry it and
    the client's auth and event hooks apply. Either way the request line is
    logged at INFO on the ``httpx`` logger, as httpx logs it, registered
    secrets masked (:class:`pixalert.SecretFilter`); redirects are not followed and the client's
    cookies are not sent. Close the client as usual.
    """

    __slots__ = ("_client", "_extensions", "_head", "_method", "_transport", "url")

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
        self._extensions = {"timeout": client.timeout.as_dict()}
        self._transport: httpx.AsyncBaseTransport | None = (
            client._pixalert_transport if isinstance(client, _Client) else None
        )

    def __repr__(self) -> str:
        # The URL's path and query may carry a token: only scheme and host are shown.
        return f"Endpoint({self._method} {self.url.scheme}://{self.url.host}/...)"

    async def send(
        self, content: bytes, headers: Iterable[tuple[bytes, bytes] | tuple[str, str]] = ()
    ) -> httpx.Response:
        """Send ``content`` with the prepared headers plus ``headers`` (byte or str pairs).

        Returns the response with its body not read yet, as
        ``client.send(..., stream=True)`` does: read it (``aread``,
        ``aiter_bytes``) or ``aclose`` it. Over pixalert's transport a small
        answer's connection is back in the pool already. Raises what the
        client would (``httpx.TransportError`` and its kin; ``RuntimeError``
        once the client is closed).
        """
        pairs: list[Any] = [*self._head, (b"Content-Length", b"%d" % len(content)), *headers]
        request = httpx.Request(
            self._method,
            self.url,
            headers=pairs,  # str pairs are encoded as httpx encodes them (ASCII)
            stream=httpx.ByteStream(content),
            extensions=self._extensions,
        )
        request.read()  # the body is all there: a transport may take it whole
        client = self._client
        transport = self._transport
        if transport is None or client.auth is not None or any(client.event_hooks.values()):
            return await client.send(request, stream=True)
        if client.is_closed:
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        response = await transport.handle_async_request(request)
        if _httpx_log.isEnabledFor(logging.INFO):
            _httpx_log.info(
                'HTTP Request: %s %s "%s %d %s"',
                request.method,
                redact(str(request.url)),
                response.http_version,
                response.status_code,
                response.reason_phrase,
            )
        return response


def release_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Let go of the connections of a closed event loop, without warnings.

    Code that runs a new event loop per call and closes it (a Flask view
    calling ``asyncio.run``) leaves sessions that can no longer be closed
    properly; the manager calls this when it moves to a new loop. Their
    sockets are closed when collected.
    """
    if not loop.is_closed():
        return
    transports = sys.modules.get("pixalert._aiohttp")
    if transports is not None:
        transports.release(lambda session_loop: session_loop is loop)


def _release_closed_loops() -> None:
    transports = sys.modules.get("pixalert._aiohttp")
    if transports is not None:
        transports.release(lambda loop: loop.is_closed())


# At exit, the sessions of loops that were closed without closing them (the last
# request of a loop-per-request app) go quietly too.
atexit.register(_release_closed_loops)


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
