"""Message templates: a title and a body per channel or per route, in Jinja2's sandbox.

``[templates.NAME]`` holds a ``title`` and/or a ``body`` (Jinja2 source), or
``title_file`` / ``body_file`` (paths relative to the config file). A channel
table (``[channels.X] template = "NAME"``) or a route (``[[routes]] template =
"NAME"``) names one; the route's wins for the alerts it matched.

One function applies them, :meth:`Templates.prepare`: it is called where the
pipeline hands an alert (or a group's digest) to a channel, and by the
previews. It returns the alert the channel is given: its ``title`` and
``message`` are the rendered title and body as plain text (nothing escaped: a
channel escapes them as it does any alert text), and when the channel's
:attr:`ChannelSpec.markup <pixalert.channels.ChannelSpec.markup>` is ``html``
or ``mrkdwn``, ``alert.rendered[markup]`` is the body rendered again with
every inserted value escaped for that markup and the template's own text as
written; :func:`rendered_message` reads it, and the channel inserts it
without escaping it again.

A template that fails to render (an undefined variable: templates use
:class:`jinja2.StrictUndefined`; an attribute the sandbox refuses) never stops
a delivery: the channel gets the alert's own title and message and one
warning is logged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from ._types import Alert

if TYPE_CHECKING:
    import jinja2

    from ._groups import Group
    from ._routes import RouteMatch

__all__ = [
    "MARKUPS",
    "TemplateConfig",
    "Templates",
    "compile_templates",
    "escape_mrkdwn",
    "load_template_files",
    "rendered_message",
]

log = logging.getLogger("pixalert.templates")

#: The markups a channel may declare: what its message text is read as.
MARKUPS = ("text", "html", "mrkdwn")

#: The parts of a template, in the order they are checked.
PARTS = ("title", "body", "html")

_MAX_TITLE = 1000


@attrs.define
class TemplateConfig:
    """One ``[templates.NAME]`` table: ``title``, ``body`` and ``html`` are Jinja2
    source, ``title_file``, ``body_file`` and ``html_file`` name files holding it
    (relative to the config file). ``html`` is the body of an HTML channel (an email's
    HTML part; default: ``body``, its lines kept with ``<br>``). A part given both
    ways, or a template with neither a title nor a body, is an error."""

    title: str | None = None
    body: str | None = None
    html: str | None = None
    title_file: str | None = None
    body_file: str | None = None
    html_file: str | None = None


def escape_mrkdwn(text: str) -> str:
    """Escape ``&``, ``<`` and ``>`` (and nothing else), as Slack asks for untrusted
    mrkdwn text: an alert cannot ping ``<!channel>`` or make a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def rendered_message(alert: Alert, markup: str) -> str | None:
    """The alert's message as a template rendered it for ``markup`` (``"html"``,
    ``"mrkdwn"``): values inserted are escaped for it, the template's own text is as
    written (for ``html``: the template's ``html`` part, else its ``body`` with its lines
    joined by ``<br>``). The channel inserts it as it is (escaping it again would show
    ``&amp;lt;``). None when no template rendered one: escape ``alert.message`` as usual."""
    rendered = alert.rendered
    if not rendered:
        return None
    return rendered.get(markup)


# ---------------------------------------------------------------------------
# Environments
# ---------------------------------------------------------------------------

_ENVIRONMENTS: dict[str, jinja2.Environment] = {}


def _finalize_mrkdwn(value: Any) -> Any:
    import markupsafe

    if isinstance(value, markupsafe.Markup):  # marked safe in the template (|safe)
        return str(value)
    if value is None:
        return ""
    return escape_mrkdwn(str(value))


