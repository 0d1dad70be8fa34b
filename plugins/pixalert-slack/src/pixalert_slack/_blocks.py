"""Turning an alert into a Slack message: Block Kit, escaped, within Slack's limits.

Layout (the same for webhooks, ``chat.postMessage`` and ``chat.update``)::

    text         fallback for notifications: "[HIGH] Disk full: ..." (escaped)
    blocks       header "[HIGH] Disk full" (or "RESOLVED [HIGH] Disk full"),
                 then, for a firing CRITICAL alert with a mention configured,
                 a section with the mention, then (when buttons are on and
                 the alert is firing) an actions block: Acknowledge and
                 Resolve, each with the alert id as its value
    attachments  one, coloured by priority (green when resolved), holding the
                 message section, the metadata as fields, and a context block
                 with the source and the time

Only ``&``, ``<`` and ``>`` are escaped in user text, so an alert cannot ping
``<!channel>`` or a user, and nothing else is entity-encoded. A message
template's body (:func:`pixalert.channels.rendered_message` for ``mrkdwn``)
comes with its values already escaped and its own mrkdwn as written: it is
inserted as it is.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from pixalert import Alert, Priority
from pixalert.channels import AlertEvent, Group, rendered_message

__all__ = [
    "COLOURS",
    "MAX_BLOCKS",
    "MAX_FIELD",
    "MAX_FIELDS_PER_SECTION",
    "MAX_HEADER",
    "MAX_SECTION",
    "MAX_TEXT",
    "ACK_ACTION",
    "ACTIONS_BLOCK",
    "RESOLVED_COLOUR",
    "RESOLVE_ACTION",
    "action_block_id",
    "build_group_message",
    "build_message",
    "escape",
    "group_line",
    "slack_len",
    "summary",
    "truncate_escaped",
    "truncate_markup",
    "truncate_plain",
]

# Slack's documented limits (docs.slack.dev, Block Kit reference).
MAX_HEADER = 150
MAX_SECTION = 3000
MAX_FIELD = 2000
MAX_FIELDS_PER_SECTION = 10
MAX_TEXT = 40_000
MAX_BLOCKS = 50
MAX_CONTEXT_ELEMENT = 2000
# Our own budgets, to stay well under the aggregate size Slack rejects
# (``msg_blocks_too_long``, observed near 13,000 characters).
METADATA_BUDGET = 6000
MAX_METADATA_FIELDS = 40
MAX_KEY = 100
MAX_SOURCE = 300

COLOURS: Mapping[Priority, str] = {
    Priority.LOW: "#439FE0",
    Priority.MEDIUM: "#ECB22E",
    Priority.HIGH: "#E8710A",
    Priority.CRITICAL: "#E01E5A",
}
RESOLVED_COLOUR = "#2EB67D"

#: The ``action_id`` of the Acknowledge and Resolve buttons.
ACK_ACTION = "pixalert_ack"
RESOLVE_ACTION = "pixalert_resolve"
#: The start of the actions block's ``block_id`` (the rest is a digest of the alert key).
ACTIONS_BLOCK = "pixalert_actions:"

ELLIPSIS = "…"
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def slack_len(text: str) -> int:
    """Length as Slack may count it (UTF-16 code units): never less than ``len(text)``."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def escape(text: str) -> str:
    """Escape only ``&``, ``<`` and ``>``, as Slack asks for untrusted mrkdwn text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(pieces: list[str], limit: int, *, longer: bool) -> str:
    """Join ``pieces`` (each one unit: a character or an entity) within ``limit``.

    ``longer`` says the text went on beyond ``pieces`` (so it must be cut).
    """
    total = sum(slack_len(p) for p in pieces)
    if total <= limit and not longer:
        return "".join(pieces)
    room = limit - slack_len(ELLIPSIS)
    out: list[str] = []
    used = 0
    for piece in pieces:
        size = slack_len(piece)
        if used + size > room:
            break
        out.append(piece)
        used += size
    return "".join(out).rstrip() + ELLIPSIS


def truncate_escaped(text: str, limit: int) -> str:
    """``escape(text)`` cut to at most ``limit`` (ending in "…" when cut).

    The cut never splits an entity such as ``&amp;``.
    """
    head = text[: limit + 1]  # every character counts at least 1: nothing further fits
    return _cut([_ESCAPES.get(ch, ch) for ch in head], limit, longer=len(text) > len(head))


def truncate_markup(text: str, limit: int) -> str:
    """Already escaped mrkdwn ``text`` cut to at most ``limit`` (ending in "…" when cut),
    never splitting an entity such as ``&amp;``."""
    head = text[: limit + 1]
    pieces = re.findall(r"&(?:amp|lt|gt);|.", head, re.DOTALL)
    return _cut(pieces, limit, longer=len(text) > len(head))


def truncate_plain(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` (ending in "…" when cut), not escaped."""
    head = text[: limit + 1]
    return _cut(list(head), limit, longer=len(text) > len(head))


