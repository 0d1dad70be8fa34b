"""Configuration: one model, filled from defaults, files, the environment and arguments.

Sources, lowest precedence first:

1. defaults;
2. a file: ``pixalert.toml``, or a flat JSON ``notification_config.json`` whose
   keys are the channels' environment variable names in lower case (and
   their aliases);
3. a ``.env.notifications`` file (``KEY="value"`` lines, with the names of
   the environment);
4. environment variables: those the channel plugins declare (``EMAIL_USER``,
   ``SLACK_WEBHOOK_URL``...), and ``PIXALERT_*``;
5. explicit arguments (``NotificationManager(config={...})``).

Every error names the source, the key path and what was expected, and all of
them are reported at once in one :class:`ConfigError`.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import keyword
import math
import os
import re
import sys
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError
from cattrs.gen import make_dict_structure_fn, override

from ._channels import ChannelSpec
from ._durations import Duration
from ._errors import ConfigError
from ._intervals import TimeIntervalSet, parse_time_intervals
from ._lifecycle_config import (
    ActionsConfig,
    EscalationPolicy,
    HeartbeatConfig,
    SelfWatchConfig,
    check_heartbeat_name,
)
from ._routes import FlappingConfig, GroupingConfig, RouteConfig
from ._templates import TemplateConfig
from ._types import Priority, Secret

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10
    import tomli as tomllib

__all__ = [
    "ConfigError",
    "DeliveryConfig",
    "RoutingConfig",
    "Settings",
    "default_history_url",
    "load_settings",
    "structure_config",
]

CONFIG_ENV = "PIXALERT_CONFIG"
DOTENV_NAME = ".env.notifications"
TOML_NAME = "pixalert.toml"
JSON_NAME = "notification_config.json"

# Core settings that environment variables may set.
_CORE_ENV = {
    "PIXALERT_HISTORY": "history",
    "PIXALERT_STATE": "state",
    "PIXALERT_COOLDOWN_MINUTES": "cooldown_minutes",
    "PIXALERT_RETENTION_DAYS": "retention_days",
    "PIXALERT_PUBLIC_URL": "actions.public_url",
    "PIXALERT_ACTIONS_SECRET": "actions.secret",
}


def default_history_url() -> str:
    """``sqlite:///<per-user state dir>/pixalert/history.db``."""
    import platformdirs

    path = Path(platformdirs.user_state_dir("pixalert", appauthor=False)) / "history.db"
    return f"sqlite:///{path}"


@attrs.define
class RoutingConfig:
    """Which channels each priority goes to. ``"*"`` means every configured channel."""

    low: list[str] = attrs.Factory(lambda: ["slack"])
    medium: list[str] = attrs.Factory(lambda: ["email", "slack"])
    high: list[str] = attrs.Factory(lambda: ["email", "slack", "pagerduty"])
    critical: list[str] = attrs.Factory(lambda: ["*"])

    def for_priority(self, priority: Priority) -> list[str]:
        """The channel names (maybe ``"*"``) routed for ``priority``."""
        return list(getattr(self, priority.name.lower()))


def _positive(instance: Any, attribute: Any, value: float) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name}: expected a number > 0, got {value!r}")


def _non_negative(instance: Any, attribute: Any, value: float) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name}: expected a number >= 0, got {value!r}")


def _schedule(instance: Any, attribute: Any, value: list[Duration]) -> None:
    if not value:
        raise ValueError(f"{attribute.name}: expected at least one duration")
    if any(step <= 0 for step in value):
        raise ValueError(f"{attribute.name}: expected durations > 0, got {value!r}")


