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


class CountMismatch(AssertionError):
    """A sink did not receive what a contender said it sent: the run fails."""
