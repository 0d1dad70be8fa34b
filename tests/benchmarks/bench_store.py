"""Row 4: ``history(hours=24)`` and ``stats(hours=24)`` on a store of a million alerts,
SQLite (4) and PostgreSQL (4b); row 4c: the timeline's batch operations on each.

One data set for both stores: alerts spread at random over 30 days before a
fixed "now", each with one delivery (sent 95 %, failed 3 %, suppressed 2 %;
latencies log-normal around 80 ms). The SQLite file is built with direct SQL
inserts into the schema of ``pixalert._sqlite`` (its own ``_SCHEMA``, so it
cannot drift) with the per-minute rollups the store keeps, computed with the
store's own ``latency_bucket``; the PostgreSQL schema is created by the store's
own migrations and filled with COPY. The manager then reads each through its
public API with a clock set to that "now". Both are cached between runs (the
file in the temp directory, the schema in the database, keyed by size and
schema version).

Row 4c times what the pipeline does per batch, through the store API:
``record_many`` of 100 alerts with 2 channels each (claims included),
``settle`` of their 200 outcomes, ``claim_due`` of 100 released claims, each
one call. PostgreSQL rows need the server at ``PIXALERT_BENCH_PG`` (default
``postgresql://postgres@127.0.0.1:5432/test``); without it they are left out.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import random
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _common import interleave, log, row

NOW = 1_790_000_000.0  # a fixed "now" (2026-09-21), so a cached store stays valid
DAYS = 30
CHANNELS = ["email", "slack", "webhook", "pagerduty"]
PRIORITIES = ["LOW", "MEDIUM", "HIGH", "CRITICAL"]
PG_URL = os.environ.get("PIXALERT_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _data(rows: int) -> Iterator[tuple[Any, ...]]:
    """(id, key, ts, body, priority, title, message, channel, status, attempts, error,
    latency) for each alert, the same for both stores."""
    from datetime import datetime, timezone

    rng = random.Random(7)
    stamps = sorted(NOW - rng.random() * DAYS * 86400 for _ in range(rows))
    for i, ts in enumerate(stamps):
        alert_id = f"{i:032x}"
        title = f"High CPU on web-{i % 97}"
        message = f"CPU usage is {50 + i % 50}.0% (threshold 90%)"
        key = hashlib.sha1(f"bench\0{title}".encode()).hexdigest()[:16]
        created = datetime.fromtimestamp(ts, timezone.utc).isoformat()
        body = json.dumps(
            {
                "id": alert_id,
                "key": key,
                "title": title,
                "message": message,
                "priority": PRIORITIES[i % 4],
                "status": "firing",
                "source": "bench",
                "metadata": {"host": f"web-{i % 97}", "value": 50 + i % 50},
                "channels": None,
                "created_at": created,
            },
            separators=(",", ":"),
        )
        roll = rng.random()
        status = "sent" if roll < 0.95 else "failed" if roll < 0.98 else "suppressed"
        latency = math.exp(rng.gauss(math.log(0.08), 0.6)) if status == "sent" else None
        error = "webhook: HTTP 503" if status == "failed" else None
        attempts = 1 if status == "sent" else 3 if status == "failed" else 0
        yield (
            alert_id,
            key,
            ts,
            body,
            i % 4 + 1,
            title,
            message,
            CHANNELS[i % 4],
            status,
            attempts,
            error,
            latency,
        )


# ---------------------------------------------------------------------------
# SQLite
# ---------------------------------------------------------------------------


def _store_path(rows: int) -> Path:
    from pixalert import _sqlite

    tag = hashlib.sha256(_sqlite._SCHEMA.encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"pixalert-bench-store-{rows}-{tag}.db"


def build_store(rows: int) -> tuple[Path, dict[str, Any]]:
    """The SQLite store file with ``rows`` alerts (built once, then reused)."""
    from pixalert import _sqlite
    from pixalert._storage import latency_bucket

    path = _store_path(rows)
    info_path = path.with_suffix(".json")
    if path.exists() and info_path.exists():
        return path, json.loads(info_path.read_text())
    log(f"  building a SQLite store of {rows:,} alerts in {path} ...")
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
    conn.executemany(
        "INSERT INTO alerts (id, key, created_at, body, state, priority, status, source, "
        "title, message) VALUES (?, ?, ?, ?, 'done', ?, 'firing', 'bench', ?, ?)",
        (item[:7] for item in _data(rows)),
    )
    conn.executemany(
        "INSERT INTO deliveries (alert_id, channel, key, status, attempts, error, latency, "
        "created_at, queued_at, due_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ((d[0], d[7], d[1], d[8], d[9], d[10], d[11], d[2], d[2], d[2]) for d in _data(rows)),
    )
    conn.execute(
        "INSERT INTO rollup (minute, channel, status, bucket, n) "
        "SELECT CAST(created_at / 60 AS INTEGER), channel, status, "
        "CASE WHEN status = 'sent' AND latency IS NOT NULL THEN latency_bucket(latency) "
        "ELSE -1 END AS b, COUNT(*) FROM deliveries GROUP BY 1, 2, 3, 4"
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
        "deliveries": rows,
        "days": DAYS,
        "alerts_in_last_24h": in_window,
        "file_mb": round(path.stat().st_size / 1e6),
        "build_seconds": round(time.perf_counter() - started, 1),
    }
    info_path.write_text(json.dumps(info))
    log(f"  built in {info['build_seconds']} s: {info}")
    return path, info


# ---------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------


def _postgres_problem() -> str | None:
    try:
        import pixalert_postgres  # noqa: F401
        import psycopg
    except ImportError as exc:
        return f"pixalert-postgres is not installed ({exc})"
    try:
        with psycopg.connect(PG_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL not reachable ({type(exc).__name__})"
    return None


def _old_bench_schemas(rows: int) -> list[str]:
    """Cached bench schemas of ``rows`` alerts built by other migrations (to drop)."""
    import psycopg
    from pixalert_postgres._migrations import MIGRATIONS

    statements = "".join(st for m in MIGRATIONS for st in m.statements)
    current = f"pixalert_bench_{rows}_{hashlib.sha256(statements.encode()).hexdigest()[:10]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        names = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s",
            (f"pixalert\\_bench\\_{rows}\\_%",),
        ).fetchall()
    return [name for (name,) in names if name != current]


def build_postgres(rows: int) -> tuple[str, dict[str, Any]]:
    """A schema with ``rows`` alerts (built once, then reused); its store URL and info."""
    import psycopg
    from pixalert_postgres import PostgresHistoryStore
    from pixalert_postgres._migrations import MIGRATIONS
    from psycopg import sql

    for old in _old_bench_schemas(rows):
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(old)))
    statements = "".join(st for m in MIGRATIONS for st in m.statements)
    tag = hashlib.sha256(statements.encode()).hexdigest()[:10]
    schema = f"pixalert_bench_{rows}_{tag}"
    url = f"{PG_URL}?schema={schema}"
    ident = sql.Identifier(schema)
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        found = conn.execute(
            "SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = %s",
            (schema,),
        ).fetchone()
        if found and found[0]:
            return url, json.loads(found[0])
        log(f"  building a PostgreSQL schema {schema} of {rows:,} alerts ...")
        started = time.perf_counter()
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(ident))

    async def migrate() -> None:
        store = PostgresHistoryStore(url)
        try:
            await store.open()
        finally:
            await store.aclose()

    asyncio.run(migrate())
    from datetime import datetime, timezone

    def when(ts: float) -> datetime:
        return datetime.fromtimestamp(ts, timezone.utc)

    with psycopg.connect(PG_URL) as conn:
        with conn.cursor() as cur:
            with cur.copy(
                sql.SQL(
                    "COPY {}.alerts (id, key, created_at, status, priority, body, source, "
                    "title_fold, message_fold, recorded_at) FROM STDIN"
                ).format(ident)
            ) as copy:
                for d in _data(rows):
                    t = when(d[2])
                    copy.write_row(
                        (
                            d[0],
                            d[1],
                            t,
                            "firing",
                            d[4],
                            d[3],
                            "bench",
                            d[5].casefold(),
                            d[6].casefold(),
                            t,
                        )
                    )
            with cur.copy(
                sql.SQL(
                    "COPY {}.deliveries (alert_id, channel, key, status, attempts, error, "
                    "latency, created_at, queued_at, due_at, recorded_at) FROM STDIN"
                ).format(ident)
            ) as copy:
                for d in _data(rows):
                    t = when(d[2])
                    copy.write_row((d[0], d[7], d[1], d[8], d[9], d[10], d[11], t, t, t, t))
        conn.commit()
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("VACUUM ANALYZE {}.alerts").format(ident))
        conn.execute(sql.SQL("VACUUM ANALYZE {}.deliveries").format(ident))
        (in_window,) = conn.execute(
            sql.SQL("SELECT count(*) FROM {}.alerts WHERE created_at >= %s").format(ident),
            (when(NOW - 86400),),
        ).fetchone()
        (size,) = conn.execute(
            "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s",
            (schema,),
        ).fetchone()
        info = {
            "alerts": rows,
            "deliveries": rows,
            "days": DAYS,
            "alerts_in_last_24h": in_window,
            "schema_mb": round(int(size) / 1e6),
            "build_seconds": round(time.perf_counter() - started, 1),
        }
        conn.execute(
            sql.SQL("COMMENT ON SCHEMA {} IS {}").format(ident, sql.Literal(json.dumps(info)))
        )
    log(f"  built in {info['build_seconds']} s: {info}")
    return url, info


# ---------------------------------------------------------------------------
# The queries (rows 4 and 4b)
# ---------------------------------------------------------------------------


async def _queries(history: str, repeats: int, plugins: list[Any]) -> dict[str, list[float]]:
    from pixalert import NotificationManager
    from pixalert.plugins import get_plugin_manager
    from pixalert.testing import FakeClock

    manager = NotificationManager(
        config={"history": history, "state": "memory://", "retention_days": 3650},
        clock=FakeClock(NOW),
        env={},
        read_files=False,
        plugin_manager=get_plugin_manager(entrypoints=False, plugins=plugins),
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
        await query("history")  # connections opened, caches warm: not counted
        out["history"].clear()
        for _ in range(repeats):
            await query("history")
            await query("stats")
        # All the alerts of the window last: their garbage would slow the others.
        for _ in range(max(1, repeats // 2)):
            await query("history, no limit")
    out["_sizes"] = [sizes]  # type: ignore[list-item]
    return out


def _query_row(
    label: str, history: str, plugins: list[Any], info: dict[str, Any], quick: bool, rounds: int
) -> dict[str, Any]:
    repeats = 3 if quick else 5
    collected: dict[str, list[float]] = {}
    sizes: dict[str, Any] = {}

    def trial() -> float:
        data = asyncio.run(_queries(history, repeats, plugins))
        sizes.update(data.pop("_sizes")[0])  # type: ignore[arg-type]
        for name, values in data.items():
            collected.setdefault(name, []).extend(values)
        return 0.0

    interleave({"queries": trial}, rounds, f"{label} queries")
    info["returned"] = sizes
    return row(
        "store",
        f"history(hours=24) and stats(hours=24), {label} store of {info['alerts']:,} alerts "
        f"({info['alerts_in_last_24h']:,} in the last 24 h)",
        "ms",
        collected,
        targets=[
            {"what": "history", "op": "<=", "value": 100},
            {"what": "stats", "op": "<=", "value": 100},
        ],
        store=info,
    )


# ---------------------------------------------------------------------------
# The timeline's batch operations (row 4c)
# ---------------------------------------------------------------------------

BATCH = 100


async def _timeline_ops(store: Any, batches: int) -> dict[str, list[float]]:
    from pixalert import Alert, DeliveryResult

    out: dict[str, list[float]] = {"record_many": [], "settle": [], "claim_due": []}
    await store.open_owner("bench")
    try:
        for b in range(batches):
            alerts = [Alert(f"bench {b}-{i}", "m", "high") for i in range(BATCH)]
            t0 = time.perf_counter()
            recorded = await store.record_many(
                alerts, [["slack", "webhook"]] * BATCH, owner="bench", lease=60
            )
            t1 = time.perf_counter()
            claims = [c for r in recorded for c in r.claims]
            await store.release(claims[:BATCH])
            t2 = time.perf_counter()
            again = await store.claim_due(owner="bench", lease=60, limit=BATCH)
            t3 = time.perf_counter()
            assert len(again) == BATCH, len(again)
            outcomes = [
                (c, DeliveryResult(c.channel, "sent", 1, None, 0.01))
                for c in claims[BATCH:] + again
            ]
            t4 = time.perf_counter()
            settled = await store.settle(outcomes)
            t5 = time.perf_counter()
            assert all(settled.accepted) and len(settled.completed) == BATCH
            out["record_many"].append((t1 - t0) * 1000)
            out["claim_due"].append((t3 - t2) * 1000)
            out["settle"].append((t5 - t4) * 1000)
    finally:
        await store.close_owner("bench")
    return out


def _timeline_row(quick: bool, rounds: int, postgres: bool) -> dict[str, Any]:
    from pixalert._sqlite import SQLiteHistoryStore
    from pixalert.storage import SystemClock

    batches = 10 if quick else 40
    collected: dict[str, list[float]] = {}

    def run(kind: str) -> float:
        async def go() -> dict[str, list[float]]:
            if kind == "sqlite":
                folder = tempfile.mkdtemp(prefix="pixalert-bench-")
                store: Any = SQLiteHistoryStore(f"sqlite:///{folder}/ops.db", SystemClock())
                schema = None
            else:
                from pixalert_postgres import PostgresHistoryStore

                schema = f"pixalert_bench_ops_{uuid.uuid4().hex[:8]}"
                store = PostgresHistoryStore(f"{PG_URL}?schema={schema}")
            try:
                return await _timeline_ops(store, batches)
            finally:
                await store.aclose()
                if schema is not None:
                    import psycopg
                    from psycopg import sql

                    with psycopg.connect(PG_URL, autocommit=True) as conn:
                        conn.execute(
                            sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema))
                        )

        for name, values in asyncio.run(go()).items():
            collected.setdefault(f"{kind} {name}", []).extend(values)
        return 0.0

    trials = {"sqlite": lambda: run("sqlite")}
    if postgres:
        trials["postgresql"] = lambda: run("postgresql")
    interleave(trials, rounds, "timeline batches")
    return row(
        "store",
        f"timeline batches: record_many of {BATCH} alerts x 2 channels, claim_due of {BATCH}, "
        f"settle of {2 * BATCH} outcomes, one call each",
        "ms per call",
        collected,
    )


def run_store(quick: bool, rounds: int) -> list[dict[str, Any]]:
    """Rows 4, 4b and 4c: times in milliseconds."""
    rows = 100_000 if quick else 1_000_000
    path, info = build_store(rows)
    out = [_query_row("SQLite", f"sqlite:///{path}", [], info, quick, rounds)]
    problem = _postgres_problem()
    if problem:
        log(f"  PostgreSQL rows left out: {problem}")
    else:
        import pixalert_postgres

        url, pg_info = build_postgres(rows)
        out.append(_query_row("PostgreSQL", url, [pixalert_postgres], pg_info, quick, rounds))
    out.append(_timeline_row(quick, rounds, postgres=problem is None))
    return out
