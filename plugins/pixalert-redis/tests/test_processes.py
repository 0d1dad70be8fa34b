"""Two processes race for one key on the shared Redis: exactly one wins."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

pytestmark = pytest.mark.services

_CHILD = r"""
import asyncio, sys
from pixalert_redis import RedisStateBackend

async def main():
    backend = RedisStateBackend.from_url(sys.argv[1])
    assert (await backend.health())["status"] == "ok"
    print("ready", flush=True)
    sys.stdin.readline()
    won = await asyncio.gather(*(backend.acquire(sys.argv[2], 60) for _ in range(50)))
    print(sum(won), backend.fail_open_total, flush=True)
    await backend.aclose()

asyncio.run(main())
"""


def test_100_acquires_from_two_processes_give_exactly_one_win(redis_url: str, prefix: str) -> None:
    key = f"cooldown:{uuid.uuid4().hex}"
    url = f"{redis_url}?prefix={prefix}"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, url, key],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
        for child in children:  # both are connected: start them together
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        outputs = [child.communicate(timeout=60)[0].split() for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    assert [child.returncode for child in children] == [0, 0]
    wins = sum(int(out[0]) for out in outputs)
    fail_open = sum(int(out[1]) for out in outputs)
    assert fail_open == 0
    assert wins == 1
