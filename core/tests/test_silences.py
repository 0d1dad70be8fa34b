"""Silences: matchers, suppression, expiry, sharing through the state backend, the CLI."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

import pixalert
import pytest
from click.testing import CliRunner
from pixalert import Alert, Silence, _plugins
from pixalert._silences import check_matchers, parse_duration
from pixalert._sqlite import SCHEMA_VERSION, SQLiteStateBackend
from pixalert.cli import cli
from pixalert.storage import MemoryStateBackend
from pixalert.testing import FakeClock, RecordingChannel, make_manager

ROUTE = {"routing": {p: ["slack"] for p in ("low", "medium", "high", "critical")}}


def statuses(results: dict[Any, Any]) -> dict[str, str]:
    return {str(name): r.status.value for name, r in results.items()}


# ---------------------------------------------------------------------------
# Matchers
# ---------------------------------------------------------------------------


def test_silence_is_public() -> None:
    assert "Silence" in pixalert.__all__
    assert pixalert.Silence is Silence


def _alert(**kwargs: Any) -> Alert:
    fields: dict[str, Any] = {
        "title": "Disk full",
        "source": "db-1",
        "key": "db-1/disk",
        "priority": "high",
        "metadata": {"env": "prod", "shard": 3, "canary": False},
    }
    fields.update(kwargs)
    return Alert(**fields)


def _silence(**matchers: str) -> Silence:
    from datetime import datetime, timedelta, timezone

    now = datetime.now(timezone.utc)
    return Silence("s", matchers, now, now + timedelta(hours=1))


@pytest.mark.parametrize(
    ("matchers", "matches"),
    [
        ({"source": "db-1"}, True),
        ({"source": "db-2"}, False),
        ({"source": "db-*"}, True),
        ({"source": "DB-*"}, False),  # case-sensitive, like the values themselves
        ({"title": "Disk ?ull"}, True),
        ({"key": "db-1/disk"}, True),
        ({"key": "db-1/*"}, True),
        ({"priority": "high"}, True),
        ({"priority": "HIGH"}, True),  # read as a priority
        ({"priority": "3"}, True),
        ({"priority": "critical"}, False),
        ({"priority": "[hc]*"}, True),
        ({"status": "firing"}, True),
        ({"status": "resolved"}, False),
        ({"metadata.env": "prod"}, True),
        ({"metadata.env": "staging"}, False),
        ({"metadata.shard": "3"}, True),  # non-string metadata compares as JSON
        ({"metadata.canary": "false"}, True),
        ({"metadata.missing": "*"}, False),  # an absent field never matches
        ({"source": "db-*", "metadata.env": "prod", "priority": "high"}, True),
        ({"source": "db-*", "metadata.env": "staging"}, False),  # every matcher must match
    ],
)
def test_matchers(matchers: dict[str, str], matches: bool) -> None:
    assert _silence(**matchers).matches(_alert()) is matches


@pytest.mark.parametrize(
    ("matchers", "message"),
    [
        ({}, "expected at least one FIELD=VALUE"),
        ({"severity": "high"}, "silence matcher 'severity': unknown field, expected key, source"),
        ({"metadata.": "x"}, "silence matcher 'metadata.': unknown field"),
        ({"source": 3}, "silence matcher 'source': expected a string value, got int"),
        ({"priority": "urgent"}, "silence matcher 'priority': unknown priority 'urgent'"),
        ({"status": "open"}, "silence matcher 'status': expected firing or resolved"),
        (["source=db"], "expected a mapping of field to value, got list"),
    ],
)
def test_bad_matchers_are_named(matchers: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("?", r"\?")):
        check_matchers(matchers)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("30m", 1800), ("2h", 7200), ("1d", 86400), ("1h30m", 5400), ("1.5h", 5400)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "2", "2x", "h", "-5m", "0s", "1h 30m", "5m!"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="expected"):
        parse_duration(text)


async def test_manager_validates_before_storing(clock: FakeClock) -> None:
    async with make_manager([RecordingChannel("slack")], clock=clock, config=ROUTE) as manager:
        with pytest.raises(ValueError, match="unknown field"):
            await manager.silence({"sauce": "db"}, duration=60)
        with pytest.raises(ValueError, match="at least one FIELD=VALUE"):
            await manager.silence({}, duration=60)
        for bad in (0, -1, float("inf"), float("nan"), True, "60"):
            with pytest.raises(ValueError, match="silence duration: expected seconds > 0"):
                await manager.silence({"source": "db"}, duration=bad)
        with pytest.raises(ValueError, match="silence comment: expected a string"):
            await manager.silence({"source": "db"}, duration=60, comment=5)
        assert await manager.silences() == []


# ---------------------------------------------------------------------------
# The manager
# ---------------------------------------------------------------------------


async def test_a_silence_suppresses_matching_alerts_only(clock: FakeClock) -> None:
    slack = RecordingChannel("slack")
    async with make_manager([slack], clock=clock, config=ROUTE) as manager:
        made = await manager.silence(
            {"source": "db-*"}, duration=3600, comment="maintenance", created_by="ops"
        )
        silenced = await manager.send_alert("Disk full", "m", "high", source="db-1")
        other = await manager.send_alert("Disk full", "m", "high", source="web-1")
        history = await manager.history()
    assert statuses(silenced) == {"slack": "suppressed"}
    assert silenced["slack"].error == f"silenced by {made.id}: maintenance"
    assert statuses(other) == {"slack": "sent"}
    assert [a.source for a in slack.sent] == ["web-1"]
    by_source = {e["source"]: e["results"]["slack"]["status"] for e in history}
    assert by_source == {"db-1": "suppressed", "web-1": "sent"}  # kept in history
    assert made.created_by == "ops"
    assert made.ends_at.timestamp() - made.starts_at.timestamp() == 3600


async def test_a_silence_without_comment_gives_its_id(clock: FakeClock) -> None:
    async with make_manager([RecordingChannel("slack")], clock=clock, config=ROUTE) as manager:
        made = await manager.silence({"title": "t"}, duration=60)
        result = await manager.send_alert("t", "m", "low")
    assert result["slack"].error == f"silenced by {made.id}"


async def test_silence_comes_after_hooks_and_before_cooldown(clock: FakeClock) -> None:
    class Maintenance:
        @pixalert.hookimpl
        def pixalert_suppress(self, alert: Alert) -> str | None:
            return "hook says no" if alert.source == "hooked" else None

    slack = RecordingChannel("slack")
    async with make_manager([slack], clock=clock, config=ROUTE, plugins=[Maintenance()]) as manager:
        made = await manager.silence({"title": "t"}, duration=60)
        hooked = await manager.send_alert("t", "m", "low", source="hooked")
        assert hooked["slack"].error == "hook says no"
        silenced = await manager.send_alert("t", "m", "low", source="app")
        assert silenced["slack"].error == f"silenced by {made.id}"
        # A silenced alert took no cooldown: once unsilenced it goes out at once.
        assert await manager.unsilence(made.id) is True
        sent = await manager.send_alert("t", "m", "low", source="app")
    assert statuses(sent) == {"slack": "sent"}


async def test_a_silence_expires(clock: FakeClock) -> None:
    slack = RecordingChannel("slack")
    async with make_manager([slack], clock=clock, config=ROUTE) as manager:
        made = await manager.silence({"priority": "low"}, duration=600)
        clock.advance(599)
        assert [s.id for s in await manager.silences()] == [made.id]
        assert statuses(await manager.send_alert("a", "m", "low")) == {"slack": "suppressed"}
        clock.advance(1)
        assert await manager.silences() == []
        assert statuses(await manager.send_alert("b", "m", "low")) == {"slack": "sent"}
        assert await manager.unsilence(made.id) is False


async def test_unsilence(clock: FakeClock) -> None:
    async with make_manager([RecordingChannel("slack")], clock=clock, config=ROUTE) as manager:
        keep = await manager.silence({"source": "a"}, duration=60)
        drop = await manager.silence({"source": "b"}, duration=30)
        assert [s.id for s in await manager.silences()] == [drop.id, keep.id]  # soonest end first
        assert await manager.unsilence(drop.id) is True
        assert await manager.unsilence(drop.id) is False
        assert await manager.unsilence("no-such-id") is False
        assert await manager.silences() == [keep]
        b = await manager.send_alert("t", "m", "low", source="b")
    assert statuses(b) == {"slack": "sent"}


class CountingState(MemoryStateBackend):
    """A memory backend that counts how often silences are read."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.reads = 0

    async def items(self, prefix: str) -> dict[str, str]:
        self.reads += 1
        return await super().items(prefix)


