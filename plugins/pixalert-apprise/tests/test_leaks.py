"""No URL, token or password in errors, logs (Apprise's, urllib3's), history, reprs, CLI output."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from pixalert import DeliveryError
from pixalert.testing import make_manager

from .conftest import MakeChannel

PASSWORD = "Sup3r-secret-pw"
HEADER = "Hdr-t0ken-value"
TOKEN = "P4th-t0ken-xyz"


def _secrets(url: str) -> list[str]:
    return [url, PASSWORD, HEADER, TOKEN, url.split("://", 1)[1]]


def _url(sink: Any) -> str:
    return f"json://bot:{PASSWORD}@127.0.0.1:{sink.port}/hooks/{TOKEN}?+X-Api-Token={HEADER}"


def _assert_clean(text: str, secrets: list[str], where: str) -> None:
    for secret in secrets:
        assert secret not in text, f"{where} leaks {secret[:4]}…"


async def test_every_output_is_clean(sink: Any, caplog: pytest.LogCaptureFixture) -> None:
    import pixalert_apprise

    url = _url(sink)
    secrets = _secrets(url)
    caplog.set_level(logging.DEBUG)  # every logger, Apprise's DEBUG lines included
    manager = make_manager(
        plugins=[pixalert_apprise],
        config={
            "channels": {"alerts": {"type": "apprise", "urls": [url]}},
            "delivery": {"max_attempts": 2, "backoff": 0},
        },
    )
    texts: list[str] = []
    async with manager:
        channel = manager.channels["alerts"]
        texts += [repr(channel), str(channel), repr(channel.config), channel.describe()]
        sent = await manager.send_alert("ok", "first", "high", channels=["alerts"])
        sink.fail(500)
        sink.fail(404)
        failed = await manager.send_alert("bad", "second", "high", channels=["alerts"])
        texts += [json.dumps(r.to_dict()) for r in (*sent.values(), *failed.values())]
        texts.append(json.dumps(await manager.history(), default=str))
        texts.append(json.dumps(await manager.stats(), default=str))
        sink.fail(404)
        try:
            await channel.send(_alert())
        except DeliveryError as exc:
            texts += [str(exc), repr(exc), exc.message]
    assert sent["alerts"].status.value == "sent" and failed["alerts"].status.value == "failed"
    # The sink did receive the secrets (so they were really in use).
    assert sink.notifications[0].headers["x-api-token"] == HEADER
    records = [r.getMessage() for r in caplog.records]
    assert any("JSON POST URL" in m for m in records)  # Apprise's DEBUG line was there, masked
    assert any("connectionpool" in r.name for r in caplog.records)  # and urllib3's
    texts += records
    texts += [caplog.text]
    for text in texts:
        _assert_clean(text, secrets, "output")


async def test_apprise_result_logs_are_masked(sink: Any, make_channel: MakeChannel) -> None:
    # The filter rewrites a record before any handler (Apprise's own result capture too).
    url = _url(sink)
    channel = make_channel({"urls": [url]})
    [target] = channel._targets
    sink.fail(404)
    result = await target.notifier.async_notify(body="x", title="y")
    lines = [str(e.message) for e in result.logs()]
    result.close()
    assert lines
    for line in lines:
        _assert_clean(line, _secrets(url), "AppriseResult.logs()")


async def test_a_handler_on_the_apprise_logger_sees_masked_records(
    sink: Any, make_channel: MakeChannel
) -> None:
    import io

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("apprise")
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        url = _url(sink)
        channel = make_channel({"urls": [url]})
        await channel.send(_alert())
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)
    assert "JSON POST URL" in stream.getvalue()
    _assert_clean(stream.getvalue(), _secrets(url), "a handler on the apprise logger")


def test_config_error_for_a_bad_url_does_not_echo_it() -> None:
    from pixalert import ConfigError
    from pixalert.channels import structure_config
    from pixalert_apprise import AppriseConfig

    bad = f"discord://{TOKEN}"  # a Discord URL needs an id and a token
    with pytest.raises(ConfigError) as caught:
        structure_config(AppriseConfig, {"urls": ["json://localhost/x", bad]}, path="channels.team")
    [line] = caught.value.errors
    assert line.endswith("@ channels.team.urls[1]")
    assert "Discord" in line and TOKEN not in line


async def test_cli_output_is_clean(sink: Any, tmp_path: Path) -> None:
    url = _url(sink)
    (tmp_path / "pixalert.toml").write_text(
        f'history = "memory://"\n[channels.alerts]\ntype = "apprise"\nurls = ["{url}"]\n'
        '[channels.broken]\ntype = "apprise"\nurls = ["json://127.0.0.1:9/x/Sec-ret-123"]\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIXALERT_", "APPRISE_"))}
    outputs = []
    for args in (
        ["channels"],
        ["channels", "--json"],
        ["send", "Disk full", "95%", "-p", "critical", "--json"],
        ["history", "--json"],
    ):
        # The sink serves from this event loop while the command runs.
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "pixalert",
            *args,
            cwd=tmp_path,
            env={**env, "COLUMNS": "200"},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        outputs.append(out.decode() + err.decode())
    listed = json.loads(outputs[1])
    assert listed["alerts"] == {
        "type": "apprise",
        "status": "configured",
        "detail": "1 Apprise service: json",
    }
    assert "1 Apprise service: json" in outputs[0]
    sent = json.loads(outputs[2])
    assert sent["alerts"]["status"] == "sent" and sent["broken"]["status"] == "retrying"
    assert len(sink.notifications) == 1
    for text in outputs:
        _assert_clean(text, [*_secrets(url), "Sec-ret-123"], "CLI output")


def _alert() -> Any:
    from pixalert import Alert

    return Alert("Disk full", "95% on db-1", "high")
