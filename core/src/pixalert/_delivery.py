"""Delivering one alert to one channel: pacing, timeout, quick retries with backoff,
the circuit breaker, and when to try again on the timeline."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import random
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import attrs

from ._channels import Channel, Preview, Receipt, generic_preview
from ._clock import Clock, to_datetime
from ._config import DeliveryConfig
from ._durations import format_duration
from ._errors import DeliveryError
from ._groups import Group
from ._redact import redact
from ._types import Alert, ChannelName, DeliveryResult, DeliveryStatus

__all__ = [
    "ChannelSlot",
    "CircuitBreaker",
    "deliver",
    "next_round",
    "preview",
    "preview_group",
]

T = TypeVar("T")

#: Seconds a delivery held back by a half-open circuit waits while its trial call
#: is out (at most the circuit's ``reset``): soon after a trial that succeeds,
#: never due at once, which would have a sweep claim it again and again.
TRIAL_WAIT = 1.0

#: Seconds a circuit stays open the first time (at most its ``reset``): an outage
#: of a few seconds is over before the trial call; each failed trial doubles the
#: time, up to ``reset``, so a long outage is probed no more often than that.
FIRST_OPEN = 5.0


@attrs.define
class CircuitBreaker:
    """Stops calling a channel that keeps failing, then tries it again later.

    ``closed``: calls go through. After ``threshold`` consecutive failures it
    is ``open``: calls fail at once, for :data:`FIRST_OPEN` seconds (``reset``
    if that is shorter). Then ``half-open``: one trial call; success closes
    it, failure opens it again for twice as long as the last time, at most
    ``reset`` seconds. ``open_for`` is how long the current opening lasts;
    ``failing_since`` is when the current run of failures began (None after
    a success).
    """

    threshold: int
    reset: float
    failures: int = 0
    opened_at: float | None = None
    open_for: float = 0.0
    trial: bool = False
    failing_since: float | None = None
    _trial_over: asyncio.Event | None = attrs.field(default=None, init=False, repr=False)

    def state(self, now: float) -> str:
        """``closed``, ``open`` or ``half-open``."""
        if self.opened_at is None:
            return "closed"
        return "half-open" if now - self.opened_at >= self.open_for else "open"

    def allow(self, now: float) -> bool:
        """True if a call may go out now (claims the half-open trial)."""
        state = self.state(now)
        if state == "closed":
            return True
        if state == "half-open" and not self.trial:
            self.trial = True
            self._trial_over = asyncio.Event()
            return True
        return False

    async def trial_finished(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the half-open trial call that is out
        to end; False at once if none is out."""
        event = self._trial_over
        if not self.trial or event is None:
            return False
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def _end_trial(self) -> None:
        if self._trial_over is not None:
            self._trial_over.set()
            self._trial_over = None

    def success(self) -> None:
        """Record a success: close the circuit."""
        self.failures = 0
        self.opened_at = None
        self.open_for = 0.0
        self.trial = False
        self.failing_since = None
        self._end_trial()

    def failure(self, now: float) -> None:
        """Record a failure: open the circuit at the threshold, or again after a failed
        trial (for twice as long as the last time, at most ``reset``)."""
        if self.failing_since is None:
            self.failing_since = now
        self.failures += 1
        if self.trial:
            self.open_for = min(self.reset, 2 * self.open_for)
            self.opened_at = now
        elif self.failures >= self.threshold:
            if self.opened_at is None:  # it opens now
                self.open_for = min(self.reset, FIRST_OPEN)
            self.opened_at = now  # (a call out when it opened failed too: from now)
        self.trial = False
        self._end_trial()

    def reopens_at(self, now: float) -> float:
        """When the next call may go out: when it half-opens if the circuit is open,
        :data:`TRIAL_WAIT` from ``now`` while the half-open trial call is out (its
        outcome decides), else ``now``."""
        state = self.state(now)
        if state == "open" and self.opened_at is not None:
            return self.opened_at + self.open_for
        if state == "half-open" and self.trial:
            return now + min(self.reset, TRIAL_WAIT)
        return now

    def to_dict(self, now: float) -> dict[str, Any]:
        """JSON-safe state for ``health()``."""
        return {"circuit": self.state(now), "consecutive_failures": self.failures}


