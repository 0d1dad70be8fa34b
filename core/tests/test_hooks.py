"""Each hook of hookspecs.py, exercised through a plugin object."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click
import pixalert
import pixalert.channels
import pytest
from click.testing import CliRunner
from pixalert import DeliveryResult, _plugins
from pixalert.channels import ChannelSpec
from pixalert.storage import MemoryHistoryStore, MemoryStateBackend
from pixalert.testing import FakeClock, RecordingChannel, make_manager, recording_spec


class Channels:
    @pixalert.hookimpl
    def pixalert_channels(self) -> list[ChannelSpec]:
        return [recording_spec("teams")]


async def test_hook_pixalert_channels(clock: FakeClock) -> None:
    config = {"channels": {"teams": {}}, "routing": {"low": ["teams"]}}
    async with make_manager(plugins=[Channels()], config=config, clock=clock) as manager:
        results = await manager.send_alert("t", "m", "low")
    assert results["teams"].status == "sent"
    assert isinstance(manager.channels["teams"], RecordingChannel)


def test_two_plugins_claiming_one_channel_name_is_an_error_naming_both() -> None:
    class Other:
        @pixalert.hookimpl
        def pixalert_channels(self) -> list[ChannelSpec]:
            return [recording_spec("teams")]

    pm = _plugins.get_plugin_manager(entrypoints=False, plugins=[])
    pm.register(Channels(), name="first")
    pm.register(Other(), name="second")
    with pytest.raises(ValueError, match="declared by both plugin 'first' and plugin 'second'"):
        pm.channel_specs()


def test_a_raising_channels_hook_is_reported_not_fatal() -> None:
    class Broken:
        @pixalert.hookimpl
        def pixalert_channels(self) -> list[ChannelSpec]:
            raise RuntimeError("boom")

    pm = _plugins.get_plugin_manager(entrypoints=False)
    pm.register(Broken(), name="broken")
    pm.register(Channels(), name="good")
    assert list(pm.channel_specs()) == ["teams"]
    assert [str(e) for e in pm.problems] == [
        "plugin 'broken': pixalert_channels raised RuntimeError: boom"
    ]


class Observer:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []

    @pixalert.hookimpl
    def pixalert_after_delivery(
        self, alert: pixalert.Alert, results: Mapping[str, DeliveryResult]
    ) -> Any:
        async def record() -> None:
            self.seen.append((alert.title, {k: v.status.value for k, v in results.items()}))

        return record()


class BrokenObserver:
    @pixalert.hookimpl
    def pixalert_after_delivery(
        self, alert: pixalert.Alert, results: Mapping[str, DeliveryResult]
    ) -> None:
        raise RuntimeError("observer bug")


async def test_hook_pixalert_after_delivery(clock: FakeClock) -> None:
    observer = Observer()
    async with make_manager(
        [RecordingChannel("slack")], plugins=[observer, BrokenObserver()], clock=clock
    ) as manager:
        await manager.send_alert("a", "m", "low")
        await manager.send_alert("a", "m", "low")  # suppressed: observed too
    assert observer.seen == [("a", {"slack": "sent"}), ("a", {"slack": "suppressed"})]


class Backends:
    def __init__(self) -> None:
        self.urls: list[str] = []

    @pixalert.hookimpl
    def pixalert_state_backend(self, url: str, clock: Any) -> Any:
        self.urls.append(url)
        return MemoryStateBackend(clock) if url.startswith("fake:") else None

    @pixalert.hookimpl
    def pixalert_history_store(self, url: str, clock: Any) -> Any:
        self.urls.append(url)
        return MemoryHistoryStore(clock) if url.startswith("fake:") else None


async def test_hook_pixalert_state_backend(clock: FakeClock) -> None:
    backends = Backends()
    config = {"state": "fake://state"}
    async with make_manager(
        [RecordingChannel("slack")], plugins=[backends], config=config, clock=clock
    ) as manager:
        await manager.send_alert("a", "m", "low")
        assert isinstance(manager.state_backend, MemoryStateBackend)
    assert "fake://state" in backends.urls


async def test_hook_pixalert_history_store(clock: FakeClock) -> None:
    backends = Backends()
    async with make_manager(
        [RecordingChannel("slack")],
        plugins=[backends],
        history="fake://history",
        config={"state": "memory://"},
        clock=clock,
    ) as manager:
        await manager.send_alert("a", "m", "low")
        assert isinstance(manager.history_store, MemoryHistoryStore)
        assert len(await manager.history()) == 1
    # The core's own stores answer through the same hooks, after the plugin's.
    assert backends.urls == ["fake://history", "memory://"]


async def test_unknown_storage_url_is_a_clear_error(clock: FakeClock) -> None:
    manager = make_manager(history="nosuch://x", clock=clock)
    with pytest.raises(ValueError, match="history: no installed plugin handles nosuch:// URLs"):
        await manager.start()


class Cli:
    @pixalert.hookimpl
    def pixalert_cli(self, cli: click.Group) -> None:
        @cli.command()
        @click.argument("name")
        def hello(name: str) -> None:
            """Say hello."""
            click.echo(f"hello {name}")


class BrokenCli:
    @pixalert.hookimpl
    def pixalert_cli(self, cli: click.Group) -> None:
        raise RuntimeError("cli bug")


def test_hook_pixalert_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    from pixalert.cli import PixalertGroup, cli

    pm = _plugins.get_plugin_manager(entrypoints=False, plugins=[Cli(), BrokenCli()])
    monkeypatch.setattr(_plugins, "_default", pm)
    monkeypatch.setattr(cli, "_plugins_loaded", False)
    monkeypatch.setattr(cli, "commands", dict(cli.commands))
    assert isinstance(cli, PixalertGroup)
    runner = CliRunner()
    result = runner.invoke(cli, ["hello", "world"])
    assert result.exit_code == 0 and "hello world" in result.output
    help_text = runner.invoke(cli, ["--help"]).output
    assert "hello" in help_text and "Say hello." in help_text


class Sinks:
    @pixalert.hookimpl
    def pixalert_demo_sinks(self) -> list[Any]:
        return [FakeSink()]


class FakeSink:
    channel_type = "recording"

    def __init__(self) -> None:
        self.started = False

    async def start(self) -> Mapping[str, Any]:
        self.started = True
        return {}

    def lines(self) -> list[str]:
        return ["one line"]

    async def stop(self) -> None:
        self.started = False


def test_hook_pixalert_demo_sinks() -> None:
    pm = _plugins.get_plugin_manager(entrypoints=False, plugins=[Sinks()])
    sinks = [s for group in pm.hook.pixalert_demo_sinks() for s in group]
    assert len(sinks) == 1 and isinstance(sinks[0], pixalert.channels.DemoSink)


class RaisingRoute:
    @pixalert.hookimpl
    def pixalert_route(self, alert: pixalert.Alert, channels: list[str]) -> list[str] | None:
        raise RuntimeError("route bug")


class RaisingSuppress:
    @pixalert.hookimpl
    def pixalert_suppress(self, alert: pixalert.Alert) -> str | None:
        raise RuntimeError("suppress bug")


async def test_raising_route_and_suppress_hooks_are_logged_not_fatal(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    slack = RecordingChannel("slack")
    async with make_manager(
        [slack], plugins=[RaisingRoute(), RaisingSuppress()], clock=clock
    ) as manager:
        results = await manager.send_alert("t", "m", "low")
    assert results["slack"].status == "sent"
    assert "route bug" in caplog.text and "suppress bug" in caplog.text


async def test_first_suppress_reason_wins_and_later_hooks_are_not_called(clock: FakeClock) -> None:
    calls: list[str] = []

    class First:
        @pixalert.hookimpl(tryfirst=True)
        def pixalert_suppress(self, alert: pixalert.Alert) -> str:
            calls.append("first")
            return "first reason"

    class Later:
        @pixalert.hookimpl
        def pixalert_suppress(self, alert: pixalert.Alert) -> Any:
            calls.append("later")

            async def never() -> None:
                return None

            return never()

    async with make_manager(
        [RecordingChannel("slack")], plugins=[Later(), First()], clock=clock
    ) as manager:
        results = await manager.send_alert("t", "m", "low")
    assert results["slack"].error == "first reason"
    assert calls == ["first"]


async def test_unknown_explicit_channel_is_a_value_error(clock: FakeClock) -> None:
    async with make_manager([RecordingChannel("slack")], clock=clock) as manager:
        with pytest.raises(ValueError, match="channels: unknown channel 'sms': expected one of"):
            await manager.send_alert("t", "m", "low", channels=["sms"])
        # A shipped channel type that is not configured is skipped, not an error.
        skipped = await manager.send_alert("t", "m", "low", channels=["pagerduty"])
        assert skipped["pagerduty"].status == "skipped"
        assert await manager.history(limit=None) != []
