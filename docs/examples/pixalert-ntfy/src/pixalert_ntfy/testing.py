"""A local ntfy server for tests and ``pixalert demo``: :class:`NtfyServer`.

It serves ntfy's JSON publishing endpoint (``POST /``) on 127.0.0.1 and checks
what ntfy checks: a JSON object, a valid ``topic``, a string ``message``, a
``priority`` of 1 to 5, the bearer token when one is set. It answers like ntfy
(``200 {"id": ...}``, or ``{"code", "http", "error"}`` with 400, 401 or 429).
It is a :class:`pixalert.testing.FakeService`: what it accepted is in
``received``, and it fails on demand with ``fail``, ``hang`` and ``drop``.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterable
from typing import Any

from aiohttp import web
from pixalert.testing import FakeService, Fault, ReceivedRequest

_TOPIC = re.compile(r"[-_A-Za-z0-9]{1,64}")


class NtfyServer(FakeService[dict[str, Any]]):
    """A contract-enforcing ntfy on 127.0.0.1 (a random port); also a ``DemoSink``."""

    channel_type = "ntfy"

    def __init__(self, *, token: str | None = None) -> None:
        super().__init__()
        self.topic = "alerts-" + secrets.token_hex(8)
        self.token = token

    def config(self) -> dict[str, Any]:
        """A ``[channels.ntfy]`` section for this server."""
        section: dict[str, Any] = {"server": self.url, "topic": self.topic}
        if self.token:
            section["token"] = self.token
        return section

    def routes(self) -> Iterable[tuple[str, str, Any]]:
        """ntfy's JSON publishing endpoint, ``POST /``."""
        return [("POST", "/", self._publish)]

    def fault_body(self, fault: Fault) -> Any:
        """ntfy's error body."""
        return _error_body(fault.status, "fault injected by the test")

    async def _publish(self, request: web.Request, record: ReceivedRequest) -> web.Response:
        def refuse(status: int, text: str) -> web.Response:
            self.reject(record, text)
            return web.json_response(_error_body(status, text), status=status)

        if self.token and request.headers.get("Authorization") != f"Bearer {self.token}":
            return refuse(401, "unauthorized")
        try:
            data = json.loads(record.body)
        except ValueError:
            return refuse(400, "invalid request: request body must be message JSON")
        problems = _check(data)
        if problems:
            return refuse(400, "invalid request: " + "; ".join(problems))
        self.accept(record, data, line=f"{data['topic']}: {data.get('title', '')}")
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


def _error_body(status: int, text: str) -> dict[str, Any]:
    return {"code": status * 100 + 1, "http": status, "error": text}
