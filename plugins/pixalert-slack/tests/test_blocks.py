"""The Block Kit message: layout, colours, escaping, mentions and truncation to Slack's limits."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

import pytest
from pixalert import Alert, Priority
from pixalert_slack import build_message, escape
from pixalert_slack._blocks import (
    COLOURS,
    MAX_BLOCKS,
    MAX_FIELD,
    MAX_FIELDS_PER_SECTION,
    MAX_HEADER,
    MAX_SECTION,
    MAX_TEXT,
    RESOLVED_COLOUR,
    slack_len,
    truncate_escaped,
)
from pixalert_slack.testing import check_message

WHEN = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def alert(**kwargs: Any) -> Alert:
    data: dict[str, Any] = {
        "title": "Disk full",
        "message": "/ is 97% full",
        "priority": "high",
        "source": "db-1",
        "created_at": WHEN,
    }
    data.update(kwargs)
    return Alert(**data)


def all_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    return list(message["blocks"]) + [
        b for att in message.get("attachments", []) for b in att["blocks"]
    ]


def mrkdwn_texts(message: dict[str, Any]) -> list[str]:
    """Every text Slack parses as mrkdwn: the fallback and mrkdwn text objects."""
    out = [message["text"]]
    for block in all_blocks(message):
        objs = [block.get("text"), *block.get("fields", []), *block.get("elements", [])]
        out.extend(o["text"] for o in objs if isinstance(o, dict) and o.get("type") == "mrkdwn")
    return out


def header(message: dict[str, Any]) -> str:
    [head] = [b for b in message["blocks"] if b["type"] == "header"]
    assert head["text"]["type"] == "plain_text"
    return str(head["text"]["text"])


def test_layout() -> None:
    message = build_message(alert(metadata={"host": "db-1", "usage": 97.5, "tags": ["a", "b"]}))
    assert header(message) == "[HIGH] Disk full"
    assert message["text"] == "[HIGH] Disk full: / is 97% full"
    [attachment] = message["attachments"]
    assert attachment["color"] == COLOURS[Priority.HIGH]
    section, fields, context = attachment["blocks"]
    assert section == {
        "type": "section",
        "text": {"type": "mrkdwn", "text": "/ is 97% full", "verbatim": True},
    }
    assert [f["text"] for f in fields["fields"]] == [
        "*host*\ndb-1",
        "*usage*\n97.5",
        '*tags*\n["a", "b"]',
    ]
    assert context["type"] == "context"
    texts = [e["text"] for e in context["elements"]]
    assert texts[0] == "*Source:* db-1"
    stamp = int(WHEN.timestamp())
    assert (
        texts[1] == f"<!date^{stamp}^{{date_short_pretty}} {{time_secs}}|2030-01-02 03:04:05 UTC>"
    )
    assert check_message(message) == []


@pytest.mark.parametrize("priority", list(Priority))
def test_colour_by_priority(priority: Priority) -> None:
    message = build_message(alert(priority=priority))
    assert message["attachments"][0]["color"] == COLOURS[priority]
    assert header(message).startswith(f"[{priority.name}] ")
    assert len(set(COLOURS.values())) == len(Priority)


def test_resolved_looks_resolved() -> None:
    message = build_message(alert(priority="critical").resolve())
    assert header(message) == "RESOLVED [CRITICAL] Disk full"
    assert message["text"].startswith("RESOLVED [CRITICAL] Disk full")
    assert message["attachments"][0]["color"] == RESOLVED_COLOUR
    context = message["attachments"][0]["blocks"][-1]
    assert "Resolved" in context["elements"][0]["text"]


def test_empty_message_has_no_empty_section() -> None:
    message = build_message(alert(message="   "))
    assert [b["type"] for b in message["attachments"][0]["blocks"]] == ["context"]
    assert message["text"] == "[HIGH] Disk full"
    check_message(message)


def test_escape_only_three_characters() -> None:
    assert escape("a & b < c > d \"e\" 'f' é") == "a &amp; b &lt; c &gt; d \"e\" 'f' é"
    assert escape("&amp;") == "&amp;amp;"  # a literal entity stays literal


HOSTILE = "<!channel> <!here|here> <@U123ABC> <#C123> <https://evil.example|click> & co"


def test_user_text_cannot_ping_or_link() -> None:
    message = build_message(
        alert(
            title=HOSTILE,
            message=HOSTILE,
            source=HOSTILE,
            metadata={HOSTILE: HOSTILE, "n": {"k": HOSTILE}},
            priority="critical",
        )
    )
    for text in mrkdwn_texts(message):
        # Only our own control sequence (the date) may open a "<".
        assert re.sub(r"<!date\^[^>]*>", "", text).count("<") == 0, text
        assert "<!channel>" not in text and "<@U123ABC>" not in text
    assert "&lt;!channel&gt;" in message["text"]
    assert "&amp; co" in message["text"]
    # The header is plain_text, which Slack never parses for mentions.
    assert header(message) == f"[CRITICAL] {HOSTILE}"


def test_mention_only_for_firing_critical() -> None:
    critical = build_message(alert(priority="critical"), mention="<!here>")
    assert critical["text"].startswith("<!here> [CRITICAL]")
    assert critical["blocks"][1]["text"]["text"].startswith("<!here> ")
    assert check_message(critical) == []
    for other in (alert(priority="high"), alert(priority="critical").resolve()):
        message = build_message(other, mention="<!here>")
        assert all("<!here>" not in text for text in mrkdwn_texts(message))
        assert len(message["blocks"]) == 1


def test_no_mention_unless_configured() -> None:
    message = build_message(alert(priority="critical"))
    assert len(message["blocks"]) == 1
    assert "<!" not in message["text"]


def test_truncation_to_slack_limits() -> None:
    huge = "&<>x" * 30_000  # escaping makes it longer still
    message = build_message(
        alert(
            title="T" * 1000,
            message=huge,
            source="s" * 5000,
            metadata={f"key{i}" + "k" * 300: huge for i in range(200)},
        )
    )
    assert slack_len(header(message)) <= MAX_HEADER
    assert header(message).endswith("…")
    assert slack_len(message["text"]) <= MAX_TEXT
    blocks = all_blocks(message)
    assert len(blocks) <= MAX_BLOCKS
    for block in blocks:
        if block["type"] == "section" and "text" in block:
            assert slack_len(block["text"]["text"]) <= MAX_SECTION
        for field in block.get("fields", []):
            assert slack_len(field["text"]) <= MAX_FIELD
        assert len(block.get("fields", [])) <= MAX_FIELDS_PER_SECTION
    section = message["attachments"][0]["blocks"][0]["text"]["text"]
    assert section.endswith("…")
    # No entity is cut in half.
    assert re.search(r"&(?!amp;|lt;|gt;)", section) is None
    assert "more metadata field(s) not shown" in blocks[-1]["elements"][-1]["text"]
    assert check_message(message) == []


def test_many_small_fields_are_split_into_sections_of_ten() -> None:
    message = build_message(alert(metadata={f"k{i}": i for i in range(25)}))
    sections = [b for b in message["attachments"][0]["blocks"] if "fields" in b]
    assert [len(s["fields"]) for s in sections] == [10, 10, 5]
    check_message(message)


def test_astral_characters_count_double() -> None:
    # Slack may count UTF-16 code units: an emoji is two.
    message = build_message(alert(title="🔥" * 200))
    assert slack_len(header(message)) <= MAX_HEADER
    assert len(header(message)) < MAX_HEADER


@pytest.mark.parametrize("limit", [1, 2, 5, 6, 10])
def test_truncate_never_splits_an_entity(limit: int) -> None:
    out = truncate_escaped("&&&&&&&&", limit)
    assert slack_len(out) <= limit
    assert re.fullmatch(r"(&amp;)*…?", out)


def test_newlines_in_title_do_not_break_the_header() -> None:
    message = build_message(alert(title="line one\nline two\t end"))
    assert header(message) == "[HIGH] line one line two end"
