"""Row 4: ``history(hours=24)`` and ``stats(hours=24)`` on a SQLite store of a million alerts.

The store is built with direct SQL inserts into the schema of
``pixalert._sqlite`` (its own ``_SCHEMA``, so it cannot drift): alerts spread
at random over 30 days before a fixed "now", each with one channel result
(sent 95 %, failed 3 %, suppressed 2 %; latencies log-normal around 80 ms),
and the per-minute rollups the store keeps, computed from those results with
the store's own ``latency_bucket``. The manager then reads it through its
public API with a clock set to that "now". The file is cached in the temp
directory between runs (keyed by size and schema).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import random
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import interleave, log, row

NOW = 1_790_000_000.0  # a fixed "now" (2026-09-21), so a cached store stays valid
DAYS = 30
CHANNELS = ["email", "slack", "webhook", "pagerduty"]
PRIORITIES = ["LOW", "MEDIUM", "HIGH", "CRITICAL"]


def _store_path(rows: int) -> Path:
    from pixalert import _sqlite

    tag = hashlib.sha256(_sqlite._SCHEMA.encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"pixalert-bench-store-{rows}-{tag}.db"


def build_store(rows: int) -> tuple[Path, dict[str, Any]]:
    """The store file with ``rows`` alerts (built once, then reused)."""
    from datetime import datetime, timezone

    from pixalert import _sqlite
    from pixalert._storage import latency_bucket

    path = _store_path(rows)
    info_path = path.with_suffix(".json")
    if path.exists() and info_path.exists():
        return path, json.loads(info_path.read_text())
    log(f"  building a store of {rows:,} alerts in {path} ...")
    started = time.perf_counter()
    tmp = path.with_suffix(".building")
    tmp.unlink(missing_ok=True)
    conn = sqlite3.connect(tmp, isolation_level=None)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN")
    for statement in _sqlite._SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version={_sqlite.SCHEMA_VERSION}")
    conn.create_function("latency_bucket", 1, latency_bucket, deterministic=True)
    rng = random.Random(7)
    stamps = sorted(NOW - rng.random() * DAYS * 86400 for _ in range(rows))

    def alerts() -> Any:
        for i, ts in enumerate(stamps):
            alert_id = f"{i:032x}"
            title = f"High CPU on web-{i % 97}"
            key = hashlib.sha1(f"bench\0{title}".encode()).hexdigest()[:16]
            created = datetime.fromtimestamp(ts, timezone.utc).isoformat()
            body = json.dumps(
                {
                    "id": alert_id,
                    "key": key,
                    "title": title,
                    "message": f"CPU usage is {50 + i % 50}.0% (threshold 90%)",
                    "priority": PRIORITIES[i % 4],
                    "status": "firing",
                    "source": "bench",
                    "metadata": {"host": f"web-{i % 97}", "value": 50 + i % 50},
                    "channels": None,
                    "created_at": created,
                },
                separators=(",", ":"),
            )
            yield (alert_id, key, ts, body)

    conn.executemany(
        "INSERT INTO alerts (id, key, created_at, body, state) VALUES (?, ?, ?, ?, 'done')",
        alerts(),
    )

    def results() -> Any:
        for i, ts in enumerate(stamps):
            roll = rng.random()
            status = "sent" if roll < 0.95 else "failed" if roll < 0.98 else "suppressed"
            latency = math.exp(rng.gauss(math.log(0.08), 0.6)) if status == "sent" else None
            error = "webhook: HTTP 503" if status == "failed" else None
            attempts = 1 if status == "sent" else 3 if status == "failed" else 0
            yield (f"{i:032x}", CHANNELS[i % 4], "k", status, attempts, error, latency, None, ts)

    conn.executemany(
        "INSERT INTO results (alert_id, channel, key, status, attempts, error, latency, "
        "receipt, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        results(),
    )
    conn.execute(
        "INSERT INTO rollup (minute, channel, status, bucket, n) "
        "SELECT CAST(created_at / 60 AS INTEGER), channel, status, "
        "CASE WHEN status = 'sent' AND latency IS NOT NULL THEN latency_bucket(latency) "
        "ELSE -1 END AS b, COUNT(*) FROM results GROUP BY 1, 2, 3, 4"
    )
    conn.execute(
        "INSERT INTO alert_minutes (minute, n) "
        "SELECT CAST(created_at / 60 AS INTEGER), COUNT(*) FROM alerts GROUP BY 1"
    )
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    in_window = conn.execute(
        "SELECT COUNT(*) FROM alerts WHERE created_at >= ?", (NOW - 86400,)
    ).fetchone()[0]
    conn.close()
    tmp.rename(path)
    info = {
        "alerts": rows,
        "results": rows,
        "days": DAYS,
        "alerts_in_last_24h": in_window,
        "file_mb": round(path.stat().st_size / 1e6),
        "build_seconds": round(time.perf_counter() - started, 1),
    }
    info_path.write_text(json.dumps(info))
    log(f"  built in {info['build_seconds']} s: {info}")
    return path, info


async def _queries(path: Path, repeats: int) -> dict[str, list[float]]:
    from pixalert import NotificationManager
    from pixalert.testing import FakeClock

    manager = NotificationManager(
        config={"history": f"sqlite:///{path}", "retention_days": 3650},
        clock=FakeClock(NOW),
        env={},
        read_files=False,
    )
    out: dict[str, list[float]] = {"history": [], "stats": [], "history, no limit": []}
    sizes: dict[str, Any] = {}

    async def query(name: str) -> None:
        t0 = time.perf_counter()
        if name == "history":
            value: Any = await manager.history(hours=24)
        elif name == "stats":
            value = await manager.stats(hours=24)
        else:
            value = await manager.history(hours=24, limit=None)
        out[name].append((time.perf_counter() - t0) * 1000)
        sizes[name] = len(value) if isinstance(value, list) else value.get("alerts")

    async with manager:
        for _ in range(repeats):
            await query("history")
            await query("stats")
        # All 33,000 alerts of the window last: their garbage would slow the others.
        for _ in range(max(1, repeats // 2)):
            await query("history, no limit")
    out["_sizes"] = [sizes]  # type: ignore[list-item]
    return out


def run_store(quick: bool, rounds: int) -> list[dict[str, Any]]:
    """Row 4: query times in milliseconds."""
    rows = 100_000 if quick else 1_000_000
    path, info = build_store(rows)
    repeats = 3 if quick else 5
    collected: dict[str, list[float]] = {}
    sizes: dict[str, Any] = {}

    def trial() -> float:
        data = asyncio.run(_queries(path, repeats))
        sizes.update(data.pop("_sizes")[0])  # type: ignore[arg-type]
        for name, values in data.items():
            collected.setdefault(name, []).extend(values)
        return 0.0

    interleave({"queries": trial}, rounds, "store queries")
    info["returned"] = sizes
    return [
        row(
            "store",
            f"history(hours=24) and stats(hours=24), SQLite store of {rows:,} alerts "
            f"({info['alerts_in_last_24h']:,} in the last 24 h)",
            "ms",
            collected,
            targets=[
                {"what": "history", "op": "<=", "value": 100},
                {"what": "stats", "op": "<=", "value": 100},
            ],
            store=info,
        )
    ]
