"""TLS is required and verified, AUTH never goes in clear, and no header can be injected."""

from __future__ import annotations

import email
import email.policy
import sys
from email.message import EmailMessage

import aiosmtplib
import pytest
from pixalert import Alert, ConfigError, DeliveryError
from pixalert_email.testing import SMTPTestServer

from .conftest import MakeChannel, build_config

CVE_TITLE = "A=?UTF-8?Q?=0A?=Bcc: x@example.com"


def header_block(data: bytes) -> list[bytes]:
    """The raw header lines of a message (continuation lines kept apart)."""
    return data.partition(b"\r\n\r\n")[0].split(b"\r\n")


def header_names(data: bytes) -> list[str]:
    """Names of the top-level headers, in order, as the bytes say."""
    return [
        line.split(b":", 1)[0].decode().lower()
        for line in header_block(data)
        if line[:1] not in (b" ", b"\t")
    ]


# ---------------------------------------------------------------------------
# TLS and AUTH
# ---------------------------------------------------------------------------


async def test_server_without_starttls_is_refused_before_auth(make_channel: MakeChannel):
    async with SMTPTestServer(offer_starttls=False) as server:
        channel = make_channel(server)
        with pytest.raises(DeliveryError) as info:
            await channel.send(Alert(title="Disk full"))
        assert info.value.retryable is False
        assert "does not offer STARTTLS" in info.value.message
        assert server.password is not None and server.password not in info.value.message
        assert server.auth_attempts == []
        assert [c.endpoint for c in server.requests] == ["EHLO"]
        assert server.received == []


async def test_stripped_server_does_catch_an_opportunistic_client():
    """The control: aiosmtplib's default (start_tls=None) sends AUTH in clear here."""
    async with SMTPTestServer(offer_starttls=False) as server:
        msg = EmailMessage()
        msg["Subject"] = "hi"
        msg.set_content("hi")
        await aiosmtplib.send(
            msg,
            sender="alerts@example.com",
            recipients=["ops@example.com"],
            hostname=server.host,
            port=server.port,
            username=server.username,
            password=server.password,
        )
        assert [a.tls for a in server.auth_attempts] == [False]


async def test_server_refuses_mail_before_starttls(smtp_server: SMTPTestServer):
    """The test server enforces the contract too: no MAIL and no AUTH in clear text."""
    smtp = aiosmtplib.SMTP(hostname=smtp_server.host, port=smtp_server.port, start_tls=False)
    await smtp.connect()
    try:
        await smtp.ehlo()
        assert not smtp.supports_extension("auth")
        with pytest.raises(aiosmtplib.SMTPSenderRefused) as info:
            await smtp.mail("alerts@example.com")
        assert info.value.code == 530
    finally:
        await smtp.quit()


@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_auth_only_after_tls(make_channel: MakeChannel, security: str):
    async with SMTPTestServer(security=security) as server:  # type: ignore[arg-type]
        await make_channel(server).send(Alert(title="Disk full"))
        auth = [c for c in server.requests if c.endpoint == "AUTH"]
        assert len(auth) == 1 and all(c.tls for c in auth)
        assert all(c.tls for c in server.requests if c.endpoint in ("MAIL", "RCPT", "DATA"))


@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_untrusted_certificate_is_a_permanent_error(make_channel: MakeChannel, security: str):
    async with SMTPTestServer(security=security) as server:  # type: ignore[arg-type]
        channel = make_channel(server, ca_file=None)  # the system store: self-signed fails
        with pytest.raises(DeliveryError) as info:
            await channel.send(Alert(title="Disk full"))
        assert info.value.retryable is False
        assert "certificate" in info.value.message
        assert server.auth_attempts == []
        assert server.received == []


async def test_verify_certs_false_accepts_a_self_signed_certificate(make_channel: MakeChannel):
    async with SMTPTestServer() as server:
        channel = make_channel(server, ca_file=None, verify_certs=False)
        await channel.send(Alert(title="Disk full"))
        assert server.received[0].tls


async def test_broken_ca_file_is_a_permanent_error(make_channel: MakeChannel, tmp_path):
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n")
    async with SMTPTestServer() as server:
        channel = make_channel(server, ca_file=str(bad))
        with pytest.raises(DeliveryError) as info:
            await channel.send(Alert(title="Disk full"))
        assert info.value.retryable is False
        assert "ca_file" in info.value.message


# ---------------------------------------------------------------------------
# Header injection, checked on the bytes the server received
# ---------------------------------------------------------------------------


@pytest.mark.skipif(
    sys.version_info >= (3, 11, 10) or (3, 12) <= sys.version_info < (3, 12, 5),
    reason="needs a Python with CVE-2024-6923 (this machine's 3.11.7)",
)
def test_this_python_is_vulnerable_to_cve_2024_6923():
    """Why the channel cleans titles itself: plain EmailMessage makes a real Bcc header."""
    msg = EmailMessage()
    msg["Subject"] = CVE_TITLE
    msg.set_content("x")
    assert b"\nBcc: x@example.com" in msg.as_bytes(policy=email.policy.SMTP)


