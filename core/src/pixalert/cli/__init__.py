"""The ``pixalert`` command line.

Core commands are imported only when run; plugin commands (the
``pixalert_cli`` hook) are added when the command list is first needed.
Exit codes: 0 ok, 1 a delivery failed, 2 bad usage or configuration.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from .._manager import NotificationManager

__all__ = ["build_manager", "cli", "fail", "main", "run_async"]

EXIT_OK = 0
EXIT_DELIVERY_FAILED = 1
EXIT_USAGE = 2

# name -> (module, attribute, one-line help): listed without importing the module.
_CORE_COMMANDS = {
    "send": ("._commands", "send", "Send an alert."),
    "channels": ("._commands", "channels", "List configured channels (--check to try each)."),
    "plugins": ("._commands", "plugins", "List installed plugins, their channels and errors."),
    "history": ("._commands", "history", "Show recent alerts and what happened to them."),
    "stats": ("._commands", "stats", "Per-channel delivery statistics."),
    "demo": ("._demo", "demo", "Run the whole system on local sinks: no credentials needed."),
    "init": ("._init", "init", "Set up channels interactively and write the config."),
    "test": (
        "._test",
        "test",
        "Test the configured channels: all|channels|priorities|concurrent|errors.",
    ),
    "plugin": ("._plugin", "plugin", "Tools for plugin authors (plugin new NAME)."),
    "silence": (
        "._silence",
        "silence",
        "Silence alerts by matchers for a while: silence add|list|remove.",
    ),
    "routes": (
        "._routes",
        "routes",
        "Which routes, groups and intervals an alert gets: routes test.",
    ),
}


class PixalertGroup(click.Group):
    """Loads core commands lazily and plugin commands on demand."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plugins_loaded = False

    def _load_plugin_commands(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        from .._plugins import default_plugin_manager

        pm = default_plugin_manager()
        for impl in pm.hook.pixalert_cli.get_hookimpls():
            try:
                impl.function(cli=self)
            except Exception as exc:
                click.echo(
                    f"warning: plugin {impl.plugin_name!r} failed to add commands: {exc}", err=True
                )

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugin_commands()
        return sorted(set(_CORE_COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _CORE_COMMANDS and cmd_name not in self.commands:
            module, attr, _ = _CORE_COMMANDS[cmd_name]
            try:
                command = getattr(importlib.import_module(module, __name__), attr)
            except (ImportError, AttributeError):
                return None
            self.commands[cmd_name] = command
        if cmd_name not in self.commands:
            self._load_plugin_commands()
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Core commands come from the table above, so --help imports none of them.
        self._load_plugin_commands()
        rows = []
        for name in self.list_commands(ctx):
            if name in _CORE_COMMANDS and name not in self.commands:
                rows.append((name, _CORE_COMMANDS[name][2]))
            else:
                command = self.commands.get(name)
                if command is not None and not command.hidden:
                    rows.append((name, command.get_short_help_str(limit=70)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=PixalertGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    envvar="PIXALERT_CONFIG",
    help="Config file (pixalert.toml or notification_config.json).",
)
@click.option(
    "--env-file", type=click.Path(dir_okay=False), help="A .env.notifications file to read."
)
@click.option("-v", "--verbose", count=True, help="Log more (-vv for debug).")
@click.version_option(package_name="pixalert", prog_name="pixalert")
@click.pass_context
def cli(ctx: click.Context, config_file: str | None, env_file: str | None, verbose: int) -> None:
    """pixalert: route alerts to email, Slack, PagerDuty and webhooks, by priority."""
    ctx.ensure_object(dict)
    ctx.obj["config_file"] = config_file
    ctx.obj["env_file"] = env_file
    if verbose:
        import logging

        logging.basicConfig(
            level=logging.DEBUG if verbose > 1 else logging.INFO,
            format="%(levelname)s %(name)s: %(message)s",
        )


def fail(message: str, code: int = EXIT_USAGE) -> None:
    """Print ``message`` to stderr and exit with ``code`` (no traceback)."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def build_manager(ctx: click.Context | None = None, **kwargs: Any) -> NotificationManager:
    """A :class:`pixalert.NotificationManager` from the CLI's ``--config``/``--env-file``.

    Plugins' commands call it too. A configuration error exits with status 2
    and one clear message.
    """
    from .._errors import ConfigError
    from .._manager import NotificationManager
    from .._plugins import default_plugin_manager

    ctx = ctx or click.get_current_context(silent=True)
    obj = (ctx.find_root().obj if ctx else None) or {}
    kwargs.setdefault("config_file", obj.get("config_file"))
    kwargs.setdefault("env_file", obj.get("env_file"))
    kwargs.setdefault("plugin_manager", default_plugin_manager())
    try:
        return NotificationManager(**kwargs)
    except ConfigError as exc:
        fail(str(exc))
    except ValueError as exc:
        fail(str(exc))
    raise AssertionError("unreachable")


def run_async(coro: Any) -> Any:
    """Run ``coro`` to completion (the CLI's one event loop)."""
    import asyncio

    return asyncio.run(coro)


def main() -> None:
    """Entry point of the ``pixalert`` script."""
    cli(prog_name="pixalert")
