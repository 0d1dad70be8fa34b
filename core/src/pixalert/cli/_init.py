"""``pixalert init``: set up channels and write the config (the seed's ``setup_notifications.sh``).

On a terminal it asks, channel by channel (each skippable), for the seed's
settings (email over SMTP, Slack, PagerDuty, webhooks) and for those of any
other installed channel plugin; checks each answer as it goes (the plugin's own
config validation), and, only when the person says yes, tries the channel for
real: it builds the channel through the installed plugin's
:class:`pixalert.channels.ChannelSpec` and sends a test alert (an SMTP login and test
email, a Slack test message, a PagerDuty test event that is resolved at once).
Secrets are typed at hidden prompts and never shown again: the summary masks
them.

Without a terminal (``--no-input``) it takes the same settings from flags and
the seed's environment variables (``EMAIL_USER``, ``SLACK_WEBHOOK_URL``...).

It writes ``pixalert.toml`` (or ``.env.notifications`` with ``--format env``),
created with owner-only permissions (0600) from the start. An existing file is
overwritten only with ``--force`` or after confirmation; its other settings
(routing, delivery, other channels) are kept, and its values are the defaults.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import sys
import tempfile
import time
import typing
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import click

from . import EXIT_DELIVERY_FAILED, EXIT_USAGE, fail

if TYPE_CHECKING:
    from .._channels import ChannelSpec

__all__ = ["init"]

TOML_NAME = "pixalert.toml"
ENV_NAME = ".env.notifications"
MASK = "••••••••"


@attrs.frozen
class Question:
    """One setting to ask for: its seed variable, its config field, how to ask."""

    env: str
    field: str
    label: str
    kind: str = "str"  # str | int | float | bool | list
    secret: bool = False
    required: bool = False
    default: Any = None
    #: A seed setting is always asked; others only when the installed plugin maps ``env``.
    seed: bool = True

    @property
    def flag(self) -> str:
        """The command-line flag of this setting: ``--email-user`` for ``EMAIL_USER``."""
        return "--" + self.env.lower().replace("_", "-")


@attrs.frozen
class Form:
    """The questions for one channel type, and how to offer its live check."""

    type: str
    title: str
    questions: tuple[Question, ...]
    check: str
    package: str = ""


SEED_FORMS = (
    Form(
        "email",
        "Email (SMTP)",
        (
            Question("SMTP_SERVER", "smtp_server", "SMTP server", default="smtp.gmail.com"),
            Question("SMTP_PORT", "smtp_port", "SMTP port", kind="int", default=587),
            Question("EMAIL_USER", "username", "SMTP username (usually your email address)"),
            Question(
                "EMAIL_PASSWORD",
                "password",
                "SMTP password (for Gmail: an app password)",
                secret=True,
            ),
            Question("EMAIL_SENDER", "sender", "From address (Enter: the username)", seed=False),
            Question(
                "EMAIL_RECIPIENTS",
                "recipients",
                "Recipients, comma-separated",
                kind="list",
                required=True,
            ),
        ),
        "Check the SMTP login now by sending a test email?",
    ),
    Form(
        "slack",
        "Slack",
        (
            Question(
                "SLACK_WEBHOOK_URL",
                "webhook_url",
                "Incoming webhook URL (https://hooks.slack.com/services/...)",
                secret=True,
            ),
            Question("SLACK_CHANNEL", "channel", "Slack channel, e.g. #alerts (with a bot token)"),
            Question(
                "SLACK_TOKEN", "token", "Bot token xoxb-... (instead of a webhook)", secret=True
            ),
        ),
        "Send a test message to Slack now?",
    ),
    Form(
        "pagerduty",
        "PagerDuty",
        (
            Question(
                "PAGERDUTY_INTEGRATION_KEY",
                "routing_key",
                "Integration key (Events API v2)",
                secret=True,
                required=True,
            ),
            Question(
                "PAGERDUTY_API_TOKEN",
                "api_token",
                "REST API token (not needed to send)",
                secret=True,
            ),
        ),
        "Send a test event to PagerDuty now? It opens an incident and resolves it at once.",
    ),
    Form(
        "webhook",
        "Webhooks",
        (
            Question(
                "WEBHOOK_URLS",
                "urls",
                "Webhook URLs, comma-separated",
                kind="list",
                secret=True,
                required=True,
            ),
            Question(
                "WEBHOOK_SECRET",
                "secret",
                "Signing secret whsec_... (optional)",
                secret=True,
                seed=False,
            ),
        ),
        "Send a test alert to the webhook URLs now?",
    ),
)


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


def _field_facts(spec: ChannelSpec) -> dict[str, tuple[str, bool, bool]]:
    """``field -> (kind, secret, required)`` from the plugin's config class."""
    from .._types import Secret

    try:
        hints = typing.get_type_hints(spec.config_type)
        fields = attrs.fields(spec.config_type)
    except Exception:
        return {}
    facts = {}
    for field in fields:
        tp = _bare(hints.get(field.name))
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        secret = tp is Secret or (origin in (list, tuple) and args[:1] == (Secret,))
        if origin in (list, tuple):
            kind = "list"
        elif tp in (bool, int, float):
            kind = tp.__name__
        else:
            kind = "str"
        facts[field.name] = (kind, secret, field.default is attrs.NOTHING)
    return facts


