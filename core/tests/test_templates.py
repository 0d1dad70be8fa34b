"""Message templates: per channel and per route, sandboxed, escaped for each channel's markup."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import attrs
import pixalert
import pytest
from click.testing import CliRunner
from pixalert import Alert, ConfigError, DeliveryStatus, _plugins, load_settings
from pixalert._templates import Templates, compile_templates, escape_mrkdwn
from pixalert.channels import ChannelSpec, Group, Receipt, rendered_message
from pixalert.cli import cli
from pixalert.testing import FakeClock, RecordingChannel, make_manager, recording_spec


class Plugins:
    """``recording`` (text), ``rich`` (mrkdwn) and ``mail`` (html) channel types."""

    @pixalert.hookimpl
    def pixalert_channels(self) -> list[ChannelSpec]:
        return [
            recording_spec("recording"),
            attrs.evolve(recording_spec("rich"), markup="mrkdwn"),
            attrs.evolve(recording_spec("mail"), markup="html"),
        ]


def manager(config: dict[str, Any], **kwargs: Any) -> Any:
    return make_manager(config=config, plugins=[Plugins()], **kwargs)


def sent(m: Any, name: str) -> list[Alert]:
    channel = m.registry.slots[name].channel
    assert isinstance(channel, RecordingChannel)
    return channel.sent


TEMPLATES = {
    "short": {
        "title": "{{ priority }} on {{ metadata.host }}: {{ alert.title }}",
        "body": "*{{ alert.title }}* from {{ alert.source }}\n{{ alert.message }}",
    },
    "pager": {"title": "PAGE {{ alert.title }}"},
}


# ---------------------------------------------------------------------------
# Rendering and where templates apply
# ---------------------------------------------------------------------------


async def test_a_channel_template_renders_title_and_body() -> None:
    config = {
        "templates": TEMPLATES,
        "channels": {
            "ops": {"type": "recording", "template": "short"},
            "raw": {"type": "recording"},
        },
    }
    async with manager(config) as m:
        results = await m.send_alert(
            "Disk full",
            "95% used",
            "high",
            channels=["ops", "raw"],
            source="db",
            metadata={"host": "db-1"},
        )
        assert results["ops"].status is DeliveryStatus.SENT
        (alert,) = sent(m, "ops")
        (untouched,) = sent(m, "raw")
        history = await m.history()
    assert alert.title == "HIGH on db-1: Disk full"
    assert alert.message == "*Disk full* from db\n95% used"
    assert alert.rendered is None  # a text channel needs nothing more
    assert (untouched.title, untouched.message) == ("Disk full", "95% used")
    assert alert.id == untouched.id and alert.key == untouched.key
    # History keeps the alert as it was raised.
    assert history[0]["title"] == "Disk full"


async def test_a_routes_template_wins_over_the_channels() -> None:
    config = {
        "templates": TEMPLATES,
        "channels": {"ops": {"type": "recording", "template": "short"}},
        "routes": [
            {"match": {"team": "db"}, "channels": ["ops"], "template": "pager"},
            {"match": {"team": "web"}, "channels": ["ops"]},
        ],
    }
    async with manager(config) as m:
        await m.send_alert("A", "m", "high", metadata={"team": "db", "host": "h1"})
        await m.send_alert("B", "m", "high", metadata={"team": "web", "host": "h2"})
        first, second = sent(m, "ops")
    assert first.title == "PAGE A" and first.message == "m"  # the route's has no body
    assert second.title == "HIGH on h2: B"  # that route names none: the channel's


async def test_values_are_escaped_for_the_channels_markup_and_the_template_text_is_not() -> None:
    config = {
        "templates": {
            "t": {
                "title": "{{ alert.title }}",
                "body": "<b>{{ alert.title }}</b> *{{ metadata.who }}* {{ '<ok>' | safe }}",
            }
        },
        "channels": {
            "slack": {"type": "rich", "template": "t"},
            "email": {"type": "mail", "template": "t"},
            "hook": {"type": "recording", "template": "t"},
        },
    }
    evil = "<!channel> & <img src=x onerror=alert(1)>"
    async with manager(config) as m:
        await m.send_alert(
            evil, "", "high", channels=["slack", "email", "hook"], metadata={"who": "<@U123>"}
        )
        (slack,) = sent(m, "slack")
        (email,) = sent(m, "email")
        (hook,) = sent(m, "hook")
    plain = f"<b>{evil}</b> *<@U123>* <ok>"
    # The title and message are plain text for every channel: each escapes them itself.
    assert slack.title == email.title == hook.title == evil
    assert slack.message == email.message == hook.message == plain
    assert rendered_message(slack, "mrkdwn") == (
        "<b>&lt;!channel&gt; &amp; &lt;img src=x onerror=alert(1)&gt;</b> *&lt;@U123&gt;* <ok>"
    )
    assert rendered_message(email, "html") == (
        "<b>&lt;!channel&gt; &amp; &lt;img src=x onerror=alert(1)&gt;</b> *&lt;@U123&gt;* <ok>"
    )
    assert rendered_message(slack, "html") is None and rendered_message(hook, "mrkdwn") is None


def test_escape_mrkdwn_escapes_only_what_slack_asks() -> None:
    assert escape_mrkdwn("a & <b> 'c' \"d\" *e*") == "a &amp; &lt;b&gt; 'c' \"d\" *e*"


async def test_a_group_notification_is_rendered_with_the_group() -> None:
    class GroupChannel(RecordingChannel):
        def __init__(self, name: str) -> None:
            super().__init__(name)
            self.groups: list[Group] = []

        async def send_group(self, group: Group, *, previous: Receipt | None = None) -> Receipt:
            self.groups.append(group)
            return {"ts": "1"}

    grouped = GroupChannel("slack")
    plain = RecordingChannel("plain")
    body = (
        "{{ group.count }} alerts ({{ group.labels.source }}):\n"
        "{% for a in group.alerts %}- {{ a.title }}{% if a.new %} (new){% endif %}\n{% endfor %}"
    )
    config = {
        "templates": {"digest": {"title": "{{ group.firing | length }} firing", "body": body}},
        "routes": [{"match": {}, "channels": ["slack", "plain"], "template": "digest"}],
        "grouping": {"group_by": ["source"], "group_wait": "30s"},
    }
    clock = FakeClock()
    async with make_manager([grouped, plain], config=config, clock=clock) as m:
        await m.send_alert("Disk full", "x", "high", source="db")
        await m.send_alert("CPU hot", "y", "medium", source="db")
        clock.advance(31)
        await m.resume_pending()
    (group,) = grouped.groups
    assert group.templated is not None
    assert group.templated.title == "2 firing"
    assert group.templated.message == "2 alerts (db):\n- Disk full (new)\n- CPU hot (new)"
    (digest,) = plain.sent
    assert digest.title == "2 firing" and digest.key.startswith("group:")


async def test_no_template_leaves_the_alert_as_it_is() -> None:
    async with manager({"channels": {"ops": {"type": "recording"}}}) as m:
        original = Alert("t", "m")
        assert m.pipeline.prepare(original, "ops") is original


# ---------------------------------------------------------------------------
# Failures at render time fall back, with one warning
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "{{ alert.__class__.__mro__ }}",
        "{{ alert.title.__class__.__base__.__subclasses__() }}",
        "{{ metadata.missing }}",
        "{{ nothing_here }}",
        "{{ 1 / 0 }}",
        "{{ ''.format.__globals__ }}",
        "   ",
    ],
)
async def test_a_template_that_fails_sends_the_alerts_own_text(
    source: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = {
        "templates": {"bad": {"title": source, "body": "B {{ alert.title }}"}},
        "channels": {"ops": {"type": "recording", "template": "bad"}},
    }
    async with manager(config) as m:
        with caplog.at_level(logging.WARNING, logger="pixalert.templates"):
            results = await m.send_alert("Disk full", "95%", "high", channels=["ops"])
        (alert,) = sent(m, "ops")
    assert results["ops"].status is DeliveryStatus.SENT
    assert (alert.title, alert.message) == ("Disk full", "95%")
    warnings = [r for r in caplog.records if r.name == "pixalert.templates"]
    assert len(warnings) == 1
    assert "template 'bad' for channel ops failed" in warnings[0].getMessage()
    assert "own title and message" in warnings[0].getMessage()


async def test_optional_metadata_can_have_a_default() -> None:
    config = {
        "templates": {"t": {"title": "{{ metadata.host | default('unknown host') }}"}},
        "channels": {"ops": {"type": "recording", "template": "t"}},
    }
    async with manager(config) as m:
        await m.send_alert("x", "m", "high", channels=["ops"])
        (alert,) = sent(m, "ops")
    assert alert.title == "unknown host"


# ---------------------------------------------------------------------------
# Config errors
# ---------------------------------------------------------------------------


def test_a_syntax_error_names_the_file_and_its_line(tmp_path: Path) -> None:
    path = tmp_path / "pixalert.toml"
    path.write_text(
        "cooldown_minutes = 1\n"
        "\n"
        "[templates.short]\n"
        'title = "{{ alert.title }"\n'
        'body = """\n'
        "first line\n"
        "{% if alert.resolved %}\n"
        "resolved\n"
        '"""\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_settings(config_file=path, read_files=False, env={})
    errors = info.value.errors
    assert len(errors) == 2
    assert errors[0].startswith(f"{path}:4: template syntax error: ")
    assert errors[0].endswith("@ templates.short.title")
    assert errors[1].startswith(f"{path}:")
    assert "templates.short.body" in errors[1] and "endif" in errors[1]


