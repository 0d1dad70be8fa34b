"""The storage contracts and helpers, for backend plugins (Redis, PostgreSQL, ...).

A backend plugin implements :class:`StateBackend` or :class:`HistoryStore`
and returns it from the ``pixalert_state_backend`` / ``pixalert_history_store``
hooks. :func:`build_stats` gives ``stats()`` its one shape everywhere.
"""

from ._clock import Clock, SystemClock
from ._errors import StoreUnavailable
from ._memory import MemoryHistoryStore, MemoryStateBackend
from ._storage import (
    HistoryEntry,
    HistoryStore,
    Lease,
    StateBackend,
    bucket_upper,
    build_stats,
    latency_bucket,
    percentiles,
    stats_from_results,
)
from ._urls import mask_url, positive_option, split_url_options

__all__ = [
    "Clock",
    "HistoryEntry",
    "HistoryStore",
    "Lease",
    "MemoryHistoryStore",
    "MemoryStateBackend",
    "StateBackend",
    "StoreUnavailable",
    "SystemClock",
    "bucket_upper",
    "build_stats",
    "latency_bucket",
    "mask_url",
    "percentiles",
    "positive_option",
    "split_url_options",
    "stats_from_results",
]
