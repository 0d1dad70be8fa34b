"""Silences: "suppress every alert that matches these fields, for this long".

A silence is stored in the state backend as JSON under ``silence:<id>`` with
a time-to-live of the time it has left, so every instance sharing the backend
applies it and it disappears by itself when it ends.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import logging
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from ._clock import Clock, to_datetime
from ._durations import check_duration, parse_duration
from ._redact import redact
from ._types import Alert, Priority

if TYPE_CHECKING:
    from ._storage import StateBackend

log = logging.getLogger("pixalert")

__all__ = [
    "MATCH_FIELDS",
    "SILENCE_PREFIX",
    "SILENCE_REFRESH",
    "Silence",
    "SilenceBook",
    "check_duration",
    "check_matchers",
    "parse_duration",
]

#: The alert fields a matcher may name (and ``metadata.<name>``).
MATCH_FIELDS = ("key", "source", "title", "priority", "status")

#: The state backend key prefix of silences.
SILENCE_PREFIX = "silence:"

_GLOB = re.compile(r"[*?\[]")


def _alert_field(alert: Alert, field: str) -> str | None:
    """The text a matcher on ``field`` compares with; None when the alert lacks it."""
    if field == "priority":
        return alert.priority.name.lower()
    if field in ("key", "source", "title", "status"):
        return str(getattr(alert, field))
    name = field[len("metadata.") :]
    if name not in alert.metadata:
        return None
    value = alert.metadata[name]
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def check_matchers(matchers: Mapping[str, Any]) -> dict[str, str]:
    """``matchers`` checked and normalised, or ``ValueError`` naming the bad one.

    Fields: ``key``, ``source``, ``title``, ``priority``, ``status`` and
    ``metadata.<name>``; values are strings, compared exactly or as
    :func:`fnmatch.fnmatchcase` patterns (``*``, ``?``, ``[...]``). A
    ``priority`` without a pattern is read as a priority (``high``, ``3``).
    """
    if not isinstance(matchers, Mapping):
        raise ValueError(
            f"silence matchers: expected a mapping of field to value, got {type(matchers).__name__}"
        )
    if not matchers:
        raise ValueError("silence matchers: expected at least one FIELD=VALUE, got none")
    allowed = ", ".join(MATCH_FIELDS) + " or metadata.<name>"
    out: dict[str, str] = {}
    for field, value in matchers.items():
        if not isinstance(field, str) or not (
            field in MATCH_FIELDS or (field.startswith("metadata.") and len(field) > 9)
        ):
            raise ValueError(f"silence matcher {field!r}: unknown field, expected {allowed}")
        if not isinstance(value, str):
            raise ValueError(
                f"silence matcher {field!r}: expected a string value, got {type(value).__name__}"
            )
        if field == "priority":
            if _GLOB.search(value):
                value = value.lower()
            else:
                try:
                    value = Priority.parse(value).name.lower()
                except ValueError as exc:
                    raise ValueError(f"silence matcher 'priority': {exc}") from None
        elif field == "status" and not _GLOB.search(value) and value not in ("firing", "resolved"):
            raise ValueError(
                f"silence matcher 'status': expected firing or resolved, got {value!r}"
            )
        out[field] = value
    return out


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("silence times: expected timezone-aware datetimes")
    return value


@attrs.frozen
class Silence:
    """Suppresses every alert whose fields match all of ``matchers`` until ``ends_at``.

    Made by :meth:`pixalert.NotificationManager.silence` (or ``pixalert
    silence add``); ``id`` is what :meth:`~pixalert.NotificationManager.unsilence`
    takes. Times are aware UTC datetimes.
    """

    id: str
    matchers: dict[str, str] = attrs.field(converter=check_matchers, hash=False)
    starts_at: datetime = attrs.field(validator=lambda _i, _a, v: _aware(v))
    ends_at: datetime = attrs.field(validator=lambda _i, _a, v: _aware(v))
    comment: str = ""
    created_by: str = ""

    def matches(self, alert: Alert) -> bool:
        """True if every matcher matches ``alert`` (string equality or glob pattern)."""
        for field, pattern in self.matchers.items():
            value = _alert_field(alert, field)
            if value is None or not fnmatch.fnmatchcase(value, pattern):
                return False
        return True

    def active(self, now: float) -> bool:
        """True if the silence still applies at epoch second ``now`` (before ``ends_at``).

        ``starts_at`` is when it was made, not checked: another instance's
        clock may run a little ahead of this one.
        """
        return now < self.ends_at.timestamp()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (what the state backend stores and ``--json`` prints)."""
        return {
            "id": self.id,
            "matchers": dict(self.matchers),
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
            "comment": self.comment,
            "created_by": self.created_by,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Silence:
        """Rebuild a silence from :meth:`to_dict` output (``ValueError``/``KeyError`` if bad)."""
        return cls(
            id=str(data["id"]),
            matchers=data["matchers"],
            starts_at=datetime.fromisoformat(data["starts_at"]),
            ends_at=datetime.fromisoformat(data["ends_at"]),
            comment=str(data.get("comment", "")),
            created_by=str(data.get("created_by", "")),
        )


#: Silences are read from the state backend at most this often (seconds) per manager.
SILENCE_REFRESH = 1.0


class SilenceBook:
    """The silences of one manager: kept in the state backend (so every instance
    sharing it applies them), read at most once per :data:`SILENCE_REFRESH`."""

    def __init__(self, state: Callable[[], StateBackend], clock: Clock) -> None:
        self._state = state
        self._clock = clock
        self._cache: list[Silence] | None = None
        self._read_at = 0.0
        self._lock: asyncio.Lock | None = None

    def rebind(self) -> None:
        """Forget the lock made on an event loop that has ended."""
        self._lock = None

    async def add(
        self, matchers: Mapping[str, str], duration: float, comment: str, created_by: str
    ) -> Silence:
        """Store a new silence; ``ValueError`` for bad input, ``RuntimeError`` if not stored."""
        fields = check_matchers(matchers)
        seconds = check_duration(duration, "silence duration")
        for name, text in (("comment", comment), ("created_by", created_by)):
            if not isinstance(text, str):
                raise ValueError(f"silence {name}: expected a string, got {type(text).__name__}")
        now = self._clock.now()
        silence = Silence(
            id=uuid.uuid4().hex[:12],
            matchers=fields,
            starts_at=to_datetime(now),
            ends_at=to_datetime(now + seconds),
            comment=comment,
            created_by=created_by,
        )
        key = SILENCE_PREFIX + silence.id
        body = json.dumps(silence.to_dict(), separators=(",", ":"), ensure_ascii=False)
        state = self._state()
        await state.put(key, body, seconds)
        if await state.get(key) is None:
            raise RuntimeError(
                "silence: the state backend did not store it (is it reachable? see health())"
            )
        await self._refresh(now)
        return silence

    async def active(self, *, fresh: bool = False) -> list[Silence]:
        """The silences in effect now, soonest end first (``fresh``: read the backend now)."""
        now = self._clock.now()
        if fresh:
            await self._refresh(now)
        elif self._cache is None or not 0 <= now - self._read_at < SILENCE_REFRESH:
            if self._lock is None:
                self._lock = asyncio.Lock()
            async with self._lock:  # one read for a burst, not one per alert
                if self._cache is None or not 0 <= now - self._read_at < SILENCE_REFRESH:
                    await self._refresh(now)
        if not self._cache:
            return []
        return sorted((s for s in self._cache if s.active(now)), key=lambda s: s.ends_at)

    async def remove(self, silence_id: str) -> bool:
        """End a silence now; False if no such silence is in effect."""
        state = self._state()
        key = SILENCE_PREFIX + str(silence_id)
        found = await state.get(key) is not None
        if found:
            await state.release(key)
        await self._refresh(self._clock.now())
        return found

    async def _refresh(self, now: float) -> None:
        try:
            raw = await self._state().items(SILENCE_PREFIX)
        except Exception as exc:
            # Keep what was known: a backend hiccup must not stop deliveries.
            log.warning("could not read silences: %s", redact(str(exc)))
            if self._cache is None:
                self._cache = []
            self._read_at = now
            return
        silences = []
        for key, body in raw.items():
            try:
                silences.append(Silence.from_dict(json.loads(body)))
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("ignoring unreadable silence %s: %s", key, redact(str(exc)))
        self._cache = silences
        self._read_at = now
