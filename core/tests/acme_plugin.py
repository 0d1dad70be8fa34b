"""A third-party channel plugin for the ``pixalert init`` tests, known to no part of the core.

- ``acme`` declares its setup questions (:class:`pixalert.channels.SetupField`),
  a title, a live check and its prompt.
- ``bare`` declares none of these, so ``pixalert init`` asks for each field of
  its config class and checks it with a test alert.

Both channels append one JSON line per alert to the file named by their
``outbox`` setting, so a test can see what a ``pixalert`` subprocess sent.
:func:`install` makes the CLI see this plugin alone; a subprocess loads this
file by path (see ``BOOT``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import pixalert
from pixalert import Alert, DeliveryError
from pixalert.channels import (
    Channel,
    ChannelSpec,
    Receipt,
    Secret,
    SetupField,
    send_test_alert,
)

#: ``python -c BOOT PATH_OF_THIS_FILE ARGS...`` runs ``pixalert ARGS...`` with only this plugin.
BOOT = (
    "import importlib.util, sys; "
    "spec = importlib.util.spec_from_file_location('acme_plugin', sys.argv.pop(1)); "
    "module = sys.modules['acme_plugin'] = importlib.util.module_from_spec(spec); "
    "spec.loader.exec_module(module); "
    "module.install(); from pixalert.cli import main; main()"
)


def _https(instance: Any, attribute: Any, value: Secret) -> None:
    if not value.get().startswith("https://"):
        raise ValueError("url: expected an https:// URL (the value is not shown)")


@attrs.define
class AcmeConfig:
    """Settings of an ``acme`` channel."""

    url: Secret = attrs.field(validator=_https)
    outbox: str
    team: str | None = None
    retries: int = 3
    urgent: bool = False
    tags: list[str] = attrs.field(factory=list)


@attrs.define
class BareConfig:
    """Settings of a ``bare`` channel."""

    token: Secret
    outbox: str
    timeout: float = 5.0
    verbose: bool = False


class OutboxChannel:
    """Appends each alert to ``config.outbox``; a URL or token containing "refused" fails."""

    def __init__(self, name: str, config: Any) -> None:
        self.name = name
        self.config = config
        self.closed = False

    async def send(self, alert: Alert, *, previous: Receipt | None = None) -> Receipt | None:
        """Append ``alert``; return a receipt, so checks resolve what they sent."""
        secret = getattr(self.config, "url", None) or self.config.token
        if "refused" in secret.get():
            raise DeliveryError(
                f"{self.name}: HTTP 401 token refused for {secret.get()}", retryable=False
            )
        line = {"channel": self.name, "title": alert.title, "status": alert.status}
        with Path(self.config.outbox).open("a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")
        return {"n": str(len(self.lines()))}

    def lines(self) -> list[dict[str, Any]]:
        """What the outbox holds."""
        path = Path(self.config.outbox)
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]

    async def aclose(self) -> None:
        """Nothing to release."""
        self.closed = True


async def check_acme(channel: Channel, alert: Alert) -> str:
    """Send the test alert and its resolve, and say how full the outbox is."""
    done = await send_test_alert(channel, alert)
    assert isinstance(channel, OutboxChannel)
    return f"{done}; the outbox holds {len(channel.lines())} lines"


SETUP = (
    SetupField(
        "url",
        "Acme URL",
        env="ACME_URL",
        secret=True,
        required=True,
        help="From the Acme console: Settings > Integrations.",
    ),
    SetupField("outbox", "Outbox file", env="ACME_OUTBOX", required=True),
    SetupField("team", "Team", env="ACME_TEAM"),
    SetupField("retries", "Retries", env="ACME_RETRIES", kind=int, default=3),
    SetupField("urgent", "Page urgently", env="ACME_URGENT", kind=bool, default=False),
    SetupField("tags", "Tags, comma-separated", env="ACME_TAGS", kind=list),
)


def acme_spec() -> ChannelSpec:
    """``acme``: with setup questions and a check."""
    return ChannelSpec(
        name="acme",
        config_type=AcmeConfig,
        factory=OutboxChannel,
        title="Acme Pager",
        setup=SETUP,
        check=check_acme,
        check_prompt="Send a test page to Acme now?",
    )


def bare_spec() -> ChannelSpec:
    """``bare``: a config class and one environment variable, nothing else."""
    return ChannelSpec(
        name="bare", config_type=BareConfig, factory=OutboxChannel, env={"BARE_TOKEN": "token"}
    )


@pixalert.hookimpl
def pixalert_channels() -> list[ChannelSpec]:
    """Declare ``bare`` and ``acme`` (in that order: ``pixalert init`` sorts them)."""
    return [bare_spec(), acme_spec()]


def install() -> Any:
    """Make the CLI's plugin manager hold this plugin and no other; return it."""
    import sys

    from pixalert import _plugins

    pm = _plugins.get_plugin_manager(entrypoints=False, plugins=[sys.modules[__name__]])
    _plugins._default = pm
    return pm
