"""Several pixalert instances sharing Redis and PostgreSQL (docs/scaling.md).

- one StateBackend contract run against every backend (memory, SQLite, Redis, PostgreSQL),
  for cooldown decisions and for the values behind silences and inhibitions;
- three ``pixalert serve`` processes receive every Alertmanager fixture at once,
  as an HA Alertmanager sends it: each alert reaches the sink once, the history
  holds it once;
- 100 identical alerts raced through two processes: 1 sent, 99 suppressed;
- an instance killed with SIGKILL in the middle of a burst to a slow sink: the
  other takes over within seconds although the lease is 120 s (the victim's
  advisory lock went with its session), every alert arrives, duplicates stay
  within what was in flight;
- Redis stopped mid-run: alerts still go out, /health says degraded, and it
  recovers when Redis is back.

Processes send only to a counting sink on 127.0.0.1 started by the test. Real
Redis (127.0.0.1:6379) and PostgreSQL (127.0.0.1:5432, database ``test``) are
needed: without them the tests skip, or fail when PIXALERT_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

pytestmark = [pytest.mark.services, pytest.mark.slow]

REDIS_URL = "redis://127.0.0.1:6379/0"
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
REPO = Path(__file__).resolve().parents[1]
FIXTURE_DIRS = (
    REPO / "plugins" / "pixalert-monitoring" / "tests" / "fixtures" / "alertmanager",
    REPO.parent / "shared" / "fixtures" / "alertmanager",
)
# Bounds against a hang, never assertions on speed.
WAIT = 90.0


# ---------------------------------------------------------------------------
# Services
# ---------------------------------------------------------------------------


def _unavailable(reason: str) -> None:
    if os.environ.get("PIXALERT_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (PIXALERT_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(f"{reason}; set PIXALERT_REQUIRE_SERVICES=1 to fail instead")


def _redis_problem() -> str | None:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            if not sock.recv(16).startswith(b"+PONG"):
                return "Redis at 127.0.0.1:6379 did not answer PING"
    except OSError as exc:
        return f"Redis not reachable at 127.0.0.1:6379 ({type(exc).__name__})"
    return None


def _postgres_problem() -> str | None:
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install -e plugins/pixalert-postgres)"
    try:
        with psycopg.connect(PG_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL not reachable at {PG_URL} ({type(exc).__name__})"
    return None


@pytest.fixture(scope="module")
def redis_url() -> str:
    """The machine's Redis (never stopped here)."""
    pytest.importorskip("pixalert_redis")
    problem = _redis_problem()
    if problem:
        _unavailable(problem)
    return REDIS_URL


@pytest.fixture(scope="module")
def pg_url() -> str:
    """The machine's PostgreSQL, database ``test``."""
    pytest.importorskip("pixalert_postgres")
    problem = _postgres_problem()
    if problem:
        _unavailable(problem)
    return PG_URL


@pytest.fixture
def schema(pg_url: str) -> Iterator[str]:
    """A PostgreSQL schema of this test's own, dropped afterwards."""
    import psycopg
    from psycopg import sql

    name = f"pixalert_scale_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """A Redis key prefix of this test's own, emptied afterwards."""
    from redis import Redis

    value = f"pixalert-scale:{uuid.uuid4().hex[:12]}:"
    yield value
    with Redis.from_url(redis_url) as client:
        keys = list(client.scan_iter(match=f"{value}*", count=500))
        if keys:
            client.delete(*keys)


async def _history_rows(pg_url: str, schema: str) -> list[tuple[str, str, dict[str, str]]]:
    """(alert id, state, {channel: status}) of every alert in ``schema`` (an alert is
    pending while any of its deliveries waits)."""
    import psycopg
    from psycopg import sql

    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        cursor = await conn.execute(
            sql.SQL(
                "SELECT a.id, CASE WHEN bool_or(d.status IN ('pending', 'retrying')) "
                "THEN 'pending' ELSE 'done' END, coalesce(json_object_agg(d.channel, d.status) "
                "FILTER (WHERE d.channel IS NOT NULL AND d.channel <> '*'), '{{}}') "
                "FROM {s}.alerts a LEFT JOIN {s}.deliveries d ON d.alert_id = a.id GROUP BY a.id"
            ).format(s=sql.Identifier(schema))
        )
        return [(row[0], row[1], dict(row[2])) for row in await cursor.fetchall()]