def backoff_delay(attempt: int, config: DeliveryConfig, error: DeliveryError) -> float:
    """Delay before quick retry number ``attempt`` (1-based): exponential with full jitter,
    and never shorter than the ``Retry-After`` the service asked for."""
    ceiling = min(config.backoff_max, config.backoff * (2 ** (attempt - 1)))
    delay = random.uniform(ceiling / 2, ceiling) if ceiling > 0 else 0.0
    if error.retry_after is not None:
        delay = max(delay, error.retry_after)
    return delay


def next_round(queued_at: float, now: float, config: DeliveryConfig) -> float:
    """When the next round of attempts is due: the first step of ``retry_schedule``
    (offsets from ``queued_at``, the last one repeating) still ahead of ``now``, plus
    up to 10 % of jitter so that instances do not retry in step. Jitter never pushes a
    step inside ``give_up_after`` past it."""
    elapsed = now - queued_at
    offset = 0.0
    steps = config.retry_schedule
    for i in itertools.count():
        step = float(steps[min(i, len(steps) - 1)])
        offset += step
        if offset > elapsed:
            due = offset + random.uniform(0, step * 0.1)
            if offset <= config.give_up_after:
                due = min(due, float(config.give_up_after))
            return queued_at + due
    raise AssertionError("unreachable")  # pragma: no cover


if sys.version_info >= (3, 11):

    async def _with_timeout(coro: Awaitable[T], timeout: float) -> T:
        """``await coro`` within ``timeout`` seconds, in this task (no extra task per attempt)."""
        async with asyncio.timeout(timeout):
            return await coro

else:  # pragma: no cover - Python 3.10

    async def _with_timeout(coro: Awaitable[T], timeout: float) -> T:
        """``await coro`` within ``timeout`` seconds."""
        return await asyncio.wait_for(coro, timeout)


@attrs.define(eq=False)
class ChannelSlot:
    """One configured channel with what guards it: its circuit breaker, its
    concurrency limit, and its pacing (if the channel paces its sends)."""

    name: ChannelName
    type: str
    channel: Channel
    breaker: CircuitBreaker
    concurrency: int
    pacer: Callable[[Alert], Awaitable[None]] | None = None
    limit: asyncio.Semaphore | None = None

    @classmethod
    def build(cls, name: str, kind: str, channel: Channel, config: DeliveryConfig) -> ChannelSlot:
        """A slot for ``channel`` with a fresh breaker; a channel with an
        ``async pace(alert)`` method paces its own sends."""
        return cls(
            ChannelName(name),
            kind,
            channel,
            CircuitBreaker(config.circuit_failures, config.circuit_reset),
            config.concurrency,
            getattr(channel, "pace", None),
        )

    def semaphore(self) -> asyncio.Semaphore:
        """The concurrency limit (made on first use, in the running event loop)."""
        if self.limit is None:
            self.limit = asyncio.Semaphore(self.concurrency)
        return self.limit

    async def pace(self, alert: Alert) -> None:
        """Wait until the service's rate limit allows sending ``alert``."""
        if self.pacer is not None:
            await self.pacer(alert)


async def preview(slot: ChannelSlot, alert: Alert) -> Preview:
    """What ``slot``'s channel would send for ``alert`` (as the pipeline prepared it for
    the channel: :meth:`Pipeline.prepare`): its ``render``, else the generic preview;
    registered secrets masked. Raises what the channel's ``render`` raises (a
    ``DeliveryError`` its ``send`` would raise)."""
    render = getattr(slot.channel, "render", None)
    if callable(render):
        found = render(alert)
        if inspect.isawaitable(found):
            found = await found
        if not isinstance(found, Preview):
            raise TypeError(
                f"channel {slot.name}: render() returned {type(found).__name__}, "
                "expected a pixalert.channels.Preview"
            )
        return _masked(found)
    return _masked(generic_preview(alert, slot.type))


async def preview_group(slot: ChannelSlot, group: Group, digest: Alert) -> Preview:
    """What ``slot``'s channel would send for ``group``: its ``render_group``, else the
    preview of the group's ``digest`` (as :meth:`Pipeline.deliver_group` sends it)."""
    render_group = getattr(slot.channel, "render_group", None)
    if callable(render_group) and callable(getattr(slot.channel, "send_group", None)):
        found = render_group(group)
        if inspect.isawaitable(found):
            found = await found
        if isinstance(found, Preview):
            return _masked(found)
    return await preview(slot, digest)