@attrs.define
class DeliveryConfig:
    """How hard pixalert tries: timeouts, retries, the timeline, limits, circuit breaker.

    Each delivery gets ``max_attempts`` quick attempts (``backoff`` doubling up
    to ``backoff_max`` between them, ``Retry-After`` honoured). If they all fail
    for a reason worth retrying, the delivery goes back on the timeline: the
    next round is due at the next step of ``retry_schedule`` (counted from when
    the alert was accepted; the last step repeats), until ``give_up_after``,
    when it is failed for good. A service asking to wait longer than
    ``backoff_max`` (up to ``max_retry_after``), and an open circuit, move the
    due time instead of holding a task. ``recover_interval`` is how often a
    running manager looks for due work and for work a dead process left
    (``0``: never, for short-lived processes).
    """

    timeout: Duration = attrs.field(default=Duration(10.0), validator=_positive)
    max_attempts: int = attrs.field(default=3, validator=_positive)
    backoff: Duration = attrs.field(default=Duration(0.5), validator=_non_negative)
    backoff_max: Duration = attrs.field(default=Duration(10.0), validator=_non_negative)
    max_retry_after: Duration = attrs.field(default=Duration(3600.0), validator=_non_negative)
    retry_schedule: list[Duration] = attrs.field(
        factory=lambda: [Duration(s) for s in (10, 30, 60, 300, 900, 1800, 3600)],
        validator=_schedule,
    )
    give_up_after: Duration = attrs.field(default=Duration(86400.0), validator=_positive)
    concurrency: int = attrs.field(default=10, validator=_positive)
    circuit_failures: int = attrs.field(default=5, validator=_positive)
    circuit_reset: Duration = attrs.field(default=Duration(60.0), validator=_positive)
    lease: Duration = attrs.field(default=Duration(120.0), validator=_positive)
    recover_interval: Duration = attrs.field(default=Duration(2.0), validator=_non_negative)


def _masked(url: str | None) -> str:
    from ._urls import mask_url

    return repr(url if url is None else mask_url(url))


def _names_only(sections: Mapping[str, Any]) -> str:
    return "{" + ", ".join(f"{name!r}: ..." for name in sections) + "}"


def _heartbeat_names(instance: Any, attribute: Any, value: Mapping[str, Any]) -> None:
    for name in value:
        try:
            check_heartbeat_name(name)
        except ValueError:
            raise ValueError(
                f"heartbeats: expected names of letters, digits, '_', '.' or '-', got {name!r}"
            ) from None


def _set_path(out: dict[str, Any], path: str, value: Any) -> None:
    """``out[a][b] = value`` for ``path`` ``"a.b"`` (tables made as needed)."""
    *tables, last = path.split(".")
    for table in tables:
        out = out.setdefault(table, {})
    out[last] = value


@attrs.define
class Settings:
    """The whole configuration. Channel sections stay raw until a plugin's type reads them."""

    history: str = attrs.field(factory=default_history_url, repr=_masked)
    state: str | None = attrs.field(default=None, repr=_masked)
    cooldown_minutes: float = attrs.field(default=5.0, validator=_non_negative)
    retention_days: float = attrs.field(default=30.0, validator=_positive)
    routing: RoutingConfig = attrs.Factory(RoutingConfig)
    delivery: DeliveryConfig = attrs.Factory(DeliveryConfig)
    grouping: GroupingConfig | None = None
    routes: list[RouteConfig] = attrs.Factory(list)
    actions: ActionsConfig = attrs.Factory(ActionsConfig)
    escalation: dict[str, EscalationPolicy] = attrs.Factory(dict)
    heartbeats: dict[str, HeartbeatConfig] = attrs.field(factory=dict, validator=_heartbeat_names)
    self_watch: SelfWatchConfig = attrs.Factory(SelfWatchConfig)
    time_intervals: dict[str, TimeIntervalSet] = attrs.Factory(dict)
    flapping: FlappingConfig | None = None
    templates: dict[str, TemplateConfig] = attrs.Factory(dict)
    # Raw sections may hold secrets: the repr shows only their names.
    channels: dict[str, dict[str, Any]] = attrs.field(factory=dict, repr=_names_only)
    # Plugins' own settings, raw: ``[plugins.monitoring]`` is ``plugins["monitoring"]``.
    plugins: dict[str, dict[str, Any]] = attrs.field(factory=dict, repr=_names_only)
    # Where each top-level key and channel key came from, for error messages.
    sources: dict[str, str] = attrs.field(factory=dict, repr=False, eq=False)

    @property
    def state_url(self) -> str:
        """The state backend URL: ``state``, else the history's URL (its plugin may serve
        state too, as pixalert-postgres does; if none does, memory is used)."""
        return self.state or self.history


# ---------------------------------------------------------------------------
# The converter
# ---------------------------------------------------------------------------

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _structure_bool(value: Any, _: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"expected true or false, got {value!r}")


def _structure_str(value: Any, _: Any) -> str:
    if isinstance(value, str):
        return value
    raise ValueError(f"expected a string, got {type(value).__name__}")


