"""Every hook a pixalert plugin can implement.

A plugin is a module (or object) with functions marked ``@pixalert.hookimpl``
and named as below, registered under the ``pixalert`` entry point group::

    [project.entry-points.pixalert]
    teams = "pixalert_teams"

Hooks are plain functions called synchronously. Where a hook says it may
return an awaitable, the core awaits it. Keep hook modules light: no I/O and
no heavy imports at module level, since ``pixalert --help`` loads them. A
hook implementation may accept fewer arguments than the spec names (pluggy
passes only the ones it asks for), but never other ones; a function named
``pixalert_<something>`` that matches no hook here is reported as a problem
of its plugin (``pixalert plugins``), as a typo would be.

These docstrings are the hooks' documentation: the plugin hooks page of the
docs renders them.
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

__all__ = ["hookimpl", "hookspec"]

hookspec = pluggy.HookspecMarker("pixalert")
"""Marks the hook specifications below (pluggy's ``HookspecMarker`` for project ``pixalert``)."""

hookimpl = pluggy.HookimplMarker("pixalert")
"""Marks a plugin's hook implementations: ``@pixalert.hookimpl`` above a function named
after a hook (pluggy's ``HookimplMarker`` for project ``pixalert``; it takes pluggy's
options, such as ``@hookimpl(tryfirst=True)``)."""

# -------------------------------------------------------------------------
# Channels
# -------------------------------------------------------------------------


@hookspec
def pixalert_channels() -> Sequence[ChannelSpec]:
    """Declare the channel types this plugin provides.

    Called the first time a plugin manager needs its channel registry (when a
    ``NotificationManager`` is built, for ``pixalert plugins``...); the result
    is cached until plugins are loaded again. Do no I/O here: channels are
    built later, through each spec's ``factory(name, config)``.

    If the hook raises, or returns something that is not a
    :class:`pixalert.channels.ChannelSpec`, the error is recorded against the
    plugin and its channel types are left out; the other plugins still load.
    Two plugins declaring the same channel name raise an error naming both
    (uninstall one, or limit loading with ``PIXALERT_PLUGINS``). A spec whose
    ``setup`` fields name a field its config class lacks is a ``ValueError``
    when it is made, recorded the same way.

    :return: a list of :class:`pixalert.channels.ChannelSpec`.

    A plugin uses it as::

        @hookimpl
        def pixalert_channels():
            from ._channel import TeamsChannel, TeamsConfig

            return [
                ChannelSpec(
                    name="teams",
                    config_type=TeamsConfig,
                    factory=TeamsChannel,
                    description="Microsoft Teams incoming webhooks",
                    title="Microsoft Teams",
                    setup=[
                        SetupField(
                            "webhook_url", "Incoming webhook URL",
                            env="TEAMS_WEBHOOK_URL", secret=True,
                        ),
                    ],
                )
            ]

    .. versionadded:: 0.1
    """
    raise NotImplementedError


@hookspec
def pixalert_demo_sinks() -> Sequence[DemoSink]:
    """Offer local stand-ins for this plugin's services, for ``pixalert demo``.

    Called by ``pixalert demo`` only. Import server code inside the hook; the
    sinks serve on 127.0.0.1 only. Every :class:`pixalert.testing.FakeService`
    is a sink, so a plugin's ``testing`` module is usually both its test
    server and its demo sink.

    :return: a list of :class:`pixalert.channels.DemoSink` (an attribute
        ``channel_type``, ``async start()`` returning the channel config section
        that points at the sink, ``lines()`` listing one line per message it
        accepted, ``async stop()``), one per channel type the plugin can show
        working without credentials.

    .. versionadded:: 0.1
    """
    raise NotImplementedError


# -------------------------------------------------------------------------
# Routing, suppression and delivery
# -------------------------------------------------------------------------


@hookspec(firstresult=True)
def pixalert_route(alert: Alert, channels: Sequence[str]) -> Sequence[str] | None:
    """Change which channels an alert goes to.

    Called for each new alert before it is recorded, with the channel names
    chosen so far: the explicit ``channels=`` of the alert, else the
    ``[[routes]]`` that match it, else the priority table (with ``"*"``
    expanded to every configured channel). The alert is then recorded with
    one delivery per channel returned, so the hook is not called again when a
    delivery is retried or taken over after a crash. Decide from the alert
    alone (no I/O). A hook that raises is logged and ignored: routing stays
    as it was.

    :param alert: the alert being routed.
    :param channels: the channel names chosen so far.
    :return: a new list of channel names, or None to keep ``channels``.
        Stops at the first non-None result. Names that are not configured are
        reported as ``skipped`` for that alert; duplicates are dropped.

    A plugin uses it as::

        @hookimpl
        def pixalert_route(alert, channels):
            if alert.metadata.get("team") == "payments":
                return [*channels, "payments-webhook"]
            return None

    .. versionchanged:: 0.2
        Called before the alert is recorded (it used to be called after), so
        that every delivery is recorded in the same write as the alert.
    """
    raise NotImplementedError


@hookspec
def pixalert_suppress(alert: Alert) -> str | Awaitable[str | None] | None:
    """Suppress an alert on every channel (maintenance windows, inhibition, rate caps).

    Called once for each new alert, after it is recorded and before silences
    and its cooldown are checked; not called again when a delivery is retried
    or taken over after a crash. An exception (raised, or while awaiting the
    result) is logged with the plugin's name and its answer ignored. Previews
    (``NotificationManager.render``, ``pixalert render``) call it too, for an
    alert that is not recorded and will not be sent: deciding must not change
    anything (count, record) then, so keep side effects out of it.

    :param alert: the alert about to be delivered.
    :return: a short reason (``"silenced by maintenance window"``) to suppress
        the alert, or None to let it through; or an awaitable of either. The
        first reason given wins: every routed channel gets a ``suppressed``
        result carrying it, the hooks after it are not called, and the
        cooldown is not touched.

    .. versionadded:: 0.1
    .. versionchanged:: 0.1
       Also called for previews (``render``), which record nothing.
    """
    raise NotImplementedError


@hookspec
def pixalert_after_delivery(
    alert: Alert, results: Mapping[str, DeliveryResult]
) -> Awaitable[None] | None:
    """Observe what happened to an alert, for metrics, audit logs and analytics.

    Called once per alert, when every delivery of it is final (sent, failed,
    suppressed or skipped) and recorded: at once for most alerts; for an alert
    with a delivery that waited on the timeline, when its last one finished,
    in whichever instance finished it. An exception (raised or awaited) is
    logged with the plugin's name and ignored; the other implementations
    still run.

    :param alert: the alert.
    :param results: channel name to :class:`pixalert.DeliveryResult`, in
        routing order.
    :return: None, or an awaitable the core awaits (keep it quick: on the
        first round ``send_alert`` returns after it).

    .. versionadded:: 0.1
    """
    raise NotImplementedError


# -------------------------------------------------------------------------
# Storage
# -------------------------------------------------------------------------


@hookspec(firstresult=True)
def pixalert_state_backend(url: str, clock: Any) -> StateBackend | None:
    """Provide the cooldown and dedup state backend for a ``state`` URL.

    Called once per manager, when it starts, with the state URL: the ``state``
    setting, else the ``history`` URL (so a history plugin can serve state
    too); not called when the manager was given a ``state=`` object. The
    core's own ``memory://`` and ``sqlite:///path`` backends answer through
    this hook too, after the plugins. When nothing answers for a ``state``
    that was set, the manager fails with ``state: no installed plugin handles
    <scheme>:// URLs``; for the history URL standing in, it keeps state in
    memory and logs a warning.

    ``acquire(key, ttl)`` must be atomic across every process that shares the
    backend (``SET key NX PX ttl`` in Redis terms): that is what makes N
    instances send an alert once. See :class:`pixalert.storage.StateBackend`.

    :param url: the URL (it may carry a password: never log it).
    :param clock: the manager's :class:`pixalert.storage.Clock` (``now()``,
        ``async sleep()``); use it for every time decision so that tests can
        drive it with ``FakeClock``.
    :return: a :class:`pixalert.storage.StateBackend` if this plugin handles
        the URL's scheme, else None. Stops at the first non-None result.

    .. versionadded:: 0.1
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def pixalert_history_store(url: str, clock: Any) -> HistoryStore | None:
    """Provide the history store (and delivery timeline) for a ``history`` URL.

    Called once per manager, when it starts, with the ``history`` setting; not
    called when the manager was given a ``history=`` object. The core's own
    ``memory://`` and ``sqlite:///path`` stores answer through this hook too,
    after the plugins. When nothing answers, the manager fails with
    ``history: no installed plugin handles <scheme>:// URLs``. The contract is
    :class:`pixalert.storage.HistoryStore`, checked by
    ``pixalert.testing.check_store_contract`` (see "Writing a store").

    :param url: the URL (it may carry a password: never log it).
    :param clock: the manager's :class:`pixalert.storage.Clock`.
    :return: a :class:`pixalert.storage.HistoryStore` if this plugin handles
        the URL's scheme, else None. Stops at the first non-None result.

    .. versionadded:: 0.1
    """
    raise NotImplementedError


# -------------------------------------------------------------------------
# Command line
# -------------------------------------------------------------------------


@hookspec
def pixalert_cli(cli: click.Group) -> None:
    """Add subcommands to the ``pixalert`` command line.

    Called once, the first time the command line needs its full list of
    commands (``pixalert --help``, or a command name that is not a core
    command); running a core command such as ``pixalert send`` does not call
    it. An exception is printed as a warning naming the plugin; the other
    commands keep working. Import heavy modules inside the command function,
    not at module level, and use ``pixalert.cli.build_manager()`` to get a
    manager built from the user's options, with configuration errors turned
    into exit status 2.

    :param cli: the top-level ``click.Group``; call ``cli.add_command(cmd)``.

    A plugin uses it as::

        import click
        from pixalert import hookimpl


        @hookimpl
        def pixalert_cli(cli):
            @cli.command()
            @click.argument("team")
            def oncall(team):
                click.echo(f"on call for {team}: ...")

    .. versionadded:: 0.1
    """
    raise NotImplementedError