def summary(alert: Alert) -> str:
    """One line naming the alert: ``"[HIGH] Disk full"``, ``"RESOLVED [HIGH] Disk full"``."""
    title = " ".join(alert.title.split())
    prefix = "RESOLVED " if alert.resolved else ""
    return f"{prefix}[{alert.priority.name}] {title}"


def _text(kind: str, text: str) -> dict[str, Any]:
    obj: dict[str, Any] = {"type": kind, "text": text}
    if kind == "plain_text":
        obj["emoji"] = True  # plain_text is never parsed for mentions or links
    else:
        # No automatic parsing of plain words ("@channel", "#general"); the
        # mrkdwn formatting and our own <!date^...> / mention syntax still work.
        obj["verbatim"] = True
    return obj


def _value_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)


def _metadata_fields(metadata: Mapping[str, Any]) -> tuple[list[dict[str, Any]], int]:
    """mrkdwn field objects for ``metadata``, and how many items did not fit."""
    fields: list[dict[str, Any]] = []
    budget = METADATA_BUDGET
    items = list(metadata.items())
    for index, (key, value) in enumerate(items):
        if len(fields) >= MAX_METADATA_FIELDS or budget <= 0:
            return fields, len(items) - index
        label = "*" + truncate_escaped(" ".join(str(key).split()) or "-", MAX_KEY) + "*\n"
        room = min(MAX_FIELD, budget) - slack_len(label)
        if room < 20:
            return fields, len(items) - index
        body = truncate_escaped(_value_text(value), room) or " "
        text = label + body
        fields.append(_text("mrkdwn", text))
        budget -= slack_len(text)
    return fields, 0


def _time_text(when: datetime) -> str:
    utc = when.astimezone(timezone.utc)
    fallback = utc.strftime("%Y-%m-%d %H:%M:%S UTC")
    # Slack shows <!date^...> in the reader's own time zone.
    return f"<!date^{int(utc.timestamp())}^{{date_short_pretty}} {{time_secs}}|{fallback}>"


def action_block_id(key: str) -> str:
    """The ``block_id`` of the buttons of an alert with ``key``: it names the incident
    (a digest, so any key fits Slack's 255 characters) in the click Slack sends."""
    return ACTIONS_BLOCK + hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def _button(text: str, action_id: str, value: str, style: str | None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "action_id": action_id,
        "text": _text("plain_text", text),
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def _actions(alert: Alert, acknowledged: bool) -> dict[str, Any]:
    elements = []
    if not acknowledged:
        elements.append(_button("Acknowledge", ACK_ACTION, alert.id, "primary"))
    elements.append(_button("Resolve", RESOLVE_ACTION, alert.id, None))
    return {"type": "actions", "block_id": action_block_id(alert.key), "elements": elements}


def build_message(
    alert: Alert,
    *,
    mention: str | None = None,
    buttons: bool = False,
    acknowledged: AlertEvent | None = None,
) -> dict[str, Any]:
    """The Slack message for ``alert``: ``text``, ``blocks`` and ``attachments``.

    ``mention`` (Slack syntax, e.g. ``"<!here>"``) is added for a firing
    CRITICAL alert only. ``buttons`` adds Acknowledge and Resolve to a firing
    alert (Resolve only once ``acknowledged``, which also says who
    acknowledged it and when). Every text is within Slack's limits: long
    texts are cut cleanly rather than rejected by Slack.
    """
    head = summary(alert)
    message = alert.message.strip()
    pinging = (
        mention
        if (mention and alert.priority is Priority.CRITICAL and not alert.resolved)
        else None
    )

    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _text("plain_text", truncate_plain(head, MAX_HEADER))}
    ]
    if pinging:
        blocks.append({"type": "section", "text": _text("mrkdwn", f"{pinging} critical alert")})
    if buttons and not alert.resolved:
        blocks.append(_actions(alert, acknowledged is not None))

    details: list[dict[str, Any]] = []
    templated = rendered_message(alert, "mrkdwn")
    if templated is not None and templated.strip():
        details.append(
            {"type": "section", "text": _text("mrkdwn", truncate_markup(templated, MAX_SECTION))}
        )
    elif message:
        details.append(
            {"type": "section", "text": _text("mrkdwn", truncate_escaped(message, MAX_SECTION))}
        )
    fields, omitted = _metadata_fields(alert.metadata)
    for start in range(0, len(fields), MAX_FIELDS_PER_SECTION):
        details.append(
            {"type": "section", "fields": fields[start : start + MAX_FIELDS_PER_SECTION]}
        )
    context = [
        _text("mrkdwn", "*Source:* " + truncate_escaped(alert.source or "-", MAX_SOURCE)),
        _text("mrkdwn", _time_text(alert.created_at)),
    ]
    if alert.resolved:
        context.insert(0, _text("mrkdwn", ":white_check_mark: *Resolved*"))
    elif acknowledged is not None:
        context.insert(0, _text("mrkdwn", _acknowledged_text(acknowledged)))
    if omitted:
        context.append(_text("mrkdwn", f"_{omitted} more metadata field(s) not shown_"))
    details.append({"type": "context", "elements": context})
    # At most 2 + 1 + MAX_METADATA_FIELDS / 10 + 1 blocks: well under MAX_BLOCKS.

    fallback = head + (f": {message}" if message else "")
    if acknowledged is not None and not alert.resolved:
        who = " ".join((acknowledged.by or "").split())[:MAX_KEY]
        fallback = f"{head} (acknowledged{' by ' + who if who else ''})" + (
            f": {message}" if message else ""
        )
    prefix = f"{pinging} " if pinging else ""
    # The fallback carries at most the header and the section's worth of message.
    text = prefix + truncate_escaped(fallback, min(MAX_TEXT, MAX_SECTION + MAX_HEADER + 2))
    colour = RESOLVED_COLOUR if alert.resolved else COLOURS[alert.priority]
    return {
        "text": text,
        "blocks": blocks,
        "attachments": [{"color": colour, "blocks": details}],
    }