def _masked(found: Preview) -> Preview:
    """``found`` with every registered secret masked in its content and sketch."""

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            return redact(value)
        if isinstance(value, Mapping):
            return {redact(str(k)): clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    return attrs.evolve(found, content=clean(found.content), sketch=redact(found.sketch))


async def deliver(
    slot: ChannelSlot,
    alert: Alert,
    *,
    previous: Receipt | None,
    config: DeliveryConfig,
    clock: Clock,
    attempts: int = 0,
    queued_at: float | None = None,
    send: Callable[[], Awaitable[Receipt | None]] | None = None,
) -> DeliveryResult:
    """Send ``alert`` on one channel: up to ``max_attempts`` quick attempts, then say
    what happened: sent, failed (a permanent error, or given up), or retrying (with
    when the next round is due). ``attempts`` were made before this round. ``send``
    replaces the channel's ``send(alert, previous=...)`` for each attempt (a group's
    notification)."""
    name = slot.name
    queued = clock.now() if queued_at is None else queued_at
    tries = 0
    error: DeliveryError | None = None
    started = time.perf_counter()
    waited = False
    while tries < config.max_attempts:
        now = clock.now()
        if not slot.breaker.allow(now):
            # The half-open trial of this process is out: its outcome decides, soon.
            if not waited and await slot.breaker.trial_finished(config.timeout + 1):
                waited = True
                continue
            reason = "circuit open after repeated failures"
            if error is not None:
                reason += f"; last error: {redact(error.message)}"
            return _later(name, attempts, reason, slot.breaker.reopens_at(now), queued, config)
        tries += 1
        attempts += 1
        async with slot.semaphore():
            # Pacing is waited for before the attempt's timeout starts: a busy but
            # healthy channel must not time out, and a retry would post twice.
            await slot.pace(alert)
            attempt_start = time.perf_counter()
            try:
                receipt = await _with_timeout(
                    send() if send is not None else slot.channel.send(alert, previous=previous),
                    config.timeout,
                )
            except asyncio.TimeoutError:
                error = DeliveryError(f"timed out after {config.timeout:g}s")
            except DeliveryError as exc:
                error = exc
            except Exception as exc:
                error = DeliveryError(f"{type(exc).__name__}: {exc}")
            else:
                slot.breaker.success()
                return DeliveryResult(
                    name,
                    DeliveryStatus.SENT,
                    attempts,
                    None,
                    round(time.perf_counter() - attempt_start, 6),
                    dict(receipt) if receipt else None,
                )
        slot.breaker.failure(clock.now())
        if not error.retryable:
            return DeliveryResult(
                name,
                DeliveryStatus.FAILED,
                attempts,
                redact(error.message) + " (permanent, not retried)",
                round(time.perf_counter() - started, 6),
            )
        if error.retry_after is not None and error.retry_after > config.backoff_max:
            # Longer than a task should wait: the timeline holds it instead.
            wait = min(error.retry_after, config.max_retry_after)
            return _later(name, attempts, redact(error.message), clock.now() + wait, queued, config)
        if tries >= config.max_attempts:
            break
        await clock.sleep(backoff_delay(tries, config, error))
    assert error is not None
    now = clock.now()
    return _later(
        name, attempts, redact(error.message), next_round(queued, now, config), queued, config
    )


def _later(
    name: ChannelName,
    attempts: int,
    error: str,
    due: float,
    queued_at: float,
    config: DeliveryConfig,
) -> DeliveryResult:
    """``retrying`` at ``due``, or ``failed`` if that is past ``give_up_after``."""
    if due - queued_at > config.give_up_after:
        span = format_duration(config.give_up_after)
        return DeliveryResult(
            name,
            DeliveryStatus.FAILED,
            attempts,
            f"gave up after {attempts} attempts over {span}: {error}",
        )
    return DeliveryResult(
        name, DeliveryStatus.RETRYING, attempts, error, next_attempt_at=to_datetime(due)
    )