def _resolve_form(form: Form, spec: ChannelSpec | None) -> Form:
    """``form`` with field names, secrecy and questions as the installed plugin declares them."""
    if spec is None:
        return attrs.evolve(
            form,
            questions=tuple(q for q in form.questions if q.seed),
            package=f"pixalert-{form.type}",
        )
    facts = _field_facts(spec)
    questions = []
    for q in form.questions:
        if q.env not in spec.env and not q.seed:
            continue
        field = spec.env.get(q.env, q.field)
        _, secret, _ = facts.get(field, (q.kind, q.secret, q.required))
        questions.append(attrs.evolve(q, field=field, secret=q.secret or secret))
    return attrs.evolve(form, questions=tuple(questions))


def _generic_form(spec: ChannelSpec) -> Form:
    """Questions for a third-party channel type, from its environment variables and config."""
    facts = _field_facts(spec)
    questions = []
    for env, field in spec.env.items():
        kind, secret, required = facts.get(field, ("str", False, False))
        questions.append(
            Question(
                env,
                field,
                f"{field.replace('_', ' ')} ({env})",
                kind=kind,
                secret=secret,
                required=required,
            )
        )
    title = spec.description or spec.name
    return Form(
        spec.name,
        f"{spec.name}: {title}" if spec.description else spec.name,
        tuple(questions),
        f"Send a test alert through {spec.name} now?",
    )


def installed_forms(specs: Mapping[str, ChannelSpec]) -> list[tuple[Form, ChannelSpec | None]]:
    """The seed's four channels (installed or not), then every other installed channel type."""
    out: list[tuple[Form, ChannelSpec | None]] = []
    for form in SEED_FORMS:
        spec = specs.get(form.type)
        out.append((_resolve_form(form, spec), spec))
    for name, spec in sorted(specs.items()):
        if name in {f.type for f in SEED_FORMS} or not spec.env:
            continue
        out.append((_generic_form(spec), spec))
    return out


# ---------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------


