"""The MIME bytes written without the email package say what the email package would.

The oracle is the standard library: each message is parsed back with
``email.policy.default`` and compared with the same alert built the old way
(``EmailMessage`` with the SMTP policy), header by header and body by body.
The loopback tests send the same alerts through a real aiosmtpd server.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import random
import re
from datetime import datetime, timezone
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Any

import pytest
from pixalert import Alert, DeliveryError
from pixalert_email._message import (
    OutgoingEmail,
    build_message,
    check_header_block,
    clean_header_text,
    message_id_for,
    serialise,
    subject_for,
)
from pixalert_email.testing import SMTPTestServer

from .conftest import MakeChannel

SENDER = "alerts@example.com"
RECIPIENTS = ["ops@example.com"]
CREATED = datetime(2025, 8, 27, 12, 30, 5, tzinfo=timezone.utc)

LONG_WORD = "x" * 300
CASES: dict[str, dict[str, Any]] = {
    "plain": {"title": "Disk full", "message": "97% used on /var"},
    "metadata": {
        "title": "High Memory Usage Detected",
        "message": "Memory usage has exceeded 85% threshold on server-01",
        "metadata": {"server": "server-01", "usage": 87.5, "tags": ["a", "b"], "n": None},
    },
    "non-ascii": {"title": "Überlast auf Knoten ☃", "message": "Température: 95 °C\nこんにちは"},
    "cjk-title": {"title": "磁盘已满 " * 12, "message": "磁盘已满"},
    "emoji-run": {"title": "🔥" * 80, "message": "🔥" * 500},
    "long-ascii-title": {"title": "disk usage above threshold on host " * 12},
    "long-word-title": {"title": f"see {LONG_WORD} now"},
    "mixed-long-title": {"title": "Überlast " + "node-1 Ärger " * 20 + LONG_WORD},
    "two-spaces-and-tabs": {"title": "a\t\tb  é  é  c", "message": "a\tb  \t\nend   "},
    "cve": {"title": "A=?UTF-8?Q?=0A?=Bcc: x@example.com"},
    "cve-base64": {"title": "=?utf-8?b?Cg==?=Bcc: x@example.com"},
    "cve-folded": {"title": "Disk =?UTF-8?Q?=0A?=Bcc: x@example.com full " * 8},
    "cve-non-ascii": {"title": "é =?UTF-8?Q?=0A?=Bcc: x@example.com"},
    "crlf": {"title": "Disk full\r\nBcc: evil@example.com\r\n\r\nbody"},
    "separators": {"title": "a\u2028b\u2029c\x85d\x00e\x0bf\u202eg", "message": "x\u2028y\x00z"},
    "dots-and-from": {
        "title": ".",
        "message": ".\n..\n.hidden\nFrom me\n.\r\n=3D\n--===============0000000000000000000==\n",
    },
    "long-body-lines": {
        "title": "long lines",
        "message": "y" * 5000 + "\n" + ("word " * 400) + "\n" + "é" * 2000,
        "metadata": {"blob": "z" * 3000},
    },
    "cr-only": {"title": "cr", "message": "one\rtwo\r\nthree\n\rfour"},
    "html": {
        "title": "<script>alert('t')</script>",
        "message": '<img src=x onerror="alert(1)"> & more\n<b>bold</b>',
        "source": "<i>src</i>",
        "metadata": {"<b>key</b>": "</td><script>alert(2)</script>"},
    },
    "empty-message": {"title": "x", "message": ""},
    "resolved": {"title": "Disk full", "status": "resolved", "priority": "critical"},
}


def make_alert(case: str) -> Alert:
    return Alert(created_at=CREATED, **CASES[case])


def reference(alert: Alert, recipients: list[str], previous: Any = None) -> EmailMessage:
    """The message as pixalert-email built it with the email package (the oracle)."""
    from pixalert_email._message import _html, _plain

    title = clean_header_text(alert.title)
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["Subject"] = subject_for(alert)
    msg["From"] = Address(addr_spec=SENDER)
    msg["To"] = [Address(addr_spec=r) for r in recipients]
    msg["Date"] = email.utils.format_datetime(alert.created_at)
    msg["Message-ID"] = message_id_for(alert, SENDER)
    if previous:
        msg["In-Reply-To"] = previous["message_id"]
        msg["References"] = previous["message_id"]
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Pixalert-Priority"] = alert.priority.name
    msg["X-Pixalert-Status"] = alert.status
    msg.set_content(_plain(alert, title), subtype="plain", cte="quoted-printable")
    msg.add_alternative(_html(alert, title), subtype="html", cte="quoted-printable")
    return msg


def parse(data: bytes) -> EmailMessage:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def content(msg: EmailMessage, subtype: str) -> str:
    """The decoded text of the ``subtype`` body part, with newlines as in Python text."""
    part = msg.get_body((subtype,))
    assert part is not None
    text: str = part.get_content()
    return text.replace("\r\n", "\n")


def assert_same_message(data: bytes, ref: EmailMessage) -> None:
    """``data`` parses to what the email package's own message parses to."""
    ours = parse(data)
    theirs = parse(ref.as_bytes(policy=email.policy.SMTP))
    assert not ours.defects
    names = [k.lower() for k in ours]
    assert names == [k.lower() for k in theirs]
    for name in names:
        if name == "content-type":
            continue  # the boundary is random
        if name == "subject" and str(ours[name]) != str(theirs[name]):
            # The email package's refolding drops the space between two encoded
            # words in long non-ASCII subjects; ours keeps it (checked by callers
            # against subject_for). Apart from the spaces, the text is the same.
            assert str(ours[name]).replace(" ", "") == str(theirs[name]).replace(" ", "")
            continue
        assert str(ours[name]) == str(theirs[name]), name
    assert ours.get_content_type() == "multipart/alternative"
    assert ours.get_param("boundary") is not None
    ours_parts, their_parts = list(ours.iter_parts()), list(theirs.iter_parts())
    assert len(ours_parts) == len(their_parts) == 2
    for mine, ref_part in zip(ours_parts, their_parts, strict=True):
        assert not mine.defects
        assert mine.get_content_type() == ref_part.get_content_type()
        assert mine.get_content_charset() == "utf-8"
        assert mine["Content-Transfer-Encoding"] == "quoted-printable"
        assert mine.get_content() == ref_part.get_content()