def _structure_secret(value: Any, _: Any) -> Secret:
    if isinstance(value, Secret):
        return value
    if isinstance(value, str):
        from ._redact import register_secret

        register_secret(value)
        return Secret(value)
    raise ValueError(f"expected a string, got {type(value).__name__}")


def _structure_number(kind: type) -> Any:
    def hook(value: Any, _: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(f"expected {kind.__name__}, got a boolean")
        number: Any = None
        if isinstance(value, (int, float)) and kind is float:
            number = float(value)
        elif isinstance(value, int):
            number = value
        elif isinstance(value, str):
            with contextlib.suppress(ValueError):
                number = kind(value.strip())
        if number is None:
            raise ValueError(f"expected {kind.__name__}, got {value!r}")
        if kind is float and not math.isfinite(number):
            raise ValueError(f"expected a finite number, got {value!r}")
        return number

    return hook


def _is_str_list(tp: Any) -> bool:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    return origin in (list, tuple, Sequence) and args[:1] in ((str,), (Secret,))


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True)
    conv.register_structure_hook(bool, _structure_bool)
    conv.register_structure_hook(str, _structure_str)
    conv.register_structure_hook(int, _structure_number(int))
    conv.register_structure_hook(float, _structure_number(float))
    conv.register_structure_hook(Secret, _structure_secret)
    conv.register_structure_hook(Priority, lambda v, _: Priority.parse(v))
    conv.register_structure_hook(Duration, lambda v, _: Duration.parse(v))
    conv.register_structure_hook(
        RouteConfig,
        make_dict_structure_fn(
            RouteConfig,
            conv,
            _cattrs_forbid_extra_keys=True,
            continue_=override(rename="continue"),
            for_=override(rename="for"),
            match=override(struct_hook=lambda v, _: v),
        ),
    )

    conv.register_structure_hook_func(
        lambda tp: tp == dict[str, TimeIntervalSet], lambda v, _: parse_time_intervals(v)
    )

    def structure_str_list(value: Any, tp: Any) -> Any:
        # Environment variables hold lists as "a,b,c".
        if isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"expected a list of strings, got {type(value).__name__}")
        item_type = typing.get_args(tp)[0]
        items = [conv.structure(item, item_type) for item in value]
        return tuple(items) if typing.get_origin(tp) is tuple else items

    conv.register_structure_hook_func(_is_str_list, structure_str_list)
    return conv


_converter: cattrs.Converter | None = None


def converter() -> cattrs.Converter:
    """The core's one converter, strict about unknown keys and types."""
    global _converter
    if _converter is None:
        _converter = _make_converter()
    return _converter


def _format_exception(exc: BaseException, type_: Any) -> str:
    # Our hooks and the plugins' validators say what they expected: keep their words.
    if isinstance(exc, ValueError) and str(exc):
        return str(exc)
    if isinstance(exc, ForbiddenExtraKeysError):
        # One line per unknown key (split again in _messages), each with a suggestion.
        known = [config_key(a) for a in attrs.fields(exc.cl)] if attrs.has(exc.cl) else []
        return "\n".join(
            _UNKNOWN_KEY + key + "\x00" + unknown_key_message(key, known)
            for key in sorted(exc.extra_fields)
        )
    return cattrs.v.format_exception(exc, type_)


_UNKNOWN_KEY = "\x00unknown key\x00"


def config_key(field: Any) -> str:
    """The key a config file uses for the attrs ``field``: ``continue_`` is ``continue``."""
    name = str(field.alias or field.name)
    if name.endswith("_") and keyword.iskeyword(name[:-1]):
        return name[:-1]
    return name


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """The choice closest to ``word`` (a likely typo of it), or None."""
    options = [c for c in choices if c != word]
    folded = {c.lower().replace("-", "_"): c for c in options}
    key = word.lower().replace("-", "_")
    if key in folded:
        return folded[key]
    close = difflib.get_close_matches(key, list(folded), n=1, cutoff=0.8)
    if close:
        return folded[close[0]]
    # One or two slips of the keyboard (a swapped pair counts as one), by length.
    limit = 1 if len(key) < 8 else 2
    scored = sorted((_edits(key, option), option) for option in folded)
    if scored and scored[0][0] <= limit and len(key) > 2:
        return folded[scored[0][1]]
    return None


