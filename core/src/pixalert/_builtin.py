"""The core's own stores, offered through the same hooks as a plugin's store.

Registered in every plugin manager as ``pixalert.builtin``, last in line, so
that ``memory://`` and ``sqlite:///path`` URLs are answered the way a
plugin answers ``redis://`` or ``postgresql://`` ones.
"""

from __future__ import annotations

from typing import Any

from .hookspecs import hookimpl


@hookimpl(trylast=True)
def pixalert_history_store(url: str, clock: Any) -> Any:
    """``memory://`` and ``sqlite:`` history stores."""
    if url.startswith("memory:"):
        from ._memory import MemoryHistoryStore

        return MemoryHistoryStore(clock)
    if url.startswith("sqlite:"):
        from ._sqlite import SQLiteHistoryStore

        return SQLiteHistoryStore(url, clock)
    return None


@hookimpl(trylast=True)
def pixalert_state_backend(url: str, clock: Any) -> Any:
    """``memory://`` and ``sqlite:`` state backends."""
    if url.startswith("memory:"):
        from ._memory import MemoryStateBackend

        return MemoryStateBackend(clock)
    if url.startswith("sqlite:"):
        from ._sqlite import SQLiteStateBackend

        return SQLiteStateBackend(url, clock)
    return None
