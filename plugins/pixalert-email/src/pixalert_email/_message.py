"""Building the email for an alert: a safe subject, text and HTML parts, and checked bytes.

The MIME bytes are written here directly (header lines, RFC 2047 encoded
words, quoted-printable bodies from :mod:`binascii`), not through the
``email`` package's header registry, which parsed every header on assignment
and refolded it on output: most of the CPU an email cost.

Header safety does not rest on the writer alone. Python before 3.11.10,
3.12.5 and 3.13.0 turns an RFC 2047 encoded newline in a header value
(``=?UTF-8?Q?=0A?=Bcc: x@example.com``) into a real header when the
``email`` package serialises a message (CVE-2024-6923), and a mail client
that refolds decoded text could do the same. So:

1. every header value built from user text is cleaned first: control
   characters and line/paragraph separators become spaces, and the ``=?``
   that opens an encoded word gets an invisible WORD JOINER (U+2060), so no
   encoded word can be recognised;
2. recipients and sender are plain addresses checked by the config (and
   checked again here);
3. after serialisation, the header block is scanned line by line and must
   hold exactly the headers written here, each line 7-bit and at most 998
   bytes, or the message is not sent.
"""

from __future__ import annotations

import binascii
import email.utils
import hashlib
import html
import json
import random
import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from pixalert import Alert, DeliveryError, Priority
from pixalert.channels import AlertLinks, Group, rendered_message

from ._config import check_address

__all__ = [
    "OutgoingEmail",
    "build_group_message",
    "build_message",
    "check_header_block",
    "clean_header_text",
    "group_message_id",
    "group_subject",
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


def clean_header_text(text: str) -> str:
    """``text`` made safe for a header value.

    Control characters (CR, LF, NUL, tab...), Unicode line and paragraph
    separators and bidirectional overrides become spaces, runs of spaces
    collapse, and every ``=?`` (the start of an RFC 2047 encoded word) gets an
    invisible word joiner so it stays literal text.
    """
    if text.isascii() and text.isprintable():  # no control characters: the common case
        return " ".join(text.split()).replace("=?", "=" + WORD_JOINER + "?")
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
    return _subject(alert, clean_header_text(alert.title))


def _subject(alert: Alert, title: str) -> str:
    if alert.resolved:
        return f"[RESOLVED] [{alert.priority.name}] {title}"
    return f"[{alert.priority.name}] {title}"


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


def _links_text(links: AlertLinks | None) -> list[str]:
    if links is None:
        return []
    until = links.expires_at.strftime("%Y-%m-%d %H:%M UTC")
    return [
        "",
        f"Acknowledge: {links.ack}",
        f"Resolve:     {links.resolve}",
        f"(These links ask you to confirm, and work until {until}.)",
    ]


def _plain(alert: Alert, subject_title: str, links: AlertLinks | None = None) -> str:
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
    lines += _links_text(links)
    lines += ["", "--", f"Sent by pixalert (alert id {alert.id})."]
    return "\n".join(lines) + "\n"


def _e(text: str) -> str:
    return html.escape(_body_text(text), quote=True)


def _links_html(links: AlertLinks | None, colour: str) -> str:
    if links is None:
        return ""
    until = links.expires_at.strftime("%Y-%m-%d %H:%M UTC")
    style = (
        "display:inline-block;padding:8px 16px;margin:0 8px 0 0;border-radius:4px;"
        "text-decoration:none;font-weight:bold"
    )
    return (
        '<p class="actions" style="margin:16px 0 4px">'
        f'<a href="{html.escape(links.ack, quote=True)}" '
        f'style="{style};background:{colour};color:#ffffff">Acknowledge</a>'
        f'<a href="{html.escape(links.resolve, quote=True)}" '
        f'style="{style};border:1px solid {colour};color:{colour}">Resolve</a></p>\n'
        f'<p style="color:#777;font-size:small;margin:0">These links ask you to confirm, '
        f"and work until {_e(until)}.</p>\n"
    )


def _html(alert: Alert, subject_title: str, links: AlertLinks | None = None) -> str:
    colour = _RESOLVED_COLOUR if alert.resolved else _COLOURS[alert.priority]
    status = "RESOLVED" if alert.resolved else "FIRING"
    templated = rendered_message(alert, "html")
    if templated is not None:  # a message template's HTML: its values are escaped already
        message = templated or "<em>(no message)</em>"
    else:
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
        f"{details}{_links_html(links, colour)}</div>\n"
        f'<p style="color:#777;font-size:small">Sent by pixalert (alert id {_e(alert.id)}).</p>\n'
        "</body></html>\n"
    )