def _edits(a: str, b: str) -> int:
    """Edits from ``a`` to ``b``: insertions, deletions, substitutions, adjacent swaps."""
    rows = [list(range(len(b) + 1))]
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            row[j] = min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], rows[-2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]


def unknown_key_message(key: str, known: Iterable[str]) -> str:
    """``unknown key 'KEY' (did you mean 'KEYS'?)``, or the list of known keys."""
    known = sorted(known)
    guess = did_you_mean(key, known)
    if guess is not None:
        return f"unknown key {key!r} (did you mean {guess!r}?)"
    if not known:
        return f"unknown key {key!r}"
    return f"unknown key {key!r}; expected one of: {', '.join(known)}"


# "urls[2]: expected ... @ channels.x" names the key itself: "... @ channels.x.urls[2]"
# (as does a dotted path: "nights.times[0].start_time: expected ... @ time_intervals").
_FIELD_FIRST = re.compile(r"^([\w-]+(?:\[\d+\])*(?:\.[\w-]+(?:\[\d+\])*)*): (expected .*) @ (.*)$")


def _messages(exc: Exception, path: str, source: str | Mapping[str, str]) -> list[str]:
    root = path or "$"
    if isinstance(exc, ClassValidationError):
        lines = cattrs.transform_error(exc, path=root, format_exception=_format_exception)
    else:
        lines = [f"{exc} @ {root}"]
    out = []
    for line in lines:
        match = _FIELD_FIRST.match(line)
        if match:  # "timeout: expected ... @ delivery" -> "expected ... @ delivery.timeout"
            field, what, where = match.groups()
            line = f"{what} @ {where}.{field}"
        message, _, where = line.rpartition(" @ ")
        if root == "$":
            where = (
                where[2:] if where.startswith("$.") else ("(top level)" if where == "$" else where)
            )
            where = where.replace("$.", "")
        for part in message.split("\n"):
            path = where
            if part.startswith(_UNKNOWN_KEY):  # the key path of the unknown key itself
                key, _, part = part[len(_UNKNOWN_KEY) :].partition("\x00")
                path = key if where == "(top level)" else f"{where}.{key}"
            origin = source if isinstance(source, str) else _origin_for(path, source)
            out.append(f"{origin}: {part} @ {path}")
    return out


def _origin_for(path: str, sources: Mapping[str, str]) -> str:
    best = ""
    for key in sources:
        if (path == key or path.startswith((key + ".", key + "["))) and len(key) > len(best):
            best = key
    return sources.get(best, "defaults")


def structure_config(
    config_type: type[Any],
    data: Mapping[str, Any],
    *,
    path: str = "config",
    source: str | Mapping[str, str] = "config",
) -> Any:
    """Build ``config_type`` from ``data``, or raise :class:`ConfigError`.

    Plugins and their tests use it to check that a config error is clear.
    """
    try:
        return converter().structure(dict(data), config_type)
    except (ClassValidationError, ValueError, TypeError) as exc:
        raise ConfigError(_messages(exc, path, source)) from None


# ---------------------------------------------------------------------------
# Reading the sources
# ---------------------------------------------------------------------------


@attrs.frozen
class _Layer:
    source: str
    data: dict[str, Any]
    # A finer origin for some key paths: the environment variable that set each.
    origins: dict[str, str] = attrs.Factory(dict)


def _not_utf8(path: Path, exc: UnicodeDecodeError) -> ConfigError:
    byte = exc.object[exc.start : exc.start + 1].hex()
    return ConfigError(
        [f"{path}: not UTF-8 text (byte 0x{byte} at offset {exc.start}); save it as UTF-8"]
    )


def _read_text(path: Path, what: str) -> str:
    """The file's text, decoded as UTF-8 (a leading byte order mark is dropped)."""
    try:
        raw = path.read_bytes()
    except IsADirectoryError:
        raise ConfigError([f"{path}: is a directory, expected a {what} file"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror or exc})"]) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, exc) from None


def _read_toml(path: Path) -> _Layer:
    text = _read_text(path, "config")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
    return _Layer(str(path), data)


