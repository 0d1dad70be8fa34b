"""The timeline: due work in the history store, claimed by live owners, run by sweeps.

Every manager is an owner. It announces itself to the store when it starts
(the store can then tell when it dies), renews the claims it has in flight,
and, unless ``delivery.recover_interval`` is 0, sweeps for due work: deliveries
waiting for a retry, deliveries a dead process left, and :class:`Job` rows of
the kinds it has handlers for. A sweep claims in batches until nothing is due.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ._clock import Clock
from ._config import DeliveryConfig
from ._redact import redact
from ._storage import Claim, HistoryStore, Job, JobClaim
from ._types import Alert, DeliveryResult

__all__ = ["JobHandler", "Timeline"]

log = logging.getLogger("pixalert")

#: Handles one claimed job: returns None when it is done, or ``(next_due, payload)``
#: (payload None: unchanged) to run it again later.
JobHandler = Callable[[JobClaim], Awaitable["tuple[float, dict[str, Any] | None] | None"]]

#: Deliveries and jobs claimed per round of a sweep.
SWEEP_BATCH = 100
#: Seconds after start before the first sweep.
START_DELAY = 0.25
#: A job whose handler raised is tried again this many seconds later.
JOB_RETRY = 30.0


class Timeline:
    """One owner's view of the timeline: its claims in flight, and its sweeps."""

    def __init__(
        self,
        store: Callable[[], HistoryStore],
        clock: Clock,
        owner: str,
        config: DeliveryConfig,
        run_claims: Callable[[Sequence[Claim]], Awaitable[None]],
    ) -> None:
        self._store = store
        self._clock = clock
        self.owner = owner
        self._config = config
        self._run_claims = run_claims
        self.handlers: dict[str, JobHandler] = {}
        #: Called with the alerts that outcomes written late (see :meth:`hold`) finished.
        self.on_written: Callable[[Sequence[Alert]], Awaitable[None]] | None = None
        #: Checks run after each sweep (pixalert watching its own channels).
        self.tickers: list[Callable[[], Awaitable[None]]] = []
        self._inflight: set[Claim] = set()
        self._unwritten: list[tuple[Claim, DeliveryResult]] = []
        self._orphans: list[Claim] = []
        self._timers: dict[str, asyncio.TimerHandle] = {}
        # Times asked for by wake_at that a sweep in between must not forget.
        self._wakes: list[float] = []
        self._sweeping: asyncio.Task[int] | None = None
        self._again = False
        self._running = False
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- life cycle ---------------------------------------------------------

    async def start(self) -> None:
        """Announce the owner, give back claims a dead event loop left, start sweeping."""
        store = self._store()
        await store.open_owner(self.owner)
        if self._orphans:
            orphans, self._orphans = self._orphans, []
            try:
                await store.release(orphans)
            except Exception as exc:
                log.warning("could not give back unfinished claims: %s", redact(str(exc)))
        self._running = True
        if self._config.recover_interval:
            # What a dead process left, soon: after a moment, so that code running one
            # short event loop per call (a web view calling asyncio.run) closes its
            # loop with a timer pending, which is dropped, rather than a sweep.
            self._arm(min(START_DELAY, self._config.recover_interval))

    def rebind(self) -> None:
        """Drop timers and tasks of an event loop that has ended; its claims are given
        back on the next :meth:`start`."""
        self._orphans.extend(self._inflight)
        self._inflight.clear()
        self._unwritten.clear()  # their claims are given back with the orphans
        self._timers.clear()
        self._wakes.clear()
        self._tasks.clear()
        self._sweeping = None
        self._running = False

    async def stop(self) -> None:
        """Stop sweeping, wait for a sweep under way, give back what is still claimed."""
        self._running = False
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        if self._sweeping is not None:
            await asyncio.gather(self._sweeping, return_exceptions=True)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._unwritten:
            try:
                await self._write_unwritten()
            except Exception as exc:  # given back below: delivered again elsewhere
                log.warning("could not write results on close: %s", redact(str(exc)))
        try:
            await self._store().close_owner(self.owner)
        except Exception as exc:
            log.warning("could not give back claims on close: %s", redact(str(exc)))

    # -- claims in flight ---------------------------------------------------------

    def track(self, claims: Sequence[Claim]) -> None:
        """Renew these claims (every third of the lease) until :meth:`untrack`."""
        self._inflight.update(claims)
        if "renew" not in self._timers and self._inflight:
            self._every("renew", max(0.05, self._config.lease / 3), self._renew)

    def untrack(self, claims: Sequence[Claim]) -> None:
        """Stop renewing these claims (unless their outcomes are held, see :meth:`hold`)."""
        if not self._unwritten:
            self._inflight.difference_update(claims)
            return
        held = {claim for claim, _ in self._unwritten}
        self._inflight.difference_update(c for c in claims if c not in held)

    def hold(self, outcomes: Sequence[tuple[Claim, DeliveryResult]]) -> None:
        """Keep outcomes the store failed to take: their claims stay held (and renewed),
        and the next sweep writes them before it claims anything."""
        self._unwritten.extend(outcomes)
        self._inflight.update(claim for claim, _ in outcomes)

    async def _write_unwritten(self) -> None:
        outcomes, self._unwritten = self._unwritten, []
        try:
            settled = await self._store().settle(outcomes)
        except BaseException:
            self._unwritten[:0] = outcomes
            raise
        self._inflight.difference_update(claim for claim, _ in outcomes)
        alerts = {claim.alert.id: claim.alert for claim, _ in outcomes}
        if settled.completed and self.on_written is not None:
            await self.on_written([alerts[i] for i in settled.completed if i in alerts])

    async def _renew(self) -> bool:
        if not self._inflight:
            return False
        await self._store().renew(list(self._inflight), self._config.lease)
        return True

    # -- sweeps ---------------------------------------------------------------

    def wake_at(self, when: float) -> None:
        """Sweep at ``when`` (epoch seconds, on the manager's clock) or sooner."""
        if not self._running or not self._config.recover_interval:
            return
        now = self._clock.now()
        if when > now + self._config.recover_interval:
            heapq.heappush(self._wakes, when)  # the sweeps before it will come back to it
        self._arm(max(0.0, min(when - now, self._config.recover_interval)))

    def _arm(self, delay: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # the loop is shutting down: the next start sweeps
            return
        timer = self._timers.get("sweep")
        if timer is not None:
            if timer.when() <= loop.time() + delay:
                return
            timer.cancel()
        self._timers["sweep"] = loop.call_later(delay, self._tick)

    def _tick(self) -> None:
        self._timers.pop("sweep", None)
        if not self._running:
            return
        if self._sweeping is not None and not self._sweeping.done():
            self._again = True
            return
        self._sweeping = asyncio.get_running_loop().create_task(self._sweep_then_rearm())

    async def _sweep_then_rearm(self) -> int:
        count = 0
        try:
            count = await self.sweep()
        except Exception as exc:
            log.warning("sweep failed: %s", redact(str(exc)))
        finally:
            self._sweeping = None
            now = self._clock.now()
            if self._again:
                self._again = False
                self.wake_at(now)
            else:
                while self._wakes and self._wakes[0] <= now:
                    heapq.heappop(self._wakes)
                soonest = self._wakes[0] if self._wakes else now + self._config.recover_interval
                self.wake_at(min(soonest, now + self._config.recover_interval))
        return count

    async def sweep(self) -> int:
        """Run every due delivery and job, batch after batch, until none is left;
        return how many were run. Outcomes held back by a store error (see
        :meth:`hold`) are written first. Safe to call at any time (tests with a
        fake clock call it after moving the time)."""
        store = self._store()
        count = 0
        if self._unwritten:
            await self._write_unwritten()
        while True:
            claims = await store.claim_due(
                owner=self.owner, lease=self._config.lease, limit=SWEEP_BATCH
            )
            jobs = (
                await store.claim_jobs(
                    owner=self.owner, lease=self._config.lease, limit=SWEEP_BATCH
                )
                if self.handlers
                else []
            )
            if not claims and not jobs:
                await self._after_sweep()
                return count
            count += len(claims) + len(jobs)
            await asyncio.gather(
                self._run_claims(claims) if claims else _nothing(),
                *(self._run_job(job) for job in jobs),
            )

    async def _after_sweep(self) -> None:
        for ticker in self.tickers:
            try:
                await ticker()
            except Exception as exc:
                log.warning("check after sweep failed: %s", redact(str(exc)))

    async def _run_job(self, claim: JobClaim) -> None:
        store = self._store()
        handler = self.handlers.get(claim.job.kind)
        now = self._clock.now()
        if handler is None:  # another instance's kind: give it back for a while
            await store.finish_job(claim, next_due=now + self._config.recover_interval)
            return
        try:
            again = await handler(claim)
        except Exception as exc:
            log.warning(
                "%s job %s failed (tried again in %gs): %s",
                claim.job.kind,
                claim.job.ref,
                JOB_RETRY,
                redact(str(exc)),
            )
            await store.finish_job(claim, next_due=now + JOB_RETRY)
            return
        if again is None:
            await store.finish_job(claim)
        else:
            next_due, payload = again
            await store.finish_job(claim, next_due=next_due, payload=payload)
            self.wake_at(next_due)

    async def schedule(self, jobs: Sequence[Job], *, replace: bool = True) -> list[bool]:
        """Put jobs on the timeline, and sweep when the first is due."""
        written = await self._store().schedule(jobs, replace=replace)
        if jobs:
            self.wake_at(min(job.due for job in jobs))
        return written

    async def drain(self) -> None:
        """Wait until the background work started here (and a sweep under way) is done."""
        while self._tasks or (self._sweeping is not None and not self._sweeping.done()):
            pending: list[Any] = list(self._tasks)
            if self._sweeping is not None:
                pending.append(self._sweeping)
            await asyncio.gather(*pending, return_exceptions=True)

    def spawn(self, coro: Awaitable[Any]) -> None:
        """Run ``coro`` in the background; :meth:`stop` waits for it."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- timers -------------------------------------------------------------------

    def _every(self, name: str, delay: float, job: Callable[[], Awaitable[bool]]) -> None:
        """Run ``job`` every ``delay`` seconds while it returns True."""
        loop = asyncio.get_running_loop()

        def tick() -> None:
            self._timers.pop(name, None)
            if self._running:
                self.spawn(self._repeat(name, delay, job))

        self._timers[name] = loop.call_later(delay, tick)

    async def _repeat(self, name: str, delay: float, job: Callable[[], Awaitable[bool]]) -> None:
        try:
            again = await job()
        except Exception as exc:
            log.warning("%s failed: %s", name, redact(str(exc)))
            again = True
        if again and self._running and name not in self._timers:
            self._every(name, delay, job)


async def _nothing() -> None:
    return None
