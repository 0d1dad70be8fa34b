"""Message templates end to end: each real channel plugin against its contract server
(Slack, email through aiosmtpd, webhook, PagerDuty) receives the templated title and
body, and markup in an alert's own values arrives escaped, never as markup."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("pixalert_slack.testing")
pytest.importorskip("pixalert_email.testing")
pytest.importorskip("pixalert_webhook.testing")
pytest.importorskip("pixalert_pagerduty.testing")

import pixalert_email
import pixalert_pagerduty
import pixalert_slack
import pixalert_webhook
from pixalert.testing import FakeClock, make_manager
from pixalert_email.testing import SMTPTestServer
from pixalert_pagerduty.testing import PagerDutyServer
from pixalert_slack.testing import SlackServer
from pixalert_webhook.testing import WebhookReceiver

PLUGINS = [pixalert_slack, pixalert_email, pixalert_webhook, pixalert_pagerduty]

TITLE = "Disk full & <!here>"
MESSAGE = "<img src=x onerror=alert(1)> 95% used"
HOST = "<!channel>"

TEMPLATES = {
    "slack": {
        "title": "{{ alert.title }} on {{ metadata.host }}",
        "body": "*Host:* {{ metadata.host }}\n"
        "<https://runbooks.example/{{ alert.source }}|runbook> {{ alert.message }}",
    },
    "email": {
        "title": "{{ alert.title }} on {{ metadata.host }}",
        "body": "Host: {{ metadata.host }}\n{{ alert.message }}",
        "html": "<p><b>Host:</b> {{ metadata.host }}</p>\n<p>{{ alert.message }}</p>",
    },
    "hook": {"title": "WH {{ alert.title }}", "body": "{{ alert.message }} ({{ metadata.host }})"},
    "pager": {"title": "PD {{ priority }} {{ alert.title }}", "body": "{{ metadata.host }}"},
}


def mrkdwn_texts(payload: Any) -> list[str]:
    """Every mrkdwn text of a Slack message (and its top-level ``text``): what Slack parses."""
    out = [payload.get("text", "")]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn" and isinstance(node.get("text"), str):
                out.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(payload.get("blocks"))
    walk(payload.get("attachments"))
    return out


def parts(message: Any) -> tuple[str, str]:
    text = html = ""
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            text = part.get_content().replace("\r\n", "\n")
        elif part.get_content_type() == "text/html":
            html = part.get_content().replace("\r\n", "\n")
    return text, html


async def test_each_channel_receives_its_template_and_values_are_escaped() -> None:
    async with (
        SlackServer() as slack,
        SMTPTestServer() as smtp,
        WebhookReceiver() as hook,
        PagerDutyServer() as pd,
    ):
        config = {
            "templates": TEMPLATES,
            "channels": {
                "slack": {**slack.config(), "template": "slack"},
                "email": {**smtp.config(), "template": "email"},
                "webhook": {**hook.config(), "template": "hook"},
                "pagerduty": {**pd.config(), "template": "pager"},
            },
        }
        async with make_manager(config=config, plugins=PLUGINS) as manager:
            results = await manager.send_alert(
                TITLE,
                MESSAGE,
                "critical",
                source="db",
                key="disk",
                metadata={"host": HOST},
            )
            assert {k: r.status.value for k, r in results.items()} == dict.fromkeys(
                ("email", "slack", "pagerduty", "webhook"), "sent"
            )
            await smtp.wait_for(1)
        assert slack.rejections == [] and hook.rejections == [] and pd.rejections == []

    # Slack: the header is plain_text (never parsed); the body's mrkdwn is the
    # template's, and every value in it is escaped: no mention, no image, no link.
    (message,) = slack.received
    assert message.header == f"[CRITICAL] {TITLE} on {HOST}"
    section = next(t for t in mrkdwn_texts(message.payload) if t.startswith("*Host:*"))
    assert section == (
        "*Host:* &lt;!channel&gt;\n<https://runbooks.example/db|runbook> "
        "&lt;img src=x onerror=alert(1)&gt; 95% used"
    )
    for text in mrkdwn_texts(message.payload):
        assert "<!channel>" not in text and "<!here>" not in text and "<img" not in text

    # Email: the subject and the text part are the plain rendering; the HTML part is
    # the template's HTML with the values HTML-escaped.
    (mail,) = smtp.received
    assert mail.subject == f"[CRITICAL] {TITLE} on {HOST}"
    text, html = parts(mail.message)
    assert f"Host: {HOST}\n{MESSAGE}" in text
    assert (
        "<p><b>Host:</b> &lt;!channel&gt;</p>\n"
        "<p>&lt;img src=x onerror=alert(1)&gt; 95% used</p>" in html
    )
    assert "<img" not in html and "<!channel>" not in html

    # Webhook: JSON carries the rendered plain text as it is.
    (delivery,) = hook.received
    assert delivery.data["title"] == f"WH {TITLE}"
    assert delivery.data["message"] == f"{MESSAGE} ({HOST})"
    assert delivery.data["metadata"] == {"host": HOST}

    # PagerDuty: the summary is the rendered title and body.
    incident = pd.incident("disk")
    assert incident is not None
    assert incident.summary == f"PD CRITICAL {TITLE}: {HOST}"


async def test_a_route_template_renders_group_notifications_on_every_channel() -> None:
    body = "{% for a in group.alerts %}- {{ a.title }}\n{% endfor %}"
    config_templates = {
        "digest": {
            "title": "{{ group.count }} on {{ group.labels.source }}",
            "body": body,
            "html": "<ul>{% for a in group.alerts %}<li>{{ a.title }}</li>{% endfor %}</ul>",
        }
    }
    clock = FakeClock()
    async with (
        SlackServer() as slack,
        SMTPTestServer() as smtp,
        WebhookReceiver() as hook,
        PagerDutyServer() as pd,
    ):
        config = {
            "templates": config_templates,
            "channels": {
                "slack": slack.config(),
                "email": smtp.config(),
                "webhook": hook.config(),
                "pagerduty": pd.config(),
            },
            "routes": [
                {
                    "match": {"source": "db"},
                    "channels": ["slack", "email", "webhook", "pagerduty"],
                    "group_by": ["source"],
                    "group_wait": "30s",
                    "template": "digest",
                }
            ],
        }
        async with make_manager(config=config, plugins=PLUGINS, clock=clock) as manager:
            await manager.send_alert("Disk <b>full</b>", "x", "high", source="db")
            await manager.send_alert("CPU <!channel>", "y", "medium", source="db")
            clock.advance(31)
            await manager.resume_pending()
            await smtp.wait_for(1)
        assert slack.rejections == [] and hook.rejections == [] and pd.rejections == []

    (message,) = slack.received
    assert message.header == "2 on db"
    assert "- Disk &lt;b&gt;full&lt;/b&gt;\n- CPU &lt;!channel&gt;" in mrkdwn_texts(message.payload)
    for text in mrkdwn_texts(message.payload):
        assert "<!channel>" not in text

    (mail,) = smtp.received
    assert mail.subject == "2 on db"
    text, html = parts(mail.message)
    assert "- Disk <b>full</b>\n- CPU <!channel>" in text
    assert "<ul><li>Disk &lt;b&gt;full&lt;/b&gt;</li><li>CPU &lt;!channel&gt;</li></ul>" in html

    (delivery,) = hook.received
    assert delivery.is_group
    assert delivery.data["group"]["title"] == "2 on db"
    assert delivery.data["group"]["message"] == "- Disk <b>full</b>\n- CPU <!channel>"

    (event,) = [r.json() for r in pd.requests]
    assert event["payload"]["summary"] == "2 on db: - Disk <b>full</b> - CPU <!channel>"
