"""``pixalert config check`` and ``pixalert config show``."""

from __future__ import annotations

import enum
import json
import re
import sys
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import attrs
import click

from . import EXIT_USAGE, cli_options, fail, json_option
from ._output import print_json

__all__ = ["config", "mask_secret"]

MASK = "…"
_SECRET_WORDS = ("password", "passwd", "secret", "token", "key", "auth", "credential", "hook")


@click.group()
def config() -> None:
    """Check the configuration, or show it with where each value came from."""


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------


@attrs.define
class _Read:
    """What was read: the problems found, and the parts that could be built."""

    files: list[str] = attrs.Factory(list)
    problems: list[Any] = attrs.Factory(list)  # ConfigProblem
    settings: Any = None
    data: dict[str, Any] = attrs.Factory(dict)  # the merged settings as written
    specs: dict[str, Any] = attrs.Factory(dict)
    configured: dict[str, Any] | None = None
    unavailable: dict[str, str] = attrs.Factory(dict)


def _read(*, run_checks: bool) -> _Read:
    from .._checks import run_checks as checks
    from .._config import build_channel_configs, read_config
    from .._errors import ConfigError
    from .._plugins import default_plugin_manager

    out = _Read()
    try:
        out.specs = default_plugin_manager().channel_specs()
    except ValueError as exc:
        fail(str(exc))
    options = cli_options()
    try:
        loaded = read_config(
            config_file=options.config_file, env_file=options.env_file, specs=out.specs
        )
    except ConfigError as exc:  # a file that cannot be read or parsed
        out.problems = [_problem(line, ()) for line in exc.errors]
        return out
    out.files = loaded.files
    known = {*loaded.files, *loaded.sources.values(), "environment", "arguments", "defaults"}
    out.problems = [_problem(line, known) for line in loaded.errors]
    out.settings = loaded.settings
    out.data = loaded.data
    if loaded.settings is None:
        return out
    try:
        out.configured, out.unavailable = build_channel_configs(
            loaded.settings, out.specs, warn=False
        )
    except ConfigError as exc:
        out.problems += [_problem(line, known) for line in exc.errors]
    if run_checks:
        out.problems += checks(loaded.settings, out.specs)
    return out


def _problem(line: str, known: Iterable[str]) -> Any:
    """A loader's ``<source>: <message> @ <path>`` line as a ConfigProblem."""
    from .._checks import ConfigProblem

    body, sep, path = line.rpartition(" @ ")
    if not sep:
        body, path = line, ""
    for source in sorted(known, key=len, reverse=True):
        if source and body.startswith(source + ": "):
            return ConfigProblem(source, path, body[len(source) + 2 :])
    source, _, message = body.partition(": ")
    return ConfigProblem(source, path, message or source)


# ---------------------------------------------------------------------------
# config check
# ---------------------------------------------------------------------------


@config.command("check")
@json_option
def check(as_json: bool) -> None:
    """Check every key, value, channel section and route; exit 2 listing each problem.

    Unknown keys get a "did you mean"; numbers must be finite and in range;
    every channel routing names must be configured, or at least a channel
    type, or "*"; every channel section's plugin must be installed.
    """
    read = _read(run_checks=True)
    errors = [p for p in read.problems if p.severity == "error"]
    notes = [p for p in read.problems if p.severity != "error"]
    channels = sorted(read.settings.channels) if read.settings is not None else []
    if as_json:
        print_json(
            {
                "ok": not errors,
                "files": read.files,
                "channels": channels,
                "problems": [p.to_dict() for p in errors],
                "notes": [p.to_dict() for p in notes],
            }
        )
        if errors:
            sys.exit(EXIT_USAGE)
        return
    for note in notes:
        click.echo(f"note: {note}", err=True)
    if errors:
        count = f"{len(errors)} problem{'s' if len(errors) != 1 else ''}"
        click.echo(f"error: the configuration has {count}:", err=True)
        for problem in errors:
            click.echo(f"  {problem}", err=True)
        sys.exit(EXIT_USAGE)
    files = ", ".join(read.files) or "no config file"
    names = f" ({', '.join(channels)})" if channels else ""
    click.echo(
        f"config ok: {files}; {len(channels)} channel{'s' if len(channels) != 1 else ''}"
        f"{names}; routing checked"
    )