async def _recorders(pg_url: str, schema: str) -> set[str]:
    """The instances that recorded delivery results in ``schema``."""
    import psycopg
    from psycopg import sql

    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        cursor = await conn.execute(
            sql.SQL(
                "SELECT DISTINCT recorded_by FROM {}.deliveries WHERE recorded_by IS NOT NULL"
            ).format(sql.Identifier(schema))
        )
        return {row[0] for row in await cursor.fetchall()}


async def _settled(pg_url: str, schema: str, count: int) -> list[tuple[str, str, dict[str, str]]]:
    """Wait until ``count`` alerts are in the history and none is pending."""
    deadline = time.monotonic() + WAIT
    while True:
        rows = await _history_rows(pg_url, schema)
        if len(rows) >= count and all(state == "done" for _, state, _ in rows):
            return rows
        if time.monotonic() > deadline:
            pending = sum(state == "pending" for _, state, _ in rows)
            raise AssertionError(f"history not settled: {len(rows)} alerts, {pending} pending")
        await asyncio.sleep(0.1)  # polling the database for a state, not a stand-in for one


# ---------------------------------------------------------------------------
# One StateBackend contract, every backend
# ---------------------------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite", "redis", "postgresql"])
async def state_backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Any, Callable[[float], Awaitable[None]]]]:
    """(backend, let_time_pass) for each backend kind."""
    from pixalert.testing import FakeClock

    clock = FakeClock()

    async def advance(seconds: float) -> None:
        clock.advance(seconds)

    kind = request.param
    if kind == "memory":
        from pixalert.storage import MemoryStateBackend

        backend: Any = MemoryStateBackend(clock)
        yield backend, advance
    elif kind == "sqlite":
        from pixalert._sqlite import SQLiteStateBackend

        backend = SQLiteStateBackend(f"sqlite:///{tmp_path / 'state.db'}", clock)
        yield backend, advance
        await backend.aclose()
    elif kind == "redis":
        request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("prefix")
        from pixalert_redis import RedisStateBackend

        backend = RedisStateBackend.from_url(f"{REDIS_URL}?prefix={prefix}", clock=clock)

        async def wait_out(seconds: float) -> None:
            # Redis expires keys on its own clock.
            await asyncio.sleep(seconds + 0.05)

        yield backend, wait_out
        await backend.aclose()
    else:
        schema = request.getfixturevalue("schema")
        from pixalert_postgres import PostgresStateBackend

        backend = PostgresStateBackend(f"{PG_URL}?schema={schema}", clock=clock)
        yield backend, advance
        await backend.aclose()


async def test_state_backend_contract(
    state_backend: tuple[Any, Callable[[float], Awaitable[None]]],
) -> None:
    from pixalert.storage import StateBackend

    backend, let_pass = state_backend
    assert isinstance(backend, StateBackend)
    assert await backend.acquire("cooldown:a", 0.3) is True
    assert await backend.acquire("cooldown:a", 0.3) is False
    assert await backend.acquire("cooldown:b", 0.3) is True
    await let_pass(0.3)
    assert await backend.acquire("cooldown:a", 30) is True  # expired: free again
    assert await backend.acquire("cooldown:a", 30) is False
    await backend.release("cooldown:a")
    assert await backend.acquire("cooldown:a", 30) is True
    await backend.release("cooldown:never-set")
    won = await asyncio.gather(*(backend.acquire("dedup:race", 30) for _ in range(50)))
    assert won.count(True) == 1
    assert (await backend.health())["status"] == "ok"