def assert_wire_shape(data: bytes) -> None:
    """CRLF only, 7-bit, header lines <= 78 and every line <= 998 characters."""
    assert max(data) < 128
    assert b"\r" not in data.replace(b"\r\n", b"")
    assert b"\n" not in data.replace(b"\r\n", b"")
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep
    assert all(len(line) <= 78 for line in head.split(b"\r\n"))
    assert all(len(line) <= 76 for line in body.split(b"\r\n"))


def header_names(data: bytes) -> list[str]:
    head = data.partition(b"\r\n\r\n")[0]
    return [
        line.split(b":", 1)[0].decode().lower()
        for line in head.split(b"\r\n")
        if line[:1] not in (b" ", b"\t")
    ]


EXPECTED_NAMES = [
    "subject",
    "from",
    "to",
    "date",
    "message-id",
    "auto-submitted",
    "x-pixalert-priority",
    "x-pixalert-status",
    "mime-version",
    "content-type",
]


# ---------------------------------------------------------------------------
# Equivalence with the email package
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_message_as_the_email_package(case: str):
    alert = make_alert(case)
    msg = build_message(alert, sender=SENDER, recipients=RECIPIENTS)
    data = serialise(msg)
    assert_same_message(data, reference(alert, RECIPIENTS))
    assert_wire_shape(data)
    assert header_names(data) == EXPECTED_NAMES
    parsed = parse(data)
    assert str(parsed["Subject"]) == subject_for(alert)
    assert content(parsed, "plain") == msg.text
    assert content(parsed, "html") == msg.html


def test_user_text_survives_the_round_trip():
    alert = make_alert("non-ascii")
    parsed = parse(serialise(build_message(alert, sender=SENDER, recipients=RECIPIENTS)))
    assert str(parsed["Subject"]) == "[MEDIUM] Überlast auf Knoten ☃"
    text = content(parsed, "plain")
    assert "Température: 95 °C\nこんにちは\n" in text
    html = content(parsed, "html")
    assert "Température: 95 °C<br>\nこんにちは" in html


def test_non_ascii_subject_is_encoded_words_and_ascii_words_stay_readable():
    alert = make_alert("non-ascii")
    data = serialise(build_message(alert, sender=SENDER, recipients=RECIPIENTS))
    subject = data.split(b"\r\nFrom:", 1)[0]
    assert subject.startswith(b"Subject: [MEDIUM] =?utf-8?b?")
    assert b" auf Knoten =?utf-8?b?" in subject
    assert all(len(word) <= 75 for word in re.findall(rb"=\?[^ ]*\?=", data))


def test_long_subjects_fold_and_decode_exactly():
    for case in ("long-ascii-title", "long-word-title", "mixed-long-title", "cjk-title"):
        alert = make_alert(case)
        data = serialise(build_message(alert, sender=SENDER, recipients=RECIPIENTS))
        subject_lines = data.split(b"\r\nFrom:", 1)[0].split(b"\r\n")
        assert len(subject_lines) > 1, case
        assert all(len(line) <= 78 for line in subject_lines), case
        assert str(parse(data)["Subject"]) == subject_for(alert), case


