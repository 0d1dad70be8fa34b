"""``pixalert history`` filters and ``pixalert stats --by``, on a real SQLite history.

The history is written through the store as alerts made at known times before
now (minutes away from any window edge the tests use), then read by the
commands as an operator would run them.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pixalert import Alert, DeliveryResult, DeliveryStatus
from pixalert._clock import to_datetime
from pixalert._sqlite import SQLiteHistoryStore
from pixalert.cli import cli
from pixalert.cli._history import Window, hour_chart
from pixalert.storage import AlertEvent
from pixalert.testing import FakeClock

#: (title, priority, source, status, minutes ago, {channel: sent?}, acknowledged)
ALERTS = [
    ("Disk full on db-1", "high", "db", "firing", 10, {"slack": True, "email": False}, True),
    ("CPU hot on api-1", "low", "api", "firing", 20, {"slack": True}, False),
    ("Disk full on db-2", "critical", "db", "resolved", 130, {"slack": True, "email": True}, False),
    ("Queue backlog", "medium", "worker", "firing", 250, {"slack": False}, False),
    ("Old news", "low", "api", "firing", 60 * 30, {"slack": True}, False),
]


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), prog_name="pixalert")
    return result.exit_code, result.stdout, result.stderr


async def _seed(url: str, now: float) -> None:
    clock = FakeClock(now)
    store = SQLiteHistoryStore(url, clock)
    await store.open_owner("seed")
    for title, priority, source, status, ago, channels, acked in ALERTS:
        at = to_datetime(now - ago * 60)
        alert = Alert(title, "on the box", priority, source=source, status=status, created_at=at)
        recorded = await store.record(alert, list(channels), owner="seed", lease=60)
        await store.settle(
            [
                (
                    claim,
                    DeliveryResult(claim.channel, DeliveryStatus.SENT, 1, None, 0.02)
                    if channels[claim.channel]
                    else DeliveryResult(claim.channel, DeliveryStatus.FAILED, 3, "HTTP 500"),
                )
                for claim in recorded.claims
            ]
        )
        if acked:
            event = AlertEvent(alert.id, "acknowledged", at + timedelta(seconds=30), "alice")
            await store.add_events([event])
    await store.close_owner("seed")
    await store.aclose()


@pytest.fixture
def history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> float:
    """The history of :data:`ALERTS`; returns the 'now' they were made before."""
    url = f"sqlite:///{tmp_path}/h.db"
    now = time.time()
    asyncio.run(_seed(url, now))
    monkeypatch.setenv("PIXALERT_HISTORY", url)
    return now


def titles(*args: str) -> list[str]:
    code, out, err = run("history", "--json", *args)
    assert code == 0, err
    return [e["title"] for e in json.loads(out)]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], ["Disk full on db-1", "CPU hot on api-1", "Disk full on db-2", "Queue backlog"]),
        (["-p", "high"], ["Disk full on db-1"]),
        (["-p", "high,critical"], ["Disk full on db-1", "Disk full on db-2"]),
        (["-p", "low", "--priority", "4"], ["CPU hot on api-1", "Disk full on db-2"]),
        (["--status", "resolved"], ["Disk full on db-2"]),
        (["--status", "firing"], ["Disk full on db-1", "CPU hot on api-1", "Queue backlog"]),
        (["--status", "acknowledged"], ["Disk full on db-1"]),
        (["-c", "email"], ["Disk full on db-1", "Disk full on db-2"]),
        (["--result", "failed"], ["Disk full on db-1", "Queue backlog"]),
        (["--channel", "email", "--result", "failed"], ["Disk full on db-1"]),
        (["--search", "DISK full"], ["Disk full on db-1", "Disk full on db-2"]),
        (["--source", "api"], ["CPU hot on api-1"]),
        (["--since", "90m"], ["Disk full on db-1", "CPU hot on api-1"]),
        (["--hours", "1.5"], ["Disk full on db-1", "CPU hot on api-1"]),
        (["--since", "3h", "--until", "1h"], ["Disk full on db-2"]),
        (["--since", "2d", "--source", "api"], ["CPU hot on api-1", "Old news"]),
        (["--until", "1h"], ["Disk full on db-2", "Queue backlog"]),
        (["--limit", "1"], ["Disk full on db-1"]),
    ],
)
def test_history_filters(history: float, args: list[str], expected: list[str]) -> None:
    assert titles(*args) == expected


def test_since_and_until_take_iso_times_naive_ones_in_utc(history: float) -> None:
    start = datetime.fromtimestamp(history - 3 * 3600, timezone.utc)
    end = datetime.fromtimestamp(history - 3600, timezone.utc)
    naive = [start.replace(tzinfo=None).isoformat(), end.replace(tzinfo=None).isoformat()]
    assert titles("--since", naive[0], "--until", naive[1]) == ["Disk full on db-2"]
    paris = timezone(timedelta(hours=1))
    aware = [start.astimezone(paris).isoformat(), end.astimezone(paris).isoformat()]
    assert titles("--since", aware[0], "--until", aware[1]) == ["Disk full on db-2"]
    zulu = datetime.fromtimestamp(history - 5 * 3600, timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
    assert titles("--since", zulu, "--source", "worker") == ["Queue backlog"]


def test_the_table_says_what_was_asked(history: float) -> None:
    code, out, _ = run("history", "--status", "acknowledged", "-p", "high")
    assert code == 0
    assert "matching priority high, status acknowledged in the last 24 h" in out
    assert "Disk full on db-1" in out and "acknowledged" in out and "time (UTC)" in out
    code, out, _ = run("history", "--search", "nothing like it")
    assert code == 0
    assert out == "No alerts matching search 'nothing like it' in the last 24 h.\n"


#: Bad values of the window options (history and stats) and of history's filters.
BAD_WINDOWS = [
    (["--since", "-2h"], "Invalid value for '--since': expected a duration ago >= 0"),
    (["--until", "-5m"], "Invalid value for '--until': expected a duration ago >= 0"),
    (["--since", "yesterday"], "Invalid value for '--since': expected a duration ago such"),
    (["--since", "2026-13-01"], "or an ISO 8601 time such as 2026-12-01T09:30+01:00"),
    (["--since", "1h", "--until", "2h"], "Invalid value for '--until': "),
    (["--since", "2h", "--hours", "3"], "give --since or --hours, not both"),
    (["--hours", "-1"], "'--hours': expected a number > 0, got '-1'"),
]
BAD_FILTERS = [
    (["-p", "urgent"], "Invalid value for '--priority': unknown priority 'urgent'"),
    (["-p", "high,nope"], "unknown priority 'nope'"),
    (["--status", "acked"], "Invalid value for '--status': 'acked' is not one of"),
    (["--result", "lost"], "Invalid value for '--result': 'lost' is not one of"),
]


@pytest.mark.parametrize(
    ("command", "args", "expected"),
    [("history", *case) for case in BAD_WINDOWS + BAD_FILTERS]
    + [("stats", *case) for case in BAD_WINDOWS],
)
def test_bad_filters_are_one_line_usage_errors(
    history: float, command: str, args: list[str], expected: str
) -> None:
    code, out, err = run(command, *args)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    assert err.startswith("error: ") and expected in err, err
    assert f"(see 'pixalert {command} --help')" in err


def test_until_before_since_names_both_times(history: float) -> None:
    _, _, err = run("history", "--since", "2026-12-02T10:00Z", "--until", "2026-12-02T09:00Z")
    assert "2026-12-02 09:00:00 UTC is not after the start of the window" in err
    assert "(2026-12-02 10:00:00 UTC)" in err


@pytest.mark.parametrize("by", ["channel", "priority", "source", "hour"])
def test_stats_by_json_is_pure_json(history: float, by: str) -> None:
    code, out, err = run("stats", "--by", by, "--json")
    assert code == 0, err
    data = json.loads(out)  # the whole of stdout, and nothing else
    assert data["by"] == by and data["alerts"] == 4 and data["until"] is None
    groups = data["groups"]
    if by == "channel":
        assert {k: (g["alerts"], g["sent"], g["failed"]) for k, g in groups.items()} == {
            "email": (2, 1, 1),
            "slack": (4, 3, 1),
        }
    elif by == "priority":
        assert list(groups) == ["LOW", "MEDIUM", "HIGH", "CRITICAL"]
        assert groups["HIGH"]["success_rate"] == 0.5
    elif by == "source":
        assert {k: g["alerts"] for k, g in groups.items()} == {"api": 1, "db": 2, "worker": 1}
    else:
        assert sum(g["alerts"] for g in groups.values()) == 4
        assert all(k.endswith(":00:00+00:00") for k in groups)
    sent = [g for g in groups.values() if g["sent"]]
    assert all(g["latency"]["p50"] == pytest.approx(0.02, rel=0.06) for g in sent)


def test_stats_by_with_a_window(history: float) -> None:
    code, out, _ = run("stats", "--by", "source", "--since", "3h", "--until", "1h", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["alerts"] == 1 and list(data["groups"]) == ["db"]
    # --until without --by: the grouped form, by channel (stats() has no end).
    code, out, _ = run("stats", "--until", "1h", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["by"] == "channel" and data["alerts"] == 2


def test_stats_without_by_keeps_its_shape(history: float) -> None:
    code, out, _ = run("stats", "--since", "90m", "--json")
    data = json.loads(out)
    assert code == 0 and data["alerts"] == 2
    assert data["channels"]["email"]["failed"] == 1 and "groups" not in data


@pytest.mark.parametrize("by", ["channel", "priority", "source"])
def test_stats_by_table(history: float, by: str) -> None:
    code, out, _ = run("stats", "--by", by)
    assert code == 0
    assert out.startswith("4 alerts in the last 24 h\n")
    assert f"By {by}" in out and "success" in out and "p99" in out
    assert "Alerts per hour" not in out


def test_stats_by_hour_prints_a_plain_chart_off_a_terminal(history: float) -> None:
    code, out, _ = run("stats", "--by", "hour", "--since", "6h")
    assert code == 0
    assert "\x1b[" not in out  # no colour: stdout is not a terminal
    chart = out[out.index("Alerts per hour (UTC)\n") :].splitlines()[1:]
    assert 6 <= len(chart) <= 7  # every hour the window touches, the empty ones too
    counts = [int(line.split()[-1] if "failed" not in line else line.split()[-3]) for line in chart]
    assert sum(counts) == 4
    widest = max(chart, key=lambda line: line.count("#"))
    assert widest.count("#") == 40
    assert any("(1 failed)" in line for line in chart)
    assert all(set(line[18:58]) <= {"#", " "} for line in chart)


def _hour_data() -> tuple[dict[str, Any], Window]:
    since = datetime(2026, 12, 2, 1, 30, tzinfo=timezone.utc)
    until = datetime(2026, 12, 2, 4, 10, tzinfo=timezone.utc)
    data = {
        "groups": {
            "2026-12-02T01:00:00+00:00": {"alerts": 2, "failed": 0},
            "2026-12-02T03:00:00+00:00": {"alerts": 8, "failed": 3},
        }
    }
    return data, Window(since, until, "")


def test_hour_chart_plain() -> None:
    data, window = _hour_data()
    assert hour_chart(data, window, width=8, terminal=False) == [
        "2026-12-02 01:00  ##       2",
        "2026-12-02 02:00           0",
        "2026-12-02 03:00  ######## 8  (3 failed)",
        "2026-12-02 04:00           0",
    ]


def test_hour_chart_on_a_terminal_is_rich_markup() -> None:
    from rich.console import Console

    data, window = _hour_data()
    lines = hour_chart(data, window, width=8, terminal=True)
    assert lines[2] == "2026-12-02 03:00  [cyan]████████[/cyan] 8[red]  (3 failed)[/red]"
    console = Console(force_terminal=True, color_system="standard", width=80, highlight=False)
    with console.capture() as captured:
        for line in lines:
            console.print(line)
    text = captured.get()
    assert "\x1b[36m████████" in text and "\x1b[31m  (3 failed)" in text
