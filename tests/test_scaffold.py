"""``pixalert plugin new``: the scaffold installs, is found, gets alerts, passes its tests.

The scaffold is pip-installed (a real wheel build, no network) into a fresh
virtual environment that sees this environment's packages but not the other
way round. There, ``pixalert plugins`` lists it, ``pixalert init`` sets it up
from its own environment variables, ``pixalert send`` delivers to a local sink
run by this test, and the scaffold's own tests (its conformance suite
included) pass.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import site
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

NAME = "acme-pager"
DIST = f"pixalert-{NAME}"
MODULE = "pixalert_acme_pager"
CLI = "from pixalert.cli import main; main()"


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without pixalert settings or seed variables that would leak in."""
    drop = ("PIXALERT_", "EMAIL_", "SMTP_", "SLACK_", "PAGERDUTY_", "WEBHOOK_", "ACME_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(extra)
    return env


def run(args: list[str], cwd: Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=300, env=clean_env(), **kwargs
    )


def make_venv(root: Path) -> Path:
    """A venv without pip that also sees this interpreter's site-packages (and their .pth
    files, so editable installs work), whether this runs in a venv or not."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / ("Scripts" if os.name == "nt" else "bin") / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    parents = [p for p in site.getsitepackages() if os.path.isdir(p)]
    Path(purelib, "_parent_env.pth").write_text(
        "".join(f"import site; site.addsitedir({p!r})\n" for p in parents), encoding="utf-8"
    )
    return python


@pytest.fixture(scope="module")
def scaffold(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The scaffolded project, pip-installed into its own venv."""
    pytest.importorskip("hatchling", reason="building the scaffold offline needs hatchling")
    root = tmp_path_factory.mktemp("scaffold")
    made = run(
        [
            sys.executable,
            "-c",
            CLI,
            "plugin",
            "new",
            NAME,
            "--description",
            "Acme Pager alerts for pixalert",
        ],
        cwd=root,
    )
    assert made.returncode == 0, made.stderr
    project = root / DIST
    python = make_venv(root / "venv")
    installed = run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--no-index",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "--quiet",
            str(project),
        ],
        cwd=root,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return {"root": root, "project": project, "python": python}


class Sink:
    """A local HTTP endpoint standing in for the service (aiohttp.web, 127.0.0.1)."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.requests: list[dict[str, Any]] = []
        self.url = ""
        self._runner: Any = None

    async def start(self) -> None:
        from aiohttp import web

        app = web.Application()
        app.router.add_post("/hooks/acme", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site_ = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site_.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/hooks/acme"

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def _handle(self, request: Any) -> Any:
        from aiohttp import web

        body = await request.read()
        self.requests.append(
            {
                "authorization": request.headers.get("Authorization"),
                "content_type": request.content_type,
                "json": json.loads(body),
            }
        )
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"error": "bad token"}, status=401)
        return web.json_response({"ok": True})


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    pytest.importorskip("aiohttp")
    server = Sink(token="acme-" + os.urandom(8).hex())
    await server.start()
    yield server
    await server.stop()


async def cli(
    python: Path, *args: str, cwd: Path, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """Run the pixalert CLI of ``python`` while this loop keeps serving the sink."""
    process = await asyncio.create_subprocess_exec(
        str(python),
        "-c",
        CLI,
        *args,
        cwd=cwd,
        env=clean_env(**(env or {})),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def test_the_scaffold_has_every_part(scaffold):
    project = scaffold["project"]
    files = sorted(
        str(p.relative_to(project))
        for p in project.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and ".egg-info" not in str(p)
    )
    assert files == [
        ".gitignore",
        "README.md",
        "pyproject.toml",
        f"src/{MODULE}/__init__.py",
        f"src/{MODULE}/_channel.py",
        f"src/{MODULE}/py.typed",
        f"src/{MODULE}/testing.py",
        "tests/conftest.py",
        "tests/test_channel.py",
        "tests/test_contract.py",
    ]
    pyproject = (project / "pyproject.toml").read_text()
    assert '[project.entry-points.pixalert]\nacme-pager = "pixalert_acme_pager"' in pyproject
    assert 'dependencies = ["pixalert[http]>=0.1,<1"]' in pyproject
    assert "ACME_PAGER_URL" in (project / "README.md").read_text()


def test_pixalert_plugins_lists_it_in_its_environment_only(scaffold):
    listed = run([str(scaffold["python"]), "-c", CLI, "plugins", "--json"], cwd=scaffold["root"])
    assert listed.returncode == 0, listed.stderr
    plugins = {p["name"]: p for p in json.loads(listed.stdout)["plugins"]}
    assert plugins[NAME]["distribution"] == DIST
    assert plugins[NAME]["version"] == "0.1.0"
    assert plugins[NAME]["channels"] == [NAME]
    assert sorted(plugins[NAME]["hooks"]) == ["pixalert_channels", "pixalert_demo_sinks"]
    here = run([sys.executable, "-c", CLI, "plugins", "--json"], cwd=scaffold["root"])
    assert NAME not in {p["name"] for p in json.loads(here.stdout)["plugins"]}


def test_it_declares_what_pixalert_init_asks(scaffold):
    """The generated plugin's spec carries its setup fields: init offers a flag per variable."""
    shown = run([str(scaffold["python"]), "-c", CLI, "init", "--help"], cwd=scaffold["root"])
    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())
    assert f"--{NAME}-url VALUE {NAME}: URL alerts are POSTed to (or $ACME_PAGER_URL)." in text
    assert f"--{NAME}-token VALUE {NAME}: Bearer token (optional) (or $ACME_PAGER_TOKEN)." in text


