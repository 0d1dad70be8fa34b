"""RateLimiter: token buckets that pace bursts on the given clock."""

from __future__ import annotations

import pytest
from pixalert.channels import RateLimiter
from pixalert.testing import FakeClock


async def test_burst_then_paced(clock: FakeClock) -> None:
    limiter = RateLimiter(rate=1.0, burst=3, clock=clock)
    waits = [await limiter.acquire("#alerts") for _ in range(5)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3] == pytest.approx(1.0) and waits[4] == pytest.approx(1.0)


async def test_keys_are_independent(clock: FakeClock) -> None:
    limiter = RateLimiter(rate=0.5, burst=1, clock=clock)
    assert await limiter.acquire("a") == 0.0
    assert await limiter.acquire("b") == 0.0
    assert await limiter.acquire("a") == pytest.approx(2.0)


@pytest.mark.parametrize("start", [0.0, 1.8e9, 1764223000.123])
async def test_float_rounding_never_spins(start: float) -> None:
    clock = FakeClock(start)
    limiter = RateLimiter(rate=2.0, burst=10, clock=clock)
    for _ in range(200):
        await limiter.acquire("k")
    assert len(clock.sleeps) < 200


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="expected rate > 0 and burst >= 1"):
        RateLimiter(rate=0)
