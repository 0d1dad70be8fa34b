"""Settings: urls, a config file with tags, APPRISE_URLS, and clear errors that keep URLs secret."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pixalert import ConfigError, NotificationManager
from pixalert.channels import structure_config
from pixalert_apprise import AppriseConfig


def _errors(section: dict[str, Any], name: str = "team") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        structure_config(AppriseConfig, section, path=f"channels.{name}")
    return caught.value.errors


@pytest.mark.parametrize(
    ("url", "wanted"),
    [
        (
            "not a url S3cret",
            "expected an Apprise URL such as 'discord://webhook_id/webhook_token'",
        ),
        ("carrier://S3cret/x", "'carrier://' is not a scheme Apprise knows"),
        ("json://", "expected a valid JSON URL; Apprise could not read this 'json://' URL"),
        ("tgram://S3cret", "expected a valid Telegram URL"),
    ],
)
def test_a_url_apprise_does_not_understand(url: str, wanted: str) -> None:
    [line] = _errors({"urls": ["json://localhost/ok", url]})
    assert wanted in line
    assert line.endswith("@ channels.team.urls[1]")
    assert "S3cret" not in line


def test_nothing_to_send_to() -> None:
    [line] = _errors({})
    assert "expected one or more Apprise URLs" in line and "APPRISE_URLS" in line


def test_tags_cannot_add_apprise_retries(tmp_path: Path) -> None:
    path = tmp_path / "apprise.yml"
    path.write_text("urls:\n  - json://localhost/a:\n      tag: ops\n")
    [line] = _errors({"config": str(path), "tags": ["ops:2"]})
    assert "retry suffix" in line and line.endswith("@ channels.team.tags[0]")


def test_tags_need_a_config_file() -> None:
    [line] = _errors({"urls": ["json://localhost/a"], "tags": ["ops"]})
    assert "expected `config` to be set too" in line and line.endswith("@ channels.team.tags")


def test_a_config_file_and_its_tags(tmp_path: Path) -> None:
    yaml = tmp_path / "apprise.yml"
    yaml.write_text(
        "urls:\n"
        "  - json://localhost/ops-db:\n      tag: ops, db\n"
        "  - form://localhost/ops:\n      tag: ops\n"
        "  - xml://localhost/untagged\n"
    )
    text = tmp_path / "apprise.txt"
    text.write_text("ops=ntfy://localhost/topic\njson://localhost/plain\n")

    def schemes(section: dict[str, Any]) -> list[str]:
        from pixalert_apprise import AppriseChannel

        config = structure_config(AppriseConfig, section, path="channels.team")
        return AppriseChannel("team", config).schemes

    assert schemes({"config": str(yaml)}) == ["xml"]  # no tags: the untagged, as Apprise's CLI
    assert schemes({"config": str(yaml), "tags": ["ops"]}) == ["json", "form"]
    assert schemes({"config": str(yaml), "tags": ["ops, db"]}) == ["json"]  # both tags
    assert schemes({"config": str(yaml), "tags": ["all"]}) == ["json", "form", "xml"]
    assert schemes({"config": str(text), "tags": ["ops"]}) == ["ntfy"]
    assert schemes({"config": str(text), "urls": ["mailto://u:p@localhost?to=a@b.c"]}) == [
        "mailto",
        "json",
    ]
    [line] = _errors({"config": str(yaml), "tags": ["nobody"]})
    assert "select none" in line and line.endswith("@ channels.team.tags")


def test_an_unreadable_or_empty_config_file(tmp_path: Path) -> None:
    [line] = _errors({"config": str(tmp_path / "missing.yml")})
    assert "cannot read" in line and "missing.yml" in line
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing here\n")
    [line] = _errors({"config": str(empty)})
    assert "found none" in line
    [line] = _errors({"config": "https://config.example.com/apprise.yml"})
    assert "local Apprise config file" in line


def test_apprise_urls_for_the_default_channel(tmp_path: Path) -> None:
    env = {
        "APPRISE_URLS": "json://localhost/a, mailto://u:p@localhost?to=a@x.com,b@y.com "
        "ntfy://localhost/topic"
    }
    manager = NotificationManager(env=env, read_files=False, config={"history": "memory://"})
    channel = manager.channels["apprise"]
    assert channel.schemes == ["json", "mailto", "ntfy"]
    urls = [u.get() for u in channel.config.urls]
    assert urls[1] == "mailto://u:p@localhost?to=a@x.com,b@y.com"  # its comma kept


def test_written_by_hand_in_pixalert_toml(tmp_path: Path) -> None:
    path = tmp_path / "pixalert.toml"
    path.write_text(
        'history = "memory://"\n'
        "[channels.team-chat]\n"
        'type = "apprise"\n'
        'urls = ["json://localhost/hook", "ntfy://localhost/alerts"]\n'
        "timeout = 5\n"
    )
    manager = NotificationManager(config_file=path, env={})
    assert manager.channels["team-chat"].schemes == ["json", "ntfy"]
    assert manager.channel_types["team-chat"] == "apprise"
    path.write_text(
        '[channels.team-chat]\ntype = "apprise"\nurls = ["json://localhost/a", "bogus://Tok3n"]\n'
    )
    with pytest.raises(ConfigError) as caught:
        NotificationManager(config_file=path, env={})
    [line] = caught.value.errors
    assert line.startswith(str(path))
    assert line.endswith("@ channels.team-chat.urls[1]") and "Tok3n" not in line
