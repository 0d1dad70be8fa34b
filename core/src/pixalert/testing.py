"""What a plugin author needs to test a channel, shipped with the core.

- :class:`FakeClock`: time that moves only when told (cooldowns, backoff, leases).
- :class:`RecordingChannel`: a channel that records what it was sent and can
  be told to fail.
- :func:`make_manager`: a :class:`pixalert.NotificationManager` with given
  channels, a history in a temporary SQLite file and a fake clock.
- :func:`check_channel_contract` (and :class:`ChannelContract`): the
  conformance suite a channel plugin runs from its own tests.
- :func:`check_store_contract` (and :class:`StoreContract`): the conformance
  suite a history store runs from its own tests.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from ._channels import Channel, ChannelSpec, Receipt
from ._conformance import ChannelContract, ContractViolation, check_channel_contract
from ._errors import DeliveryError
from ._fakeservice import FakeService, Fault, ReceivedRequest
from ._storage import HistoryStore
from ._store_contract import STORE_CHECKS, StoreContract, check_store_contract
from ._types import Alert

__all__ = [
    "STORE_CHECKS",
    "ChannelContract",
    "ContractViolation",
    "FakeClock",
    "FakeService",
    "Fault",
    "ReceivedRequest",
    "RecordingChannel",
    "RecordingConfig",
    "StoreContract",
    "check_channel_contract",
    "check_store_contract",
    "make_manager",
    "recording_spec",
]


class FakeClock:
    """A clock for tests: ``now()`` starts at ``start`` (default: the real time
    when created) and moves only on ``advance`` or ``sleep``.

    ``sleep`` returns at once after moving the time, and records the delay in
    :attr:`sleeps`, so retry backoff can be asserted without waiting.
    """

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else float(start)
        self.sleeps: list[float] = []

    def now(self) -> float:
        """The fake time, in epoch seconds."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self._now += seconds

    async def sleep(self, seconds: float) -> None:
        """Record ``seconds``, move time forward, and yield to the loop once."""
        self.sleeps.append(seconds)
        self._now += max(0.0, seconds)
        await asyncio.sleep(0)


@attrs.define
class RecordingConfig:
    """Config of a :class:`RecordingChannel` built from settings (``type = "recording"``)."""

    fail_times: int = 0
    permanent: bool = False


class RecordingChannel:
    """A channel that keeps every alert it is sent in :attr:`sent`.

    ``fail`` is a list of exceptions (or a callable returning one or None)
    raised on the next calls, in order; ``hang`` makes ``send`` wait forever.
    """

    def __init__(
        self,
        name: str = "recording",
        *,
        fail: Iterable[BaseException] = (),
        hang: bool = False,
        receipt: Callable[[Alert], Receipt | None] | None = None,
    ) -> None:
        self.name = name
        self.sent: list[Alert] = []
        self.previous: list[Receipt | None] = []
        self.calls = 0
        self.fail = list(fail)
        self.hang = hang
        self.closed = False
        self._receipt = receipt

    async def send(self, alert: Alert, *, previous: Receipt | None = None) -> Receipt | None:
        """Record ``alert``, or raise the next queued failure."""
        self.calls += 1
        if self.hang:
            await asyncio.Event().wait()
        if self.fail:
            raise self.fail.pop(0)
        self.sent.append(alert)
        self.previous.append(previous)
        return self._receipt(alert) if self._receipt else None

    async def aclose(self) -> None:
        """Mark closed."""
        self.closed = True


def _recording_factory(name: str, config: RecordingConfig) -> Channel:
    failures: list[BaseException] = [
        DeliveryError("recording: told to fail", retryable=not config.permanent)
        for _ in range(config.fail_times)
    ]
    return RecordingChannel(name, fail=failures)


def recording_spec(name: str = "recording") -> ChannelSpec:
    """A :class:`ChannelSpec` for :class:`RecordingChannel`, to register from a test plugin."""
    return ChannelSpec(
        name=name,
        config_type=RecordingConfig,
        factory=_recording_factory,
        description="records alerts in memory (tests)",
    )


def make_manager(
    channels: Iterable[Channel] | Mapping[str, Channel] = (),
    *,
    clock: FakeClock | None = None,
    config: Mapping[str, Any] | None = None,
    plugins: Iterable[object] = (),
    entrypoints: bool = False,
    history: str | HistoryStore | None = None,
    **kwargs: Any,
) -> Any:
    """A :class:`pixalert.NotificationManager` for tests.

    It has the given channel instances, a history (and cooldown state) in a
    new temporary SQLite file unless ``history`` names another URL or passes
    a store, a :class:`FakeClock`, no environment or config files read, and
    no installed plugins loaded unless ``entrypoints=True``.

    Background sweeps are off (``delivery.recover_interval = 0``) unless the
    config sets it, so that a test decides when due work runs: move the
    clock, then ``await manager.resume_pending()``.
    """
    from ._manager import NotificationManager
    from ._plugins import get_plugin_manager

    merged: dict[str, Any] = {"delivery": {"recover_interval": 0}}
    if isinstance(history, str):
        merged["history"] = history
    elif history is not None:
        merged["history"] = "memory://"
        kwargs["history"] = history
    else:
        folder = tempfile.mkdtemp(prefix="pixalert-test-")
        merged["history"] = f"sqlite:///{folder}/history.db"
    for key, value in (config or {}).items():
        if key == "delivery" and isinstance(value, Mapping):
            merged["delivery"] = {**merged["delivery"], **value}
        else:
            merged[key] = value
    manager = NotificationManager(
        config=merged,
        channels=channels,
        clock=clock or FakeClock(),
        plugin_manager=get_plugin_manager(entrypoints=entrypoints, plugins=plugins),
        env={},
        config_file=None,
        read_files=False,
        **kwargs,
    )
    if history is None:
        weakref.finalize(manager, shutil.rmtree, folder, True)
    return manager
