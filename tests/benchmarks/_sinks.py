"""Loopback sinks that run in their own processes and count what they accept.

Every contender of a benchmark talks to the same sink, so the sink's cost is
the same for all of them and never shares a core's event loop with the
client being measured. A sink counts a request or a message only once it has
read all of it and is about to answer success; the benchmark compares the
count with what it sent and fails the run when they differ.

- :class:`HTTPSink`: aiohttp's low-level web server; any ``POST`` path is
  read and answered ``200 {"ok": true}``. Counts per first path segment too.
- :class:`SMTPSink`: aiosmtpd speaking plain SMTP (no TLS, no AUTH: a local
  relay); counts each message at the end of ``DATA``.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import signal
from typing import Any

_CTX = mp.get_context("spawn")


def _serve_http(port_q: Any, counter: Any, stop: Any) -> None:
    from aiohttp import web

    async def main() -> None:
        async def handle(request: web.BaseRequest) -> web.Response:
            await request.read()
            if request.method == "POST":
                counter.value += 1
            return web.Response(body=b'{"ok":true}', content_type="application/json")

        server = web.Server(handle, access_log=None)
        loop = asyncio.get_running_loop()
        srv = await loop.create_server(server, "127.0.0.1", 0, backlog=1024)
        port_q.put(srv.sockets[0].getsockname()[1])
        await loop.run_in_executor(None, stop.wait)
        srv.close()
        await server.shutdown(0.5)

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    asyncio.run(main())


def _serve_smtp(port_q: Any, counter: Any, stop: Any) -> None:
    from aiosmtpd.smtp import SMTP

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            counter.value += 1
            return "250 OK"

    async def main() -> None:
        loop = asyncio.get_running_loop()
        handler = Handler()
        srv = await loop.create_server(
            lambda: SMTP(handler, hostname="sink.local", ident="bench-sink"),
            "127.0.0.1",
            0,
            backlog=1024,
        )
        port_q.put(srv.sockets[0].getsockname()[1])
        await loop.run_in_executor(None, stop.wait)
        srv.close()

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    asyncio.run(main())


class _Sink:
    """A server process with a shared counter; use as a context manager."""

    target: Any = None

    def __init__(self) -> None:
        self.counter = _CTX.Value("q", 0, lock=False)
        self._stop = _CTX.Event()
        self._port_q: Any = _CTX.Queue()
        self.process: Any = None
        self.port = 0

    def __enter__(self) -> _Sink:
        self.process = _CTX.Process(
            target=type(self).target, args=(self._port_q, self.counter, self._stop), daemon=True
        )
        self.process.start()
        self.port = self._port_q.get(timeout=60)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout=5)

    @property
    def count(self) -> int:
        """What the sink has accepted so far."""
        return int(self.counter.value)

    def expect(self, before: int, sent: int, what: str) -> None:
        """Fail the run unless exactly ``sent`` arrived since the count was ``before``."""
        got = self.count - before
        if got != sent:
            raise CountMismatch(f"{what}: sent {sent}, the sink accepted {got}")


class HTTPSink(_Sink):
    """An HTTP sink: every POST is read fully and answered 200."""

    target = staticmethod(_serve_http)

    def url(self, path: str = "hook") -> str:
        """A URL on this sink."""
        return f"http://127.0.0.1:{self.port}/{path}"


class SMTPSink(_Sink):
    """A plain SMTP sink: every message is counted at the end of DATA."""

    target = staticmethod(_serve_smtp)


def _serve_slack(
    port_q: Any, counter: Any, stop: Any, limited: Any, rate: float, burst: int
) -> None:
    import time

    from aiohttp import web

    buckets: dict[str, tuple[float, float]] = {}

    async def main() -> None:
        async def handle(request: web.BaseRequest) -> web.Response:
            await request.read()
            now = time.monotonic()
            tokens, last = buckets.get(request.path, (float(burst), now))
            tokens = min(float(burst), tokens + (now - last) * rate)
            # A message up to 250 ms early is a short burst Slack lets through (the
            # client's own event loop, busy with the storm, bunches its sends a little).
            if tokens < 1.0 - 0.25 * rate:
                buckets[request.path] = (tokens, now)
                limited.value += 1
                return web.json_response(
                    {"ok": False, "error": "ratelimited", "retry_after": 1},
                    status=429,
                    headers={"Retry-After": "1"},
                )
            buckets[request.path] = (tokens - 1.0, now)
            counter.value += 1
            return web.Response(text="ok", content_type="text/plain")

        server = web.Server(handle, access_log=None)
        loop = asyncio.get_running_loop()
        srv = await loop.create_server(server, "127.0.0.1", 0, backlog=1024)
        port_q.put(srv.sockets[0].getsockname()[1])
        await loop.run_in_executor(None, stop.wait)
        srv.close()
        await server.shutdown(0.5)

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    asyncio.run(main())


class SlackSink(_Sink):
    """A Slack incoming webhook: ``ok`` for every POST within Slack's posting limit (about
    ``rate`` messages a second per webhook, ``burst`` at once), 429 with ``Retry-After``
    beyond it; :attr:`limited` counts those 429s."""

    def __init__(self, rate: float = 1.0, burst: int = 3) -> None:
        super().__init__()
        self.limited_counter = _CTX.Value("q", 0, lock=False)
        self.rate, self.burst = rate, burst

    def __enter__(self) -> SlackSink:
        self.process = _CTX.Process(
            target=_serve_slack,
            args=(
                self._port_q,
                self.counter,
                self._stop,
                self.limited_counter,
                self.rate,
                self.burst,
            ),
            daemon=True,
        )
        self.process.start()
        self.port = self._port_q.get(timeout=60)
        return self

    @property
    def limited(self) -> int:
        """Messages answered 429 so far."""
        return int(self.limited_counter.value)

    def url(self) -> str:
        """The webhook URL (its path stands for the secret)."""
        return f"http://127.0.0.1:{self.port}/services/T000/B000/bench-secret"


def _serve_timed(port_q: Any, counter: Any, stop: Any, port: int, out: str) -> None:
    import json
    import time

    from aiohttp import web

    arrivals: list[tuple[str, str, float]] = []

    async def main() -> None:
        async def handle(request: web.BaseRequest) -> web.Response:
            body = await request.read()
            if request.method == "POST":
                at = time.monotonic()
                data = json.loads(body).get("data", {})
                arrivals.append((str(data.get("key")), str(data.get("id")), at))
                counter.value += 1
            return web.Response(body=b'{"ok":true}', content_type="application/json")

        server = web.Server(handle, access_log=None)
        loop = asyncio.get_running_loop()
        srv = await loop.create_server(server, "127.0.0.1", port, backlog=1024, reuse_address=True)
        port_q.put(srv.sockets[0].getsockname()[1])
        await loop.run_in_executor(None, stop.wait)
        srv.close()
        await server.shutdown(0.5)
        with open(out, "w") as f:
            json.dump(arrivals, f)

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    asyncio.run(main())


def free_port() -> int:
    """A loopback port nothing listens on now (for a sink that starts later)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TimedHTTPSink(_Sink):
    """An HTTP sink for pixalert-webhook bodies that notes, per POST, the alert's key and id
    and when it arrived (``time.monotonic()``, the same clock in every process on Linux).

    ``port`` 0 picks a free one; a fixed ``port`` lets the sink start after the sender
    was told where it is (until then connections to it are refused). :attr:`arrivals`
    is read after the sink stopped.
    """

    def __init__(self, out: str, port: int = 0) -> None:
        super().__init__()
        self.out, self.fixed_port = out, port
        self.arrivals: list[tuple[str, str, float]] = []

    def __enter__(self) -> TimedHTTPSink:
        self.process = _CTX.Process(
            target=_serve_timed,
            args=(self._port_q, self.counter, self._stop, self.fixed_port, self.out),
            daemon=True,
        )
        self.process.start()
        self.port = self._port_q.get(timeout=60)
        return self

    def __exit__(self, *exc: object) -> None:
        import json

        super().__exit__(*exc)
        try:
            with open(self.out) as f:
                self.arrivals = [tuple(a) for a in json.load(f)]  # type: ignore[misc]
        except (OSError, ValueError):
            self.arrivals = []

    def url(self, path: str = "hook") -> str:
        """A URL on this sink."""
        return f"http://127.0.0.1:{self.port or self.fixed_port}/{path}"


class CountMismatch(AssertionError):
    """A sink did not receive what a contender said it sent: the run fails."""
