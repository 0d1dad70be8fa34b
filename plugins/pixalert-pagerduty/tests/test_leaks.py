"""The routing key never leaks: not in errors, cause chains, reprs, logs or history."""

from __future__ import annotations

import logging
from pathlib import Path

import pixalert_pagerduty
import pytest
from pixalert import DeliveryError
from pixalert.channels import structure_config
from pixalert.testing import make_manager
from pixalert_pagerduty import PagerDutyChannel, PagerDutyConfig

KEY = "LEAKCANARYqzxwvjkpQZXWVJKPmnbqzw"
TOKEN = "TOKENCANARY-0123456789"
assert len(KEY) == 32


def _fragments() -> list[str]:
    # Every 10 characters of the key: a snippet cut through the key must not show a piece.
    return [KEY[i : i + 10] for i in range(len(KEY) - 9)] + [TOKEN]


def _assert_clean(text: str, where: str) -> None:
    for fragment in _fragments():
        assert fragment not in text, f"secret fragment found in {where}: {text[:300]!r}"


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo = [exc]
    while todo:
        current = todo.pop()
        if any(current is s for s in seen):
            continue
        seen.append(current)
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]
    return seen


def _scenario(name, pd):
    """Config overrides for ``name``, after scripting ``pd``."""
    if name == "connect-error":
        return {"events_url": pd.refused_url(pd.events_url)}
    if name == "timeout":
        pd.hang(times=5)
        return {"timeout": 0.2}
    if name == "404":
        return {"events_url": pd.events_url.replace("/v2/enqueue", "/v2/missing")}
    if name == "500-echo":
        pd.fail(500, body=lambda r: b"error processing request: " + r.body, times=5)
        return {}
    if name == "400-echo":
        pd.fail(400, body=lambda r: b"error processing request: " + r.body, times=5)
        return {}
    if name == "400-errors-echo":
        pd.fail(
            400,
            body={"status": "invalid event", "message": "bad key " + KEY, "errors": [KEY]},
            times=5,
        )
        return {}
    if name == "500-cut":
        # The key straddles where an error snippet is cut: half a key must not show either.
        pd.fail(500, body="x" * 285 + KEY, times=5)
        return {}
    if name == "429-echo":
        pd.fail(429, body=lambda r: b"error processing request: " + r.body, retry_after=1, times=5)
        return {}
    raise AssertionError(name)


SCENARIOS = [
    "connect-error",
    "timeout",
    "404",
    "500-echo",
    "500-cut",
    "400-echo",
    "400-errors-echo",
    "429-echo",
]


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_channel_errors_do_not_leak_the_routing_key(pd, clock, make_alert, caplog, scenario):
    caplog.set_level(logging.DEBUG)
    data = {"routing_key": KEY, "api_token": TOKEN, "events_url": pd.events_url}
    data.update(_scenario(scenario, pd))
    config = structure_config(PagerDutyConfig, data, path="channels.pagerduty")
    channel = PagerDutyChannel("pagerduty", config, clock=clock)
    try:
        with pytest.raises(DeliveryError) as caught:
            await channel.send(make_alert(metadata={"echo": "x" * 300}))
    finally:
        await channel.aclose()
    error = caught.value
    assert error.message.startswith("pagerduty: ")
    for exc in _chain(error):
        _assert_clean(str(exc), f"{type(exc).__name__} str")
        _assert_clean(repr(exc), f"{type(exc).__name__} repr")
        _assert_clean(repr(exc.args), f"{type(exc).__name__} args")
    assert error.__cause__ is None and error.__context__ is None
    _assert_clean(repr(config), "repr(config)")
    _assert_clean(str(config), "str(config)")
    _assert_clean(repr(channel), "repr(channel)")
    _assert_clean(caplog.text, "logs")
    for record in caplog.records:
        _assert_clean(record.getMessage(), f"log record of {record.name}")
    if scenario.endswith("echo"):
        assert pd.requests, "the server must have seen the request it echoed"


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_manager_results_and_history_do_not_leak_the_routing_key(
    pd, make_alert, caplog, tmp_path: Path, scenario
):
    caplog.set_level(logging.DEBUG)
    section = {"routing_key": KEY, "api_token": TOKEN, "events_url": pd.events_url}
    section.update(_scenario(scenario, pd))
    db = tmp_path / "history.db"
    manager = make_manager(
        config={
            "channels": {"pagerduty": section},
            "delivery": {"max_attempts": 2, "timeout": 5, "max_retry_after": 0},
        },
        plugins=[pixalert_pagerduty],
        history=f"sqlite:///{db}",
    )
    async with manager:
        results = await manager.send_alert(
            "Disk full", "/ is 99% full", "critical", channels=["pagerduty"], key="leak"
        )
        result = results["pagerduty"]
        assert not result
        history = await manager.history(hours=1)
    _assert_clean(repr(result), "DeliveryResult")
    _assert_clean(str(result.to_dict()), "DeliveryResult.to_dict()")
    _assert_clean(repr(history), "manager.history()")
    _assert_clean(repr(manager.channels), "repr(manager.channels)")
    _assert_clean(caplog.text, "logs")
    files = sorted(p for p in tmp_path.glob("history.db*") if p.is_file())
    assert files
    for path in files:
        raw = path.read_bytes()
        for fragment in _fragments():
            assert fragment.encode() not in raw, f"secret fragment in {path.name}"
