"""The core's value types: priorities, alerts, channel names, results."""

from __future__ import annotations

from datetime import datetime

import pytest
from pixalert import (
    Alert,
    ChannelName,
    DeliveryError,
    DeliveryResult,
    NotificationChannel,
    NotificationMessage,
    NotificationPriority,
    Priority,
)
from pixalert.channels import Secret


@pytest.mark.parametrize("value", ["high", "HIGH", " High ", 3, "3", Priority.HIGH])
def test_priority_parses_names_numbers_and_members(value: object) -> None:
    assert Priority.parse(value) is Priority.HIGH


@pytest.mark.parametrize("value", ["urgent", 0, 5, None, 2.5, True])
def test_unknown_priority_is_a_clear_error(value: object) -> None:
    with pytest.raises(
        ValueError, match=r"unknown priority .*expected one of low, medium, high, critical"
    ):
        Priority.parse(value)


def test_priorities_are_ordered_and_aliased() -> None:
    assert Priority.LOW < Priority.MEDIUM < Priority.HIGH < Priority.CRITICAL
    assert NotificationPriority is Priority
    assert NotificationMessage is Alert


def test_channel_enum_equals_and_hashes_as_plain_string() -> None:
    assert NotificationChannel.SLACK == "slack"
    assert {"slack": 1}[NotificationChannel.SLACK] == 1
    assert {NotificationChannel.EMAIL: 1}["email"] == 1
    name = ChannelName("teams")
    assert name == "teams" and name.value == "teams"
    assert {name: 1}["teams"] == 1


def test_alert_defaults_and_key_derivation() -> None:
    a = Alert("Disk full", "95%", "high", metadata={"host": "db1"})
    b = Alert("Disk full", "other text", "low")
    assert a.key == b.key  # same source and title: same incident
    assert Alert("Disk full", source="other").key != a.key
    assert a.status == "firing" and not a.resolved
    assert a.created_at.tzinfo is not None
    resolved = a.resolve()
    assert resolved.resolved and resolved.key == a.key and resolved.id != a.id


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"title": ""}, "title: expected a non-empty string"),
        ({"title": "x" * 1001}, "title: expected at most 1000 characters"),
        ({"title": "t", "priority": "nope"}, "unknown priority 'nope'"),
        ({"title": "t", "status": "open"}, "status: expected 'firing' or 'resolved'"),
        ({"title": "t", "metadata": {"when": object()}}, r"metadata\.when: expected a JSON value"),
        ({"title": "t", "metadata": ["a"]}, "metadata: expected a mapping"),
        ({"title": "t", "channels": [""]}, "channels: expected channel names"),
        (
            {"title": "t", "created_at": datetime(2026, 1, 1)},
            "created_at: expected a timezone-aware",
        ),
    ],
)
def test_bad_alert_fields_are_named(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Alert(**kwargs)  # type: ignore[arg-type]


def test_alert_round_trips_through_dict() -> None:
    a = Alert("t", "m", "critical", metadata={"n": [1, {"x": None}]}, channels=["slack"])
    assert Alert.from_dict(a.to_dict()) == a


def test_delivery_result_truthiness() -> None:
    assert DeliveryResult("slack", "sent")
    for status in ("failed", "suppressed", "skipped"):
        assert not DeliveryResult("slack", status)


def test_delivery_error_says_whether_to_retry() -> None:
    assert DeliveryError("x").retryable
    err = DeliveryError.permanent("bad token")
    assert not err.retryable and str(err) == "bad token"
    assert DeliveryError("slow", retry_after=3).retry_after == 3


def test_secret_never_shows_its_value() -> None:
    s = Secret("hunter2-hunter2")
    assert "hunter2" not in repr(s) and "hunter2" not in str(s) and "hunter2" not in f"{s}"
    assert s.get() == "hunter2-hunter2"


def test_alert_ids_are_time_ordered_uuid7() -> None:
    import time
    import uuid

    before = time.time_ns() // 1_000_000
    ids = [Alert("t").id for _ in range(600)]  # more than one batch of random bits
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == 600
    for value in ids:
        parsed = uuid.UUID(value)
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert before <= int(value[:12], 16) <= after  # the first 48 bits: Unix milliseconds
    assert [v[:12] for v in ids] == sorted(v[:12] for v in ids)