# ---------------------------------------------------------------------------
# The message and its bytes
# ---------------------------------------------------------------------------

#: RFC 5322: lines should be at most 78 characters and must be at most 998.
MAX_LINE = 78
MAX_LINE_HARD = 998
_EW_PREFIX = "=?utf-8?b?"
_EW_SUFFIX = "?="
#: RFC 2047: an encoded word is at most 75 characters; 45 bytes are 60 in base64 (72 in all).
_EW_MAX_BYTES = 45

# Headers whose value is user text (RFC 2047 encoded words where needed), and
# structured headers that may be folded only after their separator.
_UNSTRUCTURED = frozenset({"subject"})
_LINE_BREAKING = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_FOLD_AFTER = {"to": ",", "content-type": ";"}

# A header line or a continuation line: 7-bit printable text, tab allowed.
_HEADER_LINE = re.compile(rb"(?:[!-9;-~]+:|[ \t])[ \t!-~]*")
_HEADER_BLOCK = re.compile(rb"(?:[!-9;-~]+:[ \t!-~]*\r\n(?:[ \t][ \t!-~]*\r\n)*)+")
_FIELD_NAME = re.compile(rb"^([!-9;-~]+):", re.MULTILINE)

_PART_HEAD = (
    'Content-Type: text/{subtype}; charset="utf-8"\r\n'
    "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
)
_TEXT_HEAD = _PART_HEAD.format(subtype="plain").encode("ascii")
_HTML_HEAD = _PART_HEAD.format(subtype="html").encode("ascii")

# Boundaries as the email package draws them: "=" never occurs twice in a row
# in quoted-printable, so the boundary cannot occur in a body (checked anyway).
_boundaries = random.Random()


class OutgoingEmail:
    """A built message: its headers in order (unencoded values), and its text and HTML bodies.

    Read a header as with :class:`email.message.EmailMessage`: ``msg["Subject"]``
    (``None`` when absent), :meth:`get_all`, ``for name in msg``.
    :func:`serialise` turns it into the bytes sent.
    """

    __slots__ = ("boundary", "headers", "html", "text")

    def __init__(
        self, headers: Sequence[tuple[str, str]], text: str, html: str, boundary: str
    ) -> None:
        self.headers = list(headers)
        self.text = text
        self.html = html
        self.boundary = boundary

    def __getitem__(self, name: str) -> str | None:
        key = name.lower()
        for header, value in self.headers:
            if header.lower() == key:
                return value
        return None

    def get_all(self, name: str) -> list[str]:
        """Every value of header ``name``, in order."""
        key = name.lower()
        return [value for header, value in self.headers if header.lower() == key]

    def __iter__(self) -> Iterator[str]:
        return (header for header, _ in self.headers)

    def __len__(self) -> int:
        return len(self.headers)

    def __repr__(self) -> str:
        return f"OutgoingEmail(subject={self['Subject']!r}, to={self['To']!r})"


def build_message(
    alert: Alert,
    *,
    sender: str,
    recipients: Sequence[str],
    previous: Mapping[str, str] | None = None,
    links: AlertLinks | None = None,
) -> OutgoingEmail:
    """The multipart/alternative message for ``alert`` (text and HTML, quoted-printable).

    ``links`` adds Acknowledge and Resolve links (signed, expiring) to both
    parts. Raises a permanent :class:`pixalert.DeliveryError` for an address
    that is not a plain ``name@domain``.
    """
    try:
        from_addr = check_address(sender, "sender")
        to_addrs = [check_address(r, "recipients") for r in recipients]
    except ValueError as exc:
        raise DeliveryError.permanent(f"email: {exc}") from None
    if not to_addrs:
        raise DeliveryError.permanent("email: no recipients")
    title = clean_header_text(alert.title)
    headers, boundary = _headers(
        _subject(alert, title),
        from_addr,
        to_addrs,
        alert.created_at,
        message_id_for(alert, from_addr),
        previous,
        alert.priority.name,
        clean_header_text(alert.status),
    )
    return OutgoingEmail(headers, _plain(alert, title, links), _html(alert, title, links), boundary)


