"""Delivering one alert to one channel: timeout, retries, backoff, circuit breaker."""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

import attrs

from ._channels import Channel, Receipt
from ._clock import Clock
from ._config import DeliveryConfig
from ._errors import DeliveryError
from ._redact import redact
from ._types import Alert, ChannelName, DeliveryResult, DeliveryStatus

__all__ = ["CircuitBreaker", "deliver"]

T = TypeVar("T")


@attrs.define
class CircuitBreaker:
    """Stops calling a channel that keeps failing, then tries it again later.

    ``closed``: calls go through. After ``threshold`` consecutive failures it
    is ``open`` for ``reset`` seconds: calls fail at once. Then ``half-open``:
    one trial call; success closes it, failure opens it again.
    """

    threshold: int
    reset: float
    failures: int = 0
    opened_at: float | None = None
    trial: bool = False

    def state(self, now: float) -> str:
        """``closed``, ``open`` or ``half-open``."""
        if self.opened_at is None:
            return "closed"
        return "half-open" if now - self.opened_at >= self.reset else "open"

    def allow(self, now: float) -> bool:
        """True if a call may go out now (claims the half-open trial)."""
        state = self.state(now)
        if state == "closed":
            return True
        if state == "half-open" and not self.trial:
            self.trial = True
            return True
        return False

    def success(self) -> None:
        """Record a success: close the circuit."""
        self.failures = 0
        self.opened_at = None
        self.trial = False

    def failure(self, now: float) -> None:
        """Record a failure: open the circuit at the threshold or after a failed trial."""
        self.failures += 1
        if self.trial or self.failures >= self.threshold:
            self.opened_at = now
        self.trial = False

    def to_dict(self, now: float) -> dict[str, Any]:
        """JSON-safe state for ``health()``."""
        return {"circuit": self.state(now), "consecutive_failures": self.failures}


def backoff_delay(attempt: int, config: DeliveryConfig, error: DeliveryError) -> float:
    """Delay before retry number ``attempt`` (1-based): exponential, full jitter,
    and never shorter than the ``Retry-After`` the service asked for (capped)."""
    ceiling = min(config.backoff_max, config.backoff * (2 ** (attempt - 1)))
    delay = random.uniform(ceiling / 2, ceiling) if ceiling > 0 else 0.0
    if error.retry_after is not None:
        delay = max(delay, min(error.retry_after, config.max_retry_after))
    return delay


if sys.version_info >= (3, 11):

    async def _with_timeout(coro: Awaitable[T], timeout: float) -> T:
        """``await coro`` within ``timeout`` seconds, in this task (no extra task per attempt)."""
        async with asyncio.timeout(timeout):
            return await coro

else:  # pragma: no cover - Python 3.10

    async def _with_timeout(coro: Awaitable[T], timeout: float) -> T:
        """``await coro`` within ``timeout`` seconds."""
        return await asyncio.wait_for(coro, timeout)


async def deliver(
    name: ChannelName,
    channel: Channel,
    alert: Alert,
    *,
    previous: Receipt | None,
    config: DeliveryConfig,
    breaker: CircuitBreaker,
    limit: asyncio.Semaphore,
    clock: Clock,
) -> DeliveryResult:
    """Send ``alert`` on one channel with every safeguard, and say what happened."""
    attempts = 0
    error: DeliveryError | None = None
    started = time.perf_counter()
    while attempts < config.max_attempts:
        if not breaker.allow(clock.now()):
            reason = "circuit open after repeated failures"
            if error is not None:
                reason += f"; last error: {error.message}"
            return DeliveryResult(name, DeliveryStatus.FAILED, attempts, reason)
        attempts += 1
        async with limit:
            attempt_start = time.perf_counter()
            try:
                receipt = await _with_timeout(
                    channel.send(alert, previous=previous), config.timeout
                )
            except asyncio.TimeoutError:
                error = DeliveryError(f"timed out after {config.timeout:g}s")
            except DeliveryError as exc:
                error = exc
            except Exception as exc:
                error = DeliveryError(f"{type(exc).__name__}: {exc}")
            else:
                breaker.success()
                return DeliveryResult(
                    name,
                    DeliveryStatus.SENT,
                    attempts,
                    None,
                    round(time.perf_counter() - attempt_start, 6),
                    dict(receipt) if receipt else None,
                )
        breaker.failure(clock.now())
        if not error.retryable or attempts >= config.max_attempts:
            break
        await clock.sleep(backoff_delay(attempts, config, error))
    assert error is not None
    message = redact(error.message)
    if not error.retryable:
        message += " (permanent, not retried)"
    return DeliveryResult(
        name,
        DeliveryStatus.FAILED,
        attempts,
        message,
        round(time.perf_counter() - started, 6),
    )
