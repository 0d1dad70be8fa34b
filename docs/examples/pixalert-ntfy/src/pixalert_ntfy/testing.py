"""A local ntfy server for tests and ``pixalert demo``: :class:`NtfyServer`.

It serves ntfy's JSON publishing endpoint (``POST /``) on 127.0.0.1 and checks
what ntfy checks: a JSON object, a valid ``topic``, a string ``message``, a
``priority`` of 1 to 5, the bearer token when one is set. It answers like ntfy
(``200 {"id": ...}``, or ``{"code", "http", "error"}`` with 400, 401 or 429),
records what it accepted, and fails on demand (:meth:`fail_next`,
:meth:`hang_next`).
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections import deque
from typing import Any

from aiohttp import web

_TOPIC = re.compile(r"[-_A-Za-z0-9]{1,64}")


class NtfyServer:
    """A contract-enforcing ntfy on 127.0.0.1 (a random port); also a ``DemoSink``."""

    channel_type = "ntfy"

    def __init__(self, *, token: str | None = None) -> None:
        self.topic = "alerts-" + secrets.token_hex(8)
        self.token = token
        self.messages: list[dict[str, Any]] = []
        self._faults: deque[tuple[int, str | None]] = deque()
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> dict[str, Any]:
        """Serve; return the channel config that targets this server."""
        if self._runner is None:
            app = web.Application()
            app.router.add_post("/", self._publish)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            self.port = self._runner.addresses[0][1]
        return self.config()

    async def stop(self) -> None:
        """Release hanging requests and stop; safe to call twice."""
        self._release.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> NtfyServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def config(self) -> dict[str, Any]:
        """A ``[channels.ntfy]`` section for this server."""
        section: dict[str, Any] = {"server": f"http://127.0.0.1:{self.port}", "topic": self.topic}
        if self.token:
            section["token"] = self.token
        return section

    def fail_next(self, status: int, *, retry_after: str | None = None) -> None:
        """Answer the next request with ``status`` (and ``Retry-After``)."""
        self._faults.append((status, retry_after))

    def hang_next(self) -> None:
        """Never answer the next request (until the server stops)."""
        self._faults.append((0, None))

    def received(self) -> list[str]:
        """One line per accepted message."""
        return [f"{m['topic']}: {m.get('title', '')}" for m in self.messages]

    async def _publish(self, request: web.Request) -> web.Response:
        if self._faults:
            status, retry_after = self._faults.popleft()
            if status == 0:
                await self._release.wait()
                return web.Response(status=503)
            headers = {"Retry-After": retry_after} if retry_after else {}
            return _error(status, "fault injected by the test", headers)
        if self.token and request.headers.get("Authorization") != f"Bearer {self.token}":
            return _error(401, "unauthorized")
        try:
            data = json.loads(await request.read())
        except ValueError:
            return _error(400, "invalid request: request body must be message JSON")
        problems = _check(data)
        if problems:
            return _error(400, "invalid request: " + "; ".join(problems))
        self.messages.append(data)
        return web.json_response({"id": secrets.token_hex(6), "event": "message", **data})


def _check(data: Any) -> list[str]:
    if not isinstance(data, dict):
        return ["body must be a JSON object"]
    problems = []
    if not isinstance(data.get("topic"), str) or not _TOPIC.fullmatch(data["topic"]):
        problems.append("topic invalid")
    if not isinstance(data.get("message", ""), str):
        problems.append("message must be a string")
    priority = data.get("priority", 3)
    if isinstance(priority, bool) or priority not in (1, 2, 3, 4, 5):
        problems.append("priority must be 1-5")
    return problems


def _error(status: int, text: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(
        {"code": status * 100 + 1, "http": status, "error": text}, status=status, headers=headers
    )