def _acknowledged_text(event: AlertEvent) -> str:
    who = " ".join((event.by or "").split())
    text = ":eyes: *Acknowledged*"
    if who:
        text += " by " + truncate_escaped(who, MAX_KEY)
    if event.via:
        text += " via " + truncate_escaped(event.via, MAX_KEY)
    text += " " + _time_text(event.at)
    if event.note:
        text += ": " + truncate_escaped(" ".join(event.note.split()), 500)
    return text


def unescape(text: str) -> str:
    """Undo :func:`escape` (for showing received text)."""
    return re.sub(r"&(amp|lt|gt);", lambda m: {"amp": "&", "lt": "<", "gt": ">"}[m[1]], text)


# ---------------------------------------------------------------------------
# Groups: one message for many alerts
# ---------------------------------------------------------------------------

#: Characters of alert lines one group message holds at most (under Slack's
#: ~13,000-character aggregate for blocks, with room for the header and context).
GROUP_LINES_BUDGET = 9000
#: Longest line for one alert of a group (title and the start of its message).
MAX_GROUP_LINE = 300
MAX_LINE_MESSAGE = 120


def group_line(group: Group, alert: Alert) -> str:
    """One alert of ``group`` as an mrkdwn line: ``• *[HIGH]* Disk full — 95% used``."""
    state = ":white_check_mark: " if alert.resolved else ""
    new = " :new:" if alert.id in group.new else ""
    title = " ".join(alert.title.split())
    text = f"{state}*[{alert.priority.name}]* {escape(title)}"
    message = " ".join(alert.message.split())
    if message:
        text += " — " + truncate_escaped(message, MAX_LINE_MESSAGE)
    if alert.source and alert.source != group.source:
        text += f" _({escape(alert.source)})_"
    return "• " + _cut_line(text + new, MAX_GROUP_LINE)


def _cut_line(text: str, limit: int) -> str:
    if slack_len(text) <= limit:
        return text
    return truncate_plain(text, limit)


