"""The plugin as pixalert sees it: entry point, light import, channel spec, demo sink."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

import pixalert_slack
from pixalert import Alert
from pixalert.channels import DemoSink, structure_config
from pixalert.plugins import get_plugin_manager
from pixalert.testing import FakeClock
from pixalert_slack import SlackChannel, SlackConfig


def test_entry_point_is_registered() -> None:
    [ep] = [ep for ep in metadata.entry_points(group="pixalert") if ep.name == "slack"]
    assert ep.value == "pixalert_slack"
    assert ep.load() is pixalert_slack


def test_import_is_light() -> None:
    code = (
        "import sys, pixalert_slack\n"
        "heavy = [m for m in ('httpx', 'aiohttp', 'pixalert_slack._channel') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "pixalert_slack.pixalert_channels()\n"
        "assert 'httpx' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_channel_spec_via_the_plugin_manager() -> None:
    pm = get_plugin_manager(entrypoints=False, plugins=[pixalert_slack])
    spec = pm.channel_specs()["slack"]
    assert spec.config_type is SlackConfig
    assert dict(spec.env) == {
        "SLACK_WEBHOOK_URL": "webhook_url",
        "SLACK_TOKEN": "token",
        "SLACK_CHANNEL": "channel",
        "SLACK_SIGNING_SECRET": "signing_secret",
    }
    # What ``pixalert init`` asks, in this order.
    assert [(f.field, f.env, f.secret, f.required) for f in spec.setup] == [
        ("webhook_url", "SLACK_WEBHOOK_URL", True, False),
        ("channel", "SLACK_CHANNEL", False, False),
        ("token", "SLACK_TOKEN", True, False),
        ("signing_secret", "SLACK_SIGNING_SECRET", True, False),
    ]
    assert spec.title == "Slack" and spec.check_prompt == "Send a test message to Slack now?"
    config = structure_config(
        SlackConfig, {"webhook_url": "https://hooks.slack.com/services/T/B/abcd"}
    )
    channel = spec.factory("team-slack", config)
    assert isinstance(channel, SlackChannel)
    assert channel.name == "team-slack"


async def test_demo_sink() -> None:
    pm = get_plugin_manager(entrypoints=False, plugins=[pixalert_slack])
    [[sink]] = pm.hook.pixalert_demo_sinks()
    assert isinstance(sink, DemoSink)
    assert sink.channel_type == "slack"
    section = await sink.start()
    try:
        config = structure_config(SlackConfig, section, path="channels.slack")
        channel = SlackChannel("slack", config, clock=FakeClock())
        try:
            firing = Alert("Disk full", "/ is 97% full", "high")
            receipt = await channel.send(firing)
            await channel.send(Alert("CPU hot", "", "critical"))
            await channel.send(firing.resolve(), previous=receipt)
        finally:
            await channel.aclose()
        assert sink.lines() == [
            "#alerts: [HIGH] Disk full",
            "#alerts: [CRITICAL] CPU hot",
            "#alerts: updated to RESOLVED [HIGH] Disk full",
        ]
    finally:
        await sink.stop()
        await sink.stop()


def test_public_names() -> None:
    for name in pixalert_slack.__all__:
        assert getattr(pixalert_slack, name) is not None
        assert getattr(pixalert_slack, name).__doc__ or name in ("ENV", "__version__")
