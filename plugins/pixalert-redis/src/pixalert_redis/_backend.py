"""The Redis state backend: one atomic ``SET key value NX PX ttl`` per decision.

``acquire_many`` sends one ``SET ... NX PX`` per key in one pipeline: one round
trip for a whole batch, each key decided on its own, in order (a key repeated
in the batch finds itself set by its first occurrence).

Silences and inhibitions are plain values (``SET key value PX ttl``, ``GET``,
``SCAN MATCH`` + ``MGET``).

When Redis cannot be reached the backend *fails open*: ``acquire`` answers True
(a duplicate alert is better than a missed one), ``get`` answers None and
``items`` an empty dict (nothing is silenced or inhibited), ``put`` is
dropped; ``health()`` says degraded
with the reason, and a counter of such decisions grows. After a failure it
leaves Redis alone for ``retry_interval`` seconds (so a dead Redis costs one
short timeout, not one per alert), then tries again and recovers by itself.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from pixalert.channels import redact
from pixalert.storage import (
    BaseStateBackend,
    SystemClock,
    mask_url,
    positive_option,
    split_url_options,
)

__all__ = ["RedisStateBackend", "mask_url"]

log = logging.getLogger("pixalert.redis")

DEFAULT_PREFIX = "pixalert:"
DEFAULT_TIMEOUT = 1.0
DEFAULT_RETRY_INTERVAL = 1.0
# Query parameters of the state URL that pixalert reads (redis-py gets the rest).
_OWN_PARAMS = ("prefix", "timeout", "retry_interval")


def _positive(name: str, text: str, url: str) -> float:
    try:
        return positive_option(name, text, url)
    except ValueError as exc:
        raise ValueError(f"state URL {exc}") from None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _glob_escape(text: str) -> str:
    """``text`` with Redis glob characters escaped, for ``SCAN MATCH``."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class RedisStateBackend(BaseStateBackend):
    """Cooldown, dedup, silences and inhibitions in Redis, shared by every instance using it.

    Each key is stored as ``<prefix><key>`` (prefix ``pixalert:`` unless the URL
    says ``?prefix=...``). Build one with :meth:`from_url`.
    """

    def __init__(
        self,
        client: Any,
        *,
        url: str = "redis://",
        prefix: str = DEFAULT_PREFIX,
        clock: Any = None,
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._client = client
        self._display_url = mask_url(url)
        self._prefix = prefix
        self._clock = clock if clock is not None else SystemClock()
        self._retry_interval = retry_interval
        # An overall bound per call, on top of redis-py's socket timeouts, so a
        # stalled Redis can never hold up delivery for long.
        self._call_timeout = timeout * 4
        self._value = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.fail_open_total = 0
        self._retry_at = 0.0
        self._degraded_since: float | None = None
        self._last_error: str | None = None

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        clock: Any = None,
        prefix: str | None = None,
        timeout: float | None = None,
        retry_interval: float | None = None,
    ) -> RedisStateBackend:
        """Build a backend from ``redis://[user:password@]host[:port][/db][?prefix=...]``.

        pixalert reads the query parameters ``prefix`` (key namespace),
        ``timeout`` (socket timeout in seconds, default 1) and
        ``retry_interval`` (seconds to wait before trying Redis again after a
        failure, default 1); redis-py gets the rest. Keyword arguments win over
        the URL. Raises ``ValueError`` naming the parameter for a bad value.
        """
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        client_url, own = split_url_options(url, _OWN_PARAMS)
        if prefix is None:
            prefix = own.get("prefix", DEFAULT_PREFIX)
        if not prefix:
            raise ValueError(f"state URL {mask_url(url)}: prefix expected a non-empty string")
        if timeout is None:
            timeout = _positive("timeout", own.get("timeout", str(DEFAULT_TIMEOUT)), url)
        if retry_interval is None:
            retry_interval = _positive(
                "retry_interval", own.get("retry_interval", str(DEFAULT_RETRY_INTERVAL)), url
            )
        try:
            client = Redis.from_url(
                client_url,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                # One immediate retry: a pooled connection that died with a
                # restarted Redis is replaced at once; a dead Redis costs one
                # short timeout, then the backend fails open.
                retry=Retry(NoBackoff(), 1),
                client_name="pixalert",
            )
        except ValueError as exc:
            raise ValueError(f"state URL {mask_url(url)}: {redact(str(exc))}") from None
        return cls(
            client,
            url=url,
            prefix=prefix,
            clock=clock,
            retry_interval=retry_interval,
            timeout=timeout,
        )

    def __repr__(self) -> str:
        return f"RedisStateBackend({self._display_url!r}, prefix={self._prefix!r})"

    __str__ = __repr__

    @property
    def prefix(self) -> str:
        """The namespace every key is stored under."""
        return self._prefix

    @property
    def degraded(self) -> bool:
        """True while the last contact with Redis failed."""
        return self._degraded_since is not None

    def _key(self, key: str) -> str:
        return self._prefix + key

    def _available(self) -> bool:
        return self._degraded_since is None or self._clock.now() >= self._retry_at

    def _failed(self, exc: BaseException) -> None:
        reason = f"redis unreachable ({type(exc).__name__}: {redact(str(exc))[:200]})"
        now = self._clock.now()
        if self._degraded_since is None:
            self._degraded_since = now
            log.warning("%s at %s: failing open", reason, self._display_url)
        self._last_error = reason
        self._retry_at = now + self._retry_interval

    def _recovered(self) -> None:
        if self._degraded_since is not None:
            log.warning("redis at %s is reachable again", self._display_url)
        self._degraded_since = None
        self._last_error = None
        self._retry_at = 0.0

    async def _call(self, coro: Any) -> Any:
        return await asyncio.wait_for(coro, self._call_timeout)

    async def acquire(self, key: str, ttl: float) -> bool:
        """Set ``key`` for ``ttl`` seconds unless it is set; True if this call set it.

        One ``SET key value NX PX ttl``. When Redis is unreachable this returns
        True (fail open) and counts it in ``health()["fail_open_total"]``.
        """
        if not self._available():
            self.fail_open_total += 1
            return True
        from redis.exceptions import RedisError

        px = max(1, math.ceil(ttl * 1000))
        try:
            done = await self._call(self._client.set(self._key(key), self._value, nx=True, px=px))
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            self._failed(exc)
            self.fail_open_total += 1
            return True
        self._recovered()
        return bool(done)

    async def acquire_many(self, keys: Sequence[str], ttl: float) -> list[bool]:
        """:meth:`acquire` for each key in order, in one round trip (a pipeline of
        ``SET key value NX PX ttl``, not a transaction: each key on its own).

        When Redis is unreachable every key answers True (fail open), each
        counted in ``health()["fail_open_total"]``.
        """
        if not keys:
            return []
        if not self._available():
            self.fail_open_total += len(keys)
            return [True] * len(keys)
        from redis.exceptions import RedisError

        px = max(1, math.ceil(ttl * 1000))
        try:
            answers = await self._call(self._set_many(keys, px))
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            self._failed(exc)
            self.fail_open_total += len(keys)
            return [True] * len(keys)
        self._recovered()
        return [bool(answer) for answer in answers]

    async def _set_many(self, keys: Sequence[str], px: int) -> list[Any]:
        async with self._client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.set(self._key(key), self._value, nx=True, px=px)
            return list(await pipe.execute())

    async def release(self, key: str) -> None:
        """Forget ``key``. A failure is logged, never raised (the key expires anyway)."""
        if not self._available():
            return
        from redis.exceptions import RedisError

        try:
            await self._call(self._client.delete(self._key(key)))
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            self._failed(exc)
            return
        self._recovered()

    async def put(self, key: str, value: str, ttl: float) -> None:
        """Set ``key`` to ``value`` for ``ttl`` seconds: one ``SET key value PX ttl``.

        ``ttl <= 0`` deletes the key. When Redis is unreachable the value is
        dropped (logged once per outage, counted in ``fail_open_total``).
        """
        if ttl <= 0:
            await self.release(key)
            return
        if not self._available():
            self.fail_open_total += 1
            return
        from redis.exceptions import RedisError

        px = max(1, math.ceil(ttl * 1000))
        try:
            await self._call(self._client.set(self._key(key), value, px=px))
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            self._failed(exc)
            self.fail_open_total += 1
            return
        self._recovered()

    async def is_set(self, key: str) -> bool:
        """True if ``key`` is live (``EXISTS``); False too when Redis is unreachable."""
        if not self._available():
            return False
        from redis.exceptions import RedisError

        try:
            found = await self._call(self._client.exists(self._key(key)))
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            self._failed(exc)
            return False
        self._recovered()
        return bool(found)

    async def get(self, key: str) -> str | None:
        """The value of ``key`` if it is live; None too when Redis is unreachable (fail open)."""
        if not self._available():
            self.fail_open_total += 1
            return None
        from redis.exceptions import RedisError

        try:
            value = await self._call(self._client.get(self._key(key)))
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            self._failed(exc)
            self.fail_open_total += 1
            return None
        self._recovered()
        return _text(value)

    async def items(self, prefix: str) -> dict[str, str]:
        """Every live key starting with ``prefix``: ``SCAN MATCH`` then ``MGET``.

        Returns ``{}`` when Redis is unreachable (fail open: nothing is
        silenced or inhibited while it is down).
        """
        if not self._available():
            self.fail_open_total += 1
            return {}
        from redis.exceptions import RedisError

        pattern = _glob_escape(self._key(prefix)) + "*"
        cut = len(self._prefix)
        try:
            out: dict[str, str] = await self._call(self._items(pattern, cut))
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            self._failed(exc)
            self.fail_open_total += 1
            return {}
        self._recovered()
        return out

    async def _items(self, pattern: str, cut: int) -> dict[str, str]:
        keys = list(
            dict.fromkeys([key async for key in self._client.scan_iter(match=pattern, count=500)])
        )
        out: dict[str, str] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            for key, value in zip(chunk, await self._client.mget(chunk), strict=True):
                text = _text(value)
                if text is not None:  # expired between SCAN and MGET
                    out[str(_text(key))[cut:]] = text
        return out

    async def health(self) -> Mapping[str, Any]:
        """Ping Redis: ``{"status": "ok" | "degraded", "reason"?, "fail_open_total", ...}``.

        A successful ping ends a degraded spell at once.
        """
        from redis.exceptions import RedisError

        try:
            await self._call(self._client.ping())
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            self._failed(exc)
        else:
            self._recovered()
        report: dict[str, Any] = {
            "status": "degraded" if self.degraded else "ok",
            "backend": "redis",
            "url": self._display_url,
            "fail_open_total": self.fail_open_total,
        }
        if self.degraded:
            report["reason"] = f"{self._last_error}; alerts are sent without dedup (fail open)"
            report["degraded_since"] = self._degraded_since
        return report

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()
