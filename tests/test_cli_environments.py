"""The whole command line, every plugin installed, in broken environments: no traceback ever.

Each command (the core's and the plugins') runs as a real process against a
PostgreSQL that refuses connections, a SQLite path that cannot exist, a URL no
plugin handles, and a directory where the database file should be. It must
exit with a documented code and say what went wrong in a line or two.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REFUSED = "postgresql://127.0.0.1:1/alerts"  # nothing listens on port 1
EXIT_CODES = {0, 1, 2, 3}

COMMANDS = [
    ["send", "Disk full", "-p", "low"],
    ["history"],
    ["stats"],
    ["channels", "--check"],
    ["silence", "add", "key=x", "--for", "1h"],
    ["silence", "list"],
    ["silence", "remove", "abc"],
    ["config", "check"],
    ["config", "show"],
    ["plugins"],
    ["monitor", "--once", "--service", "box"],
]
# The commands that need the history store (channels --check never opens it).
STORE_COMMANDS = [c for c in COMMANDS[:7] if c[0] != "channels"]


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIXALERT_", "SLACK_"))}
    for name in ("EMAIL_USER", "EMAIL_PASSWORD", "PAGERDUTY_INTEGRATION_KEY", "WEBHOOK_URLS"):
        env.pop(name, None)
    env.update(
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_STATE_HOME=str(tmp_path / "state"),
        # One channel that takes every alert, on a local port nothing listens on.
        WEBHOOK_URLS="http://127.0.0.1:1/hook",
    )
    env.update(extra)
    return env


def pixalert(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    done = subprocess.run(
        [sys.executable, "-m", "pixalert", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )
    return done.returncode, done.stdout, done.stderr


def assert_clean(args: list[str], code: int, out: str, err: str) -> None:
    assert code in EXIT_CODES, (args, code, err)
    assert "Traceback" not in out + err, (args, out, err)
    if code >= 2:
        errors = [line for line in err.splitlines() if line.startswith("error: ")]
        assert errors, (args, err)
        last = err.rstrip().splitlines()
        tail = last[last.index(errors[-1]) :]
        assert len(tail) <= 2, (args, err)  # the error itself: a line, or two


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_every_command_with_a_broken_store(args: list[str], tmp_path: Path) -> None:
    cases = {
        REFUSED: "postgresql://127.0.0.1:1/alerts",
        "sqlite:////proc/nope/h.db": "/proc/nope",
        "mysql://x": "mysql://",
        f"sqlite:///{tmp_path}": str(tmp_path),
    }
    with ThreadPoolExecutor(len(cases)) as pool:  # independent processes, run side by side
        runs = {
            url: pool.submit(pixalert, args, environment(tmp_path, PIXALERT_HISTORY=url), tmp_path)
            for url in cases
        }
    for url, named in cases.items():
        code, out, err = runs[url].result()
        assert_clean(args, code, out, err)
        if args in STORE_COMMANDS:
            assert code in (2, 3), (url, args, code, err)
            assert named in err, (url, args, err)
        elif args[0] == "channels":
            assert named not in err, (url, args, err)  # the store is not its business


@pytest.mark.parametrize("args", [["send", "x"], ["history"], ["stats"]], ids=" ".join)
def test_postgresql_unreachable(args: list[str], tmp_path: Path) -> None:
    code, out, err = pixalert(args, environment(tmp_path, PIXALERT_HISTORY=REFUSED), tmp_path)
    assert code == 3
    assert out == ""
    assert err.splitlines() == [
        f"error: PostgreSQL at {REFUSED}: OperationalError: connection failed: connection to "
        'server at "127.0.0.1", port 1 failed: Connection refused',
        "  is it running and reachable? ('history' is set by environment variable "
        "PIXALERT_HISTORY)",
    ]


def test_demo_json_is_only_json(tmp_path: Path) -> None:
    code, out, err = pixalert(["demo", "--json"], environment(tmp_path), tmp_path)
    assert code == 0, err
    outcome = json.loads(out)
    assert {"email", "slack", "pagerduty", "webhook"} <= set(outcome["sinks"])


def test_demo_without_the_testing_extras(tmp_path: Path) -> None:
    """As if installed without pixalert-email[testing]: aiosmtpd cannot be imported."""
    block = (
        "import sys; sys.modules['aiosmtpd'] = None; sys.argv = ['pixalert', 'demo']\n"
        "from pixalert.cli import main; main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", block],
        capture_output=True,
        text=True,
        env=environment(tmp_path),
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == (
        "error: pixalert demo needs the plugins' test servers, and aiosmtpd is not installed: "
        "pip install 'pixalert-email[testing]'\n"
    )
