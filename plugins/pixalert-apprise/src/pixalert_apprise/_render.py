"""What an alert becomes for Apprise: a notify type, a title and a body per format.

Light: no Apprise import here. Formats and notify types are Apprise's plain
string values (``"text"``, ``"markdown"``, ``"html"``; ``"info"``,
``"success"``, ``"warning"``, ``"failure"``), which Apprise accepts as they are.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from typing import Any

from pixalert import Alert, Priority

__all__ = ["FORMATS", "NOTIFY_TYPES", "render_body", "render_title", "notify_type"]

FORMATS = ("text", "markdown", "html")
"""The body formats Apprise services take."""

NOTIFY_TYPES: Mapping[Priority, str] = {
    Priority.LOW: "info",
    Priority.MEDIUM: "warning",
    Priority.HIGH: "failure",
    Priority.CRITICAL: "failure",
}
"""Each priority's Apprise notify type while the alert fires; a resolve is ``"success"``."""

# CommonMark characters that start emphasis, links, HTML, headings, tables or code.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~])")
_MAX_VALUE = 500


def notify_type(alert: Alert) -> str:
    """Apprise's notify type for ``alert``: ``success`` when resolved, else by priority."""
    if alert.status == "resolved":
        return "success"
    return NOTIFY_TYPES[alert.priority]


def render_title(alert: Alert) -> str:
    """``[HIGH] Disk full``, or ``[RESOLVED] Disk full`` for a resolve (plain text)."""
    label = "RESOLVED" if alert.status == "resolved" else alert.priority.name
    return f"[{label}] {alert.title}"


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 1] + "…"


def _facts(alert: Alert) -> list[tuple[str, str]]:
    facts = [("priority", alert.priority.name)]
    if alert.status == "resolved":
        facts.append(("status", "resolved"))
    if alert.source:
        facts.append(("source", alert.source))
    facts.extend((str(k), _value(v)) for k, v in sorted(alert.metadata.items()))
    return facts


def escape_markdown(text: str) -> str:
    """``text`` with the characters that would format it as Markdown backslash-escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def render_body(alert: Alert, body_format: str) -> str:
    """The alert's message and facts (priority, source, metadata) in ``body_format``.

    ``text`` is plain; ``markdown`` escapes the alert's text so it shows as
    written, with the fact names in bold; ``html`` escapes it and keeps line
    breaks, with the facts in a small table.
    """
    facts = _facts(alert)
    if body_format == "html":
        message = html.escape(alert.message).replace("\n", "<br/>\n")
        rows = "".join(
            f"<tr><td><b>{html.escape(k)}</b></td><td>{html.escape(v)}</td></tr>" for k, v in facts
        )
        return f"<p>{message}</p>\n<table>{rows}</table>" if message else f"<table>{rows}</table>"
    if body_format == "markdown":
        # Two trailing spaces keep one fact per line in renderers that join lines.
        lines = [f"**{escape_markdown(k)}:** {escape_markdown(v)}  " for k, v in facts]
        message = escape_markdown(alert.message)
        return (message + "\n\n" if message else "") + "\n".join(lines).rstrip()
    lines = [f"{k}: {v}" for k, v in facts]
    return (alert.message + "\n\n" if alert.message else "") + "\n".join(lines)