def test_many_recipients_fold_the_to_header():
    recipients = [f"person.number.{i}@example.com" for i in range(40)]
    alert = make_alert("plain")
    data = serialise(build_message(alert, sender=SENDER, recipients=recipients))
    assert_wire_shape(data)
    assert_same_message(data, reference(alert, recipients))
    assert parse(data)["To"].addresses[39].addr_spec == "person.number.39@example.com"


def test_resolve_threads_under_the_alert():
    alert = make_alert("plain")
    previous = {"message_id": message_id_for(alert, SENDER)}
    resolved = alert.resolve("back to 40%")
    data = serialise(
        build_message(resolved, sender=SENDER, recipients=RECIPIENTS, previous=previous)
    )
    assert_same_message(data, reference(resolved, RECIPIENTS, previous))
    parsed = parse(data)
    assert parsed["In-Reply-To"] == parsed["References"] == previous["message_id"]
    assert str(parsed["Subject"]) == "[RESOLVED] [MEDIUM] Disk full"


@pytest.mark.parametrize(
    "previous",
    [
        {"message_id": "<x@y>\r\nBcc: evil@example.com"},
        {"message_id": "=?utf-8?q?=0A?=Bcc:x@y"},
        {"message_id": 42},
        {},
    ],
)
def test_a_bad_previous_message_id_is_left_out(previous: Any):
    msg = build_message(
        make_alert("resolved"), sender=SENDER, recipients=RECIPIENTS, previous=previous
    )
    data = serialise(msg)
    assert msg["In-Reply-To"] is None
    assert header_names(data) == EXPECTED_NAMES
    assert b"evil" not in data and b"Bcc" not in data


def test_random_titles_never_add_a_header():
    """Titles drawn from an alphabet of line breaks, encoded-word pieces and non-ASCII."""
    pieces = ["\r", "\n", "\r\n", "\x00", "\x0b", "\u2028", "\x85", "\t", " ", "  ", "=?", "?=",
              "=?UTF-8?Q?=0A?=", "=0A", "Bcc:", "To: x@example.com", "é", "☃", "🔥", "a", "word",
              "x" * 90, ":", ";", ",", '"', "\\", "<", ">", "\u2060", "\u202e"]  # fmt: skip
    rng = random.Random(6923)
    for _ in range(400):
        title = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 40))) + "."
        alert = Alert(title=title, created_at=CREATED)
        data = serialise(build_message(alert, sender=SENDER, recipients=RECIPIENTS))
        assert header_names(data) == EXPECTED_NAMES, title
        assert_wire_shape(data)
        parsed = parse(data)
        assert str(parsed["Subject"]) == subject_for(alert), title
        assert parsed["Bcc"] is None and not parsed.defects


# ---------------------------------------------------------------------------
# The message object
# ---------------------------------------------------------------------------


def test_outgoing_email_reads_like_a_message():
    alert = make_alert("plain")
    msg = build_message(alert, sender=SENDER, recipients=["a@example.com", "b@example.org"])
    assert isinstance(msg, OutgoingEmail)
    assert msg["Message-ID"] == message_id_for(alert, SENDER)
    assert msg["message-id"] == msg["Message-ID"]
    assert msg["To"] == "a@example.com, b@example.org"
    assert msg["Bcc"] is None
    assert msg.get_all("subject") == ["[MEDIUM] Disk full"]
    assert [name.lower() for name in msg] == EXPECTED_NAMES
    assert len(msg) == len(EXPECTED_NAMES)
    assert "Disk full" in repr(msg)


def test_every_message_has_its_own_boundary():
    alert = make_alert("plain")
    boundaries = {
        build_message(alert, sender=SENDER, recipients=RECIPIENTS).boundary for _ in range(50)
    }
    assert len(boundaries) == 50
    assert all(re.fullmatch(r"={15}\d{19}==", b) for b in boundaries)


@pytest.mark.parametrize(
    "sender, recipients",
    [
        ("alerts@example.com\r\nBcc: evil@example.com", RECIPIENTS),
        (SENDER, ["ops@example.com, evil@example.com"]),
        (SENDER, ["Ops <ops@example.com>"]),
        (SENDER, []),
    ],
)
def test_unchecked_addresses_are_refused(sender: str, recipients: list[str]):
    with pytest.raises(DeliveryError) as info:
        build_message(make_alert("plain"), sender=sender, recipients=recipients)
    assert not info.value.retryable


def test_serialise_refuses_headers_it_does_not_write():
    msg = build_message(make_alert("plain"), sender=SENDER, recipients=RECIPIENTS)
    msg.headers.append(("Bcc", "evil@example.com"))
    with pytest.raises(DeliveryError, match="'Bcc' is not one pixalert writes"):
        serialise(msg)


