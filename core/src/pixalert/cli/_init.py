"""``pixalert init``: set up channels and write the config.

On a terminal it asks, channel type by channel type (each skippable), the
questions every installed channel plugin declares (the
:class:`pixalert.channels.SetupField` records of its
:class:`pixalert.channels.ChannelSpec`), or, for a plugin that declares none,
for each field of its config class. It checks the answers as it goes (the
plugin's own config validation) and, only when the person says yes, tries the
channel for real with the spec's ``check`` (by default a test alert, resolved
at once when the channel tracks what it sent). Secrets are typed at hidden
prompts and never shown again: the summary masks them.

Without a terminal (``--no-input``) it takes the same settings from the
environment variables the plugins declare, from one flag per variable
(``--acme-url`` for ``ACME_URL``), and from ``--set CHANNEL.KEY=VALUE``.

It writes ``pixalert.toml`` (or ``.env.notifications`` with ``--format env``),
created with owner-only permissions (0600) from the start. An existing file is
overwritten only with ``--force`` or after confirmation; its other settings
(routing, delivery, other channels) are kept, and its values are the defaults.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
import tempfile
import typing
from collections import abc
from collections.abc import Mapping
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import click

from . import EXIT_DELIVERY_FAILED, EXIT_USAGE, fail

if TYPE_CHECKING:
    from .._channels import ChannelSpec, SetupField

__all__ = ["init"]

TOML_NAME = "pixalert.toml"
ENV_NAME = ".env.notifications"
MASK = "••••••••"
COMMAND = "pixalert init"
NON_INTERACTIVE = (
    "to write the config without questions, run 'pixalert init --no-input' with the "
    "settings as flags or environment variables (listed by 'pixalert init --help')"
)


@attrs.frozen
class Facts:
    """What a channel's config class says about one field."""

    kind: type = str
    secret: bool = False
    required: bool = False
    default: Any = None
    #: A type ``pixalert init`` can ask for (a string, number, flag or list of strings).
    askable: bool = True


@attrs.frozen
class Form:
    """The questions for one installed channel type, and how to offer its check."""

    type: str
    title: str
    fields: tuple[SetupField, ...]
    check_prompt: str
    spec: ChannelSpec
    #: Field name -> :class:`Facts`, for every field of the config class.
    facts: Mapping[str, Facts] = attrs.field(factory=dict)
    #: True when the plugin declares no questions and they come from its config class.
    generic: bool = False

    def env_for(self, field: str) -> str | None:
        """The environment variable that fills ``field``, if the plugin declares one."""
        for item in self.fields:
            if item.field == field and item.env:
                return item.env
        return next((env for env, f in self.spec.env.items() if f == field), None)

    def secret(self, field: str) -> bool:
        """Whether the value of ``field`` is a secret (asked hidden, never shown)."""
        asked = next((f for f in self.fields if f.field == field), None)
        return (asked is not None and asked.secret) or self.facts.get(field, Facts()).secret


# ---------------------------------------------------------------------------
# Forms for what is installed
# ---------------------------------------------------------------------------


def _bare(tp: Any) -> Any:
    args = typing.get_args(tp)
    if args and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return tp


def _facts_of(tp: Any, field: attrs.Attribute[Any]) -> Facts:
    from .._types import Secret

    tp = _bare(tp)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    default: Any = field.default
    required = default is attrs.NOTHING
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        default = None if default.takes_self else default.factory()
    elif required:
        default = None
    if origin in (list, tuple, abc.Sequence, abc.Iterable) or tp in (list, tuple):
        item = _bare(args[0]) if args else str
        secret = item is Secret
        return Facts(list, secret, required, default or None, item in (str, Secret))
    if tp is bool:
        return Facts(bool, False, required, default)
    if tp in (int, float):
        return Facts(tp, False, required, default)
    if isinstance(tp, type) and issubclass(tp, float):
        # A float type of its own (a duration): its converter reads the text ("5m").
        return Facts(str, False, required, default)
    if tp is Secret:
        return Facts(str, True, required, None)
    if tp is str or typing.get_origin(tp) is typing.Literal:
        return Facts(str, False, required, default)
    return Facts(str, False, required, None, askable=False)


