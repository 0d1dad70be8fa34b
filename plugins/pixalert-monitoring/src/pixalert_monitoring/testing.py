"""Test helpers: run the receiver on a real uvicorn on 127.0.0.1.

    from pixalert_monitoring.testing import running_receiver

    async with running_receiver(manager, token="t") as base_url:
        await client.post(f"{base_url}/webhook/alerts", json={"title": "x"})

The server listens on a free port and is ready when the block starts (no
sleeps); leaving the block shuts it down gracefully.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from ._receiver import create_app
from ._server import ReceiverServer, running_server

__all__ = ["ReceiverServer", "running_receiver", "running_server"]


@contextlib.asynccontextmanager
async def running_receiver(
    manager: Any, *, host: str = "127.0.0.1", **options: Any
) -> AsyncIterator[str]:
    """Serve :func:`pixalert_monitoring.create_app` (``options`` go to it); yield its base URL."""
    app = create_app(manager, **options)
    async with running_server(app, host=host) as server:
        bound_host, port = server.bound
        yield f"http://{bound_host}:{port}"