async def test_state_backend_values_contract(
    state_backend: tuple[Any, Callable[[float], Awaitable[None]]],
) -> None:
    """put/get/items: silences and inhibitions shared through the backend."""
    backend, let_pass = state_backend
    assert await backend.get("silence:none") is None
    assert await backend.items("silence:") == {}
    await backend.put("silence:a", '{"id": "a"}', 0.3)
    await backend.put("silence:b", "b \u00e9\u2603", 30)
    await backend.put("inhibit:cpu:api", "critical_cpu", 30)
    await backend.put("silence:*", "a glob character is just a character", 30)
    assert await backend.get("silence:a") == '{"id": "a"}'
    assert await backend.get("silence:b") == "b \u00e9\u2603"
    assert await backend.items("silence:") == {
        "silence:a": '{"id": "a"}',
        "silence:b": "b \u00e9\u2603",
        "silence:*": "a glob character is just a character",
    }
    assert await backend.items("silence:*") == {"silence:*": "a glob character is just a character"}
    assert await backend.items("inhibit:") == {"inhibit:cpu:api": "critical_cpu"}
    await backend.put("silence:b", "replaced", 30)  # unconditional, unlike acquire
    assert await backend.get("silence:b") == "replaced"
    await let_pass(0.3)
    assert await backend.get("silence:a") is None  # expired
    assert set(await backend.items("silence:")) == {"silence:b", "silence:*"}
    await backend.release("silence:b")
    assert await backend.get("silence:b") is None
    await backend.put("silence:*", "gone", 0)  # a ttl <= 0 forgets the key
    assert await backend.items("silence:") == {}
    # One key space: a live put key is not acquired, and a released one is.
    await backend.put("inhibit:mem:db", "critical_memory", 30)
    assert await backend.acquire("inhibit:mem:db", 30) is False
    await backend.release("inhibit:mem:db")
    assert await backend.acquire("inhibit:mem:db", 30) is True


# ---------------------------------------------------------------------------
# A counting sink and pixalert serve processes
# ---------------------------------------------------------------------------


@attrs.define
class Sink:
    """A webhook sink on 127.0.0.1: records every request; can hold answers back."""

    requests: list[tuple[str, str, str]] = attrs.Factory(list)  # (webhook-id, alert id, title)
    gate: asyncio.Event = attrs.Factory(asyncio.Event)
    changed: asyncio.Condition = attrs.Factory(asyncio.Condition)
    url: str = ""
    _runner: Any = None

    async def start(self) -> None:
        from aiohttp import web

        async def hook(request: web.Request) -> web.Response:
            payload = await request.json()
            async with self.changed:
                self.requests.append(
                    (
                        request.headers.get("webhook-id", ""),
                        payload["data"]["id"],
                        payload["data"]["title"],
                    )
                )
                self.changed.notify_all()
            await self.gate.wait()
            return web.json_response({"ok": True})

        app = web.Application()
        app.router.add_post("/hook", hook)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/hook"
        self.gate.set()

    async def wait_for(self, count: int) -> None:
        """Until at least ``count`` requests have arrived."""
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(lambda: len(self.requests) >= count), WAIT)

    async def wait_for_alerts(self, ids: set[str]) -> None:
        """Until every alert of ``ids`` has arrived at least once."""
        async with self.changed:
            await asyncio.wait_for(
                self.changed.wait_for(lambda: ids <= set(self.alert_ids())), WAIT
            )

    def alert_ids(self) -> Counter[str]:
        return Counter(alert_id for _, alert_id, _ in self.requests)

    async def stop(self) -> None:
        self.gate.set()
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    """A counting webhook sink on 127.0.0.1."""
    pytest.importorskip("pixalert_webhook")
    server = Sink()
    await server.start()
    yield server
    await server.stop()