def environment(markup: str) -> jinja2.Environment:
    """The sandboxed environment that renders for ``markup``: HTML autoescaping for
    ``html``, Slack's escaping of every ``{{ }}`` value for ``mrkdwn``, none for ``text``."""
    env = _ENVIRONMENTS.get(markup)
    if env is None:
        import jinja2
        from jinja2.sandbox import SandboxedEnvironment

        options: dict[str, Any] = {
            "undefined": jinja2.StrictUndefined,
            "autoescape": markup == "html",
        }
        if markup == "mrkdwn":
            options["finalize"] = _finalize_mrkdwn
        env = SandboxedEnvironment(**options)
        _ENVIRONMENTS[markup] = env
    return env


# ---------------------------------------------------------------------------
# Loading and checking
# ---------------------------------------------------------------------------


@attrs.frozen
class _Part:
    """One part of a template: its source, and where it was written (for errors)."""

    source: str
    origin: str  # the config file, or the template file
    path: str  # templates.NAME.title
    in_file: bool  # True: origin is a template file of its own


@attrs.frozen
class CompiledTemplate:
    """A checked template: each part's source, compiled once per markup on first use."""

    name: str
    parts: Mapping[str, _Part]
    _cache: dict[tuple[str, str], Any] = attrs.field(factory=dict, eq=False, repr=False)

    def render(self, part: str, context: Mapping[str, Any], markup: str) -> str:
        """``part`` rendered with ``context`` for ``markup``; raises what Jinja2 raises."""
        compiled = self._cache.get((part, markup))
        if compiled is None:
            compiled = environment(markup).from_string(self.parts[part].source)
            self._cache[(part, markup)] = compiled
        return str(compiled.render(context))

    def has(self, part: str) -> bool:
        """True if this template sets ``part`` (``title`` or ``body``)."""
        return part in self.parts


def load_template_files(
    templates: Mapping[str, TemplateConfig], origin_for: Callable[[str], str], cwd: Path
) -> list[str]:
    """Read each ``title_file`` / ``body_file`` into its part (paths relative to the
    config file that named them, else to ``cwd``) and make the path absolute; return
    the errors (``<source>: <what> @ <key path>``)."""
    errors = []
    for name, config in templates.items():
        for part in PARTS:
            file_key = f"{part}_file"
            path = f"templates.{name}"
            origin = origin_for(f"{path}.{file_key}")
            value = getattr(config, file_key)
            if value is None:
                continue
            if getattr(config, part) is not None:
                errors.append(
                    f"{origin}: expected {part!r} or {file_key!r}, not both @ {path}.{file_key}"
                )
                continue
            base = Path(origin).parent if Path(origin).is_file() else cwd
            target = (base / Path(value).expanduser()).resolve()
            try:
                text = target.read_bytes().decode("utf-8-sig")
            except IsADirectoryError:
                errors.append(f"{origin}: {target} is a directory @ {path}.{file_key}")
                continue
            except OSError as exc:
                errors.append(
                    f"{origin}: cannot read template file {target} ({exc.strerror or exc}) "
                    f"@ {path}.{file_key}"
                )
                continue
            except UnicodeDecodeError as exc:
                errors.append(
                    f"{origin}: template file {target} is not UTF-8 text (offset {exc.start}) "
                    f"@ {path}.{file_key}"
                )
                continue
            setattr(config, part, text)
            setattr(config, file_key, str(target))
    return errors


