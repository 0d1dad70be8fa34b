"""The plugin as pixalert sees it: entry point, light import, demo sink, the manager end to end."""

from __future__ import annotations

import subprocess
import sys

import pixalert_webhook
from pixalert import Alert, Priority
from pixalert.channels import DemoSink, structure_config
from pixalert.plugins import get_plugin_manager
from pixalert.testing import FakeClock, make_manager
from pixalert_webhook import WebhookChannel, WebhookConfig, generate_secret
from pixalert_webhook.testing import WebhookReceiver


def test_shows_up_through_the_entry_point() -> None:
    pm = get_plugin_manager()
    assert [e for e in pm.problems if e.name == "webhook"] == []
    assert pm.channel_specs()["webhook"].config_type is WebhookConfig
    (info,) = [i for i in pm.plugin_infos() if i.name == "webhook"]
    assert info.distribution == "pixalert-webhook"
    assert info.channels == ("webhook",)
    assert "pixalert_demo_sinks" in info.hooks


def test_importing_the_plugin_stays_light() -> None:
    code = (
        "import sys, pixalert_webhook; "
        "pixalert_webhook.pixalert_channels(); "
        "heavy = [m for m in ('httpx', 'aiohttp', 'jsonschema', 'cattrs') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


async def test_demo_sink_round_trip() -> None:
    (sink,) = pixalert_webhook.pixalert_demo_sinks()
    assert isinstance(sink, DemoSink) and sink.channel_type == "webhook"
    section = await sink.start()
    try:
        assert section["secret"].startswith("whsec_")
        channel = WebhookChannel("webhook", structure_config(WebhookConfig, dict(section)))
        alert = Alert("Disk full", "95%", Priority.HIGH)
        await channel.send(alert)
        await channel.send(alert.resolve())
        await channel.aclose()
        assert sink.lines() == [
            "POST /hook alert.firing HIGH Disk full (signed)",
            "POST /hook alert.resolved HIGH Disk full (signed)",
        ]
    finally:
        await sink.stop()


async def test_manager_retries_with_the_same_webhook_id_and_records_the_receipt() -> None:
    secret = generate_secret()
    clock = FakeClock()
    async with WebhookReceiver(secret=secret, validate_schema=True) as receiver:
        receiver.fail(503, retry_after=4)
        manager = make_manager(
            config={
                "channels": {
                    "ops-hook": {"type": "webhook", "url": receiver.url, "secret": secret}
                },
                "routing": {"critical": ["*"]},
            },
            plugins=[pixalert_webhook],
            clock=clock,
        )
        async with manager:
            results = await manager.send_alert("Disk full", "95% on db-1", "critical")
            history = await manager.history()
    result = results["ops-hook"]
    assert result and result.attempts == 2
    assert 4 in clock.sleeps  # Retry-After honoured by the core
    assert [r.status for r in receiver.requests] == [503, 200]
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
    assert receiver.lines() == ["POST /hook alert.firing CRITICAL Disk full (signed)"]
    assert history[0]["results"]["ops-hook"]["status"] == "sent"
    assert result.receipt == {"webhook_ids": receiver.received[0].webhook_id, "targets": "1"}


async def test_readme_example() -> None:
    from pixalert import NotificationManager

    secret = generate_secret()
    async with WebhookReceiver(secret=secret) as receiver:
        receiver.fail(503, retry_after=1)  # first attempt fails, the retry passes
        config = {"history": "memory://", "channels": {"webhook": receiver.config()}}
        async with NotificationManager(
            config, read_files=False, env={}, clock=FakeClock()
        ) as manager:
            await manager.send_alert("Disk full", "95% on db-1", "critical")
        assert receiver.lines() == ["POST /hook alert.firing CRITICAL Disk full (signed)"]
        assert receiver.received[0].data["message"] == "95% on db-1"
