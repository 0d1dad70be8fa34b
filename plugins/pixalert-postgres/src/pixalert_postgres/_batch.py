"""Group commit: calls that arrive while a batch is running go together in the next.

Each call to the store costs a pooled connection, a round trip, a statement and
a commit (a WAL flush on the server); with alerts in flight most of that is
the same work done many times. A :class:`Batcher` runs one batch at a time per
kind of call: the items of every call that arrives while one runs are joined
into the next batch, one statement and one commit for all of them. Under no
load a call runs at once, alone; under load the batches grow by themselves,
with no timer to wait for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar

from pixalert import StoreUnavailable

__all__ = ["Batcher"]

T = TypeVar("T")
R = TypeVar("R")

#: The most items one batch carries (the rest wait for the next).
MAX_ITEMS = 1000


class _Call(Generic[T, R]):
    __slots__ = ("future", "items")

    def __init__(self, items: Sequence[T], future: asyncio.Future[list[R]]) -> None:
        self.items = items
        self.future = future


class _Group(Generic[T, R]):
    __slots__ = ("queue", "running")

    def __init__(self) -> None:
        self.queue: list[_Call[T, R]] = []
        self.running = 0


class Batcher(Generic[T, R]):
    """Runs ``run(items, group)`` for the items of many calls at once, at most
    ``concurrency`` batches at a time per group.

    ``run`` takes a list of items and the group they share and returns one result
    per item, in order. Calls with different ``group`` values (say, two cooldown
    lengths) never share a batch. A batch that fails with
    :class:`~pixalert.StoreUnavailable` fails every call in it (the server is gone
    for all of them); any other error is taken as a fault of one call's items,
    and each call of that batch is run again alone, so that only the call at
    fault gets the error.
    """

    def __init__(
        self, run: Callable[[list[T], Hashable], Awaitable[list[R]]], *, concurrency: int = 2
    ) -> None:
        self._run = run
        self._concurrency = concurrency
        self._groups: dict[Hashable, _Group[T, R]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def __call__(self, items: Sequence[T], group: Hashable = None) -> list[R]:
        """The results of ``items``, run in the next batch of ``group``."""
        if not items:
            return []
        call: _Call[T, R] = _Call(items, asyncio.get_running_loop().create_future())
        state = self._groups.get(group)
        if state is None:
            state = self._groups[group] = _Group()
        state.queue.append(call)
        if state.running < self._concurrency:  # a batch starts (calls made meanwhile join it)
            state.running += 1
            task = asyncio.ensure_future(self._drain(group, state))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        try:
            # The batch goes on for the other calls if this one is cancelled.
            return await asyncio.shield(call.future)
        except asyncio.CancelledError:
            if call in state.queue:  # not started yet: it is dropped
                state.queue.remove(call)
            raise

    async def _drain(self, group: Hashable, state: _Group[T, R]) -> None:
        """Run batches of the group's calls until none is waiting."""
        queue = state.queue
        try:
            while queue:
                batch: list[_Call[T, R]] = []
                size = 0
                while queue and (not batch or size + len(queue[0].items) <= MAX_ITEMS):
                    call = queue.pop(0)
                    batch.append(call)
                    size += len(call.items)
                await self._run_batch(batch, group)
        finally:
            state.running -= 1
            if not state.running and not queue:
                del self._groups[group]

    async def _run_batch(self, batch: list[_Call[T, R]], group: Hashable) -> None:
        items = [item for call in batch for item in call.items]
        try:
            results = await self._run(items, group)
        except StoreUnavailable as exc:
            for call in batch:  # each its own copy: one exception raised in many tasks
                _fail(call.future, StoreUnavailable(*exc.args))
            return
        except Exception as exc:
            if len(batch) == 1:
                _fail(batch[0].future, exc)
                return
            for call in batch:  # which call's items were at fault: each alone
                await self._run_batch([call], group)
            return
        except BaseException as exc:  # cancelled (the loop is closing): every call learns it
            for call in batch:
                _fail(call.future, exc)
            raise
        start = 0
        for call in batch:
            end = start + len(call.items)
            if not call.future.done():
                call.future.set_result(results[start:end])
            start = end

    async def aclose(self) -> None:
        """Wait for the batches under way."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
