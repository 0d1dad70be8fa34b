"""The documentation stays honest: hooks, config keys and CLI commands are all documented,
every hook has a test, and the site builds with ``mkdocs build --strict``.

Modelled on datasette's meta-tests (every hook documented with its exact
signature, every hook has a ``test_hook_<name>`` test).
"""

from __future__ import annotations

import ast
import inspect
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from pixalert import hookspecs

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
HOOKS_PAGE = DOCS / "plugin_hooks.md"
TEST_DIRS = (ROOT / "core" / "tests", ROOT / "tests")


def _hooks() -> dict[str, Callable[..., Any]]:
    return {
        name: func
        for name, func in vars(hookspecs).items()
        if name.startswith("pixalert_") and hasattr(func, "pixalert_spec")
    }


HOOKS = _hooks()


def render_signature(name: str, func: Callable[..., Any]) -> str:
    """``def name(a: T, b: U) -> R`` as written in hookspecs.py (annotations are strings there)."""
    sig = inspect.signature(func)
    params = []
    for p in sig.parameters.values():
        text = p.name if p.annotation is p.empty else f"{p.name}: {p.annotation}"
        if p.default is not p.empty:
            text += f" = {p.default!r}"
        params.append(text)
    result = f"def {name}({', '.join(params)})"
    if sig.return_annotation is not sig.empty:
        result += f" -> {sig.return_annotation}"
    return result


def _sections(text: str) -> dict[str, str]:
    """``### pixalert_x`` heading -> the text up to the next heading of level <= 3."""
    out: dict[str, str] = {}
    current: str | None = None
    lines: list[str] = []
    for line in text.splitlines():
        heading = re.match(r"^(#{1,3}) (.*)$", line)
        if heading:
            if current is not None:
                out[current] = "\n".join(lines)
            current, lines = heading.group(2).strip(), []
        else:
            lines.append(line)
    if current is not None:
        out[current] = "\n".join(lines)
    return out


def _documented_defs(text: str) -> list[str]:
    return [
        line.strip().rstrip(":")
        for line in text.splitlines()
        if line.strip().startswith("def pixalert_")
    ]


def test_hookspecs_found() -> None:
    assert "pixalert_channels" in HOOKS, HOOKS


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_hook_is_documented_with_its_exact_signature(hook: str) -> None:
    text = HOOKS_PAGE.read_text(encoding="utf-8")
    sections = _sections(text)
    assert hook in sections, f"{HOOKS_PAGE.name} has no '### {hook}' section"
    expected = render_signature(hook, HOOKS[hook])
    documented = _documented_defs(sections[hook])
    # The first ``def`` of the section is the signature; later ones are examples.
    assert documented[:1] == [expected], (
        f"{HOOKS_PAGE.name}, section {hook}: expected the signature\n    {expected}\n"
        f"found {documented[:1]}"
    )


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_hook_documents_firstresult(hook: str) -> None:
    """A hook that stops at the first non-None result says so, and only such hooks do."""
    section = _sections(HOOKS_PAGE.read_text(encoding="utf-8"))[hook]
    says = "Stops at the first non-None result" in section
    assert says == HOOKS[hook].pixalert_spec["firstresult"], hook


def test_no_documented_hook_is_unknown() -> None:
    text = HOOKS_PAGE.read_text(encoding="utf-8")
    names = {re.match(r"def (\w+)", d).group(1) for d in _documented_defs(text)}  # type: ignore[union-attr]
    headings = {h for h in _sections(text) if h.startswith("pixalert_")}
    assert names <= set(HOOKS), f"documented but not in hookspecs.py: {names - set(HOOKS)}"
    assert headings <= set(HOOKS), f"documented but not in hookspecs.py: {headings - set(HOOKS)}"


def _test_names() -> Iterator[tuple[str, Path]]:
    for folder in TEST_DIRS:
        for path in sorted(folder.rglob("*.py")) if folder.is_dir() else ():
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"))
            except SyntaxError:
                continue
            for node in ast.walk(tree):
                if isinstance(
                    node, (ast.FunctionDef, ast.AsyncFunctionDef)
                ) and node.name.startswith("test_hook_"):
                    yield node.name, path


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_hook_has_a_test(hook: str) -> None:
    """Every hook has a ``test_hook_<name>`` test (``<name>`` with or without ``pixalert_``)."""
    short = hook.removeprefix("pixalert_")
    wanted = {f"test_hook_{hook}", f"test_hook_{short}"}
    found = [
        (name, path)
        for name, path in _test_names()
        if name in wanted or any(name.startswith(w + "_") for w in wanted)
    ]
    assert found, f"no test named test_hook_{short} (or test_hook_{hook}) under core/tests or tests"