@pytest.mark.parametrize(
    "title",
    [
        CVE_TITLE,
        "=?utf-8?b?Cg==?=Bcc: x@example.com",
        "=?UTF-8?Q?=0D=0A?=Bcc: x@example.com",
        "Disk =?UTF-8?Q?=0A?=Bcc: x@example.com full " * 8,  # the folding path
        "é =?UTF-8?Q?=0A?=Bcc: x@example.com",  # the non-ASCII path
    ],
    ids=["cve", "base64", "crlf-q", "folded", "non-ascii"],
)
async def test_encoded_newline_in_title_adds_no_header(
    smtp_server: SMTPTestServer, make_channel: MakeChannel, title: str
):
    await make_channel(smtp_server).send(Alert(title=title))
    [msg] = smtp_server.received
    assert "bcc" not in header_names(msg.data)
    assert b"\nBcc:" not in msg.data and b"\nbcc:" not in msg.data.lower().replace(b"\r", b"")
    assert msg.message["Bcc"] is None
    assert msg.rcpt_tos == ("ops@example.com",)
    assert header_names(msg.data).count("subject") == 1
    # The text is kept, visibly, just never read as an encoded word.
    assert msg.subject.replace("\u2060", "").startswith("[MEDIUM] ")
    assert "Bcc: x@example.com" in msg.subject


@pytest.mark.parametrize(
    "title",
    [
        "Disk full\r\nBcc: evil@example.com",
        "Disk full\nBcc: evil@example.com",
        "Disk full\rBcc: evil@example.com",
        "Disk full\x00Bcc: evil@example.com",
        "Disk full\u2028Bcc: evil@example.com",
        "Disk full\x85Bcc: evil@example.com",
        "Disk full\x0bBcc: evil@example.com\x0c",
        "Disk full\r\n\r\nbody injection",
    ],
)
async def test_control_characters_in_title_add_no_header(
    smtp_server: SMTPTestServer, make_channel: MakeChannel, title: str
):
    await make_channel(smtp_server).send(Alert(title=title))
    [msg] = smtp_server.received
    names = header_names(msg.data)
    assert "bcc" not in names
    assert names.count("subject") == 1
    assert msg.message["Bcc"] is None
    assert b"\x00" not in msg.data.partition(b"\r\n\r\n")[0]
    assert "\n" not in msg.subject and "\r" not in msg.subject
    assert msg.subject.startswith("[MEDIUM] Disk full ")


@pytest.mark.parametrize(
    "field, value",
    [
        ("recipients", ["ops@example.com\r\nBcc: evil@example.com"]),
        ("recipients", ["ops@example.com>\r\nRCPT TO:<evil@example.com"]),
        ("recipients", ["ops@example.com\x00"]),
        ("recipients", ["Ops <ops@example.com>"]),
        ("recipients", ["ops@example.com, evil@example.com"]),
        ("recipients", "ops@example.com,evil@example.com\nBcc: x@example.com"),
        ("sender", "alerts@example.com\r\nBcc: evil@example.com"),
    ],
)
def test_addresses_with_injections_are_config_errors(field: str, value: object):
    section = {"recipients": ["ops@example.com"], "sender": "alerts@example.com", field: value}
    with pytest.raises(ConfigError) as info:
        build_config(section)
    assert "@ channels.email" in str(info.value)
    assert "expected an email address like name@example.com" in str(info.value)


# ---------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------


async def test_user_text_is_escaped_in_html(smtp_server: SMTPTestServer, make_channel: MakeChannel):
    alert = Alert(
        title="<script>alert('t')</script>",
        message='<img src=x onerror="alert(1)"> & more\n<b>bold</b>',
        source="<i>src</i>",
        metadata={"<b>key</b>": "</td><script>alert(2)</script>", "list": ["<a>", 1]},
    )
    await make_channel(smtp_server).send(alert)
    msg = smtp_server.received[0].message
    html = msg.get_body(("html",)).get_content()
    assert "<script>" not in html and "<img" not in html and "<b>" not in html
    assert "<i>" not in html and "<a>" not in html
    assert "&lt;script&gt;alert(&#x27;t&#x27;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt; &amp; more<br>" in html
    assert "&lt;b&gt;key&lt;/b&gt;" in html
    assert "&lt;/td&gt;&lt;script&gt;alert(2)&lt;/script&gt;" in html
    assert "&lt;i&gt;src&lt;/i&gt;" in html
    # The text part keeps the text as it is.
    text = msg.get_body(("plain",)).get_content()
    assert "<script>alert('t')</script>" in text
    assert '<img src=x onerror="alert(1)"> & more' in text


def test_parsed_message_of_received_bytes_matches():
    """The helper's parse is the standard one, so assertions above read real headers."""
    raw = b"Subject: x\r\nBcc: y@example.com\r\n\r\nbody\r\n"
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Bcc"] == "y@example.com"
    assert header_names(raw) == ["subject", "bcc"]


# ---------------------------------------------------------------------------
# Logs
# ---------------------------------------------------------------------------


def test_aiosmtplib_log_records_are_masked(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from pixalert.channels import register_secret

    register_secret("smtp-pa55word-3b7e9f")  # as the channel does with its password
    caplog.set_level(logging.DEBUG)
    names = [
        "aiosmtplib",
        *(n for n in logging.Logger.manager.loggerDict if n.startswith("aiosmtplib.")),
    ]
    for name in names:
        logging.getLogger(name).debug("AUTH PLAIN %s", "smtp-pa55word-3b7e9f")
    assert len(caplog.records) == len(names)
    assert "smtp-pa55word-3b7e9f" not in caplog.text


def test_every_logger_aiosmtplib_makes_carries_pixalerts_filter() -> None:
    import subprocess

    script = (
        "import logging, aiosmtplib, pixalert\n"
        "from pixalert.channels import register_secret\n"
        "register_secret('smtp-pa55word-3b7e9f')\n"
        "loggers = [l for n, l in logging.Logger.manager.loggerDict.items()\n"
        "           if n.split('.')[0] == 'aiosmtplib' and isinstance(l, logging.Logger)]\n"
        "assert loggers\n"
        "for l in loggers:\n"
        "    assert any(isinstance(f, pixalert.SecretFilter) for f in l.filters), l.name\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