def _read_json(path: Path, specs: Mapping[str, ChannelSpec]) -> _Layer:
    text = _read_text(path, "config")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError([f"{path}: not valid JSON: {exc}"]) from None
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: expected a JSON object at the top level"])
    if any(key in data for key in ("channels", "routing", "delivery")):
        return _Layer(str(path), data)  # the nested (TOML-shaped) form
    return _Layer(str(path), _from_flat(data, specs, str(path)))


def _flat_keys(specs: Mapping[str, ChannelSpec]) -> dict[str, tuple[str, str]]:
    keys: dict[str, tuple[str, str]] = {}
    for spec in specs.values():
        for env_name, field in spec.env.items():
            keys[env_name.lower()] = (spec.name, field)
        for alias, field in spec.aliases.items():
            keys[alias.lower()] = (spec.name, field)
    return keys


def _from_flat(
    flat: Mapping[str, Any], specs: Mapping[str, ChannelSpec], source: str
) -> dict[str, Any]:
    """Flat JSON keys (channel variables in lower case, aliases, core keys) as nested sections."""
    keys = _flat_keys(specs)
    core = {name.lower(): field for name, field in _CORE_ENV.items()}
    out: dict[str, Any] = {}
    errors = []
    for key, value in flat.items():
        k = key.lower()
        if k in keys:
            channel, field = keys[k]
            out.setdefault("channels", {}).setdefault(channel, {})[field] = value
        elif k in core:
            _set_path(out, core[k], value)
        elif k in ("history", "state", "cooldown_minutes", "retention_days"):
            out[k] = value
        else:
            known = [*keys, "history", "state", "cooldown_minutes", "retention_days"]
            guess = did_you_mean(k, known)
            hint = (
                f"did you mean {guess!r}?"
                if guess
                else "expected one of: " + ", ".join(sorted(known))
                if keys
                else "no channel plugin is installed"
            )
            errors.append(f"{source}: unknown key {key!r} @ {key}; {hint}")
    if errors:
        raise ConfigError(errors)
    return out


def _parse_dotenv(path: Path) -> dict[str, str]:
    import io

    from dotenv import dotenv_values

    text = _read_text(path, "env")
    values = dotenv_values(stream=io.StringIO(text), interpolate=False)
    return {k: v for k, v in values.items() if v is not None}


def _env_layer(
    env: Mapping[str, str],
    specs: Mapping[str, ChannelSpec],
    source: str,
    *,
    strict: bool,
    origin: str,
) -> _Layer:
    origins: dict[str, str] = {}
    data = _from_env(env, specs, source, strict=strict, origins=origins, origin=origin)
    return _Layer(source, data, origins)


def _from_env(
    env: Mapping[str, str],
    specs: Mapping[str, ChannelSpec],
    source: str,
    *,
    strict: bool,
    origins: dict[str, str] | None = None,
    origin: str = "{source} ({name})",
) -> dict[str, Any]:
    """The settings that variables in ``env`` set; ``origins`` gets each key path's variable."""
    origins = {} if origins is None else origins
    out: dict[str, Any] = {}
    by_name = {
        name: target
        for spec in specs.values()
        for name, target in ((n, (spec.name, f)) for n, f in spec.env.items())
    }
    unknown = []
    for name, value in env.items():
        if name in by_name:
            channel, field = by_name[name]
            out.setdefault("channels", {}).setdefault(channel, {})[field] = value
            origins[f"channels.{channel}.{field}"] = origin.format(source=source, name=name)
        elif name in _CORE_ENV:
            _set_path(out, _CORE_ENV[name], value)
            origins[_CORE_ENV[name]] = origin.format(source=source, name=name)
        elif strict and name != CONFIG_ENV:
            unknown.append(name)
    if unknown:
        names = sorted(set(by_name) | set(_CORE_ENV))
        known = ", ".join(names)
        errors = []
        for n in unknown:
            guess = did_you_mean(n, names)
            hint = f"did you mean {guess!r}?" if guess else f"expected one of: {known}"
            errors.append(f"{source}: unknown setting {n!r} @ {n}; {hint}")
        raise ConfigError(errors)
    return out


