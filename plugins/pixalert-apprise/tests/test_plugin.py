"""The plugin as pixalert sees it: entry point, light import, channel spec, demo sink."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata

import pixalert_apprise
from pixalert import Alert
from pixalert.channels import DemoSink, structure_config
from pixalert.plugins import get_plugin_manager
from pixalert_apprise import AppriseChannel, AppriseConfig


def test_entry_point_is_registered() -> None:
    [ep] = [ep for ep in metadata.entry_points(group="pixalert") if ep.name == "apprise"]
    assert ep.value == "pixalert_apprise"
    assert ep.load() is pixalert_apprise


def test_import_is_light() -> None:
    code = (
        "import sys, pixalert_apprise\n"
        "pixalert_apprise.pixalert_channels()\n"
        "heavy = [m for m in ('apprise', 'requests', 'pixalert_apprise._channel')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_pixalert_plugins_lists_the_channel() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "pixalert", "plugins", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    [plugin] = [p for p in json.loads(run.stdout)["plugins"] if p["name"] == "apprise"]
    assert plugin["distribution"] == "pixalert-apprise" and plugin["channels"] == ["apprise"]
    assert sorted(plugin["hooks"]) == ["pixalert_channels", "pixalert_demo_sinks"]


def test_channel_spec_via_the_plugin_manager() -> None:
    pm = get_plugin_manager(entrypoints=False, plugins=[pixalert_apprise])
    spec = pm.channel_specs()["apprise"]
    assert spec.config_type is AppriseConfig
    assert dict(spec.env) == {"APPRISE_URLS": "urls", "APPRISE_CONFIG_PATH": "config"}
    assert "discord://" in spec.description
    config = structure_config(AppriseConfig, {"urls": ["json://localhost/x"]})
    channel = spec.factory("team-chat", config)
    assert isinstance(channel, AppriseChannel) and channel.name == "team-chat"


async def test_demo_sink() -> None:
    pm = get_plugin_manager(entrypoints=False, plugins=[pixalert_apprise])
    [[sink]] = pm.hook.pixalert_demo_sinks()
    assert isinstance(sink, DemoSink) and sink.channel_type == "apprise"
    section = await sink.start()
    try:
        config = structure_config(AppriseConfig, section, path="channels.apprise")
        channel = AppriseChannel("apprise", config)
        try:
            firing = Alert("Disk full", "/ is 97% full", "critical")
            await channel.send(firing)
            await channel.send(firing.resolve())
        finally:
            await channel.aclose()
        assert sink.lines() == ["json: [CRITICAL] Disk full", "json: [RESOLVED] Disk full"]
    finally:
        await sink.stop()
        await sink.stop()


def test_public_names() -> None:
    for name in pixalert_apprise.__all__:
        value = getattr(pixalert_apprise, name)
        assert value is not None
        assert value.__doc__ or name in ("ENV", "NOTIFY_TYPES", "__version__")
