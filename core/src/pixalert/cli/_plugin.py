"""``pixalert plugin``: tools for plugin authors. ``pixalert plugin new NAME`` scaffolds a
working channel plugin: pyproject with the entry point, a channel that POSTs JSON with
:mod:`pixalert.http`, a contract-enforcing local server, tests (the conformance
suite included) and a README.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:  # importlib.resources.abc is new in Python 3.11
    from importlib.resources.abc import Traversable

from . import fail

__all__ = ["plugin", "render_scaffold"]

_NAME = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
MAX_NAME = 24
MAX_DESCRIPTION = 72
_SUFFIX = ".tmpl"
_RENAMES = {"__module__": "{{module}}", "gitignore": ".gitignore"}


def scaffold_values(name: str, description: str | None = None) -> dict[str, str]:
    """The placeholders of the template for channel type ``name``."""
    words = name.split("-")
    title = " ".join(w.capitalize() for w in words)
    return {
        "{{name}}": name,
        "{{dist}}": f"pixalert-{name}",
        "{{module}}": "pixalert_" + name.replace("-", "_"),
        "{{Class}}": "".join(w.capitalize() for w in words),
        "{{ENV}}": name.replace("-", "_").upper(),
        "{{description}}": description or f"{title} alerts, each POSTed as JSON",
    }


def _fill(text: str, values: dict[str, str]) -> str:
    for token, value in values.items():
        text = text.replace(token, value)
    return text


def _walk(node: Traversable, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    out = []
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        if child.name == "__pycache__":
            continue
        if child.is_dir():
            out.extend(_walk(child, (*prefix, child.name)))
        elif child.name.endswith(_SUFFIX):
            out.append(((*prefix, child.name[: -len(_SUFFIX)]), child.read_text(encoding="utf-8")))
    return out


def render_scaffold(name: str, description: str | None = None) -> dict[str, str]:
    """Every file of the scaffold for ``name``: relative path to content."""
    values = scaffold_values(name, description)
    template = resources.files(__package__ or "pixalert.cli").joinpath("_template")
    files = {}
    for parts, text in _walk(template):
        path = "/".join(_fill(_RENAMES.get(p, p), values) for p in parts)
        files[path] = _fill(text, values)
    return files


def _normalise(name: str) -> str:
    name = name.strip().lower()
    for prefix in ("pixalert-", "pixalert_"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    return name.replace("_", "-")


@click.group()
def plugin() -> None:
    """Tools for plugin authors."""


@plugin.command("new")
@click.argument("name")
@click.option(
    "-d",
    "--directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Where to create the pixalert-NAME folder.",
)
@click.option("--description", help="One line saying what the channel does.")
def new(name: str, directory: Path, description: str | None) -> None:
    """Scaffold a channel plugin in ./pixalert-NAME, ready to install and test.

    NAME is the channel type (lowercase letters, digits and hyphens), e.g. teams.
    """
    name = _normalise(name)
    if len(name) > MAX_NAME:
        fail(f"plugin name {name!r}: expected at most {MAX_NAME} characters")
    if not _NAME.match(name):
        fail(
            f"plugin name {name!r}: expected lowercase letters, digits and single hyphens, "
            "starting with a letter (e.g. teams, ms-teams)"
        )
    if description is not None and (
        len(description) > MAX_DESCRIPTION or not description.isprintable() or '"' in description
    ):
        fail(
            f"--description: expected one line of at most {MAX_DESCRIPTION} characters, "
            "without double quotes"
        )
    from .._plugins import default_plugin_manager

    try:
        taken = default_plugin_manager().channel_specs()
    except ValueError:
        taken = {}
    if name in taken:
        fail(
            f"a channel type {name!r} is already installed; pick another name "
            "(two plugins cannot declare one channel type)"
        )
    target = directory / f"pixalert-{name}"
    if target.exists():
        fail(f"{target} already exists")
    files = render_scaffold(name, description)
    for relative, content in files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    values = scaffold_values(name, description)
    click.echo(f"Created {target}/ with the {name!r} channel type:")
    for relative in sorted(files):
        click.echo(f"  {relative}")
    click.echo(
        f"""
Next:
  cd {target}
  pip install -e '.[test]'
  pytest                      # your channel's tests and pixalert's conformance suite
  pixalert plugins            # lists {values["{{dist}}"]}
Then make src/{values["{{module}}"]}/_channel.py speak your service's API."""
    )