def _merge(base: dict[str, Any], layer: _Layer, sources: dict[str, str]) -> None:
    def walk(dst: dict[str, Any], src: Mapping[str, Any], prefix: str) -> None:
        for key, value in src.items():
            path = f"{prefix}{key}"
            if isinstance(value, Mapping) and isinstance(dst.get(key), dict):
                walk(dst[key], value, path + ".")
            else:
                dst[key] = _copy(value)
            sources[path] = layer.origins.get(path, layer.source)
            # Nested keys inherit the layer as their origin.
            if isinstance(value, Mapping):
                for sub in _paths(value, path + "."):
                    sources[sub] = layer.origins.get(sub, layer.source)

    walk(base, layer.data, "")


def _paths(data: Mapping[str, Any], prefix: str) -> list[str]:
    out = []
    for key, value in data.items():
        out.append(prefix + key)
        if isinstance(value, Mapping):
            out.extend(_paths(value, prefix + key + "."))
    return out


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def find_config_file(cwd: Path | None = None, env: Mapping[str, str] | None = None) -> Path | None:
    """The file to read: ``$PIXALERT_CONFIG``, ``./pixalert.toml``, ``./notification_config.json``,
    then ``<user config dir>/pixalert.toml``."""
    env = os.environ if env is None else env
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV])
    cwd = Path.cwd() if cwd is None else cwd
    # exists(), not is_file(): a directory in a config file's place is reported, not skipped.
    for name in (TOML_NAME, JSON_NAME):
        if (cwd / name).exists():
            return cwd / name
    import platformdirs

    user = Path(platformdirs.user_config_dir("pixalert", appauthor=False)) / TOML_NAME
    return user if user.exists() else None


@attrs.define
class LoadedConfig:
    """Everything :func:`read_config` found: what each source said and what was wrong.

    ``files`` are the files read, lowest precedence first; ``data`` the merged
    raw settings (channel sections included); ``sources`` where each key path
    came from; ``settings`` the checked :class:`Settings`, or None when
    ``errors`` (one ``<source>: <what was expected> @ <key path>`` line each)
    is not empty.
    """

    files: list[str]
    data: dict[str, Any]
    sources: dict[str, str]
    settings: Settings | None
    errors: list[str]


def read_config(
    config: Mapping[str, Any] | None = None,
    *,
    config_file: str | os.PathLike[str] | None = None,
    env_file: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    specs: Mapping[str, ChannelSpec] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    read_files: bool = True,
) -> LoadedConfig:
    """Read every source as :func:`load_settings` does, keeping the errors instead of raising.

    A file that cannot be read or parsed still raises :class:`ConfigError`.
    """
    specs = specs or {}
    env = os.environ if env is None else env
    here = Path.cwd() if cwd is None else Path(cwd)
    layers: list[_Layer] = []

    path = Path(config_file) if config_file is not None else None
    if path is None and read_files:
        path = find_config_file(here, env)
    if path is not None:
        if path.is_dir():
            raise ConfigError(
                [f"{path}: is a directory, expected a config file (pixalert.toml or .json)"]
            )
        if not path.is_file():
            raise ConfigError([f"{path}: no such config file"])
        if path.suffix == ".json":
            layers.append(_read_json(path, specs))
        else:
            layers.append(_read_toml(path))

    dotenv_path = Path(env_file) if env_file is not None else here / DOTENV_NAME
    if read_files or env_file is not None:
        if dotenv_path.is_dir():
            raise ConfigError([f"{dotenv_path}: is a directory, expected an env file"])
        if env_file is not None and not dotenv_path.is_file():
            raise ConfigError([f"{dotenv_path}: no such env file"])
        if dotenv_path.is_file():
            values = _parse_dotenv(dotenv_path)
            layers.append(
                _env_layer(values, specs, str(dotenv_path), strict=True, origin="{source} ({name})")
            )

    layers.append(
        _env_layer(env, specs, "environment", strict=False, origin="environment variable {name}")
    )
    if config:
        layers.append(_Layer("arguments", dict(config)))

    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for layer in layers:
        _merge(merged, layer, sources)
    files = [layer.source for layer in layers if layer.source not in ("environment", "arguments")]

    data = _copy(merged)
    channels = merged.pop("channels", {})
    errors: list[str] = []
    if not isinstance(channels, dict) or not all(isinstance(v, dict) for v in channels.values()):
        errors.append(
            f"{_origin_for('channels', sources)}: expected a table of channel tables @ channels"
        )
        channels = {}
    settings: Settings | None
    try:
        settings = converter().structure(merged, Settings)
    except (ClassValidationError, ValueError, TypeError) as exc:
        errors.extend(_messages(exc, "", sources))
        settings = None
    if settings is not None:
        errors.extend(_check_interval_names(settings, sources))
        errors.extend(_check_templates(settings, channels, sources, here))
        settings.channels = channels
        settings.sources = sources
        if errors:
            settings = None
    return LoadedConfig(files, data, sources, settings, errors)


