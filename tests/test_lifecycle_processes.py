"""Escalation and heartbeats with ``pixalert serve`` as real processes and the real clock:
a restart between steps still runs the next step, two instances on one history run
each step once (one of them SIGKILLed on the way), heartbeats pinged over HTTP.

The steps are seconds apart; waits are bounded by ``WAIT`` against a hang and end
as soon as what is waited for arrives. The one plain sleep is the scenario itself:
no instance running while a step falls due.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest

pytest.importorskip("pixalert_monitoring")
pytest.importorskip("pixalert_webhook")

WAIT = 60.0
TOKEN = "process-test-token"


@attrs.define
class Sink:
    """Webhook endpoints on 127.0.0.1 (``/first``, ``/pager``) that keep what arrives."""

    received: dict[str, list[dict[str, Any]]] = attrs.Factory(dict)
    changed: asyncio.Condition = attrs.Factory(asyncio.Condition)
    base: str = ""
    _runner: Any = None

    async def start(self) -> None:
        from aiohttp import web

        async def hook(request: web.Request) -> web.Response:
            data = (await request.json())["data"]
            data["received_at"] = time.time()
            async with self.changed:
                self.received.setdefault(request.match_info["name"], []).append(data)
                self.changed.notify_all()
            return web.json_response({"ok": True})

        app = web.Application()
        app.router.add_post("/{name}", hook)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    def of(self, name: str) -> list[dict[str, Any]]:
        return list(self.received.get(name, []))

    async def wait_for(self, name: str, count: int) -> list[dict[str, Any]]:
        async with self.changed:
            await asyncio.wait_for(
                self.changed.wait_for(lambda: len(self.received.get(name, [])) >= count), WAIT
            )
        return self.of(name)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    server = Sink()
    await server.start()
    yield server
    await server.stop()


@attrs.define
class Instance:
    process: asyncio.subprocess.Process
    base: str
    started_at: float
    _drain: asyncio.Task[None]

    def kill(self) -> None:
        """SIGKILL: no goodbye, nothing given back."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except asyncio.TimeoutError:
                self.process.kill()
        await self.process.wait()
        self._drain.cancel()


def write_config(path: Path, sink: Sink, body: str) -> Path:
    db = path.parent / "history.db"
    path.write_text(
        f'history = "sqlite:///{db}"\n'
        f'state = "sqlite:///{db}"\n'
        "cooldown_minutes = 0\n"
        "[delivery]\nrecover_interval = 0.2\nlease = 10\n"
        "[routing]\n"
        + "".join(f'{p} = ["first"]\n' for p in ("low", "medium", "high", "critical"))
        + f'[channels.first]\ntype = "webhook"\nurl = "{sink.base}/first"\n'
        f'[channels.pager]\ntype = "webhook"\nurl = "{sink.base}/pager"\n' + body,
        encoding="utf-8",
    )
    return path


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Callable[[Path], Awaitable[Instance]]]:
    started: list[Instance] = []
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_STATE_HOME": str(home / ".state"),
        "LANG": "C.UTF-8",
        "PIXALERT_RECEIVER_TOKEN": TOKEN,
    }

    async def start(config: Path) -> Instance:
        workdir = tmp_path / f"instance{len(started)}"
        workdir.mkdir()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "pixalert",
            "serve",
            "--port",
            "0",
            "--config",
            str(config),
            "--log-level",
            "warning",
            cwd=workdir,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=open(workdir / "stderr.log", "wb"),  # noqa: SIM115 - the process owns it
        )
        assert process.stdout is not None
        line = b""
        try:
            while b"receiving alerts on" not in line:
                line = await asyncio.wait_for(process.stdout.readline(), WAIT)
                if not line:
                    err = (workdir / "stderr.log").read_text(errors="replace")
                    raise AssertionError(f"pixalert serve did not start:\n{err[-3000:]}")
        except BaseException:
            process.kill()
            await process.wait()
            raise
        base = line.decode().split("receiving alerts on ", 1)[1].split("/webhook/alerts")[0]

        async def drain(stream: asyncio.StreamReader = process.stdout) -> None:
            while await stream.readline():
                pass

        instance = Instance(process, base, time.time(), asyncio.create_task(drain()))
        started.append(instance)
        return instance

    yield start
    await asyncio.gather(*(i.stop() for i in started))


ESCALATION = """
[escalation.default]
steps = [{ after = "2s", channels = ["pager"] }, { after = "2s", channels = ["pager"] }]
"""