async def test_a_burst_reads_silences_once_per_second(clock: FakeClock) -> None:
    state = CountingState(clock)
    slack = RecordingChannel("slack")
    async with make_manager([slack], clock=clock, config=ROUTE, state=state) as manager:
        await asyncio.gather(
            *(manager.send_alert(f"a{i}", "m", "low", cooldown=0) for i in range(50))
        )
        assert state.reads == 1
        clock.advance(0.5)
        await manager.send_alert("b", "m", "low")
        assert state.reads == 1
        clock.advance(0.5)
        await manager.send_alert("c", "m", "low")
        assert state.reads == 2
        # Making a silence refreshes this manager's view at once.
        await manager.silence({"title": "d"}, duration=60)
        assert state.reads == 3
        d = await manager.send_alert("d", "m", "low")
        assert state.reads == 3
    assert statuses(d) == {"slack": "suppressed"}
    assert len(slack.sent) == 52


async def test_a_silence_stored_by_another_instance_is_seen_within_a_second(
    clock: FakeClock,
) -> None:
    state = MemoryStateBackend(clock)
    async with (
        make_manager([RecordingChannel("slack")], clock=clock, config=ROUTE, state=state) as a,
        make_manager([RecordingChannel("slack")], clock=clock, config=ROUTE, state=state) as b,
    ):
        await b.send_alert("warm-up", "m", "low")  # b has read the (empty) silences
        await a.silence({"title": "t"}, duration=60)
        assert statuses(await b.send_alert("t", "m", "low")) == {"slack": "sent"}
        clock.advance(1)
        assert statuses(await b.send_alert("t", "m", "high")) == {"slack": "suppressed"}


