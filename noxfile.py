"""Development sessions: tests, isolated, lint, typecheck, docs, screenshots, bench."""

from __future__ import annotations

import shutil
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "typecheck", "tests"]

ROOT = Path(__file__).parent
PLUGINS = sorted(p.name for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").is_file())
# Test-only tools each distribution's own tests need beyond what it declares.
TEST_TOOLS = ["pytest>=8", "pytest-asyncio>=0.23"]
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


@nox.session
@nox.parametrize("dist", ["pixalert", *PLUGINS], ids=["pixalert", *PLUGINS])
def isolated(session: nox.Session, dist: str) -> None:
    """One distribution installed alone with only what it declares, then its own tests."""
    if dist == "pixalert":
        # pip and hatchling: the plugin-discovery test pip-installs real distributions.
        session.install("./core[http]", *TEST_TOOLS, "hatchling", "pip")
        tests_dir = "core/tests"
    else:
        session.install("./core[http]")
        session.install(f"./plugins/{dist}{EXTRAS.get(dist, '')}", *TEST_TOOLS)
        tests_dir = f"plugins/{dist}/tests"
    session.run("pytest", "-p", "no:cacheprovider", tests_dir, *session.posargs)


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