def _file_line(origin: str, name: str, key: str, lineno: int) -> int | None:
    """The config file's line of line ``lineno`` of the inline template ``key`` in
    ``[templates.NAME]``, when the file can be read and the key found; else None."""
    try:
        text = Path(origin).read_text("utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return None
    lines = text.splitlines()
    quoted = re.escape(name)
    header = re.compile(rf"^\s*\[\s*templates\s*\.\s*(?:\"{quoted}\"|'{quoted}'|{quoted})\s*\]")
    assign = re.compile(rf"^\s*{re.escape(key)}\s*=\s*(.*)$")
    start = next((i for i, line in enumerate(lines) if header.match(line)), None)
    if start is None:
        return None
    for i in range(start + 1, len(lines)):
        if lines[i].lstrip().startswith("["):
            return None
        found = assign.match(lines[i])
        if found:
            value = found.group(1)
            # A multi-line string whose opening quotes end the line starts on the next one.
            first = i + 2 if value.strip() in ('"""', "'''") else i + 1
            return first + lineno - 1
    return None


def compile_templates(
    templates: Mapping[str, TemplateConfig], origin_for: Callable[[str], str]
) -> tuple[dict[str, CompiledTemplate], list[str]]:
    """Check every template's syntax; return the compiled ones and the errors, each
    naming the file, the line and the key path."""
    import jinja2

    compiled: dict[str, CompiledTemplate] = {}
    errors: list[str] = []
    env = environment("text")
    for name, config in templates.items():
        parts: dict[str, _Part] = {}
        path = f"templates.{name}"
        for part in PARTS:
            source = getattr(config, part)
            if source is None:
                continue
            from_file = getattr(config, f"{part}_file")
            key = f"{part}_file" if from_file else part
            origin = from_file or origin_for(f"{path}.{part}")
            try:
                env.parse(source)
            except jinja2.TemplateSyntaxError as exc:
                lineno = exc.lineno or 1
                message = exc.message or "invalid syntax"
                if from_file:
                    where = f"{from_file}:{lineno}"
                else:
                    line = _file_line(origin, name, part, lineno)
                    where = origin if line is None else f"{origin}:{line}"
                    if line is None:
                        message += f" (line {lineno} of the template)"
                errors.append(f"{where}: template syntax error: {message} @ {path}.{key}")
                continue
            parts[part] = _Part(source, origin, f"{path}.{key}", bool(from_file))
        if config.title is None and config.body is None and config.html is None:
            errors.append(
                f"{origin_for(path)}: expected 'title', 'body' or 'html' (or 'title_file', "
                f"'body_file', 'html_file') @ {path}"
            )
        compiled[name] = CompiledTemplate(name, parts)
    return compiled, errors


# ---------------------------------------------------------------------------
# The context and rendering
# ---------------------------------------------------------------------------


def alert_context(alert: Alert) -> dict[str, Any]:
    """The ``alert`` a template sees: plain values only (a dict, not the object)."""
    return {
        "id": alert.id,
        "title": alert.title,
        "message": alert.message,
        "priority": alert.priority.name,
        "status": alert.status,
        "resolved": alert.resolved,
        "source": alert.source,
        "key": alert.key,
        "created_at": alert.created_at,
        "metadata": alert.metadata,
    }


def group_context(group: Group) -> dict[str, Any]:
    """The ``group`` a template sees when a group's notification is rendered."""
    alerts = []
    for alert in group.alerts:
        item = alert_context(alert)
        item["new"] = alert.id in group.new
        alerts.append(item)
    return {
        "key": group.key,
        "labels": dict(group.labels),
        "alerts": alerts,
        "firing": [a for a in alerts if not a["resolved"]],
        "resolved": [a for a in alerts if a["resolved"]],
        "count": len(alerts),
        "status": group.status,
        "reason": group.reason,
        "priority": group.priority.name,
        "title": group.title(),
        "summary": group.summary(),
    }


def context(alert: Alert, group: Group | None = None) -> dict[str, Any]:
    """Everything a template may use: ``alert``, ``metadata``, ``priority``, ``group``
    (None unless a group's notification is rendered)."""
    return {
        "alert": alert_context(alert),
        "metadata": alert.metadata,
        "priority": alert.priority.name,
        "group": group_context(group) if group is not None else None,
    }


class Templates:
    """The configured templates, and which one each channel and route uses."""

    def __init__(
        self,
        templates: Mapping[str, CompiledTemplate],
        template_of: Callable[[str], str | None],
        markup_of: Callable[[str], str],
    ) -> None:
        self.templates = dict(templates)
        self._template_of = template_of
        self._markup_of = markup_of

    @classmethod
    def from_settings(
        cls,
        settings: Any,
        template_of: Callable[[str], str | None],
        markup_of: Callable[[str], str],
    ) -> Templates:
        """The templates of ``settings`` (a :class:`pixalert.Settings`), compiled;
        :class:`pixalert.ConfigError` for a broken one (a Settings built by hand)."""
        if not settings.templates:  # Jinja2 is imported only when templates are configured
            return cls({}, template_of, markup_of)
        from ._config import _origin_for
        from ._errors import ConfigError

        compiled, errors = compile_templates(
            settings.templates, lambda path: _origin_for(path, settings.sources)
        )
        if errors:
            raise ConfigError(errors)
        return cls(compiled, template_of, markup_of)

    def __bool__(self) -> bool:
        return bool(self.templates)

    def name_for(self, channel: str, route: RouteMatch | None) -> str | None:
        """The template for ``channel``: the route's, else the channel's, else None."""
        if route is not None and route.route.template is not None:
            return route.route.template
        return self._template_of(channel)

    def prepare(
        self,
        alert: Alert,
        channel: str,
        route: RouteMatch | None = None,
        group: Group | None = None,
    ) -> Alert:
        """The alert to hand to ``channel``: ``alert`` itself when no template applies,
        else with the rendered title and message (and ``rendered`` for the channel's
        markup). A template that fails logs one warning and leaves ``alert`` as it is."""
        name = self.name_for(channel, route)
        if name is None:
            return alert
        template = self.templates.get(name)
        if template is None:  # checked at load: only a Settings built by hand gets here
            log.warning("channel %s: no template %r: sending the alert as it is", channel, name)
            return alert
        markup = self._markup_of(channel)
        try:
            ctx = context(alert, group)
            changes: dict[str, Any] = {}
            if template.has("title"):
                title = " ".join(template.render("title", ctx, "text").split())
                if not title:
                    raise ValueError("the title rendered empty")
                changes["title"] = title[:_MAX_TITLE]
            if template.has("body"):
                changes["message"] = template.render("body", ctx, "text").strip("\n")
            if markup == "html" and template.has("html"):
                changes["rendered"] = {"html": template.render("html", ctx, "html").strip("\n")}
            elif markup == "html" and template.has("body"):
                # A text body in HTML: escaped values, its lines kept.
                lines = template.render("body", ctx, "html").strip("\n").split("\n")
                changes["rendered"] = {"html": "<br>\n".join(lines)}
            elif markup != "text" and template.has("body"):
                changes["rendered"] = {markup: template.render("body", ctx, markup).strip("\n")}
        except Exception as exc:
            from ._redact import redact

            log.warning(
                "template %r for channel %s failed (%s: %s): sending alert %s with its own "
                "title and message",
                name,
                channel,
                type(exc).__name__,
                redact(str(exc))[:300],
                alert.id,
            )
            return alert
        return attrs.evolve(alert, **changes)


def check_template_names(
    channels: Mapping[str, Mapping[str, Any]],
    routes: list[Any],
    known: Mapping[str, Any],
    origin_for: Callable[[str], str],
) -> list[str]:
    """Errors for a channel table or a route naming a template that is not configured
    (or giving something other than a name)."""
    from ._config import did_you_mean

    names = sorted(known)
    listed = ", ".join(names) or "none are configured"
    errors = []

    def check(value: Any, path: str) -> None:
        if not isinstance(value, str):
            errors.append(
                f"{origin_for(path)}: expected the name of a [templates.NAME] table, "
                f"got {type(value).__name__} @ {path}"
            )
        elif value not in known:
            guess = did_you_mean(value, names)
            hint = f" (did you mean {guess!r}?)" if guess else ""
            errors.append(
                f"{origin_for(path)}: unknown template {value!r}{hint}; expected one of: "
                f"{listed} @ {path}"
            )

    for name, section in channels.items():
        if "template" in section:
            check(section["template"], f"channels.{name}.template")
    for i, route in enumerate(routes):
        if route.template is not None:
            check(route.template, f"routes[{i}].template")
    return errors