def field_facts(spec: ChannelSpec) -> dict[str, Facts]:
    """``field -> Facts`` for every field of the plugin's config class."""
    try:
        hints = typing.get_type_hints(spec.config_type)
        fields = attrs.fields(spec.config_type)
    except Exception:  # not an attrs class, or hints that do not resolve: ask as text
        return {}
    return {field.name: _facts_of(hints.get(field.name, str), field) for field in fields}


def _env_of(spec: ChannelSpec) -> dict[str, str]:
    """Config field -> the (first) environment variable the spec maps to it."""
    out: dict[str, str] = {}
    for env, field in spec.env.items():
        out.setdefault(field, env)
    return out


def _generic_fields(spec: ChannelSpec, facts: Mapping[str, Facts]) -> tuple[SetupField, ...]:
    from .._channels import SetupField

    env_of = _env_of(spec)
    return tuple(
        SetupField(
            name,
            name,
            env=env_of.get(name),
            secret=fact.secret,
            required=fact.required,
            default=fact.default,
            kind=fact.kind,
        )
        for name, fact in facts.items()
        if fact.askable
    )


def form_for(spec: ChannelSpec) -> Form:
    """The questions ``pixalert init`` asks for channel type ``spec``."""
    facts = field_facts(spec)
    title = spec.title or spec.name
    prompt = spec.check_prompt or f"Send a test alert through {title} now?"
    if not spec.setup:
        return Form(spec.name, title, _generic_fields(spec, facts), prompt, spec, facts, True)
    env_of = _env_of(spec)
    fields = tuple(
        attrs.evolve(
            item,
            env=item.env or env_of.get(item.field),
            secret=item.secret or facts.get(item.field, Facts()).secret,
        )
        for item in spec.setup
    )
    return Form(spec.name, title, fields, prompt, spec, facts)


def installed_forms(specs: Mapping[str, ChannelSpec]) -> list[Form]:
    """One form per installed channel type, by type name."""
    return [form_for(spec) for _, spec in sorted(specs.items())]


# ---------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------

_TRUE = ("1", "true", "yes", "y", "on")
_FALSE = ("0", "false", "no", "n", "off")


def _split(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def hint(form: Form, item: SetupField) -> str:
    """Where a setting comes from without questions: ``--acme-url / ACME_URL``."""
    if item.env:
        return f"{item.flag} / {item.env}"
    return f"--set {form.type}.{item.field}=..."


def coerce(item: SetupField, value: Any, where: str = "") -> Any:
    """``value`` (a string from a flag, the environment or a prompt) as the field's kind."""
    if value is None:
        return None
    if item.kind is list:
        if isinstance(value, str):
            return _split(value)
        return [str(v) for v in value] if isinstance(value, (list, tuple)) else value
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text:
        return None
    where = where or item.flag or item.field
    if item.kind is int:
        try:
            return int(text)
        except ValueError:
            raise click.BadParameter(
                f"expected a whole number, got {text!r}", param_hint=where
            ) from None
    if item.kind is float:
        try:
            return float(text)
        except ValueError:
            raise click.BadParameter(f"expected a number, got {text!r}", param_hint=where) from None
    if item.kind is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise click.BadParameter(f"expected yes or no, got {text!r}", param_hint=where)
    return value if item.secret else text


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def _secret_texts(form: Form, section: Mapping[str, Any]) -> list[str]:
    """Every secret answered for ``form``, for masking error messages."""
    out: list[str] = []
    for key, value in section.items():
        if not form.secret(key) or _empty(value):
            continue
        out.extend([str(v) for v in value] if isinstance(value, list) else [str(value)])
    return out


def _as_field(form: Form, key: str) -> SetupField:
    """The question for ``key``, or one made from the config class for other keys."""
    from .._channels import SetupField

    asked = next((f for f in form.fields if f.field == key), None)
    if asked is not None:
        return asked
    fact = form.facts.get(key, Facts())
    return SetupField(key, key, env=form.env_for(key), secret=fact.secret, kind=fact.kind)


# ---------------------------------------------------------------------------
# Writing files
# ---------------------------------------------------------------------------

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\t": "\\t",
    "\r": "\\r",
    "\b": "\\b",
    "\f": "\\f",
}