def load_settings(
    config: Mapping[str, Any] | None = None,
    *,
    config_file: str | os.PathLike[str] | None = None,
    env_file: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    specs: Mapping[str, ChannelSpec] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    read_files: bool = True,
) -> Settings:
    """Read every source and return the merged, checked :class:`Settings`.

    ``config_file`` and ``env_file`` name files explicitly (an explicit file
    that does not exist is an error); ``read_files=False`` reads none but those.
    ``env`` replaces ``os.environ``. ``specs`` are the installed channel types
    (for their environment variable names).
    """
    loaded = read_config(
        config,
        config_file=config_file,
        env_file=env_file,
        env=env,
        specs=specs,
        cwd=cwd,
        read_files=read_files,
    )
    if loaded.errors or loaded.settings is None:
        raise ConfigError(loaded.errors)
    return loaded.settings


def _check_interval_names(settings: Settings, sources: Mapping[str, str]) -> list[str]:
    """A route naming a time interval that is not configured is a config error."""
    errors = []
    known = ", ".join(sorted(settings.time_intervals)) or "none are configured"
    for i, route in enumerate(settings.routes):
        for key in ("mute_time_intervals", "active_time_intervals"):
            for j, name in enumerate(getattr(route, key)):
                if name not in settings.time_intervals:
                    errors.append(
                        f"{_origin_for('routes', sources)}: unknown time interval {name!r} "
                        f"(expected one of: {known}) @ routes[{i}].{key}[{j}]"
                    )
    return errors


def _check_templates(
    settings: Settings,
    channels: Mapping[str, Mapping[str, Any]],
    sources: Mapping[str, str],
    cwd: Path,
) -> list[str]:
    """Read the template files, check every template's syntax, and check that each
    template a channel table or a route names is configured."""
    from ._templates import check_template_names, compile_templates, load_template_files

    def origin(path: str) -> str:
        return _origin_for(path, sources)

    errors = load_template_files(settings.templates, origin, cwd)
    if settings.templates:
        _, found = compile_templates(settings.templates, origin)
        errors.extend(found)
    errors.extend(check_template_names(channels, settings.routes, settings.templates, origin))
    return errors


#: Keys of a channel table that the core reads itself: never given to the plugin.
CORE_CHANNEL_KEYS = ("type", "template")


def channel_type(name: str, section: Mapping[str, Any]) -> str:
    """The channel type of section ``name``: its ``type`` key, else the name itself."""
    kind = section.get("type", name)
    return str(kind)


def build_channel_configs(
    settings: Settings, specs: Mapping[str, ChannelSpec], *, warn: bool = True
) -> tuple[dict[str, tuple[ChannelSpec, Any]], dict[str, str]]:
    """Structure each channel section with its plugin's config type.

    Returns ``(configured, unavailable)``: name to ``(spec, config)``, and name
    to the reason a section could not be used (its plugin is not installed).
    Raises :class:`ConfigError` with every bad key at once. With ``warn``,
    what ``pixalert config check`` would report (a routing typo, a section
    whose plugin is missing) is logged as warnings.
    """
    configured: dict[str, tuple[ChannelSpec, Any]] = {}
    unavailable: dict[str, str] = {}
    errors: list[str] = []
    for name, section in settings.channels.items():
        kind = channel_type(name, section)
        spec = specs.get(kind)
        if spec is None:
            unavailable[name] = (
                f"no installed plugin provides channel type {kind!r} (pip install pixalert-{kind})"
            )
            continue
        data = {k: v for k, v in section.items() if k not in CORE_CHANNEL_KEYS}
        try:
            configured[name] = (
                spec,
                structure_config(
                    spec.config_type, data, path=f"channels.{name}", source=settings.sources
                ),
            )
        except ConfigError as exc:
            errors.extend(exc.errors)
    if errors:
        raise ConfigError(errors)
    if warn:
        from ._checks import log_problems

        log_problems(settings, specs)
    return configured, unavailable
