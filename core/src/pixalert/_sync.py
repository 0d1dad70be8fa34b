"""The synchronous path: an event loop in a daemon thread, for code that is not async."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["SyncRunner"]

T = TypeVar("T")


class SyncRunner:
    """An event loop in a daemon thread, kept for a manager's lifetime.

    The manager's background work (sweeps, renewals) runs on it between calls.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="pixalert-sync", daemon=True
        )
        self._thread.start()

    def run(self, coro: Awaitable[T], timeout: float | None) -> T:
        """Run ``coro`` on the loop thread and return its result."""
        future = asyncio.run_coroutine_threadsafe(_wrap(coro), self.loop)
        return future.result(timeout)

    def stop(self) -> None:
        """Stop the loop and, from another thread, wait for it and close it."""
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)
            self.loop.close()


async def _wrap(coro: Awaitable[T]) -> T:
    return await coro
