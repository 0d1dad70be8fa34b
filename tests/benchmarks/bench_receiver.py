"""Row 5: ``pixalert serve`` taking Alertmanager webhooks from a load generator in another process.

The receiver runs as users run it (the ``pixalert`` script, SQLite history
in a temporary directory, ``--log-level warning`` so the access log is off),
with no channel configured, so what is measured is receiving: parse,
validate, dedup check and store each alert before answering 200 (delivery,
here "skipped: not configured", goes on in the background). The load
generator posts Alertmanager v4 bodies of 10 alerts each (unique
fingerprints, so none is a duplicate) from ``inflight`` connections and
times each request. Afterwards the store must hold exactly 10 alerts per
accepted request, or the run fails.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import multiprocessing as mp
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _common import interleave, log, percentile, row
from _sinks import CountMismatch

ALERTS_PER_BODY = 10
QUIET = ["--log-level", "warning"]  # no access log line per request
_CTX = mp.get_context("spawn")


def alertmanager_body(request: int, tag: str) -> bytes:
    """An Alertmanager v4 webhook body of 10 firing alerts, all new."""
    alerts = [
        {
            "status": "firing",
            "labels": {
                "alertname": "HighCPU",
                "instance": f"web-{request}-{i}:9100",
                "job": "node",
                "severity": "warning",
            },
            "annotations": {
                "summary": f"High CPU on web-{request}-{i}",
                "description": "CPU usage above 90% for 5 minutes",
            },
            "startsAt": "2026-01-02T03:04:05.678Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph?g0.expr=cpu",
            "fingerprint": f"{tag}{request:08x}{i:02x}",
        }
        for i in range(ALERTS_PER_BODY)
    ]
    body = {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="HighCPU", batch="{tag}-{request}"}}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "pixalert",
        "groupLabels": {"alertname": "HighCPU"},
        "commonLabels": {"alertname": "HighCPU", "job": "node", "severity": "warning"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": alerts,
    }
    return json.dumps(body).encode()


def _load(
    url: str, start: int, count: int, inflight: int, tag: str, out: Any, retry: bool = False
) -> None:
    """In the load generator process: post ``count`` bodies, report timings.

    ``retry``: post a body answered 503 again after its ``Retry-After`` (as
    Alertmanager does), counting how often in ``retried``; ``statuses`` then
    holds each body's last answer."""
    import aiohttp

    async def main() -> dict[str, Any]:
        bodies = [alertmanager_body(start + i, tag) for i in range(count)]
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        retried = 0
        numbers = iter(range(count))
        headers = {"content-type": "application/json"}
        connector = aiohttp.TCPConnector(limit=inflight)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def worker() -> None:
                nonlocal retried
                for i in numbers:
                    while True:
                        t0 = time.perf_counter()
                        async with session.post(url, data=bodies[i], headers=headers) as response:
                            await response.read()
                        latencies.append(time.perf_counter() - t0)
                        if not (retry and response.status == 503):
                            break
                        retried += 1
                        await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
                    statuses[response.status] = statuses.get(response.status, 0) + 1

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(inflight)))
            elapsed = time.perf_counter() - started
        return {
            "elapsed": elapsed,
            "latencies": latencies,
            "statuses": statuses,
            "retried": retried,
        }

    out.put(asyncio.run(main()))


def load(url: str, start: int, count: int, inflight: int, tag: str) -> dict[str, Any]:
    """Run the load generator in its own process and return what it measured."""
    out = _CTX.Queue()
    proc = _CTX.Process(target=_load, args=(url, start, count, inflight, tag, out), daemon=True)
    proc.start()
    try:
        result: dict[str, Any] = out.get(timeout=600)
    finally:
        proc.join(timeout=30)
    return result


