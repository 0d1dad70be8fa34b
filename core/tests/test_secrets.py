"""Secrets never leak: not in results, history, logs, reprs or CLI output."""

from __future__ import annotations

import logging
from pathlib import Path

import attrs
import pixalert
import pixalert.channels
import pytest
from pixalert import DeliveryError
from pixalert.channels import ChannelSpec, Secret
from pixalert.testing import FakeClock, make_manager

SECRET_URL = "https://hooks.slack.com/services/T000/B000/XXXXsecretXXXXpath"


@attrs.define
class LeakyConfig:
    webhook_url: Secret


class LeakyChannel:
    """A careless channel: its errors carry its secret URL, as httpx's do."""

    def __init__(self, name: str, config: LeakyConfig) -> None:
        self.name = name
        self.url = config.webhook_url.get()

    async def send(self, alert: pixalert.Alert, *, previous: object = None) -> None:
        logging.getLogger("pixalert").debug("posting to %s", self.url)
        logging.getLogger("httpx").info("HTTP Request: POST %s", self.url)
        if alert.metadata.get("mode") == "delivery-error":
            raise DeliveryError(f"Server error '500' for url '{self.url}'")
        raise ConnectionError(f"cannot connect to {self.url}")

    async def aclose(self) -> None:
        pass


class LeakyPlugin:
    @pixalert.hookimpl
    def pixalert_channels(self) -> list[ChannelSpec]:
        return [ChannelSpec("leaky", LeakyConfig, LeakyChannel, env={"LEAKY_URL": "webhook_url"})]


@pytest.mark.parametrize("mode", ["delivery-error", "unexpected"])
async def test_secret_url_never_reaches_result_history_or_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    caplog.set_level(logging.DEBUG)
    db = tmp_path / "history.db"
    manager = make_manager(
        plugins=[LeakyPlugin()],
        history=f"sqlite:///{db}",
        config={
            "channels": {"leaky": {"webhook_url": SECRET_URL}},
            "delivery": {"max_attempts": 2},
        },
        clock=FakeClock(),
    )
    async with manager:
        results = await manager.send_alert(
            "t", "m", "low", channels=["leaky"], metadata={"mode": mode}
        )
        history = await manager.history()
        stats = await manager.stats()
        health = await manager.health()
    result = results["leaky"]
    assert result.status == "retrying"  # still failing: waits for its next round
    assert "**********" in (result.error or "")
    for text in (
        repr(result),
        str(history),
        str(stats),
        str(health),
        caplog.text,
        repr(manager.settings),
        repr(manager.channels),
    ):
        assert "XXXXsecretXXXXpath" not in text
    for path in tmp_path.rglob("*"):  # the database, its WAL, the owners' lock files
        if path.is_file():
            assert b"XXXXsecretXXXXpath" not in path.read_bytes()


def test_redact_masks_registered_secrets_and_url_paths() -> None:
    pixalert.channels.register_secret("https://example.com/hook/abcdef-token")
    assert pixalert.channels.redact("GET /hook/abcdef-token failed") == "GET ********** failed"
    assert pixalert.channels.redact("nothing here") == "nothing here"


def test_log_records_of_child_loggers_are_masked(caplog: pytest.LogCaptureFixture) -> None:
    # Loggers made at import, as plugins and libraries make theirs, before a secret is set.
    plugin_log = logging.getLogger("pixalert.someplugin")
    library_log = logging.getLogger("aiohttp.client")
    pixalert.channels.register_secret("https://hooks.example.com/T1/B2/child-logger-secret")
    caplog.set_level(logging.DEBUG)
    plugin_log.warning("POST %s failed", "/T1/B2/child-logger-secret")
    library_log.info("HTTP Request: POST /T1/B2/child-logger-secret")
    logging.getLogger("myapp").info("untouched /T1/B2/child-logger-secret")
    assert "child-logger-secret" not in caplog.records[0].getMessage()
    assert "child-logger-secret" not in caplog.records[1].getMessage()
    assert "child-logger-secret" in caplog.records[2].getMessage()  # not ours to mask
