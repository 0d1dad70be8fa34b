"""What a store author needs: the storage contracts, base classes and helpers.

A backend plugin implements :class:`HistoryStore` (the history and the
delivery timeline, held deliveries and groups: :class:`Planned`) or
:class:`StateBackend` (cooldown, dedup, silences), and
returns it from the ``pixalert_history_store`` / ``pixalert_state_backend``
hooks. :class:`BaseHistoryStore` and :class:`BaseStateBackend` give the batch
forms one-by-one defaults; ``pixalert.testing.check_store_contract`` checks a
store against the whole contract. :func:`build_stats` gives ``stats()`` its
one shape everywhere, :func:`build_stats_by` ``stats_by()`` its own.
"""

from ._clock import Clock, SystemClock
from ._errors import StoreUnavailable
from ._memory import MemoryDatabase, MemoryHistoryStore, MemoryStateBackend
from ._storage import (
    GROUP_JOB,
    NEVER_NOTIFIED,
    RESULTS,
    ROUTE_LATER,
    STATS_BY,
    STATUSES,
    SUPERSEDED,
    AlertEvent,
    BaseHistoryStore,
    BaseStateBackend,
    Claim,
    HistoryEntry,
    HistoryQuery,
    HistoryStore,
    Job,
    JobClaim,
    Planned,
    Recorded,
    Settled,
    StateBackend,
    bucket_upper,
    build_stats,
    build_stats_by,
    check_outcome,
    check_stats_by,
    hour_key,
    latency_bucket,
    percentiles,
    planned,
    stats_by_from_entries,
    stats_from_results,
)
from ._urls import mask_url, positive_option, split_url_options

__all__ = [
    "GROUP_JOB",
    "NEVER_NOTIFIED",
    "RESULTS",
    "ROUTE_LATER",
    "STATS_BY",
    "STATUSES",
    "SUPERSEDED",
    "AlertEvent",
    "BaseHistoryStore",
    "BaseStateBackend",
    "Claim",
    "Clock",
    "HistoryEntry",
    "HistoryQuery",
    "HistoryStore",
    "Job",
    "JobClaim",
    "MemoryDatabase",
    "MemoryHistoryStore",
    "MemoryStateBackend",
    "Planned",
    "Recorded",
    "Settled",
    "StateBackend",
    "StoreUnavailable",
    "SystemClock",
    "bucket_upper",
    "build_stats",
    "build_stats_by",
    "check_outcome",
    "check_stats_by",
    "hour_key",
    "latency_bucket",
    "mask_url",
    "percentiles",
    "planned",
    "positive_option",
    "split_url_options",
    "stats_by_from_entries",
    "stats_from_results",
]
