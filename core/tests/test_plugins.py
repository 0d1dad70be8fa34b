"""Plugins found through entry points: real distributions, built and installed here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pixalert
import pytest
from pixalert import _plugins
from pixalert.plugins import get_plugin_manager

HELLO_PYPROJECT = """
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "pixalert-hello"
version = "1.2.3"
dependencies = ["pixalert>=0.1,<1"]

[project.entry-points.pixalert]
hello = "pixalert_hello"

[tool.hatch.build.targets.wheel]
packages = ["src/pixalert_hello"]
"""

HELLO_MODULE = '''
"""A third-party channel plugin."""
import pixalert
from pixalert.testing import recording_spec


@pixalert.hookimpl
def pixalert_channels():
    return [recording_spec("hello")]
'''

BROKEN_PYPROJECT = (
    HELLO_PYPROJECT.replace("pixalert-hello", "pixalert-broken")
    .replace('hello = "pixalert_hello"', 'broken = "pixalert_broken"')
    .replace("src/pixalert_hello", "src/pixalert_broken")
)


def _package(root: Path, name: str, pyproject: str, module: str) -> Path:
    pkg = root / name
    (pkg / "src" / name.replace("-", "_")).mkdir(parents=True)
    (pkg / "pyproject.toml").write_text(pyproject)
    (pkg / "src" / name.replace("-", "_") / "__init__.py").write_text(module)
    return pkg


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with two plugin distributions pip-installed into it."""
    pytest.importorskip("hatchling", reason="hatchling builds the test plugins")
    root = tmp_path_factory.mktemp("plugins")
    hello = _package(root, "pixalert-hello", HELLO_PYPROJECT, HELLO_MODULE)
    broken = _package(
        root, "pixalert-broken", BROKEN_PYPROJECT, "raise ImportError('needs libfoo 2.0')\n"
    )
    target = root / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "--target",
            str(target),
            str(hello),
            str(broken),
        ],
        check=True,
    )
    return target


def _pixalert(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), *sys.path]))
    return subprocess.run(
        [sys.executable, "-m", "pixalert", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_installed_plugin_is_discovered_and_broken_one_reported(site: Path) -> None:
    proc = _pixalert(site, "plugins", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    hello = next(p for p in data["plugins"] if p["name"] == "hello")
    assert hello["distribution"] == "pixalert-hello" and hello["version"] == "1.2.3"
    assert hello["channels"] == ["hello"]
    assert {"name": "broken", "error": "failed to load: ImportError: needs libfoo 2.0"} in data[
        "errors"
    ]


def test_alert_reaches_the_installed_plugin_channel(site: Path, tmp_path: Path) -> None:
    config = tmp_path / "pixalert.toml"
    config.write_text(
        textwrap.dedent(f"""
        history = "sqlite:///{tmp_path}/h.db"
        [channels.hello]
    """)
    )
    proc = _pixalert(site, "--config", str(config), "send", "Hi", "there", "-c", "hello", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["hello"]["status"] == "sent"
    # The broken plugin is reported on stderr, and the command still works.
    assert "needs libfoo 2.0" in proc.stderr


def test_broken_plugin_does_not_break_help(site: Path) -> None:
    proc = _pixalert(site, "--help")
    assert proc.returncode == 0 and "Commands:" in proc.stdout


def test_pixalert_plugins_variable_limits_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIXALERT_PLUGINS", "")
    pm = _plugins.get_plugin_manager()
    assert pm.plugin_infos() == [] and pm.problems == []


def test_a_hook_with_a_typo_is_reported_naming_the_plugin_and_the_hook() -> None:
    class Typo:
        @pixalert.hookimpl
        def pixalert_chanels(self) -> list[Any]:
            return []

    pm = get_plugin_manager(entrypoints=False, plugins=[Typo()])
    (problem,) = pm.problems
    assert "implements unknown hook 'pixalert_chanels'" in problem.error
    assert "did you mean 'pixalert_channels'?" in problem.error
    assert pm.report_unknown_hooks() == []  # reported once