# ---------------------------------------------------------------------------
# config show
# ---------------------------------------------------------------------------


@attrs.frozen
class _Leaf:
    value: Any
    origin: str


def mask_secret(value: str) -> str:
    """``…`` and, for a value long enough to keep them secret, its last 2 characters."""
    return MASK + value[-2:] if len(value) >= 12 else MASK


def _secret_key(key: str) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def _mask_url_path(url: str) -> str:
    """``https://host/…wx``: a URL whose path or query may be its secret (a webhook's)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return mask_secret(url)
    rest = url.split(parts.netloc, 1)[1] if parts.netloc else url
    if rest in ("", "/"):
        return f"{parts.scheme}://{host}{port}{rest}"
    return f"{parts.scheme}://{host}{port}/{mask_secret(rest)}"


def _show_value(value: Any, *, secret: bool = False, raw: bool = False) -> Any:
    """``value`` as plain TOML/JSON data, secrets masked.

    ``raw``: a value no plugin has typed, so a URL's path is masked too.
    """
    from .._durations import Duration, format_duration
    from .._redact import redact
    from .._types import Secret
    from .._urls import mask_url

    if isinstance(value, Secret):
        return mask_secret(value.get())
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, Duration):
        return format_duration(value)
    if isinstance(value, enum.Enum):  # before int: a Priority is an IntEnum
        return value.value if isinstance(value.value, str) else value.name.lower()
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):
        if secret:
            return mask_secret(value)
        if redact(value) != value:  # holds a registered secret
            return mask_secret(value)
        if "://" in value:
            return _mask_url_path(value) if raw else mask_url(value)
        return value
    if isinstance(value, Mapping):
        return {
            str(k): _show_value(v, secret=secret or _secret_key(str(k)), raw=raw)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_show_value(v, secret=secret, raw=raw) for v in value]
    return str(value)


def _origin(sources: Mapping[str, str], path: str) -> str:
    if path in sources:
        return sources[path]
    if "[" in path:  # an item of a list: the list's origin
        return _origin(sources, path.split("[", 1)[0])
    return "default"


def _attrs_tree(
    obj: Any, prefix: str, sources: Mapping[str, str], raw: Any = None
) -> dict[str, Any]:
    """A table of leaves (and sub-tables) for the attrs instance ``obj``, defaults included.

    ``raw`` is the section as the sources wrote it (for the parts shown as written).
    """
    from .._config import config_key

    out: dict[str, Any] = {}
    for field in attrs.fields(type(obj)):
        name = config_key(field)
        value = getattr(obj, field.name)
        written = raw.get(name) if isinstance(raw, Mapping) else None
        out[name] = _node(value, f"{prefix}{name}", sources, raw=written)
    return out


def _node(value: Any, path: str, sources: Mapping[str, str], *, raw: Any = None) -> Any:
    from .._types import Secret

    if isinstance(value, Secret) or _secrets_only(value):
        return _Leaf(_show_value(value, secret=True), _origin(sources, path))
    if attrs.has(type(value)):
        return _attrs_tree(value, path + ".", sources, raw)
    # Lists and tables of sections ([[routes]], [time_intervals.NAME]) are shown as
    # written: their parsed form (matchers, intervals) is not config-file syntax.
    if isinstance(value, Mapping) and value and all(attrs.has(type(v)) for v in value.values()):
        if isinstance(raw, Mapping):
            return _raw_tree(raw, path + ".", sources)
        return {str(k): _attrs_tree(v, f"{path}.{k}.", sources) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and value and all(attrs.has(type(v)) for v in value):
        if isinstance(raw, list) and all(isinstance(r, Mapping) for r in raw):
            return [_raw_tree(r, f"{path}[{i}].", sources) for i, r in enumerate(raw)]
        return [_attrs_tree(v, f"{path}[{i}].", sources) for i, v in enumerate(value)]
    return _Leaf(_show_value(value), _origin(sources, path))


def _secrets_only(value: Any) -> bool:
    from .._types import Secret

    return (
        isinstance(value, (list, tuple))
        and bool(value)
        and all(isinstance(v, Secret) for v in value)
    )


def _raw_tree(data: Mapping[str, Any], prefix: str, sources: Mapping[str, str]) -> dict[str, Any]:
    """A table for raw (unstructured) settings, masking what looks secret."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out[str(key)] = _raw_tree(value, path + ".", sources)
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            out[str(key)] = [_raw_tree(v, f"{path}[{i}].", sources) for i, v in enumerate(value)]
        else:
            out[str(key)] = _Leaf(
                _show_value(value, secret=_secret_key(str(key)), raw=True), _origin(sources, path)
            )
    return out


