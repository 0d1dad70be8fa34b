"""In-memory state backend and history store: for tests and short-lived scripts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from ._clock import Clock
from ._storage import HistoryEntry, Lease, stats_from_results
from ._types import Alert, DeliveryResult, DeliveryStatus, _new_id

__all__ = ["MemoryHistoryStore", "MemoryStateBackend"]


class MemoryStateBackend:
    """Cooldown and dedup keys (and put values) in dicts, expiring on the given clock."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._keys: dict[str, float] = {}
        self._values: dict[str, str] = {}  # keys set by put (their expiry is in _keys)

    async def acquire(self, key: str, ttl: float) -> bool:
        """Set ``key`` for ``ttl`` seconds unless it is live; True if this call set it."""
        now = self._clock.now()
        expires = self._keys.get(key)
        if expires is not None and expires > now:
            return False
        self._keys[key] = now + ttl
        if self._values:
            self._values.pop(key, None)
        if len(self._keys) > 10_000:
            self._prune(now)
        return True

    def _prune(self, now: float) -> None:
        self._keys = {k: v for k, v in self._keys.items() if v > now}
        self._values = {k: v for k, v in self._values.items() if k in self._keys}

    async def release(self, key: str) -> None:
        """Forget ``key``."""
        self._keys.pop(key, None)
        self._values.pop(key, None)

    async def put(self, key: str, value: str, ttl: float) -> None:
        """Set ``key`` to ``value`` for ``ttl`` seconds (``ttl <= 0`` forgets it)."""
        if ttl <= 0:
            await self.release(key)
            return
        now = self._clock.now()
        self._keys[key] = now + ttl
        self._values[key] = value
        if len(self._keys) > 10_000:
            self._prune(now)

    async def get(self, key: str) -> str | None:
        """The value of ``key`` if it is live."""
        value = self._values.get(key)
        if value is None or self._keys.get(key, 0.0) <= self._clock.now():
            return None
        return value

    async def items(self, prefix: str) -> dict[str, str]:
        """Every live key set by ``put`` that starts with ``prefix``."""
        now = self._clock.now()
        return {
            k: v
            for k, v in self._values.items()
            if k.startswith(prefix) and self._keys.get(k, 0.0) > now
        }

    async def health(self) -> Mapping[str, Any]:
        """Always ok."""
        return {"status": "ok", "backend": "memory"}

    async def aclose(self) -> None:
        """Nothing to release."""


class _Row:
    __slots__ = ("alert", "lease_until", "results", "state", "token")

    def __init__(self, alert: Alert, token: str, lease_until: float) -> None:
        self.alert = alert
        self.state = "pending"
        self.token = token
        self.lease_until = lease_until
        self.results: dict[str, DeliveryResult] = {}


class MemoryHistoryStore:
    """History in a dict: the same semantics as the SQLite store, nothing durable."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._rows: dict[str, _Row] = {}

    async def record(self, alert: Alert, *, owner: str, lease: float) -> Lease:
        """Store ``alert`` as pending, leased to ``owner``."""
        token = _new_id()
        self._rows[alert.id] = _Row(alert, token, self._clock.now() + lease)
        return Lease(alert, token)

    def _held(self, lease: Lease) -> _Row | None:
        row = self._rows.get(lease.alert.id)
        if row is None or row.token != lease.token:
            return None
        return row

    async def record_result(self, lease: Lease, result: DeliveryResult) -> bool:
        """Store a channel's result if ``lease`` is still held."""
        row = self._held(lease)
        if row is None:
            return False
        row.results[str(result.channel)] = result
        return True

    async def complete(self, lease: Lease) -> bool:
        """Mark done if ``lease`` is still held."""
        row = self._held(lease)
        if row is None:
            return False
        row.state = "done"
        row.token = ""
        return True

    async def finish(self, lease: Lease, results: Sequence[DeliveryResult]) -> bool:
        """Store every result and mark done, if ``lease`` is still held."""
        row = self._held(lease)
        if row is None:
            return False
        for result in results:
            row.results[str(result.channel)] = result
        row.state = "done"
        row.token = ""
        return True

    async def renew(self, leases: Sequence[Lease], lease: float) -> None:
        """Extend the leases still held."""
        until = self._clock.now() + lease
        for item in leases:
            row = self._held(item)
            if row is not None:
                row.lease_until = until

    async def claim_pending(self, *, owner: str, lease: float, limit: int = 100) -> list[Lease]:
        """Claim pending alerts whose lease has expired."""
        now = self._clock.now()
        claimed = []
        for row in self._rows.values():
            if row.state == "pending" and row.lease_until <= now:
                row.token = _new_id()
                row.lease_until = now + lease
                claimed.append(Lease(row.alert, row.token))
                if len(claimed) >= limit:
                    break
        return claimed

    async def results_for(self, alert_id: str) -> list[DeliveryResult]:
        """Results recorded so far for ``alert_id``."""
        row = self._rows.get(alert_id)
        return list(row.results.values()) if row else []

    async def last_receipt(self, key: str, channel: str) -> Mapping[str, str] | None:
        """Receipt of the newest successful send of ``key`` on ``channel``."""
        for row in sorted(self._rows.values(), key=lambda r: r.alert.created_at, reverse=True):
            if row.alert.key != key:
                continue
            result = row.results.get(channel)
            if result is not None and result.status is DeliveryStatus.SENT and result.receipt:
                return result.receipt
        return None

    async def entries(self, since: datetime, *, limit: int | None = None) -> list[HistoryEntry]:
        """Alerts created at or after ``since``, newest first."""
        rows = [r for r in self._rows.values() if r.alert.created_at >= since]
        rows.sort(key=lambda r: r.alert.created_at, reverse=True)
        if limit is not None:
            rows = rows[:limit]
        return [HistoryEntry(r.alert, r.state, tuple(r.results.values())) for r in rows]

    async def stats(self, since: datetime) -> dict[str, Any]:
        """Per-channel counts and latency percentiles since ``since``."""
        rows = [r for r in self._rows.values() if r.alert.created_at >= since]
        return stats_from_results(
            since, len(rows), [res for r in rows for res in r.results.values()]
        )

    async def purge(self, before: datetime) -> int:
        """Drop alerts created before ``before``."""
        old = [k for k, r in self._rows.items() if r.alert.created_at < before]
        for k in old:
            del self._rows[k]
        return len(old)

    async def health(self) -> Mapping[str, Any]:
        """Always ok."""
        return {"status": "ok", "backend": "memory", "alerts": len(self._rows)}

    async def aclose(self) -> None:
        """Nothing to release."""