def _headers(
    subject: str,
    from_addr: str,
    to_addrs: Sequence[str],
    date: datetime,
    message_id: str,
    previous: Mapping[str, str] | None,
    priority: str,
    status: str,
) -> tuple[list[tuple[str, str]], str]:
    """A message's header lines and its multipart boundary; a resolve (``previous``
    names the message it ends) is threaded under that message."""
    headers = [
        ("Subject", subject),
        ("From", from_addr),
        ("To", ", ".join(to_addrs)),
        ("Date", email.utils.format_datetime(date)),
        ("Message-ID", message_id),
    ]
    parent = (previous or {}).get("message_id")
    if parent and isinstance(parent, str) and _MESSAGE_ID.fullmatch(parent):
        headers += [("In-Reply-To", parent), ("References", parent)]
    boundary = f"==============={_boundaries.randrange(10**19):019d}=="
    headers += [
        ("Auto-Submitted", "auto-generated"),
        ("X-Pixalert-Priority", priority),
        ("X-Pixalert-Status", status),
        ("MIME-Version", "1.0"),
        ("Content-Type", f'multipart/alternative; boundary="{boundary}"'),
    ]
    return headers, boundary


def _encoded_words(data: bytes, room: int) -> Iterator[str]:
    """``data`` (UTF-8) as base64 encoded words, never splitting a character.

    The first word fits in ``room`` characters when any of the text does (else it is empty).
    """
    start, end_all = 0, len(data)
    while start < end_all:
        limit = min(_EW_MAX_BYTES, (room - len(_EW_PREFIX) - len(_EW_SUFFIX)) // 4 * 3)
        end = min(start + limit, end_all)
        while start < end < end_all and data[end] & 0xC0 == 0x80:
            end -= 1  # a UTF-8 continuation byte: cut before its character
        if end <= start:
            yield ""  # nothing fits here: the caller folds, then there is room
        else:
            chunk = binascii.b2a_base64(data[start:end], newline=False).decode("ascii")
            yield _EW_PREFIX + chunk + _EW_SUFFIX
            start = end
        room = MAX_LINE - 1


def _unstructured_line(name: str, value: str) -> str:
    """``Name: value`` folded at spaces to 78 columns; words that are not plain
    ASCII (or too long for a line) become RFC 2047 encoded words."""
    line = f"{name}:"
    lines: list[str] = []
    words = value.split(" ")
    plain = [w.isascii() and len(w) < MAX_LINE - 1 and "=?" not in w for w in words]
    i = 0
    while i < len(words):
        word = words[i]
        if plain[i]:
            if len(line) + 1 + len(word) > MAX_LINE:
                lines.append(line)
                line = ""
            line += " " + word
            i += 1
            continue
        # A run of words to encode, spaces and all (whitespace between two
        # encoded words is dropped when decoding, so it goes inside them).
        # An empty word (two spaces) inside a run is kept as a space in it.
        j = i + 1
        while j < len(words) and (not plain[j] or not words[j]):
            j += 1
        data = " ".join(words[i:j]).encode("utf-8")
        i = j
        for encoded in _encoded_words(data, MAX_LINE - len(line) - 1):
            if not encoded or len(line) + 1 + len(encoded) > MAX_LINE:
                lines.append(line)
                line = ""
            if encoded:
                line += " " + encoded
    lines.append(line)
    return "\r\n".join(lines) + "\r\n"


def _structured_line(name: str, value: str, after: str) -> str:
    """``Name: value``, folded after ``after`` (``,`` or ``;``) only when too long."""
    line = f"{name}: {value}"
    if len(line) <= MAX_LINE:
        return line + "\r\n"
    pieces = value.split(after + " ")
    out, line = [], f"{name}: {pieces[0]}"
    for piece in pieces[1:]:
        if len(line) + len(after) + 1 + len(piece) > MAX_LINE:
            out.append(line + after)
            line = " " + piece
        else:
            line += f"{after} {piece}"
    out.append(line)
    return "\r\n".join(out) + "\r\n"


def _header_line(name: str, value: str) -> str:
    key = name.lower()
    if key in _UNSTRUCTURED:
        if _LINE_BREAKING.search(value):
            # Never hide a line break inside an encoded word: clean_header_text first.
            raise ValueError(f"control characters in the {name} header")
        if value.isascii() and len(name) + 2 + len(value) <= MAX_LINE and "=?" not in value:
            return f"{name}: {value}\r\n"
        return _unstructured_line(name, value)
    if not value.isascii():
        raise ValueError(f"non-ASCII text in the {name} header")
    after = _FOLD_AFTER.get(key)
    if after is not None:
        return _structured_line(name, value, after)
    return f"{name}: {value}\r\n"  # a date, a message id, a word: not foldable


def _qp(text: str) -> bytes:
    """``text`` as UTF-8 quoted-printable with CRLF line ends (lines <= 76 characters)."""
    data = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    if not data.endswith(b"\n"):
        data += b"\n"
    return binascii.b2a_qp(data, istext=True).replace(b"\n", b"\r\n")


def check_header_block(data: bytes, expected: Mapping[str, int]) -> None:
    """Raise ``ValueError`` unless the top header block holds exactly ``expected`` headers.

    ``expected`` maps lower-case header names to how often each must occur.
    Continuation lines (starting with a space or tab) belong to the header
    above; every line must be 7-bit printable text (tabs allowed) of at most
    998 bytes.
    """
    end = data.find(b"\r\n\r\n")
    if end < 0:
        raise ValueError("no header/body separator")
    head = data[: end + 2]
    if not _HEADER_BLOCK.fullmatch(head):
        raise ValueError(_header_fault(head[:-2].split(b"\r\n")))
    if end > MAX_LINE_HARD and max(map(len, head.split(b"\r\n"))) > MAX_LINE_HARD:
        raise ValueError("a header line longer than 998 bytes")
    counts: dict[str, int] = {}
    for name in _FIELD_NAME.findall(head):
        key = name.decode("ascii").lower()
        counts[key] = counts.get(key, 0) + 1
    if counts != {k: n for k, n in expected.items() if n}:
        extra = sorted(k for k, n in counts.items() if n > expected.get(k, 0))
        missing = sorted(k for k, n in expected.items() if counts.get(k, 0) < n)
        raise ValueError(f"unexpected headers {extra}, missing headers {missing}")


def _header_fault(lines: list[bytes]) -> str:
    """What is wrong with header ``lines`` that the block pattern refused."""
    if lines[0][:1] in (b" ", b"\t"):
        return "a continuation line before the first header"
    for line in lines:
        if not _HEADER_LINE.fullmatch(line):
            if line[:1] in (b" ", b"\t") or b":" in line:
                return "stray control characters or 8-bit bytes in headers"
            return "a header line without a name"
    return "a malformed header block"  # pragma: no cover - the patterns agree


def serialise(msg: OutgoingEmail) -> bytes:
    """The message as SMTP bytes (CRLF, 7-bit, lines <= 998), after checking its header block.

    Raises a permanent :class:`pixalert.DeliveryError` if the headers written
    are not exactly the ones set: that would be an injection, and nothing is sent.
    """
    expected: dict[str, int] = {}
    lines = []
    try:
        for name, value in msg.headers:
            key = name.lower()
            if key not in _ALLOWED_HEADERS:
                raise DeliveryError.permanent(f"email: header {name!r} is not one pixalert writes")
            expected[key] = expected.get(key, 0) + 1
            lines.append(_header_line(name, value))
        head = "".join(lines).encode("ascii")
        check_header_block(head + b"\r\n", expected)
        delimiter = b"--" + msg.boundary.encode("ascii")
        text, page = _qp(msg.text), _qp(msg.html)
        if delimiter in text or delimiter in page:
            raise ValueError("the MIME boundary occurs in a body")
    except ValueError as exc:  # UnicodeEncodeError included
        raise DeliveryError.permanent(
            f"email: refusing to send a message whose headers could not be built safely ({exc})"
        ) from None
    return b"".join(
        (
            head,
            b"\r\n",
            delimiter,
            b"\r\n",
            _TEXT_HEAD,
            text,
            b"\r\n",
            delimiter,
            b"\r\n",
            _HTML_HEAD,
            page,
            b"\r\n",
            delimiter,
            b"--\r\n",
        )
    )


# ---------------------------------------------------------------------------
# Groups: one digest for many alerts
# ---------------------------------------------------------------------------

#: Longest Subject of a group digest, in characters (mail clients show ~60).
MAX_GROUP_SUBJECT = 150
#: Alerts a digest lists before "and N more".
MAX_DIGEST_ALERTS = 200
#: Characters of each alert's message a digest shows.
MAX_DIGEST_MESSAGE = 500


def _cut_text(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def group_subject(group: Group) -> str:
    """``[FIRING:3] source=db``, cleaned for a header and cut to 150 characters."""
    return _cut_text(clean_header_text(group.title()), MAX_GROUP_SUBJECT)


def group_message_id(group: Group, sender: str) -> str:
    """A Message-ID for one notification of ``group`` (the same on every retry of it)."""
    digest = hashlib.sha256(f"{group.key}\0{group.created_at.isoformat()}".encode()).hexdigest()
    domain = sender.rpartition("@")[2] or "pixalert.invalid"
    return f"<pixalert.group.{digest[:32]}@{domain}>"


def _group_plain(group: Group, subject: str) -> str:
    lines = [subject, "", group.summary(), ""]
    shown = group.alerts[:MAX_DIGEST_ALERTS]
    for alert in shown:
        lines.append(f"* {group.line(alert)}")
        message = _body_text(alert.message).strip()
        if message:
            for text in _cut_text(message, MAX_DIGEST_MESSAGE).splitlines():
                lines.append(f"    {text}")
        lines.append(f"    {alert.created_at.isoformat()}  key {_body_text(alert.key)}")
    more = len(group.alerts) - len(shown)
    if more:
        lines += ["", f"and {more} more"]
    if group.labels:
        lines += ["", "Group: " + ", ".join(f"{k}={v}" for k, v in group.labels.items())]
    lines += ["", "--", f"Sent by pixalert (group {group.key}, {group.reason})."]
    return "\n".join(lines) + "\n"


def _group_html(group: Group, subject: str) -> str:
    colour = _RESOLVED_COLOUR if group.status == "resolved" else _COLOURS[group.priority]
    cell = 'align="left" valign="top"'
    rows = []
    shown = group.alerts[:MAX_DIGEST_ALERTS]
    for alert in shown:
        state = "RESOLVED" if alert.resolved else "FIRING"
        tone = _RESOLVED_COLOUR if alert.resolved else _COLOURS[alert.priority]
        new = " <strong>new</strong>" if alert.id in group.new else ""
        message = _e(_cut_text(alert.message.strip(), MAX_DIGEST_MESSAGE)).replace("\n", "<br>\n")
        rows.append(
            f'<tr><td {cell} style="color:{tone};font-weight:bold">{state} '
            f"[{alert.priority.name}]</td>"
            f"<td {cell}><strong>{_e(alert.title)}</strong>{new}<br>\n{message}</td>"
            f"<td {cell}>{_e(alert.source)}</td>"
            f"<td {cell}>{_e(alert.created_at.isoformat())}</td></tr>"
        )
    more = len(group.alerts) - len(shown)
    tail = f"<p>and {more} more</p>\n" if more else ""
    labels = ", ".join(f"{k}={v}" for k, v in group.labels.items())
    group_line = f"<p>Group: {_e(labels)}</p>\n" if labels else ""
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head>\n'
        '<body style="font-family:sans-serif">\n'
        f'<div style="border-left:6px solid {colour};padding:8px 12px">\n'
        f'<h2 style="margin:4px 0 12px">{_e(subject)}</h2>\n'
        f"<p><strong>{_e(group.summary())}</strong></p>\n"
        f'<table class="alerts" cellpadding="4">\n'
        "<tr><th>state</th><th>alert</th><th>source</th><th>time</th></tr>\n"
        + "\n".join(rows)
        + f"\n</table>\n{tail}{group_line}</div>\n"
        f'<p style="color:#777;font-size:small">Sent by pixalert (group {_e(group.key)}, '
        f"{_e(group.reason)}).</p>\n"
        "</body></html>\n"
    )


def build_group_message(
    group: Group,
    *,
    sender: str,
    recipients: Sequence[str],
    previous: Mapping[str, str] | None = None,
) -> OutgoingEmail:
    """One digest email for a group: the counts, then each alert (highest priority first,
    at most :data:`MAX_DIGEST_ALERTS`, then "and N more"), as text and HTML. It threads
    under the group's previous digest when ``previous`` names its Message-ID."""
    try:
        from_addr = check_address(sender, "sender")
        to_addrs = [check_address(r, "recipients") for r in recipients]
    except ValueError as exc:
        raise DeliveryError.permanent(f"email: {exc}") from None
    if not to_addrs:
        raise DeliveryError.permanent("email: no recipients")
    templated = group.templated
    subject = (
        group_subject(group)
        if templated is None
        else _cut_text(clean_header_text(templated.title), MAX_GROUP_SUBJECT)
    )
    headers, boundary = _headers(
        subject,
        from_addr,
        to_addrs,
        group.created_at,
        group_message_id(group, from_addr),
        previous,
        group.priority.name,
        group.status,
    )
    if templated is not None:
        # A message template made the digest: its text and HTML, in the usual frame.
        return OutgoingEmail(
            headers, _plain(templated, subject), _html(templated, subject), boundary
        )
    return OutgoingEmail(
        headers, _group_plain(group, subject), _group_html(group, subject), boundary
    )
