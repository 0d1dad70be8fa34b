"""pixalert's benchmarks: ``python tests/benchmarks/run.py [--quick] [--only GROUP ...]``.

Runs the groups below, prints a table, writes a JSON result file (default
``tests/benchmarks/results/latest.json``) and, with ``--write-docs``, the
results table of ``docs/performance.md`` (between its marker comments).
Exits 1 when a sink's count does not match what was sent (or a contender
failed), and with ``--strict`` also when a target is missed.

Groups: webhook, webhook-stores, apprise, email, core, store, receiver,
receiver-postgres, e2e, e2e-outage, cluster, coldstart, memory, dashboard, noise.
The PostgreSQL rows (webhook-stores' PostgreSQL contender, receiver-postgres,
cluster) use ``PIXALERT_BENCH_PG`` (default
``postgresql://postgres@127.0.0.1:5432/test``), a schema of their own per trial,
and are skipped with the reason printed when it cannot be reached.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

from _common import log  # noqa: E402
from _report import markdown, write_docs  # noqa: E402

GROUPS = [
    "webhook",
    "webhook-stores",
    "apprise",
    "email",
    "core",
    "store",
    "receiver",
    "receiver-postgres",
    "e2e",
    "e2e-outage",
    "cluster",
    "coldstart",
    "memory",
    "dashboard",
    "noise",
]

PACKAGES = [
    "pixalert",
    "pixalert-webhook",
    "pixalert-email",
    "pixalert-monitoring",
    "pixalert-apprise",
    "pixalert-postgres",
    "psycopg",
    "httpx",
    "httpcore",
    "aiohttp",
    "yarl",
    "aiosmtplib",
    "aiosmtpd",
    "apprise",
    "requests",
    "starlette",
    "uvicorn",
    "pluggy",
    "attrs",
    "cattrs",
    "click",
]


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def machine() -> dict[str, Any]:
    """What ran the benchmarks."""
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": mem,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "executable": sys.executable,
        "load_average_start": list(os.getloadavg()),
    }


def run_group(name: str, quick: bool, rounds: int) -> list[dict[str, Any]]:
    """The rows of one group."""
    if name == "webhook":
        from bench_delivery import run_webhook

        return run_webhook(quick, rounds)
    if name == "webhook-stores":
        from bench_delivery import run_webhook_stores

        return run_webhook_stores(quick, rounds)
    if name == "receiver-postgres":
        from bench_receiver import run_receiver_postgres

        return run_receiver_postgres(quick, rounds)
    if name == "e2e":
        from bench_e2e import run_e2e

        return run_e2e(quick, rounds)
    if name == "e2e-outage":
        from bench_e2e import run_e2e_outage

        return run_e2e_outage(quick, rounds)
    if name == "cluster":
        from bench_e2e import run_cluster

        return run_cluster(quick, rounds)
    if name == "apprise":
        from bench_delivery import run_apprise

        return run_apprise(quick, rounds)
    if name == "email":
        from bench_delivery import run_email

        return run_email(quick, rounds)
    if name == "core":
        from bench_core import run_core

        return run_core(quick, rounds)
    if name == "store":
        from bench_store import run_store

        return run_store(quick, rounds)
    if name == "receiver":
        from bench_receiver import run_receiver

        return run_receiver(quick, rounds)
    if name == "coldstart":
        from bench_coldstart import run_coldstart

        return run_coldstart(quick, rounds)
    if name == "memory":
        from bench_memory import run_memory

        return run_memory(quick, rounds)
    if name == "dashboard":
        from bench_dashboard import run_dashboard

        return run_dashboard(quick, rounds)
    if name == "noise":
        from bench_noise import run_noise

        return run_noise(quick, rounds)
    raise ValueError(f"unknown group {name!r}; expected one of {', '.join(GROUPS)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a one-minute version")
    parser.add_argument("--only", nargs="+", choices=GROUPS, help="run only these groups")
    parser.add_argument(
        "--stores",
        nargs="+",
        choices=["memory", "sqlite", "postgres"],
        help="the stores webhook-stores runs pixalert on (default all three)",
    )
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 5, quick 2)")
    parser.add_argument(
        "--out",
        type=Path,
        default=HERE / "results" / "latest.json",
        help="JSON result file (default: tests/benchmarks/results/latest.json)",
    )
    parser.add_argument(
        "--write-docs",
        action="store_true",
        help="replace the results table in docs/performance.md with this run's",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 5)
    if args.stores:
        import bench_delivery

        bench_delivery.STORES[:] = args.stores
    groups = args.only or GROUPS
    result: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "mode": "quick" if args.quick else "full",
        "rounds": rounds,
        "commit": _git_commit(),
        "machine": machine(),
        "packages": {name: _version(name) for name in PACKAGES},
        "rows": [],
        "errors": [],
    }
    started = time.perf_counter()
    for name in groups:
        log(f"== {name}")
        t0 = time.perf_counter()
        try:
            result["rows"].extend(run_group(name, args.quick, rounds))
        except Exception as exc:
            traceback.print_exc()
            result["errors"].append(f"{name}: {type(exc).__name__}: {exc}")
        log(f"   {name} took {time.perf_counter() - t0:.0f}s")
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["machine"]["load_average_end"] = list(os.getloadavg())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    table = markdown(result)
    print(table)
    log(f"wrote {args.out}")
    if args.write_docs:
        write_docs(ROOT / "docs" / "performance.md", table)
        log("updated docs/performance.md")
    missed = [
        f"{r['name']}: {t['what']} {t['op']} {t['value']:g} (measured {t['measured']:.3g})"
        for r in result["rows"]
        for t in r["targets"]
        if not t["met"]
    ]
    for line in missed:
        log(f"target missed: {line}")
    for line in result["errors"]:
        log(f"FAILED: {line}")
    if result["errors"]:
        return 1
    return 1 if (args.strict and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
