"""The documentation stays honest: hooks, config keys, CLI commands and every public name
are documented, every hook has a test, and the site builds with ``mkdocs build --strict``.

Modelled on datasette's meta-tests (every hook documented with its exact
signature, every hook has a ``test_hook_<name>`` test).
"""

from __future__ import annotations

import ast
import enum
import importlib
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
def test_hook_section_renders_its_hookspec(hook: str) -> None:
    """Each hook's section renders its docstring from hookspecs.py: one source for both."""
    text = HOOKS_PAGE.read_text(encoding="utf-8")
    sections = _sections(text)
    assert hook in sections, f"{HOOKS_PAGE.name} has no '### {hook}' section"
    assert f"::: pixalert.hookspecs.{hook}\n" in sections[hook], (
        f"{HOOKS_PAGE.name}, section {hook}: expected '::: pixalert.hookspecs.{hook}'"
    )
    assert (HOOKS[hook].__doc__ or "").strip(), f"{hook} has no docstring"


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_hook_documents_firstresult(hook: str) -> None:
    """A hook that stops at the first non-None result says so, and only such hooks do."""
    says = "Stops at the first non-None result" in " ".join((HOOKS[hook].__doc__ or "").split())
    assert says == HOOKS[hook].pixalert_spec["firstresult"], hook


def test_no_documented_hook_is_unknown() -> None:
    text = HOOKS_PAGE.read_text(encoding="utf-8")
    rendered = set(re.findall(r"^::: pixalert\.hookspecs\.(\w+)$", text, flags=re.M))
    headings = {h for h in _sections(text) if h.startswith("pixalert_")}
    assert rendered <= set(HOOKS), f"documented but not in hookspecs.py: {rendered - set(HOOKS)}"
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
    from pixalert._lifecycle_config import (
        ActionsConfig,
        EscalationPolicy,
        HeartbeatConfig,
        SelfWatchConfig,
    )
    from pixalert._routes import FlappingConfig, GroupingConfig, RouteConfig
    from pixalert._templates import TemplateConfig

    tables: dict[str, Any] = {
        "routing": RoutingConfig,
        "delivery": DeliveryConfig,
        "actions": ActionsConfig,
        "escalation.<name>": EscalationPolicy,
        "heartbeats.<name>": HeartbeatConfig,
        "self_watch": SelfWatchConfig,
        "grouping": GroupingConfig,
        "flapping": FlappingConfig,
        "routes[]": RouteConfig,
        "templates.<name>": TemplateConfig,
    }
    keys: list[tuple[str, Any]] = []
    for field in attrs.fields(Settings):
        if field.name in (*_TABLES, "channels", "plugins", "sources") or any(
            t.split(".")[0] == field.name for t in tables
        ):
            continue  # tables: their keys are listed below, or belong to plugins
        keys.append((field.name, field.default))
    for prefix, cls in tables.items():
        for field in attrs.fields(cls):
            default = field.default
            if default is attrs.NOTHING:
                default = "required"
            keys.append((f"{prefix}.{field.name.rstrip('_')}", default))
    for name in ("times", "weekdays", "days_of_month", "months", "years", "location"):
        keys.append((f"time_intervals.<name>.{name}", "UTC" if name == "location" else None))
    return keys


