"""Running the receiver on uvicorn, with a readiness event and our own signal handling."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import uvicorn

__all__ = ["ReceiverServer", "is_loopback", "running_server"]


class ReceiverServer(uvicorn.Server):
    """A ``uvicorn.Server`` that sets :attr:`ready` once listening.

    It leaves signals to its caller (uvicorn's own handling re-raises the
    signal after shutdown, which would kill the process before pixalert has
    closed its stores).
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()
        self.bind_error: OSError | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Do not install signal handlers (the caller does)."""
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start listening, then set :attr:`ready`.

        uvicorn logs a failed bind and exits the process; here the error is
        kept in :attr:`bind_error` (and not logged) and startup just ends.
        """
        catcher = _BindErrorCatcher()
        log = logging.getLogger("uvicorn.error")
        log.addFilter(catcher)
        try:
            await super().startup(sockets)
        except SystemExit:
            self.bind_error = catcher.error
            self.should_exit = True  # so that serve() returns instead of running on
            return
        finally:
            log.removeFilter(catcher)
        if self.started:
            self.ready.set()

    @property
    def bound(self) -> tuple[str, int]:
        """The (host, port) actually bound (useful with port 0)."""
        for server in getattr(self, "servers", []):
            for sock in server.sockets:
                address = sock.getsockname()
                return str(address[0]), int(address[1])
        raise RuntimeError("the server is not listening")


class _BindErrorCatcher(logging.Filter):
    """Keeps (and silences) the ``OSError`` uvicorn logs when it cannot bind."""

    def __init__(self) -> None:
        super().__init__()
        self.error: OSError | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, OSError):
            self.error = record.msg
            return False
        return True


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    import ipaddress

    if host.strip().lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@contextlib.asynccontextmanager
async def running_server(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    log_level: str = "warning",
    access_log: bool = False,
) -> AsyncIterator[ReceiverServer]:
    """Serve ``app`` on uvicorn in a background task; yield the server once it listens.

    Raises ``OSError`` if the address could not be bound (the port is taken),
    ``RuntimeError`` if it could not start otherwise (the app's startup failed).
    On exit the server shuts down gracefully (the app's lifespan shutdown runs).
    """
    config = uvicorn.Config(
        app, host=host, port=port, log_level=log_level, lifespan="on", access_log=access_log
    )
    server = ReceiverServer(config)
    task = asyncio.ensure_future(server.serve())
    ready = asyncio.ensure_future(server.ready.wait())
    try:
        await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not ready.done():
            ready.cancel()
    if not server.ready.is_set():
        try:
            await task
        except BaseException as exc:
            raise RuntimeError(
                f"the receiver could not start on {host}:{port} ({type(exc).__name__}: {exc})"
            ) from None
        if server.bind_error is not None:
            raise server.bind_error
        raise RuntimeError(f"the receiver could not start on {host}:{port}")
    try:
        yield server
    finally:
        server.should_exit = True
        await task
