"""pixalert-redis: cooldown and dedup state in Redis, shared by every pixalert instance.

Select it with ``state = "redis://host:6379/0"`` (or ``rediss://`` for TLS).
This module only declares the hook; redis-py is imported when a backend is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pixalert import hookimpl

if TYPE_CHECKING:
    from ._backend import RedisStateBackend

__all__ = ["RedisStateBackend", "pixalert_state_backend"]

SCHEMES = ("redis://", "rediss://")


@hookimpl
def pixalert_state_backend(url: str, clock: Any) -> RedisStateBackend | None:
    """Return a :class:`RedisStateBackend` for ``redis://`` and ``rediss://`` URLs, else None."""
    if not url.lower().startswith(SCHEMES):
        return None
    from ._backend import RedisStateBackend

    return RedisStateBackend.from_url(url, clock=clock)


def __getattr__(name: str) -> Any:
    if name == "RedisStateBackend":
        from ._backend import RedisStateBackend

        return RedisStateBackend
    raise AttributeError(f"module 'pixalert_redis' has no attribute {name!r}")