async def test_init_sets_it_up_and_an_alert_reaches_it(scaffold, sink, tmp_path):
    python = scaffold["python"]
    env = {"ACME_PAGER_URL": sink.url, "ACME_PAGER_TOKEN": sink.token}
    code, out, err = await cli(python, "init", "--no-input", "--check", cwd=tmp_path, env=env)
    assert code == 0, out + err
    assert f"✓ {NAME}: sent" in out
    assert sink.token not in out + err and sink.url not in out + err
    config = tmp_path / "pixalert.toml"
    assert f'[channels.{NAME}]\nurl = "{sink.url}"\ntoken = "{sink.token}"' in config.read_text()
    assert oct(config.stat().st_mode & 0o777) == "0o600"

    code, out, err = await cli(
        python,
        "--config",
        str(config),
        "send",
        "Disk full",
        "/ is 97% full",
        "--priority",
        "high",
        "--channel",
        NAME,
        "--meta",
        "host=db-1",
        "--json",
        cwd=tmp_path,
        env={"PIXALERT_HISTORY": "memory://"},
    )
    assert code == 0, out + err
    assert json.loads(out)[NAME]["status"] == "sent"
    check, sent = sink.requests
    assert check["json"]["title"] == "pixalert test alert"
    assert sent["authorization"] == f"Bearer {sink.token}"
    assert sent["content_type"] == "application/json"
    assert {k: sent["json"][k] for k in ("title", "message", "priority", "status", "metadata")} == {
        "title": "Disk full",
        "message": "/ is 97% full",
        "priority": "high",
        "status": "firing",
        "metadata": {"host": "db-1"},
    }


async def test_a_rejected_token_fails_without_retrying_or_leaking(scaffold, sink, tmp_path):
    code, out, err = await cli(
        scaffold["python"],
        "send",
        "Disk full",
        "--channel",
        NAME,
        "--json",
        cwd=tmp_path,
        env={
            "ACME_PAGER_URL": sink.url,
            "ACME_PAGER_TOKEN": "wrong-token-123",
            "PIXALERT_HISTORY": "memory://",
        },
    )
    assert code == 1
    result = json.loads(out)[NAME]
    assert result["status"] == "failed" and result["attempts"] == 1
    assert "HTTP 401" in result["error"] and "permanent" in result["error"]
    assert "wrong-token-123" not in out + err and sink.url not in out + err
    assert len(sink.requests) == 1


def test_the_scaffolds_own_tests_pass_in_its_environment(scaffold):
    tested = run(
        [str(scaffold["python"]), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=scaffold["project"],
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "17 passed" in tested.stdout


@pytest.mark.parametrize(
    ("name", "description"),
    [("a", None), ("abcdefghijklmnopqrstuvwx", "D" * 72), ("ab-cd-ef-gh-ij-kl-mn-op", None)],
    ids=["shortest", "longest", "hyphens"],
)
def test_the_scaffold_is_lint_clean_for_any_allowed_name(tmp_path, name, description):
    from pixalert.cli._plugin import render_scaffold

    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed")
    for relative, content in render_scaffold(name, description).items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    for args in (["check", "."], ["format", "--check", "."]):
        linted = run([ruff, *args], cwd=tmp_path)
        assert linted.returncode == 0, linted.stdout + linted.stderr


def test_names_are_checked(tmp_path):
    for bad, says in [
        ("Teams!", "expected lowercase letters"),
        ("slack", "already installed"),
        ("9lives", "expected lowercase letters"),
        ("a" * 25, "expected at most 24 characters"),
    ]:
        made = run([sys.executable, "-c", CLI, "plugin", "new", bad], cwd=tmp_path)
        assert made.returncode == 2 and says in made.stderr, made.stderr
    made = run(
        [sys.executable, "-c", CLI, "plugin", "new", "pixalert-teams", "-d", "out"], cwd=tmp_path
    )
    assert made.returncode == 0, made.stderr
    assert (
        tmp_path / "out" / "pixalert-teams" / "src" / "pixalert_teams" / "_channel.py"
    ).is_file()
    again = run([sys.executable, "-c", CLI, "plugin", "new", "teams", "-d", "out"], cwd=tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr
