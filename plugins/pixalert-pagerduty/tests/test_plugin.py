"""The plugin as pixalert sees it: entry point, light import, hooks, the manager, the README."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import pixalert_pagerduty
from pixalert._plugins import get_plugin_manager
from pixalert.channels import DemoSink, structure_config
from pixalert.testing import make_manager
from pixalert_pagerduty import PagerDutyConfig
from pixalert_pagerduty.testing import PagerDutyServer


def test_registered_under_the_pixalert_entry_point_group():
    found = {ep.name: ep.value for ep in entry_points(group="pixalert")}
    assert found.get("pagerduty") == "pixalert_pagerduty"


def test_installed_plugin_provides_the_pagerduty_channel_type():
    specs = get_plugin_manager().channel_specs()
    assert specs["pagerduty"].config_type is PagerDutyConfig


def test_import_and_declaring_the_channel_stay_light():
    code = (
        "import sys, pixalert_pagerduty\n"
        "pixalert_pagerduty.pixalert_channels()\n"
        "heavy = [m for m in ('httpx', 'aiohttp', 'httpx_aiohttp') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_demo_sinks_hook_offers_the_local_events_api():
    [sink] = pixalert_pagerduty.pixalert_demo_sinks()
    assert isinstance(sink, DemoSink) and isinstance(sink, PagerDutyServer)
    assert sink.channel_type == "pagerduty"


async def test_demo_sink_config_drives_a_real_channel_through_the_manager():
    [sink] = pixalert_pagerduty.pixalert_demo_sinks()
    section = await sink.start()
    try:
        structure_config(PagerDutyConfig, section, path="channels.pagerduty")
        manager = make_manager(
            config={"channels": {"pagerduty": dict(section)}}, plugins=[pixalert_pagerduty]
        )
        async with manager:
            results = await manager.send_alert(
                "Disk full", "/ is 99% full", "critical", key="disk-db1"
            )
            assert results["pagerduty"]
            results = await manager.send_alert(
                "Disk full", "/ is fine again", "critical", key="disk-db1", status="resolved"
            )
            assert results["pagerduty"]
        assert sink.lines() == [
            "trigger critical: Disk full: / is 99% full (dedup disk-db1)",
            "resolve: Disk full: / is 99% full (dedup disk-db1)",
        ]
    finally:
        await sink.stop()


async def test_manager_routes_high_to_pagerduty_and_retries_a_429(pd):
    manager = make_manager(
        config={"channels": {"pagerduty": pd.config()}}, plugins=[pixalert_pagerduty]
    )
    pd.fail(429, retry_after=3)
    async with manager:
        results = await manager.send_alert("API errors", "5xx at 12%", "high", key="api")
        result = results["pagerduty"]
        assert result and result.attempts == 2
        assert result.receipt == {"dedup_key": "api"}
        # The manager waited as PagerDuty asked, on its fake clock.
        assert 3.0 in manager.clock.sleeps
    assert pd.incident("api").severity == "error"


async def test_manager_does_not_retry_a_400(pd):
    manager = make_manager(
        config={"channels": {"pagerduty": pd.config(routing_key="x" * 31)}},
        plugins=[pixalert_pagerduty],
    )
    async with manager:
        result = (await manager.send_alert("Down", "", "critical"))["pagerduty"]
    assert not result and result.attempts == 1
    assert "Length of 'routing_key' is incorrect" in result.error
    assert "permanent" in result.error


async def test_the_readme_example_runs():
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    [code] = [block.split("```", 1)[0] for block in readme.split("```python\n")[1:]]
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    await namespace["test_disk_alert_pages_and_resolves"]()  # type: ignore[operator]