@pytest.mark.parametrize(
    "name, value",
    [
        ("To", "ops@example.com\r\nBcc: evil@example.com"),
        ("To", "ops@exämple.com"),
        ("X-Pixalert-Status", "firing\nBcc: evil@example.com"),
        ("Date", "x" * 1000),
        ("Subject", "\r\nBcc: evil@example.com"),
        ("Subject", "é\nBcc: evil@example.com"),
        ("Subject", "é\u2028Bcc: evil@example.com"),
    ],
)
def test_serialise_refuses_a_header_value_that_breaks_the_block(name: str, value: str):
    """Values that skipped the builder's cleaning are caught by the final check."""
    msg = build_message(make_alert("plain"), sender=SENDER, recipients=RECIPIENTS)
    msg.headers = [(n, value if n == name else v) for n, v in msg.headers]
    with pytest.raises(DeliveryError, match="could not be built safely") as info:
        serialise(msg)
    assert not info.value.retryable


def test_serialise_refuses_a_boundary_found_in_a_body():
    msg = build_message(make_alert("plain"), sender=SENDER, recipients=RECIPIENTS)
    msg.boundary = "abc"
    msg.text = "x\n--abc\n"
    with pytest.raises(DeliveryError, match="boundary"):
        serialise(msg)


# ---------------------------------------------------------------------------
# The header block check
# ---------------------------------------------------------------------------

GOOD = b"Subject: a\r\n b\r\nTo: x@example.com\r\n\r\nbody\r\nBcc: not a header\r\n"


def test_check_header_block_accepts_exactly_the_headers_written():
    check_header_block(GOOD, {"subject": 1, "to": 1})
    check_header_block(GOOD, {"subject": 1, "to": 1, "bcc": 0})


@pytest.mark.parametrize(
    "data, expected, message",
    [
        (GOOD, {"subject": 1}, r"unexpected headers \['to'\], missing headers \[\]"),
        (GOOD, {"subject": 1, "to": 1, "date": 1}, r"missing headers \['date'\]"),
        (GOOD, {"subject": 2, "to": 1}, r"missing headers \['subject'\]"),
        (b"Subject: a\nBcc: b\r\n\r\n", {"subject": 1}, "stray control"),
        (b"Subject: a\rBcc: b\r\n\r\n", {"subject": 1}, "stray control"),
        (b"Subject: a\x00\r\n\r\n", {"subject": 1}, "stray control"),
        (b"Subject: \xc3\xa9\r\n\r\n", {"subject": 1}, "stray control"),
        (b"Subject: a\r\n \x85\r\n\r\n", {"subject": 1}, "stray control"),
        (b"Subject a\r\n\r\n", {"subject": 1}, "without a name"),
        (b"Sub ject: a\r\n\r\n", {"subject": 1}, "stray control"),
        (b" Subject: a\r\n\r\n", {"subject": 1}, "continuation line before"),
        (b"\r\n\r\n", {}, "without a name"),
        (b"Subject: a\r\n", {"subject": 1}, "no header/body separator"),
        (b"Subject: " + b"a" * 990 + b"\r\n\r\n", {"subject": 1}, "longer than 998"),
    ],
)
def test_check_header_block_refuses(data: bytes, expected: dict[str, int], message: str):
    with pytest.raises(ValueError, match=message):
        check_header_block(data, expected)


# ---------------------------------------------------------------------------
# Through a real SMTP server on loopback
# ---------------------------------------------------------------------------


async def test_every_case_arrives_as_the_email_package_would_send_it(
    smtp_server: SMTPTestServer, make_channel: MakeChannel
):
    channel = make_channel(smtp_server)
    cases = sorted(CASES)
    alerts = [make_alert(case) for case in cases]
    for alert in alerts:
        receipt = await channel.send(alert)
        assert receipt == {"message_id": message_id_for(alert, SENDER)}
    assert channel.connections == 1
    assert len(smtp_server.received) == len(cases)
    for case, alert, received in zip(cases, alerts, smtp_server.received, strict=True):
        assert received.rcpt_tos == ("ops@example.com",), case
        # What arrived (after the server's dot-unstuffing) is what was built.
        built = serialise(build_message(alert, sender=SENDER, recipients=RECIPIENTS))
        assert (
            received.data.split(b"\r\n\r\n", 1)[0].split(b"boundary=")[0]
            == (built.split(b"\r\n\r\n", 1)[0].split(b"boundary=")[0])
        ), case
        assert_same_message(received.data, reference(alert, RECIPIENTS))
        assert_wire_shape(received.data)
        assert received.subject == subject_for(alert), case


async def test_body_lines_starting_with_a_dot_survive_smtp(
    smtp_server: SMTPTestServer, make_channel: MakeChannel
):
    alert = make_alert("dots-and-from")
    await make_channel(smtp_server).send(alert)
    [received] = smtp_server.received
    text = content(received.message, "plain")
    assert "\n.\n..\n.hidden\nFrom me\n.\n=3D\n--===============0000000000000000000==\n" in text
