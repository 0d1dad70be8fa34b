"""Row 8: an alert storm with grouping on.

A fresh interpreter (this file run as a script) starts three sinks (a Slack
incoming webhook that answers 429 past about one message a second, as Slack
does; an SMTP relay; an HTTP endpoint), then a manager with a Slack, an email
and a webhook channel on them, a SQLite history and
``[grouping] group_by = ["source"], group_wait = "5s", group_interval = "30s"``.
It submits 10,000 alerts over 10 seconds from 20 services (``submit_many``,
100 alerts every 0.1 s, as a receiver under load would), then waits until
every delivery is final. Measured: messages per channel (the sinks' counts,
which must equal the notifications pixalert says it sent), the time from the
first alert to the first message on each channel, the peak RSS (``VmHWM``)
above the RSS before the storm, the 429s provoked at the Slack sink, the
fewest seconds between two notifications of one group on one channel, and
alerts missing from the history (not recorded, or a delivery not ``sent``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

SERVICES = 20
GROUP_WAIT = 5.0
GROUP_INTERVAL = 30.0


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


async def _storm(alerts: int, seconds: float, tmp: str) -> dict[str, Any]:
    from _sinks import HTTPSink, SlackSink, SMTPSink
    from pixalert import Alert, NotificationManager
    from pixalert.storage import HistoryQuery

    with SlackSink() as slack_sink, SMTPSink() as smtp_sink, HTTPSink() as hook_sink:
        sinks = {"slack": slack_sink, "email": smtp_sink, "webhook": hook_sink}
        manager = NotificationManager(
            config={
                "history": f"sqlite:///{tmp}/history.db",
                "state": "memory://",
                "cooldown_minutes": 0,
                "routing": {p: ["slack", "email", "webhook"] for p in ("low", "medium", "high")},
                "grouping": {
                    "group_by": ["source"],
                    "group_wait": f"{GROUP_WAIT:g}s",
                    "group_interval": f"{GROUP_INTERVAL:g}s",
                    "repeat_interval": "1h",
                },
                "channels": {
                    "slack": {"webhook_url": slack_sink.url()},
                    "email": {
                        "smtp_server": "127.0.0.1",
                        "smtp_port": smtp_sink.port,
                        "security": "none",
                        "sender": "alerts@example.com",
                        "recipients": ["ops@example.com"],
                    },
                    "webhook": {"url": hook_sink.url("hook")},
                },
            },
            env={},
            read_files=False,
        )
        flushes: list[tuple[str, str, float, str]] = []  # channel, group, started, status
        async with manager:
            pipeline = manager.pipeline
            original = pipeline.deliver_group

            async def counted(slot: Any, group: Any, previous: Any, **kw: Any) -> Any:
                started = time.monotonic()
                result = await original(slot, group, previous, **kw)
                flushes.append((str(slot.name), group.key, started, result.status.value))
                return result

            pipeline.deliver_group = counted  # type: ignore[method-assign]
            before = _status_kb("VmRSS")
            firsts: dict[str, float] = {}

            async def watch() -> None:
                while True:
                    for name, sink in sinks.items():
                        if name not in firsts and sink.count:
                            firsts[name] = time.monotonic()
                    await asyncio.sleep(0.02)

            watcher = asyncio.ensure_future(watch())
            ticks = 100
            per_tick = alerts // ticks
            start = time.monotonic()
            n = 0
            for tick in range(ticks):
                batch = []
                for _ in range(per_tick):
                    service = f"svc-{n % SERVICES:02d}"
                    batch.append(
                        Alert(
                            f"{service}: check {n} failed",
                            "latency over the threshold on one instance",
                            "high" if n % 3 == 0 else "medium",
                            source=service,
                            metadata={"instance": f"{service}-{n % 7}"},
                        )
                    )
                    n += 1
                await manager.submit_many(batch)
                delay = start + (tick + 1) * seconds / ticks - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            submitted = time.monotonic() - start
            deadline = time.monotonic() + 10 * GROUP_INTERVAL
            while time.monotonic() < deadline:
                health = await manager.history_store.health()
                if not health.get("pending"):
                    break
                await asyncio.sleep(0.5)
            await manager.drain()
            for _ in range(100):  # the last sends reach the sinks
                sent = [f for f in flushes if f[3] == "sent"]
                counts = {c: sum(1 for f in sent if f[0] == c) for c in sinks}
                if all(sinks[c].count >= counts[c] for c in sinks):
                    break
                await asyncio.sleep(0.05)
            watcher.cancel()
            peak = _status_kb("VmHWM")
            entries = await manager.history_store.entries(HistoryQuery(limit=None))
        recorded = len(entries)
        missing = alerts - sum(
            1
            for e in entries
            if {str(r.channel): r.status.value for r in e.results}
            == {"slack": "sent", "email": "sent", "webhook": "sent"}
        )
        gaps: dict[tuple[str, str], list[float]] = {}
        for channel, group, started, status in flushes:
            if status == "sent":
                gaps.setdefault((channel, group), []).append(started)
        fewest = min(
            (b - a for times in gaps.values() for a, b in itertools.pairwise(times)),
            default=float("inf"),
        )
        return {
            "alerts": alerts,
            "recorded": recorded,
            "missing": missing,
            "submit_seconds": submitted,
            "groups": len({g for _, g in gaps}),
            "messages": {c: sinks[c].count for c in sinks},
            "notifications": {
                c: sum(1 for f in flushes if f[0] == c and f[3] == "sent") for c in sinks
            },
            "failed_notifications": sum(1 for f in flushes if f[3] != "sent"),
            "first_message_s": {c: firsts[c] - start for c in firsts},
            "slack_429": slack_sink.limited,
            "fewest_seconds_between_notifications": fewest,
            "before_kb": before,
            "peak_kb": peak,
        }


def child(alerts: int, seconds: float) -> None:
    """In the fresh interpreter: run the storm, print JSON."""
    with tempfile.TemporaryDirectory(prefix="pixalert-bench-noise-") as tmp:
        result = asyncio.run(_storm(alerts, seconds, tmp))
    print(json.dumps(result))


def run_noise(quick: bool, rounds: int) -> list[dict[str, Any]]:
    """Row 8: the storm's numbers, with the issue's targets."""
    from _common import row
    from _sinks import CountMismatch

    alerts = 2_000 if quick else 10_000
    runs = []
    for _ in range(1 if quick else min(rounds, 2)):
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(alerts), "10"],
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        for channel, count in result["messages"].items():
            if count != result["notifications"][channel]:
                raise CountMismatch(
                    f"noise storm: {channel}: pixalert sent {result['notifications'][channel]} "
                    f"notifications, the sink accepted {count}"
                )
        runs.append(result)
    samples: dict[str, list[float]] = {
        "alerts missing from the history": [r["missing"] for r in runs],
        "429s provoked at the Slack sink": [r["slack_429"] for r in runs],
        "first message (slowest channel)": [max(r["first_message_s"].values()) for r in runs],
        "fewest seconds between two notifications of a group": [
            r["fewest_seconds_between_notifications"] for r in runs
        ],
        "seconds to submit the storm": [r["submit_seconds"] for r in runs],
        "peak RSS above the RSS before the storm": [
            (r["peak_kb"] - r["before_kb"]) / 1024 for r in runs
        ],
    }
    for channel in ("slack", "email", "webhook"):
        samples[f"{channel} messages"] = [r["messages"][channel] for r in runs]
    return [
        row(
            "noise",
            f"a storm of {alerts:,} alerts over 10 s from {SERVICES} services, grouped by source "
            f"(group_wait {GROUP_WAIT:g}s, group_interval {GROUP_INTERVAL:g}s) into Slack, "
            "email and webhook sinks",
            "",
            samples,
            targets=[
                {"what": "alerts missing from the history", "op": "<=", "value": 0},
                {"what": "429s provoked at the Slack sink", "op": "<=", "value": 0},
                {"what": "first message (slowest channel)", "op": "<=", "value": GROUP_WAIT + 1},
                {
                    "what": "fewest seconds between two notifications of a group",
                    "op": ">=",
                    "value": GROUP_INTERVAL,
                },
            ],
            units={
                "first message (slowest channel)": "s",
                "fewest seconds between two notifications of a group": "s",
                "peak RSS above the RSS before the storm": "MB",
                "seconds to submit the storm": "s",
                "slack messages": "messages",
                "email messages": "messages",
                "webhook messages": "messages",
            },
            runs=runs,
        )
    ]


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(int(sys.argv[2]), float(sys.argv[3]))
    else:
        sys.exit("usage: bench_noise.py --child ALERTS SECONDS (run through run.py)")
