"""Row 6: cold start of ``pixalert --help`` and ``pixalert plugins`` against ``apprise --help``.

Each command is the console script beside this interpreter (a venv's or the
installation's ``bin/``, never a pyenv shim, which adds a few hundred ms of
shell), started with a clean environment and its output thrown away. The
three run in rotating order, one after another, many times; wall time and
CPU time (user + system, from ``wait4``) are both kept: on a shared machine
the CPU time moves less.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import log, row, summary

COMMANDS = {
    "pixalert --help": ["pixalert", "--help"],
    "pixalert plugins": ["pixalert", "plugins"],
    "apprise --help": ["apprise", "--help"],
}


def _script(name: str) -> str:
    path = Path(sys.executable).with_name(name)
    if not path.exists():
        raise RuntimeError(f"{name} is not installed beside {sys.executable}")
    return str(path)


def _once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {proc.returncode}")
    return wall * 1000, (usage.ru_utime + usage.ru_stime) * 1000


def run_coldstart(quick: bool, rounds: int) -> list[dict[str, Any]]:
    """Row 6: milliseconds per start, wall and CPU."""
    runs = 8 if quick else 30
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PIXALERT_", "PYTHONPROFILEIMPORTTIME", "APPRISE_"))
    }
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    argvs = {name: [_script(argv[0]), *argv[1:]] for name, argv in COMMANDS.items()}
    for argv in argvs.values():  # compile and cache bytecode, warm the page cache
        _once(argv, {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"})
    wall: dict[str, list[float]] = {n: [] for n in argvs}
    cpu: dict[str, list[float]] = {n: [] for n in argvs}
    names = list(argvs)
    for i in range(runs):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            w, c = _once(argvs[name], env)
            wall[name].append(w)
            cpu[name].append(c)
    log(
        "  cold start (median wall / CPU ms): "
        + ", ".join(
            f"{n}={summary(wall[n])['median']:.0f}/{summary(cpu[n])['median']:.0f}" for n in names
        )
    )
    pairs = [("pixalert --help", "apprise --help"), ("pixalert plugins", "apprise --help")]
    targets = [
        {"what": "pixalert --help/apprise --help", "op": "<=", "value": 1.0},
        {"what": "pixalert plugins/apprise --help", "op": "<=", "value": 1.5},
    ]
    return [
        row(
            "coldstart",
            "cold start, wall time",
            "ms",
            wall,
            pairs=pairs,
            targets=targets,
            runs=runs,
        ),
        row(
            "coldstart",
            "cold start, CPU time (user + system)",
            "ms",
            cpu,
            pairs=pairs,
            targets=[dict(t, informational=True) for t in targets],
            runs=runs,
        ),
    ]
