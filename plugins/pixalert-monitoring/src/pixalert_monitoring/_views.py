"""What the dashboard's pages show, computed from the manager's public API.

Each ``*_view`` function takes the manager (and the page's parameters) and
returns a plain dict for a template. They read the history through
``manager.history()``/``get_alert()``, the channels through ``health()`` and
``stats()``, and show the data that alert lifecycle features add (events such
as ``acknowledged``, ``resolved`` or ``escalated``; a ``group`` on a result or
``metadata.group_key``; ``manager.heartbeats()``) whenever it is there.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

__all__ = [
    "PRIORITIES",
    "WINDOWS",
    "alert_view",
    "alerts_view",
    "channel_series",
    "channels_view",
    "heartbeats_view",
    "lifecycle",
    "now_view",
    "silences_view",
    "to_iso",
]

#: Priorities, highest first.
PRIORITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW")
_RANK = {name: len(PRIORITIES) - i for i, name in enumerate(PRIORITIES)}

#: The windows of the Channels page: label -> hours.
WINDOWS = {"1 h": 1.0, "24 h": 24.0, "7 d": 168.0}

#: Result statuses that are still in progress (``held``: waiting for a time window).
IN_PROGRESS = ("pending", "retrying", "held")

#: How many groups, alerts per group and alerts in all the Now page lists (the rest
#: are counted, with a link to the Alerts page).
MAX_GROUPS = 50
MAX_PER_GROUP = 10
MAX_ROWS = 150


async def maybe_await(value: Any) -> Any:
    """``value``, awaited if it is awaitable."""
    if inspect.isawaitable(value):
        return await value
    return value


def to_iso(value: Any) -> str | None:
    """An ISO 8601 UTC string for a datetime, epoch seconds or ISO string; None otherwise."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return moment.astimezone(timezone.utc).isoformat()
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            return None
        return datetime.fromtimestamp(value, timezone.utc).isoformat()
    if isinstance(value, str):
        try:
            return to_iso(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


def _rank(priority: Any) -> int:
    return _RANK.get(str(priority).upper(), 0)


# ---------------------------------------------------------------------------
# One alert's lifecycle (acknowledgement, escalation, group)
# ---------------------------------------------------------------------------


def lifecycle(entry: Mapping[str, Any]) -> dict[str, Any]:
    """What the events and results of one history entry say about its lifecycle.

    ``acknowledged`` is the last ``acknowledged`` event (unless an
    ``unacknowledged`` one came after it), ``resolved_by`` the last ``resolved``
    event, ``escalations`` the ``escalated`` events, ``group`` the group the
    alert belongs to (``metadata.group_key``, else a result's ``group``).
    """
    acknowledged: Mapping[str, Any] | None = None
    resolved: Mapping[str, Any] | None = None
    escalations: list[Mapping[str, Any]] = []
    for event in sorted(entry.get("events") or (), key=lambda e: str(e.get("at", ""))):
        kind = event.get("kind")
        if kind in ("acknowledged", "ack"):
            acknowledged = event
        elif kind in ("unacknowledged", "unack"):
            acknowledged = None
        elif kind == "resolved":
            resolved = event
        elif kind == "escalated":
            escalations.append(event)
    return {
        "acknowledged": acknowledged,
        "resolved_by": resolved,
        "escalations": escalations,
        "group": group_of(entry),
    }


def group_of(entry: Mapping[str, Any]) -> str | None:
    """The alert's group: ``metadata.group_key``, else the ``group`` a result names."""
    metadata = entry.get("metadata") or {}
    if isinstance(metadata, Mapping):
        value = metadata.get("group_key")
        if value not in (None, ""):
            return str(value)
    for result in (entry.get("results") or {}).values():
        if isinstance(result, Mapping):
            for name in ("group", "group_key"):
                value = result.get(name)
                if value not in (None, ""):
                    return str(value)
    return None


def deliveries(entry: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The entry's results, one dict per channel, sorted by channel, times as ISO strings."""
    out = []
    for channel, result in sorted((entry.get("results") or {}).items()):
        if not isinstance(result, Mapping):
            continue
        item = dict(result)
        item["channel"] = str(result.get("channel") or channel)
        item["next_attempt_at"] = to_iso(result.get("next_attempt_at"))
        out.append(item)
    return out


# ---------------------------------------------------------------------------
# Now
# ---------------------------------------------------------------------------


async def now_view(manager: Any, *, hours: float, scan: int) -> dict[str, Any]:
    """What is firing: the newest ``scan`` alerts of the last ``hours``, one row per key
    whose newest record is firing (and not resolved by an operator), grouped."""
    entries = await manager.history(hours, limit=scan)
    try:
        in_window = int((await manager.stats(hours)).get("alerts", len(entries)))
    except Exception:
        in_window = len(entries)
    health = await manager.health()
    silences = await manager.silences()
    firing = firing_rows(entries)
    groups: dict[str, dict[str, Any]] = {}
    for row in firing:
        name = row["group"] or row["source"] or ""
        group = groups.setdefault(
            name, {"name": name, "rows": [], "rank": 0, "newest": "", "acked": 0}
        )
        group["rows"].append(row)
        group["rank"] = max(group["rank"], row["rank"])
        group["newest"] = max(group["newest"], row["last_at"])
        group["acked"] += bool(row["acknowledged"])
    ordered = sorted(groups.values(), key=lambda g: (g["rank"], g["newest"]), reverse=True)
    budget = MAX_ROWS
    for group in ordered:
        group["rows"].sort(key=lambda r: (r["rank"], r["last_at"]), reverse=True)
        shown = max(1, min(MAX_PER_GROUP, budget))
        budget -= shown
        group["hidden"] = max(0, len(group["rows"]) - shown)
        group["rows"] = group["rows"][:shown]
        group["priority"] = PRIORITIES[len(PRIORITIES) - group["rank"]] if group["rank"] else ""
        group["size"] = len(group["rows"]) + group["hidden"]
    in_progress = [
        {"alert": entry, "delivery": item}
        for entry in entries
        for item in deliveries(entry)
        if item.get("status") in IN_PROGRESS
    ]
    channels = health.get("channels") or {}
    counts = {name: 0 for name in PRIORITIES}
    for row in firing:
        if row["priority"] in counts:
            counts[row["priority"]] += 1
    return {
        "hours": hours,
        "scan": scan,
        "scanned": len(entries),
        "in_window": in_window,
        "truncated": len(entries) >= scan and in_window > len(entries),
        "firing": len(firing),
        "counts": counts,
        "acknowledged": sum(bool(r["acknowledged"]) for r in firing),
        "groups": ordered[:MAX_GROUPS],
        "hidden_groups": max(0, len(ordered) - MAX_GROUPS),
        "in_progress": in_progress[:50],
        "in_progress_total": len(in_progress),
        "status": health.get("status"),
        "open_circuits": sorted(
            name
            for name, info in channels.items()
            if info.get("circuit") in ("open", "unavailable")
        ),
        "channels": len(channels),
        "silences": len(silences),
    }


def firing_rows(entries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per key whose newest entry (``entries`` are newest first) is firing.

    A row covers the key's current episode: its firing entries since the last
    resolved one. It is acknowledged when any entry of the episode is.
    """
    episodes: dict[str, list[Mapping[str, Any]]] = {}
    closed: set[str] = set()
    for entry in entries:
        key = str(entry.get("key"))
        if key in closed:
            continue
        if entry.get("status") == "resolved" or lifecycle(entry)["resolved_by"]:
            closed.add(key)
            continue
        episodes.setdefault(key, []).append(entry)
    rows = []
    for key, episode in episodes.items():
        latest = episode[0]
        states = [lifecycle(entry) for entry in episode]
        acked = next((s["acknowledged"] for s in states if s["acknowledged"]), None)
        escalations = [e for s in states for e in s["escalations"]]
        notified = next(
            (e for e in episode if any(d.get("status") != "suppressed" for d in deliveries(e))),
            latest,
        )
        rows.append(
            {
                "key": key,
                "id": latest.get("id"),
                "title": latest.get("title", ""),
                "message": latest.get("message", ""),
                "priority": str(latest.get("priority", "")).upper(),
                "rank": _rank(latest.get("priority")),
                "source": latest.get("source") or "",
                "group": next((s["group"] for s in states if s["group"]), None),
                "first_at": episode[-1].get("created_at", ""),
                "last_at": latest.get("created_at", ""),
                "count": len(episode),
                "acknowledged": acked,
                "escalations": escalations,
                "deliveries": deliveries(notified),
            }
        )
    return rows


# ---------------------------------------------------------------------------
# Alerts
# ---------------------------------------------------------------------------


async def alerts_view(manager: Any, filters: Mapping[str, Any]) -> dict[str, Any]:
    """The history with ``filters`` (the keyword arguments of ``manager.history``)."""
    query = {k: v for k, v in filters.items() if v not in (None, "", ())}
    hours = query.pop("hours", 24.0)
    limit = query.pop("limit", 100)
    entries = await manager.history(hours, limit=limit, **query)
    rows = [_alert_row(entry) for entry in entries]
    older = None
    if len(entries) >= limit and entries:
        older = entries[-1].get("created_at")
    return {"rows": rows, "count": len(rows), "limit": limit, "older": older}


def _alert_row(entry: Mapping[str, Any]) -> dict[str, Any]:
    row = dict(entry)
    row.update(lifecycle(entry))
    row["priority"] = str(entry.get("priority", "")).upper()
    row["deliveries"] = deliveries(entry)
    row["timeline"] = timeline(entry)
    return row


def timeline(entry: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The alert's story in time order: recorded, its events, retries waiting."""
    items: list[dict[str, Any]] = [
        {"at": entry.get("created_at"), "kind": "recorded", "text": "recorded", "by": None}
    ]
    for event in entry.get("events") or ():
        items.append(
            {
                "at": to_iso(event.get("at")),
                "kind": str(event.get("kind", "")),
                "text": str(event.get("kind", "")).replace("_", " "),
                "by": event.get("by"),
                "via": event.get("via"),
                "note": event.get("note"),
            }
        )
    for item in deliveries(entry):
        if item.get("next_attempt_at"):
            items.append(
                {
                    "at": item["next_attempt_at"],
                    "kind": "next_attempt",
                    "text": f"next attempt on {item['channel']}",
                    "by": None,
                    "future": True,
                }
            )
    items.sort(key=lambda i: str(i.get("at") or ""))
    return items


async def alert_view(manager: Any, alert_id: str) -> dict[str, Any] | None:
    """One alert with its deliveries, timeline and the other alerts of its key."""
    entry = await manager.get_alert(alert_id)
    if entry is None:
        return None
    row = _alert_row(entry)
    related = await manager.history(24 * 7, limit=20, key=entry.get("key"))
    row["related"] = [_alert_row(other) for other in related if other.get("id") != entry.get("id")]
    return row


# ---------------------------------------------------------------------------
# Channels
# ---------------------------------------------------------------------------


async def channels_view(manager: Any) -> dict[str, Any]:
    """Each channel's health and circuit, and its stats over :data:`WINDOWS`."""
    health = await manager.health()
    windows = {label: await manager.stats(hours) for label, hours in WINDOWS.items()}
    names = set(health.get("channels") or {})
    for stats in windows.values():
        names.update(stats.get("channels") or {})
    channels = []
    for name in sorted(names):
        info = dict((health.get("channels") or {}).get(name) or {})
        per_window = []
        for label, stats in windows.items():
            row = dict((stats.get("channels") or {}).get(name) or {})
            latency = row.get("latency") or {}
            per_window.append(
                {
                    "label": label,
                    "sent": row.get("sent", 0),
                    "failed": row.get("failed", 0),
                    "suppressed": row.get("suppressed", 0),
                    "skipped": row.get("skipped", 0),
                    "retrying": row.get("retrying", 0),
                    "success_rate": row.get("success_rate"),
                    "p50": latency.get("p50"),
                    "p95": latency.get("p95"),
                    "p99": latency.get("p99"),
                }
            )
        slowest = max((w["p99"] or 0 for w in per_window), default=0) or 1
        channels.append(
            {
                "name": name,
                "type": info.get("type", ""),
                "circuit": info.get("circuit", "unknown"),
                "failures": info.get("consecutive_failures"),
                "reason": info.get("reason"),
                "configured": name in (health.get("channels") or {}),
                "windows": per_window,
                "slowest": slowest,
            }
        )
    return {
        "status": health.get("status"),
        "history": health.get("history") or {},
        "state": health.get("state") or {},
        "plugin_errors": health.get("plugin_errors") or [],
        "channels": channels,
        "instance": health.get("instance"),
    }


#: Chart ranges: name -> (bucket hours, bucket count).
RANGES = {"24h": (1.0, 24), "7d": (24.0, 7)}


async def channel_series(manager: Any, range_name: str, now: float) -> dict[str, Any]:
    """Per channel and time bucket: sent, failed and success rate over ``range_name``.

    ``stats(hours)`` counts everything since ``now - hours``, so a bucket's counts
    are the difference of the stats at its two edges (one query per edge, each
    read from the store's per-minute rollups).
    """
    step, count = RANGES[range_name]
    cumulative = [await manager.stats(step * (i + 1)) for i in range(count)]
    names: set[str] = set()
    for stats in cumulative:
        names.update(stats.get("channels") or {})
    xs = [now - step * 3600 * (i + 1) for i in reversed(range(count))]
    series: dict[str, dict[str, list[Any]]] = {}
    for name in sorted(names):

        def at(i: int, status: str, name: str = name) -> int:
            if i < 0:
                return 0
            row = (cumulative[i].get("channels") or {}).get(name) or {}
            return int(row.get(status) or 0)

        sent, failed, rate = [], [], []
        for i in reversed(range(count)):
            s = max(0, at(i, "sent") - at(i - 1, "sent"))
            f = max(0, at(i, "failed") - at(i - 1, "failed"))
            sent.append(s)
            failed.append(f)
            rate.append(round(100 * s / (s + f), 2) if s + f else None)
        series[name] = {"sent": sent, "failed": failed, "success": rate}
    return {"range": range_name, "step_hours": step, "x": xs, "channels": series}


# ---------------------------------------------------------------------------
# Silences and heartbeats
# ---------------------------------------------------------------------------


async def silences_view(manager: Any) -> dict[str, Any]:
    """The silences in effect, soonest end first."""
    silences = [s.to_dict() for s in await manager.silences()]
    return {"silences": silences}


#: Field names a heartbeat may use for each column, first found wins.
_HEARTBEAT_FIELDS = {
    "name": ("name", "id"),
    "state": ("state", "status"),
    "last_ping": ("last_ping", "last_ping_at", "last_seen", "pinged_at"),
    "deadline": ("next_deadline", "deadline", "due", "due_at", "expires_at"),
    "period": ("period", "schedule"),
    "grace": ("grace",),
}


async def heartbeats_view(manager: Any) -> dict[str, Any]:
    """What ``manager.heartbeats()`` returns, when the manager has heartbeats at all."""
    method = getattr(manager, "heartbeats", None)
    if method is None or not callable(method):
        return {"available": False, "heartbeats": []}
    found = await maybe_await(method())
    return {"available": True, "heartbeats": [_heartbeat(item) for item in _items(found)]}


def _items(found: Any) -> Iterable[Mapping[str, Any]]:
    if found is None:
        return []
    if isinstance(found, Mapping):
        return [{"name": name, **_as_dict(value)} for name, value in found.items()]
    return [_as_dict(item) for item in found]


def _as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return dict(to_dict())
    try:
        import attrs

        if attrs.has(type(value)):
            return attrs.asdict(value, recurse=False)
    except ImportError:  # pragma: no cover - attrs is a dependency
        pass
    return {"state": str(value)}


def _heartbeat(item: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    used: set[str] = set()
    for column, names in _HEARTBEAT_FIELDS.items():
        for name in names:
            if item.get(name) is not None:
                out[column] = item[name]
                used.add(name)
                break
        else:
            out[column] = None
    for column in ("last_ping", "deadline"):
        out[column + "_iso"] = to_iso(out[column])
    out["other"] = {k: v for k, v in item.items() if k not in used}
    return out
