"""Rows 1 and 2: webhook and email delivery, pixalert against the raw clients and Apprise.

Every contender sends the same number of alerts to the same sink process,
with the same number of alerts in flight; each trial has its own event loop,
clients and warm-up (connections opened, caches filled), then is timed. The
sink's count must match what was sent or the run fails.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import tempfile
import time
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from _common import interleave, log, row
from _sinks import HTTPSink, SMTPSink

SENDER = "pixalert@example.com"
RECIPIENT = "ops@example.com"
MESSAGE = "CPU usage is 97.3% on web-1 (threshold 90%) for the last 5 minutes"
METADATA = {"host": "web-1", "value": 97.3, "threshold": 90}

logging.getLogger("apprise").setLevel(logging.CRITICAL)


#: A trial stops taking new alerts after this many seconds (a slow contender
#: then sends fewer; its rate is what it sent over the time it took).
DEADLINE = 8.0


async def drive(
    send: Callable[[int], Awaitable[None]],
    start: int,
    count: int,
    inflight: int,
    deadline: float | None = None,
) -> int:
    """Call ``send(i)`` for up to ``count`` values of ``i``, ``inflight`` at a time;
    return how many were sent (fewer when ``deadline``, a perf_counter time, passed)."""
    numbers = iter(range(start, start + count))
    started = 0

    async def worker() -> None:
        nonlocal started
        for i in numbers:
            started += 1
            await send(i)
            if deadline is not None and time.perf_counter() > deadline:
                return

    await asyncio.gather(*(worker() for _ in range(inflight)))
    return started


async def timed(
    send: Callable[[int], Awaitable[None]], warm: int, count: int, inflight: int
) -> tuple[float, int]:
    """Warm up, then send ``count`` alerts (or what fits in DEADLINE seconds).

    Returns (alerts per second, alerts sent including the warm-up).
    """
    await drive(send, 0, warm, inflight)
    started = time.perf_counter()
    sent = await drive(send, warm, count, inflight, started + DEADLINE)
    return sent / (time.perf_counter() - started), warm + sent


def _payload(i: int) -> bytes:
    # The same shape and size as pixalert-webhook's body.
    return json.dumps(
        {
            "type": "alert.firing",
            "timestamp": "2026-01-02T03:04:05.678901Z",
            "version": "1",
            "data": {
                "id": f"{i:032x}",
                "key": f"bench:alert {i}",
                "title": f"alert {i}",
                "message": MESSAGE,
                "priority": "HIGH",
                "status": "firing",
                "source": "bench",
                "metadata": METADATA,
                "created_at": "2026-01-02T03:04:05.678901Z",
            },
        },
        separators=(",", ":"),
    ).encode()


# ----------------------------------------------------------------------------
# Webhook contenders: each returns alerts/s (an alert = one POST per URL)
# ----------------------------------------------------------------------------


def _check_results(results: Any, names: list[str]) -> None:
    for name in names:
        if not results[name]:
            raise AssertionError(f"pixalert: {name} was not sent: {results[name]}")


async def webhook_pixalert(
    urls: list[str],
    warm: int,
    count: int,
    inflight: int,
    *,
    concurrency: int | None = None,
    history: str = "memory://",
) -> tuple[float, int]:
    from pixalert import NotificationManager

    channels = {f"hook{i}": {"type": "webhook", "url": url} for i, url in enumerate(urls)}
    names = list(channels)
    config: dict[str, Any] = {"history": history, "channels": channels}
    if concurrency is not None:  # else the default: at most 10 requests per channel at once
        config["delivery"] = {"concurrency": concurrency}
    manager = NotificationManager(config=config, env={}, read_files=False)
    tag = time.monotonic_ns()

    async def send(i: int) -> None:
        # Unique titles: every alert has its own cooldown key, none is suppressed.
        results = await manager.send_alert(
            f"alert {tag}-{i}", MESSAGE, "high", channels=names, metadata=METADATA, source="bench"
        )
        _check_results(results, names)

    async with manager:
        return await timed(send, warm, count, inflight)


async def webhook_aiohttp(
    urls: list[str], warm: int, count: int, inflight: int
) -> tuple[float, int]:
    import aiohttp

    headers = {"content-type": "application/json"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:

        async def post(url: str, body: bytes) -> None:
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    raise AssertionError(f"aiohttp: HTTP {response.status}")

        async def send(i: int) -> None:
            body = _payload(i)
            if len(urls) == 1:
                await post(urls[0], body)
            else:
                await asyncio.gather(*(post(url, body) for url in urls))

        return await timed(send, warm, count, inflight)


async def webhook_httpx(urls: list[str], warm: int, count: int, inflight: int) -> tuple[float, int]:
    import httpx

    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(limits=limits) as client:

        async def post(url: str, body: bytes) -> None:
            response = await client.post(url, content=body, headers=headers)
            if response.status_code != 200:
                raise AssertionError(f"httpx: HTTP {response.status_code}")

        async def send(i: int) -> None:
            body = _payload(i)
            if len(urls) == 1:
                await post(urls[0], body)
            else:
                await asyncio.gather(*(post(url, body) for url in urls))

        return await timed(send, warm, count, inflight)


async def webhook_apprise(
    urls: list[str], warm: int, count: int, inflight: int
) -> tuple[float, int]:
    import apprise

    notifier = apprise.Apprise()
    for url in urls:
        if not notifier.add("json://" + url.removeprefix("http://")):
            raise AssertionError("apprise refused a json:// URL")

    async def send(i: int) -> None:
        if not await notifier.async_notify(body=MESSAGE, title=f"alert {i}"):
            raise AssertionError("apprise: a notification failed")

    return await timed(send, warm, count, inflight)


WEBHOOK = {
    "pixalert": webhook_pixalert,
    "aiohttp": webhook_aiohttp,
    "httpx": webhook_httpx,
    "apprise": webhook_apprise,
}


def _counted_trial(
    sink: Any, fn: Any, name: str, args: tuple[Any, ...], what: str
) -> Callable[[], float]:
    """A trial of ``fn(*args)`` whose sends the sink must have counted, one per target."""

    def run() -> float:
        before = sink.count
        value, sent = asyncio.run(fn(*args))
        sink.expect(before, sent * len(args[0]), f"{what}: {name}")
        return float(value)

    return run


def run_webhook(quick: bool, rounds: int) -> list[dict[str, Any]]:
    """Row 1: 1 and 4 webhook channels, 10 and 50 alerts in flight."""
    global DEADLINE
    DEADLINE = 2.0 if quick else 5.0
    rows = []
    with HTTPSink() as sink:
        for targets in (1, 4):
            urls = [sink.url(f"hook{i}") for i in range(targets)]
            count = (300 if quick else 1500) // targets
            warm = max(20, count // 10)
            for inflight in (10, 50):
                label = f"webhook {targets} channel(s), {inflight} in flight"

                trial = functools.partial(_counted_trial, sink)

                contenders = dict(WEBHOOK)
                pairs = [("pixalert", "aiohttp"), ("pixalert", "httpx"), ("pixalert", "apprise")]
                if inflight > 10:
                    # The default caps each channel at 10 requests at once; this one
                    # lets it have as many in flight as the raw clients do.
                    open_name = f"pixalert, delivery.concurrency = {inflight}"
                    contenders[open_name] = functools.partial(
                        webhook_pixalert, concurrency=inflight
                    )
                    pairs.append((open_name, "aiohttp"))
                samples = interleave(
                    {
                        name: trial(fn, name, (urls, warm, count, inflight), label)
                        for name, fn in contenders.items()
                    },
                    rounds,
                    label,
                )
                rows.append(
                    row(
                        "webhook",
                        f"{targets} webhook channel{'s' if targets > 1 else ''}, "
                        f"{inflight} alerts in flight",
                        "alerts/s",
                        samples,
                        pairs=pairs,
                        targets=[
                            {"what": "pixalert/aiohttp", "op": ">=", "value": 0.5},
                            {"what": "pixalert/apprise", "op": ">=", "value": 5.0},
                        ],
                        alerts=count,
                        requests_per_alert=targets,
                        inflight=inflight,
                    )
                )
    return rows


# ----------------------------------------------------------------------------
# Row 1c: the same webhook rows with the stores users run (SQLite, PostgreSQL)
# ----------------------------------------------------------------------------

#: Which stores ``webhook-stores`` measures (``run.py --stores``).
STORES = ["memory", "sqlite", "postgres"]
STORE_NAMES = {
    "memory": "pixalert, memory store",
    "sqlite": "pixalert, SQLite store",
    "postgres": "pixalert, PostgreSQL store",
}


def _store_contender(store: str, tmp: Path) -> Callable[..., Any]:
    """An async contender like :func:`webhook_pixalert` on a fresh store of ``store``."""
    numbers = iter(range(1_000_000))

    async def contender(urls: list[str], warm: int, count: int, inflight: int) -> Any:
        if store == "memory":
            return await webhook_pixalert(urls, warm, count, inflight)
        if store == "sqlite":  # the default store: a file, WAL; a new one per trial
            url = f"sqlite:///{tmp / f'hook{next(numbers)}.db'}"
            return await webhook_pixalert(urls, warm, count, inflight, history=url)
        from _stores import pg_schema

        with pg_schema() as (_, url):  # a schema of its own per trial
            return await webhook_pixalert(urls, warm, count, inflight, history=url)

    return contender


def run_webhook_stores(quick: bool, rounds: int) -> list[dict[str, Any]]:
    """Row 1c: row 1 with pixalert on each store, against the same raw clients, one run."""
    global DEADLINE
    DEADLINE = 2.0 if quick else 5.0
    from _stores import pg_unreachable

    stores = list(STORES)
    skipped = None
    if "postgres" in stores:
        skipped = pg_unreachable()
        if skipped:
            log(f"  skipping the PostgreSQL contenders: {skipped}")
            stores.remove("postgres")
    rows = []
    with tempfile.TemporaryDirectory(prefix="pixalert-bench-") as tmp, HTTPSink() as sink:
        for targets in (1, 4):
            urls = [sink.url(f"hook{i}") for i in range(targets)]
            count = (300 if quick else 1500) // targets
            warm = max(20, count // 10)
            for inflight in (10, 50):
                label = f"webhook by store, {targets} channel(s), {inflight} in flight"

                trial = functools.partial(_counted_trial, sink)

                contenders: dict[str, Any] = {
                    STORE_NAMES[s]: _store_contender(s, Path(tmp)) for s in stores
                }
                contenders.update(
                    aiohttp=webhook_aiohttp, httpx=webhook_httpx, apprise=webhook_apprise
                )
                pairs = [(STORE_NAMES[s], "aiohttp") for s in stores]
                pairs += [(STORE_NAMES[s], "apprise") for s in stores if s != "memory"]
                pairs += [(STORE_NAMES[s], "httpx") for s in stores if s != "memory"]
                if "memory" in stores:
                    pairs += [(STORE_NAMES[s], STORE_NAMES["memory"]) for s in stores[1:]]
                goals = []
                if "sqlite" in stores:
                    goals += [
                        {"what": f"{STORE_NAMES['sqlite']}/aiohttp", "op": ">=", "value": 0.5},
                        {"what": f"{STORE_NAMES['sqlite']}/apprise", "op": ">=", "value": 5.0},
                    ]
                if "postgres" in stores:
                    goals.append(
                        {"what": f"{STORE_NAMES['postgres']}/aiohttp", "op": ">=", "value": 0.3}
                    )
                samples = interleave(
                    {
                        name: trial(fn, name, (urls, warm, count, inflight), label)
                        for name, fn in contenders.items()
                    },
                    rounds,
                    label,
                )
                rows.append(
                    row(
                        "webhook-stores",
                        f"{targets} webhook channel{'s' if targets > 1 else ''}, "
                        f"{inflight} alerts in flight, by store",
                        "alerts/s",
                        samples,
                        pairs=pairs,
                        targets=goals,
                        alerts=count,
                        requests_per_alert=targets,
                        inflight=inflight,
                        skipped=skipped,
                    )
                )
    return rows


# ----------------------------------------------------------------------------
# Email contenders: each returns messages/s
# ----------------------------------------------------------------------------


async def email_pixalert(port: int, warm: int, count: int, inflight: int) -> tuple[float, int]:
    from pixalert import NotificationManager

    config = {
        "history": "memory://",
        "channels": {
            "email": {
                "type": "email",
                "smtp_server": "127.0.0.1",
                "smtp_port": port,
                "security": "none",
                "recipients": [RECIPIENT],
                "sender": SENDER,
                "local_hostname": "bench.local",
            }
        },
    }
    manager = NotificationManager(config=config, env={}, read_files=False)
    tag = time.monotonic_ns()

    async def send(i: int) -> None:
        results = await manager.send_alert(
            f"alert {tag}-{i}", MESSAGE, "high", channels=["email"], metadata=METADATA
        )
        _check_results(results, ["email"])

    async with manager:
        return await timed(send, warm, count, inflight)


async def email_aiosmtplib(port: int, warm: int, count: int, inflight: int) -> tuple[float, int]:
    import aiosmtplib

    smtp = aiosmtplib.SMTP(
        hostname="127.0.0.1", port=port, start_tls=False, local_hostname="bench.local"
    )
    await smtp.connect()
    lock = asyncio.Lock()  # one connection: one transaction at a time

    async def send(i: int) -> None:
        msg = EmailMessage()
        msg["From"] = SENDER
        msg["To"] = RECIPIENT
        msg["Subject"] = f"[HIGH] alert {i}"
        msg.set_content(MESSAGE)
        async with lock:
            await smtp.send_message(msg)

    try:
        return await timed(send, warm, count, inflight)
    finally:
        await smtp.quit()


async def email_aiosmtplib_same(
    port: int, warm: int, count: int, inflight: int
) -> tuple[float, int]:
    """Raw aiosmtplib sending the very message pixalert builds (text + HTML, 9 headers)."""
    import aiosmtplib
    from pixalert import Alert
    from pixalert_email._message import build_message, serialise

    smtp = aiosmtplib.SMTP(
        hostname="127.0.0.1", port=port, start_tls=False, local_hostname="bench.local"
    )
    await smtp.connect()
    lock = asyncio.Lock()

    async def send(i: int) -> None:
        alert = Alert(title=f"alert {i}", message=MESSAGE, priority="high", metadata=METADATA)
        data = serialise(build_message(alert, sender=SENDER, recipients=[RECIPIENT]))
        async with lock:
            await smtp.sendmail(SENDER, [RECIPIENT], data)

    try:
        return await timed(send, warm, count, inflight)
    finally:
        await smtp.quit()


def _apprise_email(port: int, throttle: bool) -> Any:
    import apprise

    notifier = apprise.Apprise()
    url = f"mailto://127.0.0.1:{port}?from={SENDER}&to={RECIPIENT}&mode=insecure"
    if not notifier.add(url):
        raise AssertionError("apprise refused the mailto:// URL")
    if not throttle:
        for service in notifier:
            service.request_rate_per_sec = 0
    return notifier


async def email_apprise(port: int, warm: int, count: int, inflight: int) -> tuple[float, int]:
    notifier = _apprise_email(port, throttle=False)

    async def send(i: int) -> None:
        if not await notifier.async_notify(body=MESSAGE, title=f"[HIGH] alert {i}"):
            raise AssertionError("apprise: an email failed")

    return await timed(send, warm, count, inflight)


async def email_apprise_throttled(port: int, messages: int) -> float:
    notifier = _apprise_email(port, throttle=True)
    started = time.perf_counter()
    for i in range(messages):
        if not await notifier.async_notify(body=MESSAGE, title=f"[HIGH] alert {i}"):
            raise AssertionError("apprise: an email failed")
    return messages / (time.perf_counter() - started)


EMAIL = {
    "pixalert": email_pixalert,
    "aiosmtplib": email_aiosmtplib,
    "aiosmtplib, pixalert's message": email_aiosmtplib_same,
    "apprise": email_apprise,
}


def run_email(quick: bool, rounds: int) -> list[dict[str, Any]]:
    """Row 2: email bursts on one aiosmtpd sink (plain SMTP on loopback)."""
    global DEADLINE
    DEADLINE = 2.0 if quick else 5.0
    count = 200 if quick else 1000
    warm = 20
    inflight = 10
    label = f"email burst of {count}, {inflight} in flight"
    with SMTPSink() as sink:

        def trial(fn: Any, name: str) -> Any:
            def run() -> float:
                before = sink.count
                value, sent = asyncio.run(fn(sink.port, warm, count, inflight))
                sink.expect(before, sent, f"{label}: {name}")
                return value

            return run

        samples = interleave({name: trial(fn, name) for name, fn in EMAIL.items()}, rounds, label)
        # Apprise as shipped sleeps between messages: three messages, once.
        messages = 2 if quick else 3
        before = sink.count
        shipped = asyncio.run(email_apprise_throttled(sink.port, messages))
        sink.expect(before, messages, "apprise mailto:// as shipped")
        log(f"  apprise mailto:// as shipped: {shipped:.3g} msg/s")
    result = row(
        "email",
        f"email burst of {count} alerts, {inflight} in flight",
        "messages/s",
        samples,
        pairs=[
            ("pixalert", "aiosmtplib"),
            ("pixalert", "aiosmtplib, pixalert's message"),
            ("pixalert", "apprise"),
        ],
        targets=[
            {"what": "pixalert/aiosmtplib", "op": ">=", "value": 0.8},
            {"what": "pixalert/apprise", "op": ">=", "value": 10.0},
        ],
        alerts=count,
        inflight=inflight,
    )
    pixalert = result["contenders"]["pixalert"]["median"]
    result["apprise_as_shipped"] = {
        "messages": messages,
        "messages_per_s": shipped,
        "pixalert/apprise_as_shipped": pixalert / shipped,
        "note": "Apprise's email plugin waits request_rate_per_sec = 5.5 s between messages",
    }
    return [result]


# ----------------------------------------------------------------------------
# pixalert-apprise: Apprise through pixalert against Apprise alone
# ----------------------------------------------------------------------------


async def apprise_pixalert(url: str, warm: int, count: int, inflight: int) -> tuple[float, int]:
    """pixalert's ``apprise`` channel (pixalert-apprise) sending to one ``json://`` URL."""
    from pixalert import NotificationManager

    config: dict[str, Any] = {
        "history": "memory://",
        "channels": {
            "chat": {"type": "apprise", "urls": ["json://" + url.removeprefix("http://")]}
        },
    }
    manager = NotificationManager(config=config, env={}, read_files=False)
    tag = time.monotonic_ns()

    async def send(i: int) -> None:
        results = await manager.send_alert(
            f"alert {tag}-{i}", MESSAGE, "high", channels=["chat"], metadata=METADATA
        )
        _check_results(results, ["chat"])

    async with manager:
        return await timed(send, warm, count, inflight)


