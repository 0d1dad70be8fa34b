"""Every hook a pixalert plugin can implement.

A plugin is a module (or object) with functions marked ``@pixalert.hookimpl``
and named as below, registered under the ``pixalert`` entry point group::

    [project.entry-points.pixalert]
    teams = "pixalert_teams"

Hooks are plain functions called synchronously. Where a hook says it may
return an awaitable, the core awaits it. Keep hook modules light: no I/O and
no heavy imports at module level, since ``pixalert --help`` loads them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from ._channels import ChannelSpec, DemoSink
    from ._storage import HistoryStore, StateBackend
    from ._types import Alert, DeliveryResult

hookspec = pluggy.HookspecMarker("pixalert")
hookimpl = pluggy.HookimplMarker("pixalert")

# -------------------------------------------------------------------------
# Channels
# -------------------------------------------------------------------------


@hookspec
def pixalert_channels() -> Sequence[ChannelSpec]:
    """Declare the channel types this plugin provides.

    Called once when a plugin manager first needs the channel registry.

    :return: a list of :class:`pixalert.channels.ChannelSpec`. Two plugins declaring
        the same channel name is an error that names both plugins.

    A plugin uses it as::

        @pixalert.hookimpl
        def pixalert_channels():
            return [ChannelSpec(name="teams", config_type=TeamsConfig, factory=TeamsChannel)]

    .. versionadded:: 0.1
    """
    raise NotImplementedError


@hookspec
def pixalert_demo_sinks() -> Sequence[DemoSink]:
    """Offer local stand-ins for this plugin's services, for ``pixalert demo``.

    Called by ``pixalert demo`` only. Import server code inside the hook.

    :return: a list of :class:`pixalert.channels.DemoSink` (one per channel type the
        plugin can demonstrate without credentials).

    .. versionadded:: 0.1
    """
    raise NotImplementedError


# -------------------------------------------------------------------------
# Routing, suppression and delivery
# -------------------------------------------------------------------------


@hookspec(firstresult=True)
def pixalert_route(alert: Alert, channels: Sequence[str]) -> Sequence[str] | None:
    """Change which channels an alert goes to.

    Called for each alert after it is stored and before suppression and
    cooldown are checked (a suppressed alert is reported as suppressed on the
    channels it would have reached), with the channels chosen by the explicit
    ``channels=`` argument or the priority routing table. A hook that raises
    is logged and ignored.

    :param alert: the alert being routed.
    :param channels: the channel names chosen so far.
    :return: a new list of channel names, or None to keep ``channels``.
        Stops at the first non-None result.

    .. versionadded:: 0.1
    """
    raise NotImplementedError


@hookspec
def pixalert_suppress(alert: Alert) -> str | Awaitable[str | None] | None:
    """Silence an alert before it is routed.

    Called for each alert after it is stored and before cooldown is checked.

    :param alert: the alert about to be routed.
    :return: a short reason (``"silenced by maintenance window"``) to suppress
        the alert on every channel, or None to let it through. May return an
        awaitable of either. The first reason given wins.

    .. versionadded:: 0.1
    """
    raise NotImplementedError


@hookspec
def pixalert_after_delivery(
    alert: Alert, results: Mapping[str, DeliveryResult]
) -> Awaitable[None] | None:
    """Observe what was delivered, for metrics, audit logs and analytics.

    Called once per alert after every channel has a final result, including
    suppressed and skipped alerts. An exception here is logged and ignored.

    :param alert: the alert.
    :param results: channel name to :class:`pixalert.DeliveryResult`.
    :return: None, or an awaitable the core awaits.

    .. versionadded:: 0.1
    """
    raise NotImplementedError


# -------------------------------------------------------------------------
# Storage
# -------------------------------------------------------------------------


@hookspec(firstresult=True)
def pixalert_state_backend(url: str, clock: Any) -> StateBackend | None:
    """Provide the cooldown and dedup state backend for a ``state`` URL.

    Called once per manager with the configured ``state`` URL (for example
    ``redis://localhost:6379/0``). The core handles ``memory://`` and
    ``sqlite:///path`` itself.

    :param url: the configured URL; secrets in it are never logged.
    :param clock: the manager's :class:`pixalert.storage.Clock` (``now()``, ``sleep()``).
    :return: a :class:`pixalert.storage.StateBackend` if this plugin handles the URL's
        scheme, else None. Stops at the first non-None result.

    .. versionadded:: 0.1
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def pixalert_history_store(url: str, clock: Any) -> HistoryStore | None:
    """Provide the history store for a ``history`` URL.

    Called once per manager with the configured ``history`` URL (for example
    ``postgresql://localhost/alerts``). The core handles ``memory://`` and
    ``sqlite:///path`` itself.

    :param url: the configured URL.
    :param clock: the manager's :class:`pixalert.storage.Clock`.
    :return: a :class:`pixalert.storage.HistoryStore` if this plugin handles the URL's
        scheme, else None. Stops at the first non-None result.

    .. versionadded:: 0.1
    """
    raise NotImplementedError


# -------------------------------------------------------------------------
# Command line
# -------------------------------------------------------------------------


@hookspec
def pixalert_cli(cli: click.Group) -> None:
    """Add subcommands to the ``pixalert`` command line.

    Called once, when the CLI first needs its list of commands (not for
    ``pixalert send`` and other core commands run directly).

    :param cli: the top-level ``click.Group``; call ``cli.add_command(cmd)``.
        Import heavy modules inside the command function, not at module level.

    .. versionadded:: 0.1
    """
    raise NotImplementedError
