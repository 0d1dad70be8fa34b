"""Groups by email: one digest (text and HTML) per notification, its subject cut, each
digest threaded under the previous one, and the test server holding lines to RFC 5321."""

from __future__ import annotations

import aiosmtplib
import pixalert_email
import pytest
from pixalert import Alert
from pixalert.channels import Group
from pixalert.testing import FakeClock, make_manager
from pixalert_email._message import MAX_GROUP_SUBJECT, build_group_message, serialise
from pixalert_email.testing import SMTPTestServer


def group_of(n: int, labels: dict[str, str] | None = None) -> Group:
    alerts = [
        Alert(f"Disk full on db-{i}", "95% used\nsecond line", "high" if i % 2 else "low")
        for i in range(n)
    ]
    return Group("email|0|abc", labels or {"source": "db"}, alerts, new={alerts[1].id})


def test_a_digest_lists_alerts_by_priority_then_and_n_more() -> None:
    msg = build_group_message(group_of(250), sender="a@example.com", recipients=["b@example.com"])
    assert msg["Subject"] == "[FIRING:250] source=db"
    data = serialise(msg)  # checks every header line
    assert b"and 50 more" in data
    lines = msg.text.splitlines()
    assert lines[2] == "250 firing (125 high, 125 low)"
    assert lines[4] == "* [HIGH] Disk full on db-1 (new)"
    assert "and 50 more" in msg.html and "<strong>new</strong>" in msg.html


def test_a_long_group_subject_is_cut() -> None:
    group = group_of(2, {"service": "x" * 400, "env": "prod\r\nBcc: evil@example.com"})
    msg = build_group_message(group, sender="a@example.com", recipients=["b@example.com"])
    subject = msg["Subject"] or ""
    assert len(subject) <= MAX_GROUP_SUBJECT and subject.endswith("…")
    assert "\n" not in subject and "\r" not in subject
    serialise(msg)


GROUPING = {"group_by": ["source"], "group_wait": "30s", "group_interval": "5m"}


async def test_one_digest_per_notification_threaded(smtp_server: SMTPTestServer) -> None:
    clock = FakeClock()
    config = {"channels": {"email": smtp_server.config()}, "grouping": GROUPING}
    async with make_manager(plugins=[pixalert_email], clock=clock, config=config) as manager:
        for i in range(3):
            await manager.send_alert(f"Disk {i}", "m", "medium", source="db", channels=["email"])
        clock.advance(30)
        await manager.resume_pending()
        await manager.send_alert("Disk 3", "m", "high", source="db", channels=["email"])
        clock.advance(300)
        await manager.resume_pending()
    first, second = smtp_server.received
    assert first.subject == "[FIRING:3] source=db"
    assert second.subject == "[FIRING:4] source=db"
    assert second.message["In-Reply-To"] == first.message["Message-ID"]
    text = second.message.get_body(("plain",)).get_content()
    assert "* [HIGH] Disk 3 (new)" in text and text.count("* [MEDIUM]") == 3
    assert second.message.get_body(("html",)) is not None


async def test_the_server_refuses_a_line_over_998_octets() -> None:
    async with SMTPTestServer(security="none", username=None, password=None) as server:
        body = b"Subject: x\r\n\r\n" + b"a" * 1200 + b"\r\n"
        with pytest.raises(aiosmtplib.SMTPDataError, match="Line too long"):
            await aiosmtplib.send(
                body,
                sender="a@example.com",
                recipients=["b@example.com"],
                hostname=server.host,
                port=server.port,
            )
        assert not server.received
        assert "Line too long" in server.rejections[-1].reason
