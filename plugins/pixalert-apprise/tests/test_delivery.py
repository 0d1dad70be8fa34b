"""What Apprise really sends for an alert, to real services on loopback."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from pixalert import Alert, DeliveryError

from .conftest import MakeChannel

ALERT = Alert(
    title="Disk full",
    message="95% used on db-1\nsecond line <b>&</b> *stars*",
    priority="high",
    metadata={"host": "db-1", "used": 0.95},
    source="monitoring",
)


async def test_json_form_and_xml_bodies(sink: Any, make_channel: MakeChannel) -> None:
    channel = make_channel({"urls": [sink.url_of("json"), sink.url_of("form"), sink.url_of("xml")]})
    receipt = await channel.send(ALERT)
    assert receipt == {"services": "json, form, xml", "targets": "3"}
    by_kind = {n.kind: n for n in sink.notifications}
    assert sorted(by_kind) == ["form", "json", "xml"]
    for n in by_kind.values():
        assert n.title == "[HIGH] Disk full"
        # Each of these services takes plain text: the alert's text arrives as written.
        assert n.message.startswith("95% used on db-1\nsecond line <b>&</b> *stars*\n\n")
        assert "priority: HIGH" in n.message and "host: db-1" in n.message
        assert "source: monitoring" in n.message and "used: 0.95" in n.message
    data = json.loads(by_kind["json"].body)
    assert data["type"] == "failure" and data["version"] == "1.0"
    assert by_kind["json"].headers["content-type"] == "application/json"
    assert by_kind["form"].fields["type"] == "failure"
    assert by_kind["form"].headers["content-type"] == "application/x-www-form-urlencoded"
    assert by_kind["xml"].type == "failure"
    assert by_kind["xml"].headers["content-type"] == "application/xml"


@pytest.mark.parametrize(
    ("priority", "status", "expected"),
    [
        ("low", "firing", "info"),
        ("medium", "firing", "warning"),
        ("high", "firing", "failure"),
        ("critical", "firing", "failure"),
        ("critical", "resolved", "success"),
    ],
)
async def test_priority_becomes_the_notify_type(
    sink: Any, make_channel: MakeChannel, priority: str, status: str, expected: str
) -> None:
    channel = make_channel({"urls": [sink.url_of("json")]})
    await channel.send(Alert("CPU hot", "90%", priority, status=status))  # type: ignore[arg-type]
    [n] = sink.notifications
    assert n.type == expected
    label = "RESOLVED" if status == "resolved" else priority.upper()
    assert n.title == f"[{label}] CPU hot"


async def test_markdown_service_gets_escaped_markdown(sink: Any, make_channel: MakeChannel) -> None:
    # ?format=markdown makes json:// a Markdown service: the body is rendered for it.
    channel = make_channel({"urls": [sink.url_of("json") + "?format=markdown"]})
    await channel.send(ALERT)
    [n] = sink.notifications
    assert n.message.startswith(r"95% used on db-1" + "\n" + r"second line \<b\>&\</b\> \*stars\*")
    assert "**priority:** HIGH" in n.message and "**host:** db-1" in n.message


async def test_ntfy_to_a_local_stand_in(sink: Any, make_channel: MakeChannel) -> None:
    channel = make_channel({"urls": [sink.url_of("ntfy")]})
    await channel.send(ALERT)
    [n] = sink.notifications
    assert n.kind == "ntfy" and n.path == f"/demo-{sink.token}"
    assert n.title == "[HIGH] Disk full" and "host: db-1" in n.message


async def test_mailto_to_aiosmtpd(smtp: Any, make_channel: MakeChannel) -> None:
    channel = make_channel({"urls": [smtp.mailto_url("ops@example.com")]})
    await channel.send(ALERT)
    await channel.send(ALERT.resolve())
    first, resolved = smtp.messages
    assert first.rcpt_tos == ("ops@example.com",)
    assert first.authenticated_as == smtp.username
    assert first.subject == "[HIGH] Disk full"
    assert resolved.subject == "[RESOLVED] Disk full"
    # Email is an HTML service: the HTML part escapes the alert's text and tabulates facts.
    html = first.message.get_body(("html",)).get_content()
    assert "second line &lt;b&gt;&amp;&lt;/b&gt; *stars*" in html
    assert "<td><b>host</b></td><td>db-1</td>" in html


async def test_mailto_is_not_paced_by_apprise(smtp: Any, make_channel: MakeChannel) -> None:
    # As shipped, Apprise's email service waits 5.5 s between messages; pixalert paces.
    channel = make_channel({"urls": [smtp.mailto_url()]})
    [target] = channel._targets
    [service] = list(target.notifier)
    assert (service.request_rate_per_sec, service.retry, service.wait) == (0, 0, 0)
    await asyncio.gather(*(channel.send(Alert(f"alert {i}", "", "low")) for i in range(5)))
    assert len(smtp.messages) == 5


async def test_apprise_retries_in_the_url_are_turned_off(
    sink: Any, make_channel: MakeChannel
) -> None:
    channel = make_channel({"urls": [sink.url_of("json") + "?retry=3&wait=2"]})
    sink.fail(503, times=4)
    with pytest.raises(DeliveryError) as caught:
        await channel.send(ALERT)
    assert caught.value.retryable
    assert [r.status for r in sink.requests] == [503]  # one request, no Apprise retry


async def test_a_partial_failure_is_retried_only_where_it_failed(
    sink: Any, make_channel: MakeChannel, closed_port: int
) -> None:
    dead = sink.url_of("form").replace(f":{sink.port}/", f":{closed_port}/")
    channel = make_channel({"urls": [sink.url_of("json"), dead]})
    with pytest.raises(DeliveryError) as caught:
        await channel.send(ALERT)
    assert caught.value.retryable
    assert caught.value.message.startswith(
        "apprise: 1 of 2 services accepted; apprise service 2 (form): connection failed"
    )
    with pytest.raises(DeliveryError):
        await channel.send(ALERT)  # the retry: only service 2 is tried again
    assert [n.kind for n in sink.notifications] == ["json"]
    assert channel.describe() == "2 Apprise services: form, json"