class Receiver:
    """``pixalert serve`` in a subprocess, on a free port, with its own SQLite file
    (or the ``history`` URL given, with ``extra`` TOML after it)."""

    def __init__(
        self, tmp: Path, history: str | None = None, extra: str = "", name: str = "pixalert"
    ) -> None:
        self.db = tmp / "history.db"
        self.config = tmp / f"{name}.toml"
        self.history = history or f"sqlite:///{self.db}"
        # Top-level keys first, then ``extra`` (more keys or tables).
        self.config.write_text(f"history = {json.dumps(self.history)}\n{extra}")
        self.tmp = tmp
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.output: collections.deque[str] = collections.deque(maxlen=20)

    def __enter__(self) -> Receiver:
        script = Path(sys.executable).with_name("pixalert")
        command = [str(script)] if script.exists() else [sys.executable, "-m", "pixalert"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIXALERT_")}
        self.proc = subprocess.Popen(
            [*command, "serve", "--port", "0", "--config", str(self.config), *QUIET],
            cwd=self.tmp,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("pixalert serve exited before it was ready")
            found = re.search(r"(http://[^ ]+/webhook/alerts)", line)
            if found:
                self.url = found.group(1)
                # Keep reading what it prints (a full pipe would block it); the last
                # lines are kept for error messages.
                reader = threading.Thread(target=self._read_output, daemon=True)
                reader.start()
                return self
        raise RuntimeError("pixalert serve did not say where it listens")

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def _read_output(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line.rstrip())

    def cpu_seconds(self) -> float:
        """User + system CPU time the serve process has used so far (Linux ``/proc``)."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stored(self) -> int:
        """Alerts in the receiver's store (read through a second connection)."""
        if self.history.startswith("postgresql://"):
            from _stores import pg_count

            schema = self.history.rsplit("schema=", 1)[1]
            return pg_count(schema)
        with contextlib.closing(sqlite3.connect(self.db, timeout=30)) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM alerts").fetchone()[0])


def run_receiver(quick: bool, rounds: int) -> list[dict[str, Any]]:
    """Row 5: requests/s and latency percentiles of the receiver on SQLite (the default)."""
    with tempfile.TemporaryDirectory(prefix="pixalert-bench-") as tmp, Receiver(Path(tmp)) as rx:
        samples = _receiver_samples({"": rx}, quick, rounds)
    return [
        row(
            "receiver",
            f"pixalert serve: Alertmanager bodies of {ALERTS_PER_BODY} alerts, "
            f"{INFLIGHT} connections, each alert stored before the 200",
            "",
            samples,
            targets=[  # issue 17's (the recorded full run predates them: 300, 3,000, 100)
                {"what": "requests/s", "op": ">=", "value": 1000},
                {"what": "alerts/s", "op": ">=", "value": 10000},
                {"what": "p99 ms", "op": "<=", "value": 50},
            ],
            requests=_count(quick),
            inflight=INFLIGHT,
        )
    ]


def run_receiver_postgres(quick: bool, rounds: int) -> list[dict[str, Any]]:
    """Row 5b: the receiver with a PostgreSQL history (and state), interleaved round by
    round with one on SQLite, for the ratio."""
    from _stores import pg_schema, pg_unreachable

    reason = pg_unreachable()
    if reason:
        log(f"  skipping the PostgreSQL receiver row: {reason}")
        return []
    with (
        tempfile.TemporaryDirectory(prefix="pixalert-bench-") as tmp,
        tempfile.TemporaryDirectory(prefix="pixalert-bench-") as tmp2,
        pg_schema() as (_, url),
        Receiver(Path(tmp), history=url, extra=f"state = {json.dumps(url)}\n") as pg,
        Receiver(Path(tmp2)) as lite,
    ):
        samples = _receiver_samples({"PostgreSQL ": pg, "SQLite ": lite}, quick, rounds)
    return [
        row(
            "receiver-postgres",
            f"pixalert serve: Alertmanager bodies of {ALERTS_PER_BODY} alerts, "
            f"{INFLIGHT} connections, each alert stored before the 200, PostgreSQL "
            "against SQLite",
            "",
            samples,
            pairs=[("PostgreSQL requests/s", "SQLite requests/s")],
            targets=[],  # issue 17: "the same measured on PostgreSQL"; no target of its own
            show=[
                f"{store} {what}"
                for what in ("alerts/s", "p50 ms", "p99 ms")
                for store in ("PostgreSQL", "SQLite")
            ],
            requests=_count(quick),
            inflight=INFLIGHT,
        )
    ]


INFLIGHT = 10


def _count(quick: bool) -> int:
    return 300 if quick else 1500


def _receiver_samples(
    receivers: dict[str, Receiver], quick: bool, rounds: int
) -> dict[str, list[float]]:
    """Interleaved trials on each receiver (named by a prefix of its sample names)."""
    count = _count(quick)
    warm = 30
    inflight = INFLIGHT
    tag = f"{int(time.time()):x}"
    for prefix, rx in receivers.items():
        log(f"  receiver {prefix.strip() or 'SQLite'} at {rx.url}")
    next_request = 0
    p50s: dict[str, list[float]] = {p: [] for p in receivers}
    p99s: dict[str, list[float]] = {p: [] for p in receivers}

    def trial_of(prefix: str, rx: Receiver) -> Any:
        def trial() -> float:
            nonlocal next_request
            before = rx.stored()
            warmup = load(rx.url, next_request, warm, inflight, tag)
            next_request += warm
            result = load(rx.url, next_request, count, inflight, tag)
            next_request += count
            ok = result["statuses"].get(200, 0) + warmup["statuses"].get(200, 0)
            if ok != warm + count:
                raise CountMismatch(f"receiver: statuses {result['statuses']} (expected all 200)")
            got = rx.stored() - before
            if got != ok * ALERTS_PER_BODY:
                raise CountMismatch(
                    f"receiver: answered 200 to {ok} bodies of {ALERTS_PER_BODY} alerts, "
                    f"the store holds {got} new alerts"
                )
            p50s[prefix].append(percentile(result["latencies"], 50) * 1000)
            p99s[prefix].append(percentile(result["latencies"], 99) * 1000)
            return count / result["elapsed"]

        return trial

    rates = interleave(
        {f"{p}requests/s": trial_of(p, rx) for p, rx in receivers.items()}, rounds, "receiver"
    )
    samples: dict[str, list[float]] = {}
    for p in receivers:
        samples[f"{p}requests/s"] = rates[f"{p}requests/s"]
        samples[f"{p}alerts/s"] = [v * ALERTS_PER_BODY for v in rates[f"{p}requests/s"]]
        samples[f"{p}p50 ms"] = p50s[p]
        samples[f"{p}p99 ms"] = p99s[p]
    return samples