def _default_text(default: Any) -> list[str]:
    from pixalert._durations import Duration, format_duration

    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        default = default.factory()
        if default in ((), {}):
            return ["`{}`"]
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
    if default == "required":
        return ["required"]
    if isinstance(default, enum.Enum):
        return [f"`{default.name}`"]
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
        "### `[actions]`",
        "### `[escalation.<name>]`",
        "### `[heartbeats.<name>]`",
        "### `[self_watch]`",
        "### `[templates.<name>]`",
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
        "grouping",
        "routes",
        "actions",
        "escalation",
        "heartbeats",
        "self_watch",
        "templates",
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
            # Global options are documented once; a command's own --json in its section.
            own_json = getattr(param, "has_json_output", False) and not param.hidden
            if path != "pixalert" and getattr(param, "is_global", False) and not own_json:
                continue
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


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built once with ``mkdocs build --strict``; warnings fail the build test."""
    pytest.importorskip("mkdocs", reason="mkdocs is a dev dependency (requirements-dev.txt)")
    out = tmp_path_factory.mktemp("site")
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
            str(out),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    warnings = [line for line in proc.stderr.splitlines() if line.startswith(("WARNING", "ERROR"))]
    assert proc.returncode == 0 and not warnings, proc.stderr[-4000:]
    return out


@pytest.mark.slow
def test_mkdocs_build_strict(site: Path) -> None:
    """``mkdocs build --strict`` succeeds: no broken link, no missing page, no docstring warning."""
    assert (site / "plugin_hooks" / "index.html").is_file()
    assert (site / "reference" / "pixalert" / "index.html").is_file()


# ---------------------------------------------------------------------------
# API reference: every public name
# ---------------------------------------------------------------------------

#: Each public module of the core, and the reference page that renders it.
REFERENCE = {
    "pixalert": "reference/pixalert.md",
    "pixalert.channels": "reference/channels.md",
    "pixalert.storage": "reference/storage.md",
    "pixalert.plugins": "reference/plugins.md",
    "pixalert.testing": "reference/testing.md",
    "pixalert.http": "reference/http.md",
    "pixalert.hookspecs": "reference/hookspecs.md",
}
PLUGIN_SOURCES = sorted((ROOT / "plugins").glob("*/src"))
PLUGIN_PACKAGES = sorted(p.parent.name for p in (ROOT / "plugins").glob("*/src/*/__init__.py"))


def _public(module: str) -> list[str]:
    """``module.__all__`` without dunders (``__version__`` is not an API to document)."""
    names = importlib.import_module(module).__all__
    return [n for n in names if not (n.startswith("__") and n.endswith("__"))]


CORE_NAMES = [(module, name) for module in REFERENCE for name in _public(module)]


def _plugin_names() -> list[tuple[str, str]]:
    out = []
    for package in PLUGIN_PACKAGES:
        try:
            out.extend((package, name) for name in _public(package))
        except ImportError:  # pragma: no cover - every plugin is installed for tests/
            continue
    return out


PLUGIN_NAMES = _plugin_names()


@pytest.fixture(scope="module")
def api() -> Any:
    """The core and every plugin package, read by griffe as mkdocstrings reads them."""
    griffe = pytest.importorskip("griffe")
    loader = griffe.GriffeLoader(search_paths=[ROOT / "core" / "src", *PLUGIN_SOURCES])
    packages = {name: loader.load(name) for name in ["pixalert", *PLUGIN_PACKAGES]}
    loader.resolve_aliases(external=False, implicit=False)
    return packages


def _docstring(api: Any, module: str, name: str) -> str:
    package, _, rest = module.partition(".")
    obj = api[package]
    if rest:
        obj = obj[rest]
    member = obj[name]
    target = member.final_target if member.is_alias else member
    return target.docstring.value.strip() if target.docstring else ""


def _directives(page: Path) -> dict[str, list[str] | None]:
    """``::: module`` directives of a page: module -> its ``members`` option (None: all)."""
    import yaml

    found: dict[str, list[str] | None] = {}
    lines = page.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        match = re.match(r"^::: ([\w.]+)\s*$", line)
        if not match:
            continue
        block = []
        for following in lines[i + 1 :]:
            if following.strip() and not following.startswith(" "):
                break
            block.append(following)
        options = (yaml.safe_load("\n".join(block)) or {}).get("options", {}) if block else {}
        found[match.group(1)] = options.get("members")
    return found


@pytest.mark.parametrize(("module", "name"), CORE_NAMES, ids=[f"{m}.{n}" for m, n in CORE_NAMES])
def test_public_name_is_in_the_reference_with_a_docstring(api: Any, module: str, name: str) -> None:
    """Its module's reference page renders it (``::: module``), and it says what it is."""
    page = DOCS / REFERENCE[module]
    assert page.is_file(), f"{module}: no reference page {page.relative_to(ROOT)}"
    directives = _directives(page)
    assert module in directives, f"{page.relative_to(ROOT)} has no '::: {module}' directive"
    members = directives[module]
    assert members is None or name in members, (
        f"{page.relative_to(ROOT)}: the members option of '::: {module}' leaves out {name}"
    )
    assert not name.startswith("_"), f"{module}.{name}: the reference hides names starting with _"
    assert _docstring(api, module, name), (
        f"{module}.{name} has no docstring, so the reference shows nothing for it: add one "
        "(a string literal after an assignment counts)"
    )


@pytest.mark.parametrize(
    ("package", "name"), PLUGIN_NAMES, ids=[f"{p}.{n}" for p, n in PLUGIN_NAMES]
)
def test_plugin_public_name_has_a_docstring(api: Any, package: str, name: str) -> None:
    """What a plugin distribution exports (its ``__all__``) says what it is."""
    assert _docstring(api, package, name), f"{package}.{name} has no docstring"


@pytest.mark.slow
def test_every_public_name_is_rendered_in_the_built_reference(site: Path) -> None:
    """The built pages have an anchor for each public name (``id="pixalert.channels.X"``)."""
    missing = []
    for module, name in CORE_NAMES:
        page = site / Path(REFERENCE[module]).with_suffix("") / "index.html"
        if f'id="{module}.{name}"' not in page.read_text(encoding="utf-8"):
            missing.append(f"{module}.{name} (on {REFERENCE[module]})")
    assert not missing, "not rendered in the reference: " + ", ".join(missing)


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


def test_the_store_guide_describes_every_store_check() -> None:
    """docs/plugins/stores.md is written from the conformance suite: one section per check."""
    from pixalert.testing import STORE_CHECKS

    text = (DOCS / "plugins" / "stores.md").read_text(encoding="utf-8")
    headings = re.findall(r"^### (\w+)$", text, flags=re.M)
    assert headings == list(STORE_CHECKS)
