"""The storage contracts: a state backend (cooldown, dedup) and a history store.

The core ships an in-memory and a SQLite implementation of each; plugins add
others (Redis, PostgreSQL) through the ``pixalert_state_backend`` and
``pixalert_history_store`` hooks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import attrs

from ._types import Alert, DeliveryResult

__all__ = ["HistoryEntry", "HistoryStore", "Lease", "StateBackend"]


@runtime_checkable
class StateBackend(Protocol):
    """Short-lived shared state: cooldown and dedup decisions.

    ``acquire`` is the one decision every instance must agree on: it sets
    ``key`` for ``ttl`` seconds and returns True only if the key was not set
    already, atomically (``SET key NX PX ttl`` in Redis terms).
    """

    async def acquire(self, key: str, ttl: float) -> bool:
        """Set ``key`` for ``ttl`` seconds unless it is set; True if this call set it."""
        ...

    async def release(self, key: str) -> None:
        """Forget ``key`` (a cooldown is lifted when its alert could not be sent)."""
        ...

    async def health(self) -> Mapping[str, Any]:
        """``{"status": "ok" | "degraded", ...}`` for ``NotificationManager.health()``."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


@attrs.frozen
class Lease:
    """A claim on a pending alert: only the holder of ``token`` may complete it."""

    alert: Alert
    token: str


@attrs.frozen
class HistoryEntry:
    """One alert as the history holds it, with its per-channel results."""

    alert: Alert
    state: str  # "pending" while deliveries are under way, then "done"
    results: tuple[DeliveryResult, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (the seed's alert history row)."""
        data = self.alert.to_dict()
        data["state"] = self.state
        data["results"] = {str(r.channel): r.to_dict() for r in self.results}
        return data


@runtime_checkable
class HistoryStore(Protocol):
    """Durable history: every alert is written before any channel is tried.

    Alerts are *claimed* under a lease: ``record`` stores an alert already
    claimed by ``owner``; ``claim_pending`` hands out alerts whose lease has
    expired (their holder died); ``renew`` extends leases while deliveries run;
    ``complete`` and ``record_result`` are ignored (return False) for a token
    that no longer holds the lease, so a late, stale holder cannot overwrite
    the work of the instance that took over.
    """

    async def record(self, alert: Alert, *, owner: str, lease: float) -> Lease:
        """Store ``alert`` as pending, claimed by ``owner`` for ``lease`` seconds."""
        ...

    async def record_result(self, lease: Lease, result: DeliveryResult) -> bool:
        """Store one channel's result; False if ``lease`` is no longer held."""
        ...

    async def complete(self, lease: Lease) -> bool:
        """Mark the alert done; False if ``lease`` is no longer held."""
        ...

    async def renew(self, leases: Sequence[Lease], lease: float) -> None:
        """Extend the given leases by ``lease`` seconds from now."""
        ...

    async def claim_pending(self, *, owner: str, lease: float, limit: int = 100) -> list[Lease]:
        """Claim pending alerts whose lease expired (or that were released)."""
        ...

    async def results_for(self, alert_id: str) -> list[DeliveryResult]:
        """The results already recorded for an alert (to skip channels done before)."""
        ...

    async def last_receipt(self, key: str, channel: str) -> Mapping[str, str] | None:
        """The receipt of the last successful send of ``key`` on ``channel``."""
        ...

    async def entries(
        self, since: datetime, *, limit: int | None = None
    ) -> list[HistoryEntry]:
        """Alerts created at or after ``since``, newest first."""
        ...

    async def stats(self, since: datetime) -> dict[str, Any]:
        """Per-channel counts and latency percentiles since ``since`` (see ``NotificationManager.stats``)."""
        ...

    async def purge(self, before: datetime) -> int:
        """Delete alerts created before ``before``; return how many."""
        ...

    async def health(self) -> Mapping[str, Any]:
        """``{"status": "ok" | "degraded", ...}``."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


def latency_summary(latencies: Iterable[float]) -> dict[str, float | None]:
    """p50/p95/p99 of ``latencies`` in seconds (nearest-rank), None when empty."""
    values = sorted(latencies)
    if not values:
        return {"p50": None, "p95": None, "p99": None}

    def rank(q: float) -> float:
        index = max(0, min(len(values) - 1, int(round(q * len(values) + 0.5)) - 1))
        return values[index]

    return {"p50": rank(0.50), "p95": rank(0.95), "p99": rank(0.99)}
