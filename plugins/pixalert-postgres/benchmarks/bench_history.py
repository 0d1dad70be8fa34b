"""Time the history queries of PostgresHistoryStore on a million alerts.

    python3 plugins/pixalert-postgres/benchmarks/bench_history.py \
        [--url postgresql://postgres@127.0.0.1:5432/test] [--alerts 1000000] [--days 30]

Fills a throwaway schema with ``--alerts`` alerts spread over ``--days`` days
(two channel results each: slack sent with a latency, email sent/failed/
suppressed), runs ANALYZE, then times what the manager runs: ``entries()``
(last 24 h, first page; last hour, all), ``stats()`` over 1 h, 24 h and the
whole range, ``last_receipt``, ``claim_due`` with nothing due, and one alert's
``record_many`` + ``settle``. The schema is dropped at the end. Prints one
line per query: the median of several runs. (``tests/benchmarks/bench_store.py``
runs the project's benchmark rows on PostgreSQL; this is the larger,
standalone version.)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
from pixalert import Alert, DeliveryResult
from pixalert.storage import HistoryQuery
from pixalert_postgres import PostgresHistoryStore
from psycopg import sql

FILL = """
INSERT INTO {s}.alerts (id, key, created_at, status, priority, body, source, title_fold,
                        message_fold, recorded_at)
SELECT 'a' || n, 'k' || (n %% 5000), t, 'firing', 1 + n %% 4,
       jsonb_build_object('id', 'a' || n, 'key', 'k' || (n %% 5000), 'title', 'alert ' || n,
                          'message', 'bench',
                          'priority', (ARRAY['LOW','MEDIUM','HIGH','CRITICAL'])[1 + n %% 4],
                          'status', 'firing', 'source', 'bench', 'metadata', '{{}}'::jsonb,
                          'channels', NULL, 'created_at', to_char(t AT TIME ZONE 'UTC',
                          'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')),
       'bench', 'alert ' || n, 'bench', t
FROM (SELECT n, %(end)s::timestamptz - (n * %(step)s) * interval '1 second' AS t
      FROM generate_series(1, %(count)s) AS n) AS g
"""

FILL_DELIVERIES = """
INSERT INTO {s}.deliveries (alert_id, channel, key, status, attempts, error, latency, receipt,
                            created_at, queued_at, due_at, recorded_at)
SELECT id, 'slack', key, 'sent', 1, NULL, 0.05 + (hashtext(id) & 1023) / 4096.0,
       jsonb_build_object('ts', id), created_at, created_at, created_at, created_at
FROM {s}.alerts
UNION ALL
SELECT id, 'email', key, (ARRAY['sent','failed','suppressed'])[1 + (hashtext(id) & 3) % 3],
       1, NULL, 0.2, NULL, created_at, created_at, created_at, created_at FROM {s}.alerts
"""


async def timed(label: str, fn: Callable[[], Awaitable[Any]], runs: int = 5) -> None:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - start)
    print(f"{label:<44} {statistics.median(times) * 1000:9.1f} ms")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--alerts", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=30)
    args = parser.parse_args()

    schema = f"pixalert_bench_{uuid.uuid4().hex[:8]}"
    store = PostgresHistoryStore(f"{args.url}?schema={schema}")
    end = datetime.now(timezone.utc)
    try:
        await store.open()
        step = args.days * 86400 / args.alerts
        print(f"filling {args.alerts:,} alerts over {args.days:g} days in schema {schema} ...")
        start = time.perf_counter()
        async with await psycopg.AsyncConnection.connect(args.url, autocommit=True) as conn:
            ident = sql.Identifier(schema)
            await conn.execute(
                sql.SQL(FILL).format(s=ident), {"end": end, "step": step, "count": args.alerts}
            )
            await conn.execute(sql.SQL(FILL_DELIVERIES).format(s=ident))
            await conn.execute(sql.SQL("VACUUM ANALYZE {}.alerts").format(ident))
            await conn.execute(sql.SQL("VACUUM ANALYZE {}.deliveries").format(ident))
        print(f"filled in {time.perf_counter() - start:.1f} s")

        day = end - timedelta(hours=24)
        hour = HistoryQuery(since=end - timedelta(hours=1), limit=None)
        await timed("history(24h) first 100", lambda: store.entries(HistoryQuery(day, limit=100)))
        await timed("history(1h) all", lambda: store.entries(hour))
        await timed("stats(1h)", lambda: store.stats(end - timedelta(hours=1)))
        await timed("stats(24h)", lambda: store.stats(day))
        await timed(
            f"stats({args.days:g} days: everything)",
            lambda: store.stats(end - timedelta(days=args.days + 1)),
            runs=3,
        )
        await timed("last_receipt", lambda: store.last_receipt("k42", "slack"))
        await store.open_owner("b")
        await timed("claim_due (none due)", lambda: store.claim_due(owner="b", lease=60))

        async def write() -> None:
            (recorded,) = await store.record_many(
                [Alert("bench", "m")], [["slack"]], owner="b", lease=60
            )
            (claim,) = recorded.claims
            await store.settle([(claim, DeliveryResult("slack", "sent", 1, None, 0.1))])

        await timed("record_many + settle (one alert, two round trips)", write, runs=20)
    finally:
        await store.aclose()
        async with await psycopg.AsyncConnection.connect(args.url, autocommit=True) as conn:
            await conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
            )


if __name__ == "__main__":
    asyncio.run(main())