async def test_unreadable_silences_are_ignored(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    state = MemoryStateBackend(clock)
    await state.put("silence:broken", "{not json", 60)
    await state.put("silence:bad", json.dumps({"id": "bad", "matchers": {"x": "y"}}), 60)
    async with make_manager(
        [RecordingChannel("slack")], clock=clock, config=ROUTE, state=state
    ) as manager:
        made = await manager.silence({"title": "t"}, duration=60)
        assert await manager.silences() == [made]
        assert statuses(await manager.send_alert("t", "m", "low")) == {"slack": "suppressed"}
    assert "ignoring unreadable silence silence:broken" in caplog.text


async def test_a_state_backend_that_cannot_store_is_an_error(clock: FakeClock) -> None:
    class Forgetful(MemoryStateBackend):
        async def put(self, key: str, value: str, ttl: float) -> None:
            return None  # dropped, as Redis does while it is down

    async with make_manager(
        [RecordingChannel("slack")], clock=clock, config=ROUTE, state=Forgetful(clock)
    ) as manager:
        with pytest.raises(RuntimeError, match="the state backend did not store it"):
            await manager.silence({"title": "t"}, duration=60)


async def test_a_failing_state_backend_does_not_stop_deliveries(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(MemoryStateBackend):
        async def items(self, prefix: str) -> dict[str, str]:
            raise OSError("disk on fire")

    slack = RecordingChannel("slack")
    async with make_manager([slack], clock=clock, config=ROUTE, state=Broken(clock)) as manager:
        assert statuses(await manager.send_alert("t", "m", "low")) == {"slack": "sent"}
    assert "could not read silences: disk on fire" in caplog.text


# ---------------------------------------------------------------------------
# SQLite: shared between managers (and processes) through one file
# ---------------------------------------------------------------------------


def _sqlite_manager(path: Path, clock: FakeClock, channel: RecordingChannel) -> Any:
    return make_manager(
        [channel], clock=clock, config={**ROUTE, "state": f"sqlite:///{path}"}, history="memory://"
    )


async def test_two_managers_sharing_one_sqlite_file(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "state.db"
    slack_a, slack_b = RecordingChannel("slack"), RecordingChannel("slack")
    async with (
        _sqlite_manager(path, clock, slack_a) as a,
        _sqlite_manager(path, clock, slack_b) as b,
    ):
        made = await a.silence({"metadata.env": "prod"}, duration=120, comment="deploy")
        on_b = await b.send_alert("Disk", "m", "high", metadata={"env": "prod"})
        assert on_b["slack"].error == f"silenced by {made.id}: deploy"
        assert [s.id for s in await b.silences()] == [made.id]
        assert (await b.silences())[0] == made

        # b lifts it; a sees that within a second.
        assert await b.unsilence(made.id) is True
        clock.advance(1)
        on_a = await a.send_alert("Disk", "m", "high", metadata={"env": "prod"})
        assert statuses(on_a) == {"slack": "sent"}

        # Expiry is shared too.
        again = await b.silence({"source": "*"}, duration=30)
        clock.advance(1)
        assert (await a.send_alert("x", "m", "low"))["slack"].error == f"silenced by {again.id}"
        clock.advance(30)
        assert statuses(await a.send_alert("y", "m", "low")) == {"slack": "sent"}
    assert [x.title for x in slack_a.sent] == ["Disk", "y"]
    assert slack_b.sent == []


async def test_an_old_sqlite_file_gains_the_value_column(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(  # the tables of a version 1 file
        "CREATE TABLE state (key TEXT PRIMARY KEY, expires REAL NOT NULL);"
        "CREATE TABLE alerts (id TEXT PRIMARY KEY, key TEXT NOT NULL, created_at REAL NOT NULL,"
        " body TEXT NOT NULL, state TEXT NOT NULL, owner TEXT, token TEXT, lease_until REAL);"
        "CREATE TABLE results (alert_id TEXT NOT NULL, channel TEXT NOT NULL, key TEXT NOT NULL,"
        " status TEXT NOT NULL, attempts INTEGER NOT NULL, error TEXT, latency REAL,"
        " receipt TEXT, created_at REAL NOT NULL, PRIMARY KEY (alert_id, channel));"
        "PRAGMA user_version=1;"
    )
    conn.execute("INSERT INTO state VALUES ('cooldown:k', ?)", (clock.now() + 60,))
    conn.commit()
    conn.close()
    state = SQLiteStateBackend(f"sqlite:///{path}", clock)
    try:
        assert await state.acquire("cooldown:k", 60) is False  # kept its keys
        await state.put("silence:s", "v", 60)
        assert await state.items("silence:") == {"silence:s": "v"}
    finally:
        await state.aclose()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
        columns = [row[1] for row in conn.execute("PRAGMA table_info(state)")]
    finally:
        conn.close()
    assert columns == ["key", "expires", "value"]


async def test_sqlite_items_is_exact_about_the_prefix(tmp_path: Path, clock: FakeClock) -> None:
    state = SQLiteStateBackend(f"sqlite:///{tmp_path / 's.db'}", clock)
    try:
        for key in ("silence:", "silence:a", "silence;", "silencf", "Silence:b", "sil", "s%:x"):
            await state.put(key, key, 60)
        assert set(await state.items("silence:")) == {"silence:", "silence:a"}
        assert set(await state.items("s%")) == {"s%:x"}
        assert len(await state.items("")) == 7
        await state.put("\U0010ffff", "max", 60)
        assert await state.items("\U0010ffff") == {"\U0010ffff": "max"}
    finally:
        await state.aclose()


# ---------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def write_config(tmp_path: Path, state: str | None = None) -> Path:
    path = tmp_path / "pixalert.toml"
    path.write_text(
        f'history = "sqlite:///{tmp_path}/h.db"\n'
        + (f'state = "{state}"\n' if state else "")
        + '[routing]\nlow = ["ok"]\n[channels.ok]\ntype = "recording"\n'
    )
    return path


def test_cli_add_list_remove(tmp_path: Path, cli_plugins: _plugins.PluginManager) -> None:
    config = str(write_config(tmp_path))
    code, out, err = run(
        "--config",
        config,
        "silence",
        "add",
        "source=db-*",
        "priority=low",
        "--for",
        "2h",
        "--comment",
        "disk swap",
        "--json",
    )
    assert code == 0, err
    made = json.loads(out)
    assert made["matchers"] == {"source": "db-*", "priority": "low"}
    assert made["comment"] == "disk swap"

    code, out, _ = run("--config", config, "silence", "list", "--json")
    assert code == 0
    assert [s["id"] for s in json.loads(out)] == [made["id"]]
    code, out, _ = run("--config", config, "silence", "list")
    assert code == 0
    assert made["id"] in out and "source=db-*" in out and "disk swap" in out

    # Another process (another manager) applies it.
    code, out, _ = run(
        "--config", config, "send", "Disk", "-p", "low", "--source", "db-1", "--json"
    )
    assert code == 0
    assert json.loads(out)["ok"]["error"] == f"silenced by {made['id']}: disk swap"

    code, out, _ = run("--config", config, "silence", "remove", made["id"])
    assert code == 0
    assert f"silence {made['id']} removed" in out
    code, out, _ = run("--config", config, "silence", "list")
    assert "No silences in effect." in out
    code, out, _ = run(
        "--config", config, "send", "Disk", "-p", "low", "--source", "db-1", "--json"
    )
    assert json.loads(out)["ok"]["status"] == "sent"


def test_cli_add_prints_the_id(tmp_path: Path, cli_plugins: _plugins.PluginManager) -> None:
    config = str(write_config(tmp_path))
    code, out, _ = run("--config", config, "silence", "add", "title=x", "--for", "90s")
    assert code == 0
    assert out.startswith("silence ") and ": title=x" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "sauce=db", "--for", "1h"], "silence matcher 'sauce': unknown field"),
        (["add", "source", "--for", "1h"], "expected FIELD=VALUE"),
        (["add", "source=db", "--for", "soon"], "expected a duration such as 90s"),
        (["add", "source=db", "--for", "0s"], "expected seconds > 0"),
        (["add", "source=db"], "Missing option '--for'"),
        (["add", "--for", "1h"], "Missing argument 'MATCHERS...'"),
        (["add", "priority=urgent", "--for", "1h"], "unknown priority 'urgent'"),
        (["remove", "nope"], "no silence 'nope' is in effect"),
    ],
)
def test_cli_bad_input_exits_2(
    tmp_path: Path, cli_plugins: _plugins.PluginManager, args: list[str], message: str
) -> None:
    code, _, err = run("--config", str(write_config(tmp_path)), "silence", *args)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_cli_refuses_a_silence_kept_in_memory(
    tmp_path: Path, cli_plugins: _plugins.PluginManager
) -> None:
    config = str(write_config(tmp_path, state="memory://"))
    code, _, err = run("--config", config, "silence", "add", "source=db", "--for", "1h")
    assert code == 2
    assert "the state backend is in memory" in err


def test_cli_list_empty(tmp_path: Path, cli_plugins: _plugins.PluginManager) -> None:
    code, out, _ = run("--config", str(write_config(tmp_path)), "silence", "list", "--json")
    assert code == 0
    assert json.loads(out) == []


def test_log_records_nothing_for_no_silences(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    manager = make_manager([RecordingChannel("slack")], clock=clock, config=ROUTE)
    try:
        result = manager.send_alert_sync("t", "m", "low")
    finally:
        manager.close_sync()
    assert statuses(result) == {"slack": "sent"}
    assert "silence" not in caplog.text
