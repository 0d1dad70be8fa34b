"""A TCP proxy for outage tests: PostgreSQL taken away and brought back, for one client.

A test must never stop the PostgreSQL other people use. :class:`TcpProxy`
forwards a loopback port to the real server; :meth:`TcpProxy.cut` closes the
listener and drops every connection (to the client the server is gone, as in
a restart or a network cut), :meth:`TcpProxy.restore` listens again on the
same port::

    proxy = TcpProxy("127.0.0.1", 5432)
    await proxy.start()
    store = PostgresHistoryStore(f"postgresql://postgres@127.0.0.1:{proxy.port}/test")
    await proxy.cut()       # StoreUnavailable from now on
    await proxy.restore()   # calls succeed again
"""

from __future__ import annotations

import asyncio

__all__ = ["TcpProxy"]


class TcpProxy:
    """Forwards connections from ``127.0.0.1:<port>`` to ``host:port``."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        #: The loopback port clients connect to (chosen by :meth:`start`, then kept).
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def up(self) -> bool:
        """True while the proxy listens."""
        return self._server is not None

    async def start(self) -> None:
        """Listen (on a free port the first time, on the same one after a cut)."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def restore(self) -> None:
        """Listen again on the same port after :meth:`cut`."""
        await self.start()

    async def cut(self) -> None:
        """Stop listening and drop every open connection (both ends see a reset)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()  # no new connections
        for writer in list(self._pipes):
            writer.transport.abort()
        self._pipes.clear()
        if server is not None:
            # Since Python 3.12.1 this waits for the connections the server made to
            # close too: they are aborted first, or it would wait forever.
            await server.wait_closed()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def aclose(self) -> None:
        """Cut, for good."""
        await self.cut()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._pipes.update((writer, up_writer))
        await asyncio.gather(
            self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True
        )

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            self._pipes.discard(writer)
            writer.transport.abort()
