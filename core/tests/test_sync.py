"""The synchronous path, for Flask, Django and scripts."""

from __future__ import annotations

import asyncio
import threading

import pytest
from pixalert.testing import RecordingChannel, make_manager


def test_send_alert_sync_from_plain_code_and_threads() -> None:
    slack = RecordingChannel("slack")
    manager = make_manager([slack], config={"cooldown_minutes": 0})
    results = manager.send_alert_sync("Disk full", "95%", "low")
    assert results["slack"].status == "sent"

    errors: list[BaseException] = []

    def worker(i: int) -> None:  # like a request thread of a WSGI server
        try:
            assert manager.send_alert_sync(f"from thread {i}", "m", "low")["slack"]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(slack.sent) == 5
    history = manager.run_sync(manager.history())
    assert len(history) == 5
    manager.close_sync()
    assert slack.closed


async def test_send_alert_sync_inside_a_loop_says_what_to_do() -> None:
    manager = make_manager([RecordingChannel("slack")])
    with pytest.raises(RuntimeError, match=r"use 'await manager\.send_alert"):
        manager.send_alert_sync("t", "m", "low")
    await manager.aclose()


def test_manager_closes_itself_when_asyncio_run_ends() -> None:
    slack = RecordingChannel("slack")

    async def main() -> None:
        manager = make_manager([slack])
        await manager.send_alert("t", "m", "low")  # no aclose(), as in the seed's example

    asyncio.run(main())
    assert slack.closed