def _split(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def coerce(question: Question, value: Any) -> Any:
    """``value`` (a string from a flag, the environment or a prompt) as the question's kind."""
    if value is None:
        return None
    if question.kind == "list":
        if isinstance(value, str):
            return _split(value)
        return [str(v) for v in value]
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text:
        return None
    if question.kind == "int":
        try:
            return int(text)
        except ValueError:
            raise click.BadParameter(
                f"expected a whole number, got {text!r}", param_hint=question.flag
            ) from None
    if question.kind == "float":
        try:
            return float(text)
        except ValueError:
            raise click.BadParameter(
                f"expected a number, got {text!r}", param_hint=question.flag
            ) from None
    if question.kind == "bool":
        return text.lower() in ("1", "true", "yes", "on")
    return value if question.secret else text


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def _secret_texts(
    answers: Mapping[str, Mapping[str, Any]], forms: Iterable[tuple[Form, Any]]
) -> list[str]:
    """Every secret answered, for masking error messages."""
    out: list[str] = []
    for form, _ in forms:
        for q in form.questions:
            value = answers.get(form.type, {}).get(q.field)
            if q.secret and not _empty(value):
                out.extend(value if isinstance(value, list) else [str(value)])
    return out


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


def _existing_answers(
    existing: Mapping[str, Any], forms: list[tuple[Form, Any]]
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if "env" in existing:
        values = existing["env"]
        for form, _ in forms:
            for q in form.questions:
                if q.env in values:
                    out.setdefault(form.type, {})[q.field] = coerce(q, values[q.env])
        return out
    channels = existing.get("channels", {})
    if isinstance(channels, Mapping):
        for form, _ in forms:
            section = channels.get(form.type)
            if isinstance(section, Mapping):
                out[form.type] = dict(section)
    return out


# ---------------------------------------------------------------------------
# Checking a channel for real
# ---------------------------------------------------------------------------


@attrs.frozen
class CheckOutcome:
    """What a live check found."""

    ok: bool
    message: str
    seconds: float = 0.0


def structure(spec: ChannelSpec, name: str, section: Mapping[str, Any]) -> Any:
    """The plugin's config object for ``section`` (raises :class:`pixalert.ConfigError`)."""
    from .._config import structure_config

    return structure_config(spec.config_type, section, path=f"channels.{name}")


async def _send_test(spec: ChannelSpec, name: str, config: Any, timeout: float) -> CheckOutcome:
    from .._errors import DeliveryError
    from .._redact import redact
    from .._types import Alert, Priority

    alert = Alert(
        title="pixalert test alert",
        message=f"Sent by 'pixalert init' to check the {name} settings. No action needed.",
        priority=Priority.LOW,
        source="pixalert-init",
        key=f"pixalert-init-{uuid.uuid4().hex[:12]}",
        metadata={"sent_by": "pixalert init"},
    )
    try:
        channel = spec.factory(name, config)
    except Exception as exc:
        return CheckOutcome(False, redact(f"could not build the channel: {exc}"))
    started = time.perf_counter()
    try:
        receipt = await asyncio.wait_for(channel.send(alert), timeout)
        done = "sent"
        if receipt:
            # The channel tracks what it sent (a PagerDuty incident, a Slack message):
            # resolve it, so the test leaves nothing open.
            await asyncio.wait_for(channel.send(alert.resolve(), previous=receipt), timeout)
            done = "sent and resolved"
    except asyncio.TimeoutError:
        return CheckOutcome(False, f"no answer within {timeout:g}s")
    except DeliveryError as exc:
        kind = "temporary: may pass later" if exc.retryable else "permanent"
        return CheckOutcome(False, f"{redact(exc.message)} ({kind})")
    except Exception as exc:
        return CheckOutcome(False, redact(f"{type(exc).__name__}: {exc}"))
    finally:
        with contextlib.suppress(Exception):  # closing after a check is best effort
            await asyncio.wait_for(channel.aclose(), timeout)
    return CheckOutcome(True, done, time.perf_counter() - started)


def live_check(spec: ChannelSpec, name: str, config: Any, timeout: float = 30.0) -> CheckOutcome:
    """Send a test alert through a channel built by ``spec`` (and resolve it if tracked)."""
    return asyncio.run(_send_test(spec, name, config, timeout))


# ---------------------------------------------------------------------------
# Asking
# ---------------------------------------------------------------------------


def _shown(question: Question, value: Any) -> str:
    if _empty(value):
        return ""
    if question.secret:
        return MASK
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def _ask(question: Question, current: Any) -> Any:
    """Ask for one setting; Enter keeps ``current`` (or the question's default)."""
    default = current if not _empty(current) else question.default
    label = "  " + question.label
    if question.secret:
        has = not _empty(default)
        if has:
            label += " (hidden; Enter keeps the current one)"
        else:
            label += " (hidden)" if question.required else " (hidden; Enter to skip)"
        raw = click.prompt(
            label,
            default="" if has or not question.required else None,
            hide_input=True,
            show_default=False,
        )
        return default if raw == "" and has else coerce(question, raw)
    shown = _shown(question, default)
    if question.kind == "int":
        value_type: Any = click.IntRange(1, 65535) if question.field.endswith("port") else int
        return (
            click.prompt(label, default=default, type=value_type, show_default=True)
            if not _empty(default)
            else _optional_number(label, question)
        )
    if not question.required and _empty(default):
        label += " (optional, Enter to skip)"
    raw = click.prompt(
        label,
        default=shown if shown else ("" if not question.required else None),
        show_default=bool(shown),
    )
    return coerce(question, raw)


def _optional_number(label: str, question: Question) -> Any:
    while True:
        raw = click.prompt(label + " (optional, Enter to skip)", default="", show_default=False)
        try:
            return coerce(question, raw)
        except click.BadParameter as exc:
            click.echo(f"  Error: {exc.message}")


def _problems(error: Exception, secrets: list[str], form: Form) -> list[str]:
    from .._errors import ConfigError
    from .._redact import redact

    lines = error.errors if isinstance(error, ConfigError) else [str(error)]
    out = []
    for line in lines:
        text = redact(line, secrets)
        for q in form.questions:
            if text.endswith(f"channels.{form.type}.{q.field}"):
                text += f" ({q.flag} / {q.env})"
        out.append(text)
    return out


def _missing_required(form: Form, section: Mapping[str, Any]) -> list[str]:
    return [
        f"{q.label}: required ({q.flag} / {q.env})"
        for q in form.questions
        if q.required and _empty(section.get(q.field))
    ]


def _interactive_channel(
    form: Form, spec: ChannelSpec | None, current: dict[str, Any]
) -> dict[str, Any] | None:
    """Ask for one channel; return its section, or None when skipped."""
    click.echo()
    click.secho(form.title, bold=True)
    if spec is None:
        click.echo(
            f"  ({form.package} is not installed: the settings are saved but cannot be "
            f"checked; pip install {form.package})"
        )
    has_values = any(not _empty(v) for v in current.values())
    if not click.confirm(f"  Set up {form.title}?", default=has_values):
        return None
    answers = dict(current)
    while True:
        for q in form.questions:
            answers[q.field] = _ask(q, answers.get(q.field))
        section = {k: v for k, v in answers.items() if not _empty(v)}
        secrets = _secret_texts({form.type: section}, [(form, None)])
        problems = _missing_required(form, section)
        config = None
        if not problems and spec is not None:
            try:
                config = structure(spec, form.type, section)
            except ValueError as exc:
                problems = _problems(exc, secrets, form)
        if problems:
            click.secho("  These settings do not work:", fg="red")
            for line in problems:
                click.echo(f"    - {line}")
            if click.confirm(f"  Enter the {form.title} settings again?", default=True):
                continue
            return None
        if spec is None or config is None:
            return section
        click.secho("  ✓ the settings are valid", fg="green")
        if not click.confirm("  " + form.check, default=False):
            return section
        outcome = live_check(spec, form.type, config)
        if outcome.ok:
            click.secho(f"  ✓ {outcome.message} in {outcome.seconds * 1000:.0f} ms", fg="green")
            return section
        from .._redact import redact

        click.secho(f"  ✗ the test failed: {redact(outcome.message, secrets)}", fg="red")
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
    forms: list[tuple[Form, Any]],
    sections: Mapping[str, Mapping[str, Any]],
    extra: Mapping[str, Mapping[str, Any]],
) -> None:
    from rich.markup import escape

    from ._output import print_table

    rows = []
    for form, _ in forms:
        section = sections.get(form.type)
        if section is None:
            continue
        asked = {q.field: q for q in form.questions}
        for key, value in section.items():
            q = asked.get(key) or Question("", key, key)
            rows.append((form.type, key, escape(_shown(q, value) or "")))
    for name, section in extra.items():
        rows.append((escape(name), escape(", ".join(section)), "(kept as it was)"))
    print_table("Settings (secrets are not shown)", ["channel", "setting", "value"], rows)


def _document(
    fmt: str,
    forms: list[tuple[Form, Any]],
    sections: Mapping[str, Mapping[str, Any]],
    existing: Mapping[str, Any],
) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = (
        f"Written by 'pixalert init' on {stamp}.\n"
        "It holds secrets: keep it private (mode 600), out of version control."
    )
    asked = {form.type for form, _ in forms}
    if fmt == "env":
        lines = [f"# {line}" for line in header.splitlines()]
        managed: set[str] = set()
        for form, spec in forms:
            section = sections.get(form.type)
            managed.update(q.env for q in form.questions)
            if not section:
                continue
            lines.append("")
            lines.append(f"# {form.title}")
            env_for = {q.field: q.env for q in form.questions}
            if spec is not None:
                for env, field in spec.env.items():
                    env_for.setdefault(field, env)
                    managed.add(env)
            for key, value in section.items():
                env = env_for.get(key)
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
    for form, _ in forms:
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


def _seed_options(func: Callable[..., Any]) -> Callable[..., Any]:
    seen = set()
    for form in reversed(SEED_FORMS):
        for q in reversed(form.questions):
            if q.env in seen:
                continue
            seen.add(q.env)
            hint = " Prefer the variable for secrets: flags show in 'ps'." if q.secret else ""
            func = click.option(
                q.flag,
                q.env.lower(),
                metavar="VALUE",
                help=f"{form.type}: {q.label} (or ${q.env}).{hint}",
            )(func)
    return func


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


@click.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["toml", "env"]),
    default="toml",
    show_default=True,
    help="Write pixalert.toml, or the seed's .env.notifications.",
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
    help="With --no-input: send a test alert through each channel first; "
    "write nothing if one fails (exit 1).",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="CHANNEL.KEY=VALUE",
    help="Any other setting, e.g. --set email.security=tls (repeatable).",
)
@_seed_options
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

    Asks for each channel in turn (email, Slack, PagerDuty, webhooks, and any
    other installed channel plugin); any can be skipped. With --no-input the
    settings come from flags and the seed's environment variables
    (EMAIL_USER, EMAIL_PASSWORD, SMTP_SERVER, SMTP_PORT, EMAIL_RECIPIENTS,
    SLACK_WEBHOOK_URL, SLACK_CHANNEL, SLACK_TOKEN, PAGERDUTY_INTEGRATION_KEY,
    PAGERDUTY_API_TOKEN, WEBHOOK_URLS).
    """
    from .._plugins import default_plugin_manager

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
        specs = default_plugin_manager().channel_specs()
    except ValueError as exc:
        fail(str(exc))
    forms = installed_forms(specs)
    set_values = _parse_sets(sets)
    known = {form.type for form, _ in forms}
    unknown = sorted(set(set_values) - known)
    if unknown:
        fail(
            f"--set {unknown[0]}.…: no such channel type; "
            f"expected one of {', '.join(sorted(known))}"
        )

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

    # Defaults, lowest first: the existing file, the environment, flags and --set.
    current = _existing_answers(existing, forms)
    for form, spec in forms:
        values = current.setdefault(form.type, {})
        for q in form.questions:
            if os.environ.get(q.env):
                values[q.field] = coerce(q, os.environ[q.env])
            flag_value = flags.get(q.env.lower())
            if flag_value is not None:
                values[q.field] = coerce(q, flag_value)
        facts = _field_facts(spec) if spec is not None else {}
        for key, value in set_values.get(form.type, {}).items():
            question = next((q for q in form.questions if q.field == key), None)
            if question is None:
                kind, secret, _ = facts.get(key, ("str", False, False))
                question = Question(f"{form.type}.{key}", key, key, kind=kind, secret=secret)
            values[key] = coerce(question, value)

    if no_input:
        sections = _from_flags(forms, current, check_all)
    else:
        click.echo(
            "pixalert init: set up where alerts go. Each channel can be skipped; press "
            "Enter to keep a [default]. Secrets are typed hidden and never shown."
        )
        sections = {}
        for form, spec in forms:
            section = _interactive_channel(form, spec, current.get(form.type, {}))
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


def _from_flags(
    forms: list[tuple[Form, Any]], current: Mapping[str, Mapping[str, Any]], check_all: bool
) -> dict[str, dict[str, Any]]:
    """Build and validate every channel given by flags or the environment (no questions)."""
    sections: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    configs: dict[str, tuple[ChannelSpec, Any]] = {}
    for form, spec in forms:
        section = {k: v for k, v in current.get(form.type, {}).items() if not _empty(v)}
        if not section:
            continue  # nothing given for this channel: the plugin's defaults apply to the rest
        secrets = _secret_texts({form.type: section}, [(form, None)])
        missing = _missing_required(form, section)
        if missing:
            problems.extend(f"{form.type}: {line}" for line in missing)
            continue
        if spec is not None:
            try:
                configs[form.type] = (spec, structure(spec, form.type, section))
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
        fail(
            "no channel settings given: pass flags such as --slack-webhook-url, or set the "
            "seed's variables (SLACK_WEBHOOK_URL, EMAIL_RECIPIENTS...); see 'pixalert init --help'"
        )
    if check_all:
        failed = False
        for name, (spec, config) in configs.items():
            outcome = live_check(spec, name, config)
            mark = "✓" if outcome.ok else "✗"
            click.echo(f"{mark} {name}: {outcome.message}")
            failed = failed or not outcome.ok
        if failed:
            click.echo("error: a channel check failed; nothing written", err=True)
            sys.exit(EXIT_DELIVERY_FAILED)
    return sections