def _effective(read: _Read) -> dict[str, Any]:
    """The whole configuration as a tree of :class:`_Leaf` values."""
    from .._config import channel_type

    settings = read.settings
    sources = settings.sources
    tree: dict[str, Any] = {}
    from .._config import config_key

    for field in attrs.fields(type(settings)):
        if field.name in ("channels", "plugins", "sources"):
            continue
        name = config_key(field)
        tree[name] = _node(getattr(settings, field.name), name, sources, raw=read.data.get(name))
    channels: dict[str, Any] = {}
    for name, section in settings.channels.items():
        prefix = f"channels.{name}."
        kind = channel_type(name, section)
        type_origin = sources.get(prefix + "type", "default (the section's name)")
        table: dict[str, Any] = {"type": _Leaf(kind, type_origin)}
        if "template" in section:
            table["template"] = _Leaf(section["template"], sources.get(prefix + "template", ""))
        built = (read.configured or {}).get(name)
        if built is not None:
            table.update(_attrs_tree(built[1], prefix, sources))
        else:
            rest = {k: v for k, v in section.items() if k not in ("type", "template")}
            table.update(_raw_tree(rest, prefix, sources))
            table["#"] = read.unavailable.get(name, "not used")
        channels[name] = table
    tree["channels"] = channels
    tree["plugins"] = _raw_tree(settings.plugins, "plugins.", sources)
    return tree


@config.command("show")
@json_option
def show(as_json: bool) -> None:
    """Print the effective configuration as TOML, each value with where it came from.

    The origin is "default", a file, an environment variable or "arguments".
    Secrets are masked (… and at most their last 2 characters).
    """
    read = _read(run_checks=False)
    errors = [p for p in read.problems if p.severity == "error"]
    if errors or read.settings is None:
        lines = "\n  ".join(str(p) for p in errors)
        fail(f"invalid configuration (see 'pixalert config check'):\n  {lines}")
    tree = _effective(read)
    if as_json:
        print_json({"files": read.files, "config": _to_json(tree)})
        return
    files = ", ".join(read.files) or "no config file"
    click.echo("# The effective pixalert configuration; after each value, where it came from.")
    click.echo(f"# Read: {files}, the environment. Secrets are masked: not a file to load as is.")
    for line in _toml_lines(tree, ()):
        click.echo(line)


def _to_json(node: Any) -> Any:
    if isinstance(node, _Leaf):
        return {"value": node.value, "source": node.origin}
    if isinstance(node, dict):
        return {k: _to_json(v) for k, v in node.items() if k != "#"} | (
            {"note": node["#"]} if "#" in node else {}
        )
    if isinstance(node, list):
        return [_to_json(v) for v in node]
    return node


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key, ensure_ascii=False)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        inner = ", ".join(f"{_toml_key(str(k))} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    return json.dumps(str(value), ensure_ascii=False)


def _toml_lines(table: Mapping[str, Any], path: tuple[str, ...]) -> list[str]:
    """TOML for ``table``: its values (each with its origin), then its sub-tables."""
    lines: list[str] = []
    if "#" in table:
        lines.append(f"# not used: {table['#']}")
    for key, node in table.items():
        if isinstance(node, _Leaf):
            if node.value is None:
                lines.append(f"# {_toml_key(key)} = (not set)  # {node.origin}")
            else:
                lines.append(f"{_toml_key(key)} = {_toml_value(node.value)}  # {node.origin}")
    for key, node in table.items():
        here = (*path, _toml_key(key))
        if isinstance(node, dict):
            leaves = any(isinstance(v, _Leaf) for v in node.values()) or "#" in node
            if leaves:
                lines.extend(["", f"[{'.'.join(here)}]"])
            lines.extend(_toml_lines(node, here))
        elif isinstance(node, list) and key != "#":
            for item in node:
                lines.extend(["", f"[[{'.'.join(here)}]]"])
                lines.extend(_toml_lines(item, here))
    return lines
