"""A private ``redis-server`` for tests: start it, stop it, kill it, start it again.

Fail-open behaviour can only be tested against a Redis that goes away, and a
test must never stop the Redis other people use. :class:`RedisServer` runs
its own ``redis-server`` (found on ``PATH``) on a free loopback port, with no
persistence, and can restart it on the same port::

    with RedisServer() as server:
        backend = RedisStateBackend.from_url(server.url)
        server.stop()       # Redis gone: the backend fails open
        server.start()      # back on the same port: the backend recovers
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from types import TracebackType

__all__ = ["RedisServer", "free_port"]

_READY = "Ready to accept connections"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A ``redis-server`` process on ``127.0.0.1:<port>`` owned by the caller.

    ``password`` turns on ``requirepass``. :attr:`url` is the ``redis://`` URL
    to reach it (with the password when one is set).
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        password: str | None = None,
        executable: str = "redis-server",
        start_timeout: float = 10.0,
    ) -> None:
        path = shutil.which(executable)
        if path is None:
            raise RuntimeError(f"{executable} not found on PATH")
        self.executable = path
        self.port = port or free_port()
        self.password = password
        self.start_timeout = start_timeout
        self._dir = tempfile.mkdtemp(prefix="pixalert-redis-")
        self._process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        """``redis://[:password@]127.0.0.1:<port>/0``."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server and return once it accepts connections."""
        if self.running:
            return
        args = [
            self.executable,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--dir", self._dir,
        ]  # fmt: skip
        if self.password:
            args += ["--requirepass", self.password]
        process = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self._process = process
        ready = threading.Event()
        lines: list[str] = []

        def drain() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                if len(lines) < 200:
                    lines.append(line)
                if _READY in line:
                    ready.set()
            ready.set()  # the process ended

        threading.Thread(target=drain, daemon=True, name=f"redis-{self.port}").start()
        if not ready.wait(self.start_timeout) or process.poll() is not None:
            self.kill()
            output = "".join(lines[-20:])
            raise RuntimeError(f"redis-server on port {self.port} did not start:\n{output}")

    def stop(self) -> None:
        """Stop the server (SIGTERM) and wait for it to exit."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """Kill the server (SIGKILL), as a crash would, and wait for it to exit."""
        self._end(signal.SIGKILL)

    def _end(self, sig: int) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def close(self) -> None:
        """Kill the server and remove its working directory."""
        self.kill()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        pid = self._process.pid if self._process is not None else None
        state = "running" if self.running else "stopped"
        return f"RedisServer(port={self.port}, pid={pid}, {state})"
