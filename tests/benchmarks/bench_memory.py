"""Row 7: peak memory of a burst of 10,000 alerts.

A fresh interpreter (this file run as a script) starts a manager with a
webhook channel pointing at the HTTP sink and the SQLite history in a
temporary directory, sends one alert (connections and caches warm), reads
its resident set size, then calls ``send_alert`` 10,000 times at once
(``asyncio.gather``; the per-channel concurrency limit queues them) and reads
the kernel's high-water mark (``VmHWM``). The sink must count every alert.
Reported: the peak above the RSS just before the burst, and above a bare
interpreter (``python -c pass``'s own peak).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


async def _burst(url: str, alerts: int, tmp: str) -> dict[str, Any]:
    from pixalert import NotificationManager

    manager = NotificationManager(
        config={
            "history": f"sqlite:///{tmp}/history.db",
            "channels": {"hook": {"type": "webhook", "url": url}},
        },
        env={},
        read_files=False,
    )
    tag = time.monotonic_ns()
    async with manager:
        await manager.send_alert("warm-up", "x", "high", channels=["hook"])
        before = _status_kb("VmRSS")
        started = time.perf_counter()
        results = await asyncio.gather(
            *(
                manager.send_alert(
                    f"alert {tag}-{i}",
                    "CPU usage is 97.3% on web-1",
                    "high",
                    channels=["hook"],
                    metadata={"host": "web-1", "value": 97.3},
                )
                for i in range(alerts)
            )
        )
        seconds = time.perf_counter() - started
        peak = _status_kb("VmHWM")
    sent = sum(1 for r in results if r["hook"])
    return {"before_kb": before, "peak_kb": peak, "sent": sent, "seconds": seconds}


def child(url: str, alerts: int) -> None:
    """In the fresh interpreter: run the burst, print JSON."""
    start_kb = _status_kb("VmRSS")
    with tempfile.TemporaryDirectory(prefix="pixalert-bench-") as tmp:
        result = asyncio.run(_burst(url, alerts, tmp))
    result["interpreter_start_kb"] = start_kb
    print(json.dumps(result))


def _bare_peak_kb() -> int:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import pathlib;print([l for l in pathlib.Path('/proc/self/status').read_text()"
            ".splitlines() if l.startswith('VmHWM')][0].split()[1])",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip())


def run_memory(quick: bool, rounds: int) -> list[dict[str, Any]]:
    """Row 7: MB above the baseline."""
    from _common import interleave, row
    from _sinks import HTTPSink

    alerts = 2_000 if quick else 10_000
    rounds = 1 if quick else min(rounds, 3)
    bare = _bare_peak_kb()
    details: list[dict[str, Any]] = []
    with HTTPSink() as sink:

        def trial() -> float:
            before = sink.count
            out = subprocess.run(
                [sys.executable, __file__, "--child", sink.url("hook"), str(alerts)],
                capture_output=True,
                text=True,
                check=True,
            )
            result = json.loads(out.stdout.strip().splitlines()[-1])
            if result["sent"] != alerts:
                raise AssertionError(f"memory burst: {result['sent']} of {alerts} sent")
            sink.expect(before, alerts + 1, "memory burst")
            details.append(result)
            return (result["peak_kb"] - result["before_kb"]) / 1024

        samples = interleave({"above the RSS before the burst": trial}, rounds, "memory")
    samples["above a bare interpreter"] = [(d["peak_kb"] - bare) / 1024 for d in details]
    samples["burst seconds"] = [d["seconds"] for d in details]
    return [
        row(
            "memory",
            f"peak RSS of a burst of {alerts:,} alerts (webhook channel, SQLite history)",
            "MB",
            samples,
            targets=[{"what": "above the RSS before the burst", "op": "<=", "value": 100}],
            units={"burst seconds": "s"},
            bare_interpreter_mb=bare / 1024,
            runs=details,
        )
    ]


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit("usage: bench_memory.py --child URL ALERTS (run through run.py)")