def toml_string(text: str) -> str:
    """``text`` as a TOML basic string."""
    out = ['"']
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else toml_string(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return (
            "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
        )
    raise ValueError(f"cannot write a {type(value).__name__} to TOML")


def toml_dumps(data: Mapping[str, Any], header: str = "") -> str:
    """``data`` (tables of strings, numbers, booleans, lists) as TOML text."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    if lines:
        lines.append("")

    def table(path: list[str], values: Mapping[str, Any]) -> None:
        plain = [(k, v) for k, v in values.items() if not isinstance(v, Mapping)]
        nested = [(k, v) for k, v in values.items() if isinstance(v, Mapping)]
        if path and (plain or not nested):
            lines.append("[" + ".".join(_toml_key(p) for p in path) + "]")
        for key, value in plain:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
        if plain or (path and not nested):
            lines.append("")
        for key, value in nested:
            table([*path, key], value)

    table([], data)
    return "\n".join(lines).rstrip("\n") + "\n"


def env_value(name: str, value: Any) -> str:
    """``value`` as a double-quoted ``.env`` value (python-dotenv's syntax)."""
    if isinstance(value, (list, tuple)):
        items = [str(v) for v in value]
        if any("," in item for item in items):
            raise ValueError(
                f"{name}: a list item contains ',', which a .env list cannot hold; "
                "use --format toml"
            )
        text = ",".join(items)
    elif isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = str(value)
    if "${" in text:
        raise ValueError(
            f"{name}: the value contains '${{', which .env files expand as a "
            "variable; use --format toml"
        )
    out = []
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            raise ValueError(f"{name}: control characters cannot be written to a .env file")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def write_private(path: Path, text: str, *, overwrite: bool) -> None:
    """Write ``text`` to ``path``, created with mode 0600 (never wider, not even for a moment).

    Without ``overwrite`` an existing file is an error (``FileExistsError``);
    with it, the new file replaces the old one atomically.
    """
    data = text.encode("utf-8")
    if not overwrite:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        return
    # mkstemp creates the file 0600; os.replace swaps it in atomically.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# ---------------------------------------------------------------------------
# Reading what exists
# ---------------------------------------------------------------------------


def _read_existing(path: Path, fmt: str) -> dict[str, Any]:
    """The existing file's content: TOML data, or ``{"env": {...}}`` for a .env file."""
    if not path.is_file():
        return {}
    try:
        if fmt == "env":
            from dotenv import dotenv_values

            return {
                "env": {
                    k: v for k, v in dotenv_values(path, interpolate=False).items() if v is not None
                }
            }
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover
            import tomli as tomllib
        with path.open("rb") as f:
            data: dict[str, Any] = tomllib.load(f)
            return data
    except Exception as exc:
        click.echo(
            f"note: could not read the existing {path} ({type(exc).__name__}); "
            "its values are not offered as defaults",
            err=True,
        )
        return {}


def _existing_answers(existing: Mapping[str, Any], forms: list[Form]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if "env" in existing:
        values = existing["env"]
        for form in forms:
            for env, field in form.spec.env.items():
                if env in values:
                    item = _as_field(form, field)
                    with contextlib.suppress(click.BadParameter):  # offered as asked
                        out.setdefault(form.type, {})[field] = coerce(item, values[env], env)
        return out
    channels = existing.get("channels", {})
    if isinstance(channels, Mapping):
        for form in forms:
            section = channels.get(form.type)
            if isinstance(section, Mapping):
                out[form.type] = dict(section)
    return out


def structure(form: Form, section: Mapping[str, Any]) -> Any:
    """The plugin's config object for ``section`` (raises :class:`pixalert.ConfigError`)."""
    from .._config import structure_config

    return structure_config(form.spec.config_type, section, path=f"channels.{form.type}")


# ---------------------------------------------------------------------------
# Asking
# ---------------------------------------------------------------------------


def _shown(item: SetupField, value: Any) -> str:
    if _empty(value):
        return ""
    if item.secret:
        return MASK
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _ask(item: SetupField, current: Any) -> Any:
    """Ask for one setting; Enter keeps ``current`` (or the field's default)."""
    default = current if not _empty(current) else item.default
    label = "  " + item.label
    if item.help:
        click.secho(f"  {item.help}", dim=True)
    if item.secret:
        has = not _empty(default)
        if has:
            label += " (hidden; Enter keeps the current one)"
        else:
            label += " (hidden)" if item.required else " (hidden; Enter to skip)"
        raw = click.prompt(
            label,
            default="" if has or not item.required else None,
            hide_input=True,
            show_default=False,
        )
        return default if raw == "" and has else coerce(item, raw)
    if item.kind in (int, float, bool):
        if _empty(default):
            return _optional_value(label, item)
        if item.kind is bool:
            return click.confirm(label, default=bool(default))
        value_type: Any = item.kind
        if item.kind is int and item.field.endswith("port"):
            value_type = click.IntRange(1, 65535)
        return click.prompt(label, default=default, type=value_type, show_default=True)
    shown = _shown(item, default)
    if not item.required and _empty(default):
        label += " (optional, Enter to skip)"
    raw = click.prompt(
        label,
        default=shown if shown else ("" if not item.required else None),
        show_default=bool(shown),
    )
    return coerce(item, raw)


def _optional_value(label: str, item: SetupField) -> Any:
    if item.required:
        label += " (required)"
    else:
        label += " (optional, Enter to skip)"
    while True:
        raw = click.prompt(label, default="" if not item.required else None, show_default=False)
        try:
            return coerce(item, raw)
        except click.BadParameter as exc:
            click.echo(f"  Error: {exc.message}")


def _problems(error: Exception, secrets: list[str], form: Form) -> list[str]:
    from .._errors import ConfigError
    from .._redact import redact

    lines = error.errors if isinstance(error, ConfigError) else [str(error)]
    out = []
    for line in lines:
        text = redact(line, secrets)
        for item in form.fields:
            if text.endswith(f"channels.{form.type}.{item.field}"):
                text += f" ({hint(form, item)})"
        out.append(text)
    return out


def _missing_required(form: Form, section: Mapping[str, Any]) -> list[str]:
    return [
        f"{item.label}: required ({hint(form, item)})"
        for item in form.fields
        if item.required and _empty(section.get(item.field))
    ]


def _interactive_channel(form: Form, current: dict[str, Any]) -> dict[str, Any] | None:
    """Ask for one channel; return its section, or None when skipped."""
    from ._check import check_config

    click.echo()
    click.secho(form.title, bold=True)
    if form.generic:
        click.echo(
            f"  (the {form.type} plugin declares no setup questions: asking for each "
            "field of its config; Enter keeps the [default])"
        )
    has_values = any(not _empty(v) for v in current.values())
    if not click.confirm(f"  Set up {form.title}?", default=has_values):
        return None
    answers = dict(current)
    while True:
        for item in form.fields:
            answers[item.field] = _ask(item, answers.get(item.field))
        section = {k: v for k, v in answers.items() if not _empty(v)}
        secrets = _secret_texts(form, section)
        problems = _missing_required(form, section)
        config = None
        if not problems:
            try:
                config = structure(form, section)
            except ValueError as exc:
                problems = _problems(exc, secrets, form)
        if problems:
            click.secho("  These settings do not work:", fg="red")
            for line in problems:
                click.echo(f"    - {line}")
            if click.confirm(f"  Enter the {form.title} settings again?", default=True):
                continue
            return None
        click.secho("  ✓ the settings are valid", fg="green")
        if not click.confirm("  " + form.check_prompt, default=False):
            return section
        outcome = check_config(form.spec, form.type, config, COMMAND, secrets)
        if outcome.ok:
            click.secho(f"  ✓ {outcome.message} in {outcome.seconds * 1000:.0f} ms", fg="green")
            return section
        click.secho(f"  ✗ the test failed: {outcome.message}", fg="red")
        choice = click.prompt(
            "  [r]e-enter the settings, [k]eep them anyway, or [s]kip this channel?",
            type=click.Choice(["r", "k", "s"]),
            default="r",
        )
        if choice == "k":
            return section
        if choice == "s":
            return None


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------


def _summary(
    forms: list[Form],
    sections: Mapping[str, Mapping[str, Any]],
    extra: Mapping[str, Mapping[str, Any]],
) -> None:
    from rich.markup import escape

    from ._output import print_table

    rows = []
    for form in forms:
        section = sections.get(form.type)
        if section is None:
            continue
        for key, value in section.items():
            rows.append((form.type, key, escape(_shown(_as_field(form, key), value) or "")))
    for name, section in extra.items():
        rows.append((escape(name), escape(", ".join(section)), "(kept as it was)"))
    print_table("Settings (secrets are not shown)", ["channel", "setting", "value"], rows)


def _document(
    fmt: str,
    forms: list[Form],
    sections: Mapping[str, Mapping[str, Any]],
    existing: Mapping[str, Any],
) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = (
        f"Written by 'pixalert init' on {stamp}.\n"
        "It holds secrets: keep it private (mode 600), out of version control."
    )
    asked = {form.type for form in forms}
    if fmt == "env":
        lines = [f"# {line}" for line in header.splitlines()]
        managed: set[str] = set()
        for form in forms:
            section = sections.get(form.type)
            if not section:
                continue
            managed.update(form.spec.env)
            lines.append("")
            lines.append(f"# {form.title}")
            for key, value in section.items():
                env = form.env_for(key)
                if env is None:
                    raise ValueError(
                        f"channels.{form.type}.{key}: has no environment variable; "
                        "use --format toml to keep it"
                    )
                lines.append(f"{env}={env_value(env, value)}")
        kept = {k: v for k, v in existing.get("env", {}).items() if k not in managed}
        if kept:
            lines.append("")
            lines.append("# Kept from the previous file")
            lines.extend(f"{k}={env_value(k, v)}" for k, v in kept.items())
        return "\n".join(lines) + "\n"
    data: dict[str, Any] = {k: v for k, v in existing.items() if k != "channels"}
    channels: dict[str, Any] = {}
    old = existing.get("channels", {})
    for form in forms:
        if form.type in sections:
            channels[form.type] = dict(sections[form.type])
    if isinstance(old, Mapping):
        for name, section in old.items():
            if name not in asked and name not in channels:
                channels[name] = section
    data["channels"] = channels
    return toml_dumps(data, header)


# ---------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------


def _dest(env: str) -> str:
    return "env_" + env.lower()


def _load_forms() -> list[Form]:
    """The forms of the installed channel types (raises ``ValueError`` on a name conflict)."""
    from .._plugins import default_plugin_manager

    return installed_forms(default_plugin_manager().channel_specs())


class InitCommand(click.Command):
    """``init``, with one flag per environment variable the installed channel plugins declare.

    The flags are made when first needed (parsing, ``--help``), so listing
    commands loads no channel plugin's config; they are made again when the
    plugin manager changes (as tests do).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plugin_params: tuple[object, list[click.Parameter]] | None = None

    def plugin_params(self) -> list[click.Parameter]:
        """The flags of the installed plugins' fields, in form order (first declared wins)."""
        from .._plugins import default_plugin_manager

        pm = default_plugin_manager()
        if self._plugin_params is not None and self._plugin_params[0] is pm:
            return self._plugin_params[1]
        params: list[click.Parameter] = []
        taken = {opt for p in self.params for opt in getattr(p, "opts", ())} | {"--help", "-h"}
        try:
            forms = installed_forms(pm.channel_specs())
        except ValueError:
            forms = []  # the command itself reports the conflict
        for form in forms:
            for item in form.fields:
                if item.env is None or item.flag in taken:
                    continue
                taken.add(str(item.flag))
                text = f"{form.type}: {item.label} (or ${item.env})."
                if item.secret:
                    text += " Prefer the variable for secrets: flags show in 'ps'."
                if item.help:
                    text += f" {item.help}"
                params.append(
                    click.Option([str(item.flag), _dest(item.env)], metavar="VALUE", help=text)
                )
        self._plugin_params = (pm, params)
        return params

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        params = super().get_params(ctx)
        extra = self.plugin_params()
        if params and set(getattr(params[-1], "opts", ())) & set(ctx.help_option_names):
            return [*params[:-1], *extra, params[-1]]  # --help stays last
        return [*params, *extra]


def _parse_sets(items: tuple[str, ...]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for item in items:
        target, sep, value = item.partition("=")
        name, dot, key = target.partition(".")
        if not sep or not dot or not name or not key:
            raise click.BadParameter(
                f"expected CHANNEL.KEY=VALUE, got {item!r}", param_hint="--set"
            )
        out.setdefault(name.strip(), {})[key.strip()] = value
    return out


def _stdin_is_terminal() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):  # closed or replaced stdin
        return False


@click.command(cls=InitCommand)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["toml", "env"]),
    default="toml",
    show_default=True,
    help="Write pixalert.toml, or KEY=value lines to .env.notifications.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write (default: ./pixalert.toml or ./.env.notifications).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing file without asking.")
@click.option(
    "--no-input",
    is_flag=True,
    help="Ask nothing: take settings from flags and environment variables.",
)
@click.option(
    "--check",
    "check_all",
    is_flag=True,
    help="With --no-input: try each channel for real first (its live check); "
    "write nothing if one fails (exit 1).",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="CHANNEL.KEY=VALUE",
    help="Any other setting, e.g. --set email.security=tls (repeatable).",
)
def init(
    fmt: str,
    output: Path | None,
    force: bool,
    no_input: bool,
    check_all: bool,
    sets: tuple[str, ...],
    **flags: str | None,
) -> None:
    """Set up alert channels and write the config (secrets stay hidden).

    Asks for each installed channel type in turn, the questions its plugin
    declares; any can be skipped. With --no-input the settings come from the
    flags below and the environment variables they name, and from --set.
    """
    root = click.get_current_context().find_root().obj or {}
    if output is None:
        configured = root.get("config_file")
        if configured and fmt == "toml" and not str(configured).endswith(".json"):
            output = Path(configured)
        else:
            output = Path(TOML_NAME if fmt == "toml" else ENV_NAME)
    if output.is_dir():
        fail(f"{output} is a directory")
    if not output.parent.exists():
        fail(f"{output.parent}: no such directory")

    try:
        forms = _load_forms()
    except ValueError as exc:
        fail(str(exc))
    if not forms:
        fail(
            "no channel plugin is installed, so there is nothing to set up: install one "
            "(pixalert-email, pixalert-slack, pixalert-pagerduty, pixalert-webhook, or your "
            "own), then run 'pixalert init' again; 'pixalert plugins' lists what is installed"
        )
    set_values = _parse_sets(sets)
    known = {form.type for form in forms}
    unknown = sorted(set(set_values) - known)
    if unknown:
        fail(
            f"--set {unknown[0]}.…: no such channel type; "
            f"expected one of {', '.join(sorted(known))}"
        )
    if not no_input and not _stdin_is_terminal():
        fail("pixalert init asks questions, and stdin is not a terminal; " + NON_INTERACTIVE)

    try:
        _run(fmt, output, force, no_input, check_all, forms, set_values, flags)
    except click.Abort as exc:
        if isinstance(exc.__context__, EOFError):
            fail(
                "the input ended before the questions were answered: nothing written; "
                + NON_INTERACTIVE
            )
        raise


def _defaults(
    forms: list[Form],
    existing: Mapping[str, Any],
    flags: Mapping[str, str | None],
    set_values: Mapping[str, Mapping[str, str]],
) -> dict[str, dict[str, Any]]:
    """The values to start from, lowest first: the existing file, the environment, flags, --set."""
    current = _existing_answers(existing, forms)
    for form in forms:
        values = current.setdefault(form.type, {})
        for env, field in form.spec.env.items():
            if os.environ.get(env):
                values[field] = coerce(_as_field(form, field), os.environ[env], env)
        for item in form.fields:
            flag_value = flags.get(_dest(item.env)) if item.env else None
            if flag_value is not None:
                values[item.field] = coerce(item, flag_value)
        for key, value in set_values.get(form.type, {}).items():
            values[key] = coerce(_as_field(form, key), value, f"--set {form.type}.{key}")
    return current


def _run(
    fmt: str,
    output: Path,
    force: bool,
    no_input: bool,
    check_all: bool,
    forms: list[Form],
    set_values: Mapping[str, Mapping[str, str]],
    flags: Mapping[str, str | None],
) -> None:
    exists = output.exists()
    if exists and not force:
        if no_input:
            fail(f"{output} exists; use --force to overwrite it")
        if not click.confirm(
            f"{output} exists. Update it? (your answers replace its channel settings; "
            "other settings are kept, comments are not)",
            default=False,
        ):
            click.echo(f"Left {output} as it was.")
            sys.exit(EXIT_DELIVERY_FAILED)
    existing = _read_existing(output, fmt) if exists else {}
    current = _defaults(forms, existing, flags, set_values)

    if no_input:
        sections = _from_flags(forms, current, check_all)
    else:
        click.echo(
            "pixalert init: set up where alerts go. Each channel can be skipped; press "
            "Enter to keep a [default]. Secrets are typed hidden and never shown."
        )
        sections = {}
        for form in forms:
            section = _interactive_channel(form, current.get(form.type, {}))
            if section is not None:
                sections[form.type] = section
        click.echo()

    if not sections and not exists:
        click.echo("No channel set up: nothing written.")
        sys.exit(EXIT_DELIVERY_FAILED if not no_input else EXIT_USAGE)
    try:
        text = _document(fmt, forms, sections, existing)
    except ValueError as exc:
        fail(str(exc))
    kept = {}
    known = {form.type for form in forms}
    old = existing.get("channels", {}) if fmt == "toml" else {}
    if isinstance(old, Mapping):
        kept = {n: s for n, s in old.items() if n not in known and isinstance(s, Mapping)}
    _summary(forms, sections, kept)
    if not no_input and not click.confirm(f"Write {output}?", default=True):
        click.echo("Nothing written.")
        sys.exit(EXIT_DELIVERY_FAILED)
    try:
        write_private(output, text, overwrite=exists)
    except FileExistsError:
        fail(f"{output} appeared meanwhile; run again with --force to overwrite it")
    except (OSError, UnicodeEncodeError) as exc:
        fail(f"cannot write {output}: {getattr(exc, 'strerror', None) or exc}")
    click.echo(
        f"Wrote {output} (mode 600: only you can read it). "
        "Next: 'pixalert test channels' to try every channel."
    )


def _examples(forms: list[Form]) -> tuple[list[str], list[str]]:
    """A few flags and variables to name in a hint: each form's first required (or first) one."""
    flags: list[str] = []
    names: list[str] = []
    for form in forms:
        with_env = [item for item in form.fields if item.env]
        item = next((i for i in with_env if i.required), with_env[0] if with_env else None)
        if item is not None and len(flags) < 3:
            flags.append(str(item.flag))
            names.append(str(item.env))
    return flags, names


def _from_flags(
    forms: list[Form], current: Mapping[str, Mapping[str, Any]], check_all: bool
) -> dict[str, dict[str, Any]]:
    """Build and validate every channel given by flags or the environment (no questions)."""
    from ._check import check_config

    sections: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    configs: dict[str, tuple[Form, Any, list[str]]] = {}
    for form in forms:
        section = {k: v for k, v in current.get(form.type, {}).items() if not _empty(v)}
        if not section:
            continue  # nothing given for this channel: the plugin's defaults apply to the rest
        secrets = _secret_texts(form, section)
        missing = _missing_required(form, section)
        if missing:
            problems.extend(f"{form.type}: {line}" for line in missing)
            continue
        try:
            configs[form.type] = (form, structure(form, section), secrets)
        except ValueError as exc:
            problems.extend(_problems(exc, secrets, form))
            continue
        sections[form.type] = section
    if problems:
        click.echo("error: these settings do not work:", err=True)
        for line in problems:
            click.echo(f"  - {line}", err=True)
        sys.exit(EXIT_USAGE)
    if not sections:
        flags, names = _examples(forms)
        fail(
            f"no channel settings given: pass flags such as {' or '.join(flags)}, or set "
            f"their environment variables ({', '.join(names)}...); 'pixalert init --help' "
            "lists every flag"
            if flags
            else "no channel settings given: pass them with --set CHANNEL.KEY=VALUE"
        )
    if check_all:
        failed = False
        for name, (form, config, secrets) in configs.items():
            outcome = check_config(form.spec, name, config, COMMAND, secrets)
            mark = "✓" if outcome.ok else "✗"
            click.echo(f"{mark} {name}: {outcome.message}")
            failed = failed or not outcome.ok
        if failed:
            click.echo("error: a channel check failed; nothing written", err=True)
            sys.exit(EXIT_DELIVERY_FAILED)
    return sections