async def apprise_alone(url: str, warm: int, count: int, inflight: int) -> tuple[float, int]:
    """Apprise's own ``async_notify`` to the same ``json://`` URL."""
    return await webhook_apprise([url], warm, count, inflight)


APPRISE = {"pixalert-apprise": apprise_pixalert, "apprise": apprise_alone}


def run_apprise(quick: bool, rounds: int) -> list[dict[str, Any]]:
    """Row 1b: pixalert-apprise against Apprise alone, one json:// sink, 10 alerts in flight.

    Both go through Apprise's async_notify and its shared thread pool (requests
    underneath); pixalert adds routing, cooldown, history and its retry
    machinery. The sink's count must match what each sent.
    """
    global DEADLINE
    DEADLINE = 2.0 if quick else 5.0
    count = 300 if quick else 1500
    warm = 30
    inflight = 10
    label = f"apprise json://, {inflight} in flight"
    with HTTPSink() as sink:
        url = sink.url("apprise")

        def trial(fn: Any, name: str) -> Any:
            def run() -> float:
                before = sink.count
                value, sent = asyncio.run(fn(url, warm, count, inflight))
                sink.expect(before, sent, f"{label}: {name}")
                return float(value)

            return run

        samples = interleave({n: trial(fn, n) for n, fn in APPRISE.items()}, rounds, label)
    return [
        row(
            "apprise",
            f"Apprise json:// through pixalert, {inflight} alerts in flight",
            "alerts/s",
            samples,
            pairs=[("pixalert-apprise", "apprise")],
            targets=[{"what": "pixalert-apprise/apprise", "op": ">=", "value": 0.9}],
            alerts=count,
            inflight=inflight,
        )
    ]