# ---------------------------------------------------------------------------
# Configuration reference
# ---------------------------------------------------------------------------


def _table_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("|")]


def _row_for(rows: list[str], key: str) -> str | None:
    for row in rows:
        first = row.strip("|").split("|", 1)[0]
        if f"`{key}`" in first:
            return row
    return None


#: Tables of the core settings, documented key by key (``[[routes]]`` as ``routes[].KEY``).
_TABLES = ("routing", "delivery", "grouping", "flapping", "routes", "time_intervals")
#: Keys whose default is described in words rather than as a value.
_DEFAULT_IN_WORDS = {"history", "routes[].match"}


def _core_keys() -> list[tuple[str, Any]]:
    from pixalert._config import DeliveryConfig, RoutingConfig, Settings
    from pixalert._routes import FlappingConfig, GroupingConfig, RouteConfig

    keys: list[tuple[str, Any]] = []
    for field in attrs.fields(Settings):
        if field.name in (*_TABLES, "channels", "plugins", "sources"):
            continue  # tables: their keys are listed below, or belong to plugins
        keys.append((field.name, field.default))
    for prefix, cls in (
        ("routing", RoutingConfig),
        ("delivery", DeliveryConfig),
        ("grouping", GroupingConfig),
        ("flapping", FlappingConfig),
        ("routes[]", RouteConfig),
    ):
        for field in attrs.fields(cls):
            keys.append((f"{prefix}.{field.name.rstrip('_')}", field.default))
    for name in ("times", "weekdays", "days_of_month", "months", "years", "location"):
        keys.append((f"time_intervals.<name>.{name}", "UTC" if name == "location" else None))
    return keys


def _default_text(default: Any) -> list[str]:
    from pixalert._durations import Duration, format_duration

    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        default = default.factory()
        if not isinstance(default, (list, str)):
            return []
    if isinstance(default, Duration):
        return [f'`"{format_duration(default)}"`']
    if isinstance(default, list) and all(isinstance(d, Duration) for d in default):
        return ["`[" + ", ".join(f'"{format_duration(d)}"' for d in default) + "]`"]
    if isinstance(default, bool):
        return [str(default).lower()]
    if isinstance(default, float) and default.is_integer():
        return [f"`{default:g}`", f"`{default}`"]
    if isinstance(default, list):
        return ["`" + str(default).replace("'", '"') + "`"]
    if default is None:
        return ["none", "not set"]
    return [f"`{default}`"]


@pytest.mark.parametrize("key", [k for k, _ in _core_keys()])
def test_core_config_key_is_documented_with_its_default(key: str) -> None:
    rows = _table_rows((DOCS / "configuration.md").read_text(encoding="utf-8"))
    row = _row_for(rows, key)
    assert row is not None, f"configuration.md has no table row for `{key}`"
    default = dict(_core_keys())[key]
    if key in _DEFAULT_IN_WORDS or key.startswith("time_intervals."):
        return  # a per-user path, "every alert", "any"...: described in words
    options = _default_text(default)
    assert any(o.lower() in row.lower() for o in options), (
        f"configuration.md: the row for `{key}` should give its default ({options[0]}): {row}"
    )


def test_core_tables_are_documented() -> None:
    from pixalert._config import Settings

    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    for name in ("routing", "delivery", "channels", "plugins"):
        assert name in attrs.fields_dict(Settings), name
    for heading in (
        "### `[routing]`",
        "### `[delivery]`",
        "### `[grouping]`",
        "### `[[routes]]`",
        "### `[time_intervals.<name>]`",
        "### `[flapping]`",
        "### `[channels.<name>]`",
        "### `[plugins.<name>]`",
    ):
        assert heading in text, f"configuration.md has no heading {heading}"
    documented = {
        *_TABLES,
        "routing",
        "delivery",
        "channels",
        "plugins",
        "sources",
        "history",
        "state",
        "cooldown_minutes",
        "retention_days",
    }
    assert set(attrs.fields_dict(Settings)) <= documented, "a new core setting: document it"


def test_core_environment_variables_are_documented() -> None:
    from pixalert._config import _CORE_ENV, CONFIG_ENV

    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    for name in [*_CORE_ENV, CONFIG_ENV, "PIXALERT_PLUGINS"]:
        assert f"`{name}`" in text, f"configuration.md does not mention `{name}`"
    for name, key in _CORE_ENV.items():
        row = _row_for(_table_rows(text), key)
        assert row is not None and name in row, f"the row for `{key}` should name {name}"


CHANNEL_PAGES = {
    "email": "pixalert_email",
    "slack": "pixalert_slack",
    "pagerduty": "pixalert_pagerduty",
    "webhook": "pixalert_webhook",
}