async def raise_alert(instance: Instance, title: str) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            f"{instance.base}/webhook/alerts",
            json={"title": title, "message": "primary gone", "priority": "critical"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
    assert response.status_code == 200, response.text


def steps(notices: list[dict[str, Any]]) -> list[str]:
    return [n["metadata"]["escalation"].split(":")[0] for n in notices]


async def test_a_restart_between_steps_still_runs_the_next_step(
    tmp_path: Path, sink: Sink, serve: Callable[[Path], Awaitable[Instance]]
) -> None:
    config = write_config(tmp_path / "pixalert.toml", sink, ESCALATION)
    first = await serve(config)
    await raise_alert(first, "DB down")
    await sink.wait_for("first", 1)
    notices = await sink.wait_for("pager", 1)
    assert steps(notices) == ["default step 1 of 2"]
    await first.stop()
    # Down while step 2 falls due (2 s after step 1 was due).
    await asyncio.sleep(max(0.0, notices[0]["received_at"] + 2.5 - time.time()))
    assert len(sink.of("pager")) == 1
    second = await serve(config)
    notices = await sink.wait_for("pager", 2)
    assert steps(notices) == ["default step 1 of 2", "default step 2 of 2"]
    assert notices[1]["received_at"] >= second.started_at
    async with httpx.AsyncClient() as client:
        listing = await client.get(
            f"{second.base}/api/escalations", headers={"Authorization": f"Bearer {TOKEN}"}
        )
    assert listing.json() == {"escalations": []}  # done
    assert len(sink.of("pager")) == 2 and len(sink.of("first")) == 1


async def test_two_instances_run_each_step_once_even_when_one_is_killed(
    tmp_path: Path, sink: Sink, serve: Callable[[Path], Awaitable[Instance]]
) -> None:
    config = write_config(tmp_path / "pixalert.toml", sink, ESCALATION)
    one, two = await serve(config), await serve(config)
    await raise_alert(one, "DB down")
    await sink.wait_for("first", 1)
    await sink.wait_for("pager", 1)  # both instances sweep: step 1 is run by one of them
    # Kill one once step 1 is written as done (the escalation waits for step 2):
    # killed between sending a step and writing it, an instance's step is run
    # again by the other (at least once), which is not what this test is about.
    await _until_next_step(two, 2)
    one.kill()
    notices = await sink.wait_for("pager", 2)
    assert steps(notices) == ["default step 1 of 2", "default step 2 of 2"]
    # Nothing more comes: the escalation is done and no step ran twice.
    async with httpx.AsyncClient() as client:
        for _ in range(50):
            listing = await client.get(
                f"{two.base}/api/escalations", headers={"Authorization": f"Bearer {TOKEN}"}
            )
            if listing.json() == {"escalations": []}:
                break
            await asyncio.sleep(0.1)
    assert listing.json() == {"escalations": []}
    assert len(sink.of("pager")) == 2 and len(sink.of("first")) == 1


async def _until_next_step(instance: Instance, step: int) -> None:
    async with httpx.AsyncClient() as client:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            listing = await client.get(
                f"{instance.base}/api/escalations", headers={"Authorization": f"Bearer {TOKEN}"}
            )
            if [e["step"] for e in listing.json()["escalations"]] == [step]:
                return
            await asyncio.sleep(0.05)
    raise AssertionError(f"the escalation never reached step {step}: {listing.json()}")


HEARTBEAT = """
[heartbeats.job]
period = "2s"
grace = "1s"
channels = ["pager"]
"""


async def test_heartbeats_pinged_over_http_and_missed(
    tmp_path: Path, sink: Sink, serve: Callable[[Path], Awaitable[Instance]]
) -> None:
    config = write_config(tmp_path / "pixalert.toml", sink, HEARTBEAT)
    instance = await serve(config)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(timeout=30) as client:
        start = await client.post(f"{instance.base}/heartbeat/job/start", headers=auth)
        assert start.status_code == 200 and start.json()["running"]
        ping = await client.post(f"{instance.base}/heartbeat/job", headers=auth)
        assert ping.status_code == 200 and ping.json()["state"] == "up"
        assert ping.json()["last_duration"] >= 0
        pinged = time.time()
        (late,) = await sink.wait_for("pager", 1)  # no ping for 2 s and its grace
        assert late["title"] == "Heartbeat job is late" and late["key"] == "heartbeat:job"
        assert late["received_at"] >= pinged + 3
        assert "No ping from job since" in late["message"]
        back = await client.post(f"{instance.base}/heartbeat/job", headers=auth)
        assert back.json()["alert"] == "resolved"
        notices = await sink.wait_for("pager", 2)
        assert notices[1]["status"] == "resolved"
        failed = await client.post(
            f"{instance.base}/heartbeat/job/fail", content=b"exit status 1", headers=auth
        )
        assert failed.json()["alert"] == "raised"
        notices = await sink.wait_for("pager", 3)
        assert notices[2]["title"] == "Heartbeat job failed"
        assert "exit status 1" in notices[2]["message"]
        listing = await client.get(f"{instance.base}/api/heartbeats", headers=auth)
        assert listing.json()["heartbeats"][0]["state"] == "failed"