@attrs.define
class Instance:
    """One ``pixalert serve`` process."""

    name: str
    process: asyncio.subprocess.Process
    base: str
    _drain: asyncio.Task[None]

    @property
    def alerts_url(self) -> str:
        return f"{self.base}/webhook/alerts"

    def kill(self) -> None:
        """SIGKILL: no goodbye, no cleanup, leases left behind."""
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


def _config(
    path: Path,
    *,
    history: str,
    state: str,
    hook: str,
    cooldown_minutes: float,
    lease: float = 30,
    recover_interval: float = 1.0,
) -> Path:
    routing = "\n".join(f'{p} = ["hook"]' for p in ("low", "medium", "high", "critical"))
    path.write_text(
        f"""history = "{history}"
state = "{state}"
cooldown_minutes = {cooldown_minutes}

[delivery]
lease = {lease}
recover_interval = {recover_interval}
timeout = 60
max_attempts = 3
backoff = 0.1

[routing]
{routing}

[channels.hook]
type = "webhook"
url = "{hook}"
timeout = 60
""",
        encoding="utf-8",
    )
    return path


def _env(home: Path) -> dict[str, str]:
    """A clean environment: none of the seed's variables, so nothing real is reached."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[list[Instance]]]]:
    """Start ``pixalert serve`` processes on free ports with one config; all stopped after."""
    pytest.importorskip("pixalert_monitoring")
    started: list[Instance] = []

    async def start(config: Path, count: int) -> list[Instance]:
        home = tmp_path / "home"
        home.mkdir(exist_ok=True)
        instances = []
        for n in range(count):
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
                env=_env(home),
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

            instance = Instance(f"i{n}", process, base, asyncio.create_task(drain()))
            started.append(instance)
            instances.append(instance)
        return instances

    yield start
    await asyncio.gather(*(i.stop() for i in started))


def _fixtures() -> list[Path]:
    for folder in FIXTURE_DIRS:
        if folder.is_dir():
            return sorted(folder.glob("*.json"))
    return []


async def _post(client: Any, url: str, body: Any) -> tuple[int, dict[str, Any]]:
    """POST ``body`` as JSON; on a 503 (overloaded, storage slow) retry as Alertmanager does."""
    for _ in range(10):
        response = await client.post(
            url, content=json.dumps(body).encode(), headers={"content-type": "application/json"}
        )
        if response.status_code != 503:
            break
        await asyncio.sleep(float(response.headers.get("retry-after", "1")))
    try:
        data = response.json()
    except ValueError:
        data = {}
    return response.status_code, data


# ---------------------------------------------------------------------------
# The scenarios
# ---------------------------------------------------------------------------


async def test_ha_alertmanager_three_instances_deliver_each_alert_once(
    cluster: Callable[..., Awaitable[list[Instance]]],
    sink: Sink,
    pg_url: str,
    schema: str,
    prefix: str,
    tmp_path: Path,
) -> None:
    import httpx

    fixtures = _fixtures()
    assert fixtures, f"no Alertmanager fixtures in {FIXTURE_DIRS}"
    config = _config(
        tmp_path / "pixalert.toml",
        history=f"{pg_url}?schema={schema}",
        state=f"{REDIS_URL}?prefix={prefix}&timeout=2",
        hook=sink.url,
        cooldown_minutes=0,  # only the HA dedup decides here
    )
    instances = await cluster(config, 3)
    accepted: list[str] = []
    async with httpx.AsyncClient(timeout=WAIT) as client:
        for path in fixtures:
            body = json.loads(path.read_text(encoding="utf-8"))
            # An HA Alertmanager: every peer sends the notification, at once.
            replies = await asyncio.gather(*(_post(client, i.alerts_url, body) for i in instances))
            codes = {code for code, _ in replies}
            assert len(codes) == 1, f"{path.name}: instances disagree: {replies}"
            if codes != {200}:
                continue
            per_instance = [data["alerts"] for _, data in replies]
            for position, entries in enumerate(zip(*per_instance, strict=True)):
                taken = [e for e in entries if not e["duplicate"]]
                assert len(taken) <= 1, f"{path.name} alert {position} taken twice: {entries}"
                accepted.extend(e["id"] for e in taken)
    assert accepted, "no fixture alert was accepted"
    assert len(accepted) == len(set(accepted))

    rows = await _settled(pg_url, schema, len(accepted))
    # The history holds each accepted alert once, and nothing else.
    assert sorted(alert_id for alert_id, _, _ in rows) == sorted(accepted)
    assert all(results.get("hook") == "sent" for _, _, results in rows)
    # The sink got each alert exactly once.
    assert sink.alert_ids() == Counter(accepted)
    # Every instance answers history() from the one shared store.
    async with httpx.AsyncClient(timeout=WAIT) as client:
        for instance in instances:
            reply = await client.get(f"{instance.base}/api/alerts", params={"hours": 8784})
            assert reply.status_code == 200, reply.text
            listed = reply.json()
            items = listed["alerts"] if isinstance(listed, dict) else listed
            assert sorted(item["id"] for item in items) == sorted(accepted)


async def test_100_identical_alerts_from_two_processes_one_sent(
    cluster: Callable[..., Awaitable[list[Instance]]],
    sink: Sink,
    pg_url: str,
    schema: str,
    prefix: str,
    tmp_path: Path,
) -> None:
    import httpx

    config = _config(
        tmp_path / "pixalert.toml",
        history=f"{pg_url}?schema={schema}",
        state=f"{REDIS_URL}?prefix={prefix}&timeout=2",
        hook=sink.url,
        cooldown_minutes=10,
    )
    instances = await cluster(config, 2)
    alert = {"title": "Database down", "message": "primary unreachable", "priority": "high"}
    async with httpx.AsyncClient(timeout=WAIT) as client:
        replies = await asyncio.gather(
            *(_post(client, instances[n % 2].alerts_url, alert) for n in range(100))
        )
    assert [code for code, _ in replies] == [200] * 100
    rows = await _settled(pg_url, schema, 100)
    statuses = Counter(results.get("hook") for _, _, results in rows)
    async with httpx.AsyncClient(timeout=WAIT) as client:
        states = [(await client.get(f"{i.base}/health")).json()["state"] for i in instances]
    # (More than 100 only if a request timed out while storing and was retried.)
    assert statuses == {"sent": 1, "suppressed": len(rows) - 1}, states
    assert len(sink.requests) == 1


async def test_sigkill_mid_burst_another_instance_finishes_the_work(
    cluster: Callable[..., Awaitable[list[Instance]]],
    sink: Sink,
    pg_url: str,
    schema: str,
    prefix: str,
    tmp_path: Path,
) -> None:
    import httpx

    config = _config(
        tmp_path / "pixalert.toml",
        history=f"{pg_url}?schema={schema}",
        state=f"{REDIS_URL}?prefix={prefix}&timeout=2",
        hook=sink.url,
        cooldown_minutes=0,
        # A lease far longer than the takeover may take: the survivor cannot be
        # waiting for it, it must see that the victim's session (and lock) is gone.
        lease=120,
        recover_interval=0.25,
    )
    victim, survivor = await cluster(config, 2)
    burst = [{"title": f"burst {n}", "message": "slow sink", "priority": "high"} for n in range(30)]
    sink.gate.clear()  # the sink is slow: nothing is answered for now
    async with httpx.AsyncClient(timeout=WAIT) as client:
        code, reply = await _post(client, victim.alerts_url, burst)
    assert code == 200, reply
    ids = [entry["id"] for entry in reply["alerts"]]
    assert len(set(ids)) == 30  # stored (durable) before the receiver answered

    await sink.wait_for(5)  # deliveries under way
    victim.kill()
    killed = time.monotonic()
    await victim.process.wait()
    in_flight = sink.alert_ids()  # sent by the victim, never answered
    sink.gate.set()  # the sink recovers; the survivor takes over

    # Every alert reaches the sink, well before the lease could have run out.
    await sink.wait_for_alerts(set(ids))
    delivered = time.monotonic() - killed
    assert delivered < 10.0, f"the survivor took {delivered:.1f} s after the kill"
    rows = await _settled(pg_url, schema, 30)
    assert time.monotonic() - killed < 60  # settled too, long before the 120 s lease
    assert all(results.get("hook") == "sent" for _, _, results in rows)
    received = sink.alert_ids()
    assert set(received) == set(ids), "an alert never reached the sink"
    # Only what was in flight at the kill may arrive twice, and only once more.
    duplicates = {alert_id: n - 1 for alert_id, n in received.items() if n > 1}
    assert set(duplicates) <= set(in_flight), (duplicates, in_flight)
    assert all(n <= in_flight[alert_id] for alert_id, n in duplicates.items())
    assert sum(duplicates.values()) <= sum(in_flight.values())
    # The survivor did all of it: the victim never got an answer before it died.
    async with httpx.AsyncClient(timeout=WAIT) as client:
        survivor_id = (await client.get(f"{survivor.base}/health")).json()["instance"]
    assert await _recorders(pg_url, schema) == {survivor_id}
    # A redelivery carries the same idempotency key, so a receiver can drop it.
    by_alert: dict[str, set[str]] = {}
    for webhook_id, alert_id, _ in sink.requests:
        by_alert.setdefault(alert_id, set()).add(webhook_id)
    assert all(len(keys) == 1 for keys in by_alert.values())


async def test_redis_stopped_mid_run_alerts_still_go_out(
    cluster: Callable[..., Awaitable[list[Instance]]],
    sink: Sink,
    pg_url: str,
    schema: str,
    tmp_path: Path,
) -> None:
    import httpx

    pytest.importorskip("pixalert_redis")
    from pixalert_redis.testing import RedisServer

    if not _fixtures():
        pytest.fail(f"no Alertmanager fixtures in {FIXTURE_DIRS}")
    firing = json.loads(next(p for p in _fixtures() if p.name == "firing_single.json").read_text())
    with RedisServer() as redis:  # a private Redis: the shared one is never stopped
        config = _config(
            tmp_path / "pixalert.toml",
            history=f"{pg_url}?schema={schema}",
            state=f"{redis.url}?timeout=0.3&retry_interval=0.2",
            hook=sink.url,
            cooldown_minutes=5,  # every alert takes a cooldown decision in Redis
        )
        (instance,) = await cluster(config, 1)
        async with httpx.AsyncClient(timeout=WAIT) as client:

            async def health() -> dict[str, Any]:
                reply = await client.get(f"{instance.base}/health")
                assert reply.status_code == 200, reply.text
                return dict(reply.json())

            async def send(title: str) -> None:
                body = {"title": title, "message": "m", "priority": "high"}
                assert (await _post(client, instance.alerts_url, body))[0] == 200

            assert (await health())["status"] == "ok"
            await send("before")
            await sink.wait_for(1)

            redis.stop()
            await send("during")
            await sink.wait_for(2)  # delivered without Redis
            report = await health()
            assert report["status"] == "degraded"
            assert report["state"]["status"] == "degraded"
            assert "fail open" in report["state"]["reason"]
            assert report["state"]["fail_open_total"] >= 1

            redis.start()
            report = await health()  # a health check tries Redis again at once
            assert report["state"]["status"] == "ok", report
            await send("after")
            await sink.wait_for(3)
            # Dedup works again: an HA peer's copy of a notification is dropped.
            first = await _post(client, instance.alerts_url, firing)
            second = await _post(client, instance.alerts_url, firing)
            assert first[0] == second[0] == 200
            assert all(not e["duplicate"] for e in first[1]["alerts"])
            assert all(e["duplicate"] for e in second[1]["alerts"])
    titles = [title for _, _, title in sink.requests]
    assert titles[:3] == ["before", "during", "after"]
