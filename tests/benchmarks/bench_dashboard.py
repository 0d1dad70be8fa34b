"""Row 8: the dashboard's Now page over a SQLite history of 10,000 alerts.

The history is built through the manager's public API (``submit_many`` into a
SQLite file, delivered to two recording channels): 10,000 alerts over 300
keys in 20 Alertmanager-style groups, a fifth of them resolves, all four
priorities. It is cached in the temp directory between runs (keyed by the
store schema). The page is then requested in process through the receiver's
ASGI app (``httpx.ASGITransport``): the time is the server's (routing, the
history, stats, health and silences queries, grouping, rendering), with the
dashboard's 0.75 s reuse of a rendered region turned off so that every
request does all the work.

Measured: ``GET /`` as a browser first loads it (the newest 2,000 alerts, the
default), its live region as the page polls it, and ``GET /?scan=10000``
(every alert of the history examined).
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import interleave, log, row

ALERTS = 10_000
KEYS = 300
GROUPS = 20


def _store_path() -> Path:
    from pixalert import _sqlite

    tag = hashlib.sha256(_sqlite._SCHEMA.encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"pixalert-bench-dashboard-{ALERTS}-{tag}.db"


def _config(path: Path) -> dict[str, Any]:
    return {
        "history": f"sqlite:///{path}",
        "state": f"sqlite:///{path}",
        "cooldown_minutes": 0,
        "routing": {p: ["*"] for p in ("low", "medium", "high", "critical")},
    }


async def _build(path: Path) -> None:
    from pixalert import Alert, Priority
    from pixalert.testing import RecordingChannel, make_manager

    tmp = path.with_suffix(".building")
    tmp.unlink(missing_ok=True)
    manager = make_manager(
        [RecordingChannel("slack"), RecordingChannel("webhook")], config=_config(tmp)
    )
    async with manager:
        for start in range(0, ALERTS, 1000):
            batch = [
                Alert(
                    title=f"High CPU on web-{i % KEYS}",
                    message=f"CPU usage is {50 + i % 50}.0% (threshold 90%)",
                    priority=Priority(1 + i % 4),
                    source=f"svc-{i % 7}",
                    key=f"cpu-web-{i % KEYS}",
                    status="resolved" if i % 5 == 0 else "firing",
                    metadata={"group_key": f'{{}}:{{alertname="HighCPU{i % GROUPS}"}}'},
                )
                for i in range(start, start + 1000)
            ]
            await manager.submit_many(batch)
            await manager.drain()
    for suffix in ("-wal", "-shm"):
        Path(str(tmp) + suffix).unlink(missing_ok=True)
    tmp.rename(path)


def build_store() -> Path:
    """The store file (built once, then reused)."""
    path = _store_path()
    if not path.exists():
        log(f"  building a history of {ALERTS:,} alerts in {path} ...")
        started = time.perf_counter()
        asyncio.run(_build(path))
        log(f"  built in {time.perf_counter() - started:.0f} s")
    return path


async def _requests(path: Path, repeats: int) -> dict[str, list[float]]:
    import httpx
    from pixalert import NotificationManager
    from pixalert_monitoring import _dashboard, create_app
    from pixalert_monitoring.testing import running_server

    manager = NotificationManager(
        config={**_config(path), "retention_days": 3650}, env={}, read_files=False
    )
    _dashboard.CACHE_SECONDS = 0.0
    app = create_app(manager)
    out: dict[str, list[float]] = {"page": [], "live region": [], "page, scan=10000": []}
    requests = {
        "page": ("/", {}),
        "live region": ("/", {"X-Pixalert-Live": "1"}),
        "page, scan=10000": (f"/?scan={ALERTS}", {}),
    }
    async with running_server(app):  # the app's startup: the manager starts
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            for path, headers in requests.values():  # warm up: templates compiled, caches
                (await client.get(path, headers=headers)).raise_for_status()
            for _ in range(repeats):
                for name, (path, headers) in requests.items():
                    t0 = time.perf_counter()
                    response = await client.get(path, headers=headers)
                    out[name].append((time.perf_counter() - t0) * 1000)
                    response.raise_for_status()
                    if "firing" not in response.text:
                        raise RuntimeError(f"{path}: the Now page shows no firing count")
    await manager.aclose()
    return out


def run_dashboard(quick: bool, rounds: int) -> list[dict[str, Any]]:
    """Row 8: milliseconds per request of the Now page."""
    path = build_store()
    repeats = 2 if quick else 5
    collected: dict[str, list[float]] = {}

    def trial() -> float:
        for name, values in asyncio.run(_requests(path, repeats)).items():
            collected.setdefault(name, []).extend(values)
        return 0.0

    interleave({"requests": trial}, rounds, "dashboard requests")
    return [
        row(
            "dashboard",
            f"dashboard Now page (GET /), SQLite history of {ALERTS:,} alerts, server time",
            "ms",
            collected,
            targets=[{"what": "page", "op": "<=", "value": 1000}],
        )
    ]
