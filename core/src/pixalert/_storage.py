"""The storage contracts: a state backend (cooldown, dedup) and a history store.

The core ships an in-memory and a SQLite implementation of each; plugins add
others (Redis, PostgreSQL) through the ``pixalert_state_backend`` and
``pixalert_history_store`` hooks.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import attrs

from ._types import Alert, DeliveryResult

__all__ = [
    "HistoryEntry",
    "HistoryStore",
    "Lease",
    "StateBackend",
    "bucket_upper",
    "build_stats",
    "latency_bucket",
    "percentiles",
    "stats_from_results",
]


@runtime_checkable
class StateBackend(Protocol):
    """Short-lived shared state: cooldown and dedup decisions, silences, inhibitions.

    Every key lives for a time-to-live in seconds, and every instance sharing
    the backend sees the same keys:

    - ``acquire(key, ttl)`` is the one decision every instance must agree on:
      it sets ``key`` for ``ttl`` seconds and returns True only if the key was
      not set already, atomically (``SET key NX PX ttl`` in Redis terms).
    - ``release(key)`` forgets a key, whichever method set it.
    - ``put(key, value, ttl)`` sets ``key`` to the string ``value`` for ``ttl``
      seconds unconditionally (``SET key value PX ttl``); ``ttl <= 0`` forgets it.
    - ``get(key)`` is the value of a live key set by ``put``, else None.
    - ``items(prefix)`` is ``{key: value}`` of every live key set by ``put``
      whose name starts with ``prefix`` (silences are read as
      ``items("silence:")``).

    ``acquire`` and ``put`` share one key space; a key set by ``acquire``
    carries no value to rely on, so keep the two under different prefixes
    (the core uses ``cooldown:``/``dedup:`` with ``acquire``, ``silence:``
    and ``inhibit:`` with ``put``).

    Optional: ``acquire_many(keys, ttl) -> list[bool]``, ``acquire`` for
    each key in order in one step (a repeated key gets False after its first
    time); ``NotificationManager.first_seen_many`` uses it, else ``acquire``
    per key.
    """

    async def acquire(self, key: str, ttl: float) -> bool:
        """Set ``key`` for ``ttl`` seconds unless it is set; True if this call set it."""
        ...

    async def release(self, key: str) -> None:
        """Forget ``key`` (a cooldown is lifted when its alert could not be sent)."""
        ...

    async def put(self, key: str, value: str, ttl: float) -> None:
        """Set ``key`` to ``value`` for ``ttl`` seconds, whether it was set or not."""
        ...

    async def get(self, key: str) -> str | None:
        """The value of ``key`` if it is live, else None."""
        ...

    async def items(self, prefix: str) -> dict[str, str]:
        """Every live key starting with ``prefix``, with its value."""
        ...

    async def health(self) -> Mapping[str, Any]:
        """``{"status": "ok" | "degraded", ...}`` for ``NotificationManager.health()``."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


@attrs.frozen(eq=False)
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

    Two optional methods make a store faster where it can batch:
    ``finish(lease, results) -> bool`` (every result and the completion in
    one step) and ``record_many(alerts, *, owner, lease) -> list[Lease]``
    (several alerts in one transaction, all or none). Without them the
    manager calls ``record_result``/``complete`` and ``record`` one by one.
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

    async def entries(self, since: datetime, *, limit: int | None = None) -> list[HistoryEntry]:
        """Alerts created at or after ``since``, newest first."""
        ...

    async def stats(self, since: datetime) -> dict[str, Any]:
        """Per-channel counts and latency percentiles since ``since`` (see :func:`build_stats`)."""
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


_BUCKET_BASE = 1e-4  # 0.1 ms
_BUCKET_GROWTH = 1.05  # each bucket 5 % wider: percentiles within 5 %
_STATUSES = ("sent", "failed", "suppressed", "skipped")


def latency_bucket(seconds: float) -> int:
    """The histogram bucket of a latency: bucket ``b`` holds values up to ``0.1 ms * 1.05**b``."""
    if seconds <= _BUCKET_BASE:
        return 0
    return math.ceil(math.log(seconds / _BUCKET_BASE, _BUCKET_GROWTH) - 1e-9)


def bucket_upper(bucket: int) -> float:
    """The largest latency in seconds that falls in ``bucket``."""
    return _BUCKET_BASE * _BUCKET_GROWTH**bucket


def percentiles(histogram: Mapping[int, int]) -> dict[str, float | None]:
    """p50/p95/p99 (nearest rank, seconds, within 5 %) from ``{bucket: count}``."""
    total = sum(histogram.values())
    if not total:
        return {"p50": None, "p95": None, "p99": None}
    out: dict[str, float | None] = {}
    for name, q in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99)):
        rank = max(1, math.ceil(q * total))
        seen = 0
        for bucket in sorted(histogram):
            seen += histogram[bucket]
            if seen >= rank:
                out[name] = round(bucket_upper(bucket), 6)
                break
    return out


def build_stats(
    since: datetime,
    alerts: int,
    counts: Mapping[tuple[str, str], int],
    histograms: Mapping[str, Mapping[int, int]],
) -> dict[str, Any]:
    """The ``stats()`` dict from per-(channel, status) counts and per-channel latency histograms.

    Shape::

        {"since": "...", "alerts": 12,
         "totals": {"sent": 20, "failed": 1, "suppressed": 3, "skipped": 2},
         "channels": {"slack": {"sent": 10, "failed": 1, "suppressed": 2, "skipped": 0,
                                "success_rate": 0.909,
                                "latency": {"p50": 0.012, "p95": 0.05, "p99": 0.08}}}}

    ``success_rate`` is sent / (sent + failed), None when nothing was tried.
    Latencies are in seconds, for sent deliveries.
    """
    channels: dict[str, dict[str, Any]] = {}
    totals = dict.fromkeys(_STATUSES, 0)
    for (channel, status), n in counts.items():
        row = channels.setdefault(channel, dict.fromkeys(_STATUSES, 0))
        if status in row:
            row[status] += n
            totals[status] += n
    for channel, row in channels.items():
        tried = row["sent"] + row["failed"]
        row["success_rate"] = round(row["sent"] / tried, 4) if tried else None
        row["latency"] = percentiles(histograms.get(channel, {}))
    return {
        "since": since.isoformat(),
        "alerts": alerts,
        "totals": totals,
        "channels": dict(sorted(channels.items())),
    }


def stats_from_results(
    since: datetime, alerts: int, results: Iterable[DeliveryResult]
) -> dict[str, Any]:
    """:func:`build_stats` from result objects (the in-memory store)."""
    counts: dict[tuple[str, str], int] = {}
    histograms: dict[str, dict[int, int]] = {}
    for result in results:
        key = (str(result.channel), result.status.value)
        counts[key] = counts.get(key, 0) + 1
        if result.status.value == "sent" and result.latency is not None:
            hist = histograms.setdefault(str(result.channel), {})
            bucket = latency_bucket(result.latency)
            hist[bucket] = hist.get(bucket, 0) + 1
    return build_stats(since, alerts, counts, histograms)
