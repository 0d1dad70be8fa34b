"""History queries on the real PostgreSQL: the manager's filters and stats_by, and the
``pixalert history``/``stats --by`` commands with ``PIXALERT_HISTORY`` on the server."""

from __future__ import annotations

import asyncio
import json

import pixalert_postgres
import pytest
from click.testing import CliRunner
from pixalert.cli import cli
from pixalert.testing import FakeClock, RecordingChannel, make_manager

pytestmark = pytest.mark.services


async def _through_the_manager(schema_url: str) -> None:
    clock = FakeClock()
    config = {"history": schema_url}
    slack = RecordingChannel("slack")
    async with make_manager([slack], clock=clock, config=config, plugins=[pixalert_postgres]) as m:
        await m.send_alert("Disk full", "db-1", "high", ["slack"], source="db")
        clock.advance(3600)
        await m.send_alert("CPU hot", "api-1", "low", ["slack"], source="api")
        disk = (await m.history(source="db"))[0]
        await m.ack(disk["id"], by="alice")
        acked = await m.history(status="acknowledged")
        assert [e["title"] for e in acked] == ["Disk full"]
        assert [e["title"] for e in await m.history(priorities=["low"], since="30m")] == ["CPU hot"]
        by_priority = await m.stats_by("priority")
        assert list(by_priority["groups"]) == ["LOW", "HIGH"]
        by_hour = await m.stats_by("hour")
        assert sum(g["alerts"] for g in by_hour["groups"].values()) == 2
        assert by_hour["groups"][next(iter(by_hour["groups"]))]["latency"]["p50"] is not None


def test_filters_and_stats_by_through_the_manager_and_the_cli(
    schema_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    asyncio.run(_through_the_manager(schema_url))
    monkeypatch.setenv("PIXALERT_HISTORY", schema_url)
    runner = CliRunner()
    result = runner.invoke(
        cli,
        ["history", "--status", "acknowledged", "--json", "--since", "7d"],
        prog_name="pixalert",
    )
    assert result.exit_code == 0, result.stderr
    assert [e["title"] for e in json.loads(result.stdout)] == ["Disk full"]
    result = runner.invoke(cli, ["stats", "--by", "source", "--since", "7d", "--json"])
    assert result.exit_code == 0, result.stderr
    groups = json.loads(result.stdout)["groups"]
    assert {name: g["sent"] for name, g in groups.items()} == {"api": 1, "db": 1}