@pytest.mark.parametrize("channel", sorted(CHANNEL_PAGES))
def test_channel_config_is_documented(channel: str) -> None:
    """Every config field of a channel plugin, and every environment variable, is on its page."""
    module = pytest.importorskip(CHANNEL_PAGES[channel])
    (spec,) = [s for s in module.pixalert_channels() if s.name == channel]
    text = (DOCS / "channels" / f"{channel}.md").read_text(encoding="utf-8")
    rows = _table_rows(text)
    for field in attrs.fields(spec.config_type):
        assert _row_for(rows, field.name) is not None, (
            f"channels/{channel}.md has no table row for `{field.name}`"
        )
    for env_name, field_name in spec.env.items():
        row = _row_for(rows, field_name)
        assert row is not None and env_name in row, (
            f"channels/{channel}.md: the row for `{field_name}` should name {env_name}"
        )
    for alias in spec.aliases:
        assert f"`{alias}`" in text, f"channels/{channel}.md does not mention flat key `{alias}`"


# ---------------------------------------------------------------------------
# Command line reference
# ---------------------------------------------------------------------------


def _commands() -> Iterator[tuple[str, Any]]:
    import click
    from pixalert.cli import cli

    ctx = click.Context(cli, info_name="pixalert")

    def walk(group: click.Group, prefix: str) -> Iterator[tuple[str, Any]]:
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            if command is None or command.hidden:
                continue
            yield f"{prefix} {name}", command
            if isinstance(command, click.Group):
                yield from walk(command, f"{prefix} {name}")

    yield "pixalert", cli
    yield from walk(cli, "pixalert")


def test_every_command_and_option_is_documented() -> None:
    import click

    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    headings = set(_sections(text))
    missing = []
    for path, command in _commands():
        if path != "pixalert" and f"`{path}`" not in headings:
            missing.append(f"heading `{path}`")
            continue
        section = _sections(text).get(f"`{path}`", text) if path != "pixalert" else text
        for param in command.params:
            if isinstance(param, click.Option):
                flags = [o for o in param.opts if o.startswith("--")] or param.opts
                if not any(f"`{flag}" in section for flag in flags):
                    missing.append(f"{path} {flags[0]}")
            elif isinstance(param, click.Argument) and param.name.upper() not in section:
                missing.append(f"{path} argument {param.name.upper()}")
    assert not missing, "cli.md does not document: " + ", ".join(missing)


# ---------------------------------------------------------------------------
# The site
# ---------------------------------------------------------------------------


@pytest.mark.slow
def test_mkdocs_build_strict(tmp_path: Path) -> None:
    """``mkdocs build --strict`` succeeds: no broken link, no missing page, no docstring warning."""
    pytest.importorskip("mkdocs", reason="mkdocs is a dev dependency (requirements-dev.txt)")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-f",
            str(ROOT / "mkdocs.yml"),
            "-d",
            str(tmp_path / "site"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    warnings = [line for line in proc.stderr.splitlines() if line.startswith(("WARNING", "ERROR"))]
    assert proc.returncode == 0 and not warnings, proc.stderr[-4000:]
    assert (tmp_path / "site" / "plugin_hooks" / "index.html").is_file()
    assert (tmp_path / "site" / "reference" / "pixalert" / "index.html").is_file()


def _test_blocks() -> list[tuple[str, str]]:
    """Python code blocks of the docs that are tests themselves (``async def test_``)."""
    found = []
    for page in sorted(DOCS.rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        for i, block in enumerate(re.findall(r"```python\n(.*?)```", text, re.S)):
            if re.search(r"^(async )?def test_", block, re.M):
                found.append((f"{page.relative_to(DOCS)}#{i}", block))
    return found


def test_test_examples_in_the_docs_pass(tmp_path: Path) -> None:
    """Every test shown in a page (the channels' testing sections...) passes as written."""
    blocks = _test_blocks()
    assert len(blocks) >= 4, [name for name, _ in blocks]
    files = []
    for n, (name, block) in enumerate(blocks):
        path = tmp_path / f"test_doc_block_{n}.py"
        path.write_text(f"# {name}\n{block}", encoding="utf-8")
        files.append(str(path))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            "-o",
            "asyncio_mode=auto",
            "-o",
            "asyncio_default_fixture_loop_scope=function",
            "-W",
            "error",
            *files,
        ],
        cwd=tmp_path,
        # The plugin guide's example plugin, importable without installing it.
        env=dict(os.environ, PYTHONPATH=str(DOCS / "examples" / "pixalert-ntfy" / "src")),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:]