def build_group_message(group: Group, *, mention: str | None = None) -> dict[str, Any]:
    """The Slack message for a group of alerts: one header with the counts, one line per
    alert (highest priority first, new ones marked), as many as fit in Slack's limits
    (50 blocks, 3,000 characters a section, ~13,000 in all), then "and N more".

    ``mention`` is added when a CRITICAL alert is new in the group.
    """
    templated = group.templated
    head = group.title() if templated is None else templated.title
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _text("plain_text", truncate_plain(head, MAX_HEADER))}
    ]
    pinging = (
        mention
        if mention
        and any(a.priority is Priority.CRITICAL and a.id in group.new for a in group.firing)
        else None
    )
    if pinging:
        blocks.append({"type": "section", "text": _text("mrkdwn", f"{pinging} critical alert")})
    if templated is not None:
        return _templated_group_message(group, templated, head, blocks, pinging)
    details: list[dict[str, Any]] = [
        {"type": "section", "text": _text("mrkdwn", f"*{escape(group.summary())}*")}
    ]
    # Room for the summary, the "and N more" context and the closing context.
    max_sections = MAX_BLOCKS - len(details) - 2
    sections: list[list[str]] = []
    used = 0
    shown = 0
    for alert in group.alerts:
        line = group_line(group, alert)
        size = slack_len(line) + 1
        if used + size > GROUP_LINES_BUDGET:
            break
        if sections and sum(slack_len(x) + 1 for x in sections[-1]) + size <= MAX_SECTION:
            sections[-1].append(line)
        elif len(sections) < max_sections:
            sections.append([line])
        else:
            break
        used += size
        shown += 1
    for lines in sections:
        details.append({"type": "section", "text": _text("mrkdwn", "\n".join(lines))})
    more = len(group.alerts) - shown
    if more:
        details.append({"type": "context", "elements": [_text("mrkdwn", f"_and {more} more_")]})
    context = [_text("mrkdwn", _time_text(group.created_at))]
    if group.labels:
        labels = ", ".join(f"{k}={v}" for k, v in group.labels.items())
        context.insert(0, _text("mrkdwn", "*Group:* " + truncate_escaped(labels, MAX_SOURCE)))
    if group.status == "resolved":
        context.insert(0, _text("mrkdwn", ":white_check_mark: *Resolved*"))
    details.append({"type": "context", "elements": context})
    fallback = f"{head}: {group.summary()}"
    prefix = f"{pinging} " if pinging else ""
    text = prefix + truncate_escaped(fallback, MAX_SECTION)
    colour = RESOLVED_COLOUR if group.status == "resolved" else COLOURS[group.priority]
    return {"text": text, "blocks": blocks, "attachments": [{"color": colour, "blocks": details}]}


def _templated_group_message(
    group: Group,
    templated: Alert,
    head: str,
    blocks: list[dict[str, Any]],
    pinging: str | None,
) -> dict[str, Any]:
    """A group's message whose body a message template made: the template's mrkdwn in
    place of the alert lines (values escaped by the template, not here)."""
    body = rendered_message(templated, "mrkdwn")
    if body is None:
        body = escape(templated.message)
    details: list[dict[str, Any]] = []
    if body.strip():
        details.append(
            {"type": "section", "text": _text("mrkdwn", truncate_markup(body, MAX_SECTION))}
        )
    context = [_text("mrkdwn", _time_text(group.created_at))]
    if group.status == "resolved":
        context.insert(0, _text("mrkdwn", ":white_check_mark: *Resolved*"))
    details.append({"type": "context", "elements": context})
    fallback = head + (f": {templated.message}" if templated.message.strip() else "")
    prefix = f"{pinging} " if pinging else ""
    text = prefix + truncate_escaped(fallback, MAX_SECTION)
    colour = RESOLVED_COLOUR if group.status == "resolved" else COLOURS[group.priority]
    return {"text": text, "blocks": blocks, "attachments": [{"color": colour, "blocks": details}]}


def sketch(message: Mapping[str, Any]) -> str:
    """A plain-text sketch of a Slack ``message`` (its blocks, one line or paragraph
    each; buttons as ``[Label]``), for previews."""
    lines: list[str] = []

    def text_of(item: Any) -> str:
        return str(item.get("text", "")) if isinstance(item, Mapping) else ""

    for block in message.get("blocks") or ():
        kind = block.get("type")
        if kind == "header":
            lines += [text_of(block.get("text")), "=" * min(60, len(text_of(block.get("text"))))]
        elif kind == "section":
            if block.get("text"):
                lines.append(text_of(block.get("text")))
            for field in block.get("fields") or ():
                lines.append(text_of(field))
        elif kind == "context":
            lines.append("  ".join(text_of(e) for e in block.get("elements") or ()))
        elif kind == "actions":
            lines.append(
                " ".join(f"[{text_of(e.get('text'))}]" for e in block.get("elements") or ())
            )
        elif kind == "divider":
            lines.append("---")
    for attachment in message.get("attachments") or ():
        for block in attachment.get("blocks") or ():
            lines.append(sketch({"blocks": [block]}))
    if not lines:
        lines.append(str(message.get("text", "")))
    return _plain("\n".join(line for line in lines if line != ""))


_DATE_TOKEN = re.compile(r"<!date\^[^|>]*\|([^>]*)>")
_LINK_TOKEN = re.compile(r"<([^|>!]+)\|([^>]*)>")


def _plain(text: str) -> str:
    """Slack markup as people read it: dates and links by their text, entities decoded."""
    text = _DATE_TOKEN.sub(r"\1", text)
    text = _LINK_TOKEN.sub(r"\2 (\1)", text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