def test_a_syntax_error_in_a_template_file_names_that_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "body.j2").write_text("ok\nok\n{{ alert.title | }}\n", encoding="utf-8")
    (tmp_path / "tpl" / "title.j2").write_text("T {{ alert.title }}\n", encoding="utf-8")
    path = tmp_path / "pixalert.toml"
    path.write_text(
        '[templates.t]\ntitle_file = "tpl/title.j2"\nbody_file = "tpl/body.j2"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_settings(config_file=path, read_files=False, env={})
    (error,) = info.value.errors
    assert error.startswith(f"{tmp_path / 'tpl' / 'body.j2'}:3: template syntax error: ")
    assert error.endswith("@ templates.t.body_file")


async def test_template_files_are_read_relative_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "title.j2").write_text("[{{ priority }}] {{ alert.title }}\n", encoding="utf-8")
    path = tmp_path / "pixalert.toml"
    path.write_text(
        '[templates.t]\ntitle_file = "title.j2"\n'
        '[channels.ops]\ntype = "recording"\ntemplate = "t"\n',
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path.parent)
    m = pixalert.NotificationManager(
        config={"history": "memory://", "delivery": {"recover_interval": 0}},
        config_file=path,
        env={},
        read_files=False,
        plugin_manager=_plugins.get_plugin_manager(entrypoints=False, plugins=[Plugins()]),
    )
    async with m:
        await m.send_alert("Disk full", "m", "low", channels=["ops"])
        (alert,) = sent(m, "ops")
    assert alert.title == "[LOW] Disk full"


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            {"templates": {"t": {"titel": "x"}}},
            "arguments: unknown key 'titel' (did you mean 'title'?) @ templates['t'].titel",
        ),
        (
            {"templates": {"t": {}}},
            "arguments: expected 'title', 'body' or 'html' (or 'title_file', 'body_file', "
            "'html_file') @ templates.t",
        ),
        (
            {"templates": {"t": {"title": "x", "title_file": "t.j2"}}},
            "arguments: expected 'title' or 'title_file', not both @ templates.t.title_file",
        ),
        (
            {"templates": {"t": {"body_file": "nope.j2"}}},
            "arguments: cannot read template file",
        ),
        (
            {"templates": {"short": {"title": "x"}}, "channels": {"ops": {"template": "shrot"}}},
            "arguments: unknown template 'shrot' (did you mean 'short'?); expected one of: short "
            "@ channels.ops.template",
        ),
        (
            {"routes": [{"match": {}, "template": "none"}]},
            "arguments: unknown template 'none'; expected one of: none are configured "
            "@ routes[0].template",
        ),
        (
            {"templates": {"t": {"title": "{{ x }"}}},
            "(line 1 of the template) @ templates.t.title",
        ),
    ],
)
def test_bad_templates_are_config_errors(config: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(config, read_files=False, env={})
    assert any(expected in line for line in info.value.errors), info.value.errors


def test_a_broken_template_is_reported_by_config_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pm = _plugins.get_plugin_manager(entrypoints=False, plugins=[Plugins()])
    monkeypatch.setattr(_plugins, "_default", pm)
    path = tmp_path / "pixalert.toml"
    path.write_text(
        '[templates.t]\nbody = """\nline one\n{% for a in group.alerts %}\n"""\n'
        '[channels.ops]\ntype = "recording"\ntemplate = "digset"\n',
        encoding="utf-8",
    )
    result = CliRunner().invoke(cli, ["config", "check", "--config", str(path)])
    assert result.exit_code == 2, result.output
    err = result.stderr
    assert "the configuration has 2 problems" in err
    assert f"{path}:4: template syntax error: " in err and "@ templates.t.body" in err
    assert "unknown template 'digset'" in err and "@ channels.ops.template" in err
    assert "Traceback" not in result.output

    path.write_text(
        '[templates.t]\nbody = "{{ alert.title }}"\n[channels.ops]\ntype = "recording"\n'
        'template = "t"\n',
        encoding="utf-8",
    )
    result = CliRunner().invoke(cli, ["config", "check", "--config", str(path)])
    assert result.exit_code == 0, result.output


def test_the_template_key_is_the_cores_not_the_plugins() -> None:
    # RecordingConfig has no 'template' field: the core takes the key before structuring.
    settings = load_settings(
        {
            "templates": {"t": {"title": "x"}},
            "channels": {"ops": {"type": "recording", "template": "t"}},
        },
        read_files=False,
        env={},
    )
    from pixalert._config import build_channel_configs

    configured, _ = build_channel_configs(
        settings, {"recording": recording_spec("recording")}, warn=False
    )
    assert attrs.asdict(configured["ops"][1]) == {"fail_times": 0, "permanent": False}


def test_a_channel_spec_markup_must_be_known() -> None:
    with pytest.raises(ValueError, match="markup: expected 'text', 'html' or 'mrkdwn'"):
        attrs.evolve(recording_spec("x"), markup="markdown")


def test_templates_compile_once_per_markup() -> None:
    from pixalert._templates import TemplateConfig

    compiled, errors = compile_templates(
        {"t": TemplateConfig(body="{{ alert.title }}")}, lambda path: "here"
    )
    assert errors == []
    templates = Templates(compiled, lambda name: "t", lambda name: "mrkdwn")
    alert = templates.prepare(Alert("a<b"), "x")
    assert alert.message == "a<b" and rendered_message(alert, "mrkdwn") == "a&lt;b"
    assert alert.resolve().rendered is None


async def test_an_acknowledgement_shows_the_alert_with_its_template() -> None:
    class AckChannel(RecordingChannel):
        def __init__(self, name: str) -> None:
            super().__init__(name, receipt=lambda alert: {"ts": "1"})
            self.acknowledged: list[Alert] = []

        async def acknowledge(self, alert: Alert, *, event: Any, previous: Any = None) -> bool:
            self.acknowledged.append(alert)
            return True

    channel = AckChannel("chat")
    config = {
        "templates": {"t": {"title": "T {{ alert.title }}"}},
        "routes": [{"match": {}, "channels": ["chat"], "template": "t"}],
    }
    async with make_manager([channel], config=config) as m:
        results = await m.send_alert("Disk full", "m", "high")
        assert results["chat"].status is DeliveryStatus.SENT
        alert_id = (await m.history())[0]["id"]
        await m.ack(alert_id, by="alice")
        await m.drain()
    assert [a.title for a in channel.sent] == ["T Disk full"]
    assert [a.title for a in channel.acknowledged] == ["T Disk full"]


def test_routes_test_names_the_template_each_channel_gets(monkeypatch: pytest.MonkeyPatch) -> None:
    pm = _plugins.get_plugin_manager(entrypoints=False, plugins=[Plugins()])
    monkeypatch.setattr(_plugins, "_default", pm)
    config = """
[templates.short]
title = "{{ alert.title }}"
[templates.page]
title = "PAGE {{ alert.title }}"
[channels.ops]
type = "recording"
template = "short"
[channels.pager]
type = "recording"
[[routes]]
match = { team = "db" }
channels = ["ops", "pager"]
template = "page"
[[routes]]
match = {}
channels = ["ops"]
"""
    path = Path("pixalert.toml")
    path.write_text(config, encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(cli, ["--config", str(path), "routes", "test", "team=db", "--json"])
    assert result.exit_code == 0, result.output
    import json

    report = json.loads(result.stdout)
    assert report["routes"][0]["template"] == "page"
    assert {n: c["template"] for n, c in report["channels"].items()} == {
        "ops": "page",
        "pager": "page",
    }
    result = runner.invoke(cli, ["--config", str(path), "routes", "test", "team=web"])
    assert result.exit_code == 0, result.output
    assert "ops: message template short" in result.stdout


async def test_a_preview_shows_the_alert_as_its_template_renders_it() -> None:
    """``manager.render`` hands the channel the alert through the same step as a send."""
    config = {
        "templates": TEMPLATES,
        "channels": {
            "ops": {"type": "recording", "template": "short"},
            "raw": {"type": "recording"},
        },
        "routes": [{"match": {"team": "db"}, "channels": ["ops"], "template": "pager"}],
    }
    async with manager(config) as m:
        alert = Alert("Disk full", "95% used", "high", source="db", metadata={"host": "db-1"})
        result = await m.render(attrs.evolve(alert, channels=("ops", "raw")))
        routed = await m.render(attrs.evolve(alert, metadata={"host": "db-1", "team": "db"}))
        assert sent(m, "ops") == [] and await m.history() == []
    ops, raw = result["ops"].preview, result["raw"].preview
    assert ops is not None and raw is not None
    assert ops.content["title"] == "HIGH on db-1: Disk full"
    assert ops.content["message"] == "*Disk full* from db\n95% used"
    assert raw.content["title"] == "Disk full"
    paged = routed["ops"].preview
    assert paged is not None and paged.content["title"] == "PAGE Disk full"
