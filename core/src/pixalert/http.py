"""Shared HTTP plumbing for channel plugins: one fast client, one error policy.

Install with ``pixalert[http]``. Every HTTP channel in this repository uses it:

- :func:`make_client` builds an ``httpx.AsyncClient`` over aiohttp's transport
  (httpx's own pool slows down as concurrency rises), with explicit timeouts,
  TLS verified and redirects not followed.
- :func:`error_for_response` and :func:`error_for_exception` turn a response
  or a transport failure into a :class:`pixalert.DeliveryError` that says
  whether to retry, honours ``Retry-After``, and carries no URL or secret.
"""

from __future__ import annotations

import email.utils
import functools
import ssl
import time
from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from ._redact import redact
from ._types import DeliveryError

__all__ = [
    "error_for_exception",
    "error_for_response",
    "make_client",
    "parse_retry_after",
]

_BODY_SNIPPET = 200


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
        from httpx_aiohttp import AiohttpTransport
    except ImportError:  # pragma: no cover - the http extra installs it
        transport = None
    else:
        transport = AiohttpTransport(verify=tls, limits=limits)
    return httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(timeout, connect=connect_timeout or timeout),
        headers=dict(headers or {}),
        follow_redirects=False,
        verify=tls,
        limits=limits,
    )


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
