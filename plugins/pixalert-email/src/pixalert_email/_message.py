"""Building the email for an alert: a safe subject, text and HTML parts, and checked bytes.

Header safety does not rest on the ``email`` package alone. Python before
3.11.10, 3.12.5 and 3.13.0 turns an RFC 2047 encoded newline in a header
value (``=?UTF-8?Q?=0A?=Bcc: x@example.com``) into a real header when the
message is serialised (CVE-2024-6923). So:

1. every header value built from user text is cleaned first: control
   characters and line/paragraph separators become spaces, and the ``=?``
   that opens an encoded word gets an invisible WORD JOINER (U+2060), so no
   encoded word can be recognised;
2. recipients and sender are plain addresses checked by the config;
3. after serialisation, the header block is parsed back and must hold
   exactly the headers written here, or the message is not sent.
"""

from __future__ import annotations

import email.errors
import email.policy
import email.utils
import html
import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Any

from pixalert import Alert, DeliveryError, Priority

__all__ = [
    "build_message",
    "check_header_block",
    "clean_header_text",
    "message_id_for",
    "serialise",
    "subject_for",
]

WORD_JOINER = "\u2060"
_BIDI_CONTROLS = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_SAFE_ID = re.compile(r"[^A-Za-z0-9._-]")
_MESSAGE_ID = re.compile(r"<[A-Za-z0-9._-]{1,200}@[A-Za-z0-9.-]{1,253}>")

# The only headers a message built here may carry (lower case).
_ALLOWED_HEADERS = {
    "subject",
    "from",
    "to",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    "auto-submitted",
    "x-pixalert-priority",
    "x-pixalert-status",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
}

_COLOURS = {
    Priority.LOW: "#2e7d32",
    Priority.MEDIUM: "#f9a825",
    Priority.HIGH: "#ef6c00",
    Priority.CRITICAL: "#c62828",
}
_RESOLVED_COLOUR = "#2e7d32"

SMTP_POLICY = email.policy.SMTP


def clean_header_text(text: str) -> str:
    """``text`` made safe for a header value.

    Control characters (CR, LF, NUL, tab...), Unicode line and paragraph
    separators and bidirectional overrides become spaces, runs of spaces
    collapse, and every ``=?`` (the start of an RFC 2047 encoded word) gets an
    invisible word joiner so it stays literal text.
    """
    out = []
    for char in text:
        category = unicodedata.category(char)
        if category in ("Cc", "Zl", "Zp") or char in _BIDI_CONTROLS:
            out.append(" ")
        else:
            out.append(char)
    cleaned = " ".join("".join(out).split())
    return cleaned.replace("=?", "=" + WORD_JOINER + "?")


def subject_for(alert: Alert) -> str:
    """``[PRIORITY] title``; a resolved alert reads ``[RESOLVED] [PRIORITY] title``."""
    prefix = f"[{alert.priority.name}]"
    if alert.resolved:
        prefix = f"[RESOLVED] {prefix}"
    return f"{prefix} {clean_header_text(alert.title)}"


def message_id_for(alert: Alert, sender: str) -> str:
    """A Message-ID that depends only on the alert's id, so every retry carries the same one."""
    local = _SAFE_ID.sub("", alert.id)[:100] or "alert"
    domain = sender.rpartition("@")[2] or "pixalert.invalid"
    return f"<pixalert.{local}@{domain}>"


def _body_text(text: str) -> str:
    """Message text with line endings normalised and NULs dropped."""
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


def _value_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _plain(alert: Alert, subject_title: str) -> str:
    status = "RESOLVED" if alert.resolved else "FIRING"
    lines = [
        f"{status} [{alert.priority.name}] {subject_title}",
        "",
        _body_text(alert.message) or "(no message)",
        "",
        f"Priority: {alert.priority.name}",
        f"Status:   {alert.status}",
        f"Source:   {_body_text(alert.source)}",
        f"Time:     {alert.created_at.isoformat()}",
        f"Key:      {_body_text(alert.key)}",
    ]
    if alert.metadata:
        lines += ["", "Details:"]
        for key, value in alert.metadata.items():
            lines.append(f"  {_body_text(str(key))}: {_body_text(_value_text(value))}")
    lines += ["", "--", f"Sent by pixalert (alert id {alert.id})."]
    return "\n".join(lines) + "\n"


def _e(text: str) -> str:
    return html.escape(_body_text(text), quote=True)


