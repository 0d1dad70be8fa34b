"""Development sessions: tests, isolated, http_newest, lint, typecheck, docs, screenshots, bench."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "typecheck", "tests"]

ROOT = Path(__file__).parent
PLUGINS = sorted(p.name for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").is_file())
# Test-only tools each distribution's own tests need beyond what it declares.
TEST_TOOLS = ["pytest>=8", "pytest-asyncio>=0.23"]
# The Pythons pixalert supports (requires-python = ">=3.10").
SUPPORTED = ("3.10", "3.11", "3.12", "3.13")


def _runs(python: str) -> bool:
    try:
        done = subprocess.run([python, "-c", "pass"], capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def _pyenv_bin(version: str) -> str | None:
    """The bin directory of the newest pyenv install of ``version`` (3.10 -> 3.10.13)."""
    if shutil.which("pyenv") is None:
        return None
    try:
        done = subprocess.run(
            ["pyenv", "versions", "--bare"], capture_output=True, text=True, timeout=30
        )
        root = subprocess.run(
            ["pyenv", "root"], capture_output=True, text=True, timeout=30
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    names = [
        n
        for n in done.stdout.split()
        if n.startswith(version + ".") and n[len(version) + 1 :].isdigit()
    ]
    if not names or not root:
        return None
    newest = max(names, key=lambda n: int(n.rsplit(".", 1)[1]))
    folder = Path(root) / "versions" / newest / "bin"
    return str(folder) if (folder / f"python{version}").is_file() else None


def find_pythons() -> list[str]:
    """The supported versions this machine has an interpreter for.

    An interpreter on PATH counts if it runs (pyenv's shims exist for versions
    that are not active, and fail); else a pyenv install is put first on PATH,
    where nox looks for ``python3.X``.
    """
    found = []
    for version in SUPPORTED:
        on_path = shutil.which(f"python{version}")
        if on_path and _runs(on_path):
            found.append(version)
            continue
        folder = _pyenv_bin(version)
        if folder is not None:
            os.environ["PATH"] = folder + os.pathsep + os.environ.get("PATH", "")
            found.append(version)
    return found


PYTHONS = find_pythons()
EXTRAS = {
    "pixalert-email": "[testing]",
    "pixalert-slack": "[testing]",
    "pixalert-pagerduty": "[testing]",
    "pixalert-webhook": "[testing]",
    "pixalert-apprise": "[testing]",
}


@nox.session
def tests(session: nox.Session) -> None:
    """Everything installed into one environment; the whole suite."""
    session.install("-r", "requirements-dev.txt")
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHONS or None)
@nox.parametrize("dist", ["pixalert", *PLUGINS], ids=["pixalert", *PLUGINS])
def isolated(session: nox.Session, dist: str) -> None:
    """One distribution alone with only what it declares, its own tests; each Python found.

    ``nox -s isolated -p 3.10`` runs them on one version only.
    """
    if dist == "pixalert":
        # pip and hatchling: the plugin-discovery test pip-installs real distributions.
        # pexpect: the pixalert init tests type into a real pseudo-terminal.
        # hypothesis: the noise-control property tests.
        session.install(
            "./core[http]", *TEST_TOOLS, "hatchling", "pip", "pexpect", "hypothesis>=6.100,<7"
        )
        tests_dir = "core/tests"
    else:
        session.install("./core[http]")
        session.install(f"./plugins/{dist}{EXTRAS.get(dist, '')}", *TEST_TOOLS)
        tests_dir = f"plugins/{dist}/tests"
    session.run("pytest", "-p", "no:cacheprovider", tests_dir, *session.posargs)


# The libraries under pixalert.http, and the tests of what sends through it.
HTTP_LIBRARIES = ["httpx", "httpcore", "aiohttp", "yarl"]
HTTP_TESTS = [
    "core/tests/test_http.py",
    "core/tests/test_http_endpoint.py",
    "core/tests/test_http_transport.py",
    "core/tests/test_log_masking.py",
    "core/tests/test_secrets.py",
    "plugins/pixalert-webhook/tests",
    "plugins/pixalert-slack/tests",
    "plugins/pixalert-pagerduty/tests",
]


@nox.session
def http_newest(session: nox.Session) -> None:
    """The HTTP channels' tests on the newest httpx, httpcore, aiohttp and yarl releases."""
    session.install("-r", "requirements-dev.txt")
    # Resolved with the core's extra, so within its bounds; no pre-releases.
    session.install("--upgrade", *HTTP_LIBRARIES, "-e", "./core[http]")
    session.run(
        "python",
        "-c",
        "from importlib.metadata import version as v; "
        f"print(', '.join(f'{{n}} {{v(n)}}' for n in {HTTP_LIBRARIES!r}))",
    )
    session.run("pytest", "-p", "no:cacheprovider", *HTTP_TESTS, *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy, strict on the core."""
    session.install("mypy", "-r", "requirements.txt")
    session.run("mypy", "core/src")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site strictly (warnings are errors)."""
    session.install("-r", "requirements-dev.txt")
    site = ROOT / "site"
    shutil.rmtree(site, ignore_errors=True)
    session.run(
        "mkdocs", "build", "--strict", "--site-dir", str(site), env={"NO_MKDOCS_2_WARNING": "1"}
    )


@nox.session
def screenshots(session: nox.Session) -> None:
    """Regenerate docs/images/ from a real pixalert serve in headless Chromium."""
    session.install("-r", "requirements-dev.txt")
    session.run("python", "tests/screenshots.py", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """The benchmarks (tests/benchmarks); ``nox -s bench -- --quick`` for a short run."""
    session.install("-r", "requirements-dev.txt", "apprise", "pyinstrument")
    session.run("python", "tests/benchmarks/run.py", *session.posargs)
