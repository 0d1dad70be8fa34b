"""``GET /api/alerts``: the history's filters as query parameters, on a real uvicorn.

The alerts are sent through the manager at known times of the fake clock; a
bad parameter is a 400 whose JSON names it, never a 500.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from pixalert import Alert
from pixalert.testing import FakeClock

#: (title, priority, source, status, minutes before now)
ALERTS = [
    ("Old news", "low", "api", "firing", 26 * 60),
    ("Queue backlog", "medium", "worker", "firing", 180),
    ("Disk full on db-2", "critical", "db", "resolved", 120),
    ("CPU hot on api-1", "low", "api", "firing", 20),
    ("Disk full on db-1", "high", "db", "firing", 10),
]


@pytest.fixture
async def listing(receiver: Any, manager: Any, clock: FakeClock) -> Any:
    """``await listing(**params)``: the JSON answer of ``GET /api/alerts`` (status 200)."""
    now = clock.now()
    for title, priority, source, status, ago in ALERTS:
        at = datetime.fromtimestamp(now - ago * 60, timezone.utc)
        alert = Alert(title, "on the box", priority, source=source, status=status, created_at=at)
        await manager.send_notification(alert)
    disk = next(e for e in await manager.history(source="db") if e["status"] == "firing")
    await manager.ack(disk["id"], by="alice")

    async def get(params: Any = None) -> Any:
        response = await receiver.client.get(f"{receiver.base_url}/api/alerts", params=params)
        assert response.status_code == 200, response.text
        return response.json()

    return get


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ["Disk full on db-1", "CPU hot on api-1", "Disk full on db-2", "Queue backlog"]),
        ({"priority": "high"}, ["Disk full on db-1"]),
        (
            [("priority", "high"), ("priority", "critical")],
            ["Disk full on db-1", "Disk full on db-2"],
        ),
        ({"priority": "low,4"}, ["CPU hot on api-1", "Disk full on db-2"]),
        ({"status": "resolved"}, ["Disk full on db-2"]),
        ({"status": "acknowledged"}, ["Disk full on db-1"]),
        ({"status": "firing", "source": "db"}, ["Disk full on db-1"]),
        ({"channel": "recording", "result": "sent", "limit": "1"}, ["Disk full on db-1"]),
        ({"channel": "email"}, []),
        ({"result": "failed"}, []),
        ({"search": "DISK full"}, ["Disk full on db-1", "Disk full on db-2"]),
        ({"key": "nope"}, []),
        ({"since": "90m"}, ["Disk full on db-1", "CPU hot on api-1"]),
        ({"hours": "1.5"}, ["Disk full on db-1", "CPU hot on api-1"]),
        ({"since": "150m", "until": "1h"}, ["Disk full on db-2"]),
        ({"since": "2d", "source": "api"}, ["CPU hot on api-1", "Old news"]),
        ({"until": "1h"}, ["Disk full on db-2", "Queue backlog"]),
    ],
)
async def test_filters(listing: Any, params: Any, expected: list[str]) -> None:
    body = await listing(params)
    assert [a["title"] for a in body["alerts"]] == expected
    assert body["count"] == len(expected)


async def test_the_answer_says_its_window(listing: Any, clock: FakeClock) -> None:
    now = datetime.fromtimestamp(clock.now(), timezone.utc)
    body = await listing({"since": "2h", "until": "30m"})
    assert body["since"] == (now - timedelta(hours=2)).isoformat()
    assert body["until"] == (now - timedelta(minutes=30)).isoformat()
    assert body["hours"] is None
    body = await listing({})
    assert body["hours"] == 24 and body["until"] is None
    naive = (now - timedelta(minutes=150)).replace(tzinfo=None).isoformat()  # naive: UTC
    offset = (now - timedelta(hours=1)).astimezone(timezone(timedelta(hours=-5))).isoformat()
    body = await listing({"since": naive, "until": offset})
    assert [a["title"] for a in body["alerts"]] == ["Disk full on db-2"]


@pytest.mark.parametrize(
    ("params", "error", "detail"),
    [
        ({"priority": "urgent"}, "invalid priority", "unknown priority 'urgent'"),
        ({"priority": "high,nope"}, "invalid priority", "unknown priority 'nope'"),
        ({"status": "asleep"}, "invalid status", "expected one of firing, resolved, acknowledged"),
        ({"result": "lost"}, "invalid result", "expected one of sent, failed, retrying"),
        ({"since": "yesterday"}, "invalid since", "expected a duration ago such as 90m"),
        ({"since": "2026-13-01T00:00Z"}, "invalid since", "or an ISO 8601 time"),
        ({"until": "-1h"}, "invalid until", "expected a duration ago >= 0"),
        ({"since": "1h", "until": "2h"}, "invalid until", "expected a time after since"),
        ({"since": "2h", "hours": "3"}, "invalid since", "give since or hours, not both"),
        ({"hours": "-1"}, "invalid hours", "expected a number > 0"),
        ({"limit": "0"}, "invalid limit", "expected a whole number > 0"),
        ({"limit": "many"}, "invalid limit", "got 'many'"),
        ({"search": "x" * 501}, "invalid search", "at most 500 characters"),
    ],
)
async def test_bad_parameters_are_400s_naming_them(
    receiver: Any, params: dict[str, str], error: str, detail: str
) -> None:
    response = await receiver.client.get(f"{receiver.base_url}/api/alerts", params=params)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == error
    assert detail in body["detail"]