def _html(alert: Alert, subject_title: str) -> str:
    colour = _RESOLVED_COLOUR if alert.resolved else _COLOURS[alert.priority]
    status = "RESOLVED" if alert.resolved else "FIRING"
    message = _e(alert.message).replace("\n", "<br>\n") or "<em>(no message)</em>"
    facts = [
        ("Priority", alert.priority.name),
        ("Status", alert.status),
        ("Source", alert.source),
        ("Time", alert.created_at.isoformat()),
        ("Key", alert.key),
    ]
    cell = 'align="left" valign="top"'
    rows = "\n".join(f"<tr><th {cell}>{_e(k)}</th><td {cell}>{_e(v)}</td></tr>" for k, v in facts)
    details = ""
    if alert.metadata:
        meta_rows = "\n".join(
            f"<tr><th {cell}>{_e(str(k))}</th><td {cell}>{_e(_value_text(v))}</td></tr>"
            for k, v in alert.metadata.items()
        )
        details = (
            '<h3 style="margin:16px 0 4px">Details</h3>\n'
            f'<table class="metadata" cellpadding="4">\n{meta_rows}\n</table>\n'
        )
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head>\n'
        '<body style="font-family:sans-serif">\n'
        f'<div style="border-left:6px solid {colour};padding:8px 12px">\n'
        f'<p style="margin:0;color:{colour};font-weight:bold">'
        f"{status} [{alert.priority.name}]</p>\n"
        f'<h2 style="margin:4px 0 12px">{_e(subject_title)}</h2>\n'
        f"<p>{message}</p>\n"
        f'<table class="facts" cellpadding="4">\n{rows}\n</table>\n'
        f"{details}</div>\n"
        f'<p style="color:#777;font-size:small">Sent by pixalert (alert id {_e(alert.id)}).</p>\n'
        "</body></html>\n"
    )


def build_message(
    alert: Alert,
    *,
    sender: str,
    recipients: Sequence[str],
    previous: Mapping[str, str] | None = None,
) -> EmailMessage:
    """The multipart/alternative message for ``alert`` (text and HTML, quoted-printable)."""
    title = clean_header_text(alert.title)
    msg = EmailMessage(policy=SMTP_POLICY)
    msg["Subject"] = subject_for(alert)
    msg["From"] = Address(addr_spec=sender)
    msg["To"] = [Address(addr_spec=r) for r in recipients]
    msg["Date"] = email.utils.format_datetime(alert.created_at)
    msg["Message-ID"] = message_id_for(alert, sender)
    parent = (previous or {}).get("message_id")
    if parent and _MESSAGE_ID.fullmatch(parent):
        # Thread the resolve under the alert it ends.
        msg["In-Reply-To"] = parent
        msg["References"] = parent
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Pixalert-Priority"] = alert.priority.name
    msg["X-Pixalert-Status"] = alert.status
    msg.set_content(_plain(alert, title), subtype="plain", cte="quoted-printable")
    msg.add_alternative(_html(alert, title), subtype="html", cte="quoted-printable")
    return msg


def check_header_block(data: bytes, expected: Mapping[str, int]) -> None:
    """Raise ``ValueError`` unless the top header block holds exactly ``expected`` headers.

    ``expected`` maps lower-case header names to how often each must occur.
    Continuation lines (starting with a space or tab) belong to the header above.
    """
    head, sep, _ = data.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError("no header/body separator")
    counts: dict[str, int] = {}
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            continue
        name, colon, _ = line.partition(b":")
        if not colon:
            raise ValueError("a header line without a name")
        key = name.decode("ascii", "replace").strip().lower()
        counts[key] = counts.get(key, 0) + 1
    bare = head.replace(b"\r\n", b"")
    if any(c in bare for c in (b"\r", b"\n", b"\x00")):
        raise ValueError("stray control characters in headers")
    if counts != dict(expected):
        extra = sorted(k for k, n in counts.items() if n > expected.get(k, 0))
        missing = sorted(k for k, n in expected.items() if counts.get(k, 0) < n)
        raise ValueError(f"unexpected headers {extra}, missing headers {missing}")


def serialise(msg: EmailMessage) -> bytes:
    """The message as SMTP bytes (CRLF, 7-bit safe), after checking its header block.

    Raises a permanent :class:`pixalert.DeliveryError` if the headers written
    are not exactly the ones set: that would be an injection, and nothing is sent.
    """
    expected: dict[str, int] = {}
    for name in msg:
        key = name.lower()
        if key not in _ALLOWED_HEADERS:
            raise DeliveryError.permanent(f"email: header {name!r} is not one pixalert writes")
        expected[key] = expected.get(key, 0) + 1
    try:
        data = msg.as_bytes(policy=SMTP_POLICY)
        check_header_block(data, expected)
    except (email.errors.MessageError, ValueError) as exc:
        raise DeliveryError.permanent(
            f"email: refusing to send a message whose headers could not be built safely ({exc})"
        ) from None
    return data
