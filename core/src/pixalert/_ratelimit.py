"""Pacing: a token bucket per destination, so channels stay under a service's limit."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable

from ._clock import Clock, SystemClock

__all__ = ["RateLimiter"]


class RateLimiter:
    """Token buckets keyed by destination (a Slack channel, a PagerDuty routing key).

    ``rate`` tokens per second refill each bucket up to ``burst``. ``await
    limiter.acquire(key)`` waits (on the limiter's clock) until a token is
    free, so bursts are paced instead of provoking HTTP 429s.
    """

    def __init__(self, rate: float, burst: int = 1, *, clock: Clock | None = None) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("RateLimiter: expected rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self.clock: Clock = clock or SystemClock()
        self._buckets: dict[Hashable, tuple[float, float]] = {}
        self._locks: dict[Hashable, asyncio.Lock] = {}

    def _take(self, key: Hashable) -> float:
        """Take a token if one is free; else return how long to wait."""
        now = self.clock.now()
        tokens, stamp = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - stamp) * self.rate)
        # Float rounding can leave a wait of ~1e-16 s that no clock can advance.
        if tokens >= 1.0 - 1e-9:
            self._buckets[key] = (max(0.0, tokens - 1.0), now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate

    async def acquire(self, key: Hashable = None) -> float:
        """Wait for a token for ``key``; return the seconds waited."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        waited = 0.0
        async with lock:
            while (delay := self._take(key)) > 0:
                waited += delay
                await self.clock.sleep(delay)
        return waited
