"""The ``pixalert`` command line.

Core commands are imported only when run; plugin commands (the
``pixalert_cli`` hook) are added when the command list is first needed.

Exit codes: 0 ok, 1 a delivery failed, 2 bad usage or configuration, 3 a
store, server or port pixalert needs is unavailable (trying again later may
work), 4 an internal error (a bug; the message says where the report went).

Global options (``--config``, ``--env-file``, ``--json``, ``-v``, ``--debug``)
are accepted before or after any command, core or plugin: every command the
group holds gets them (see :func:`global_options`).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import attrs
import click

if TYPE_CHECKING:
    from .._manager import NotificationManager

__all__ = [
    "EXIT_DELIVERY_FAILED",
    "EXIT_INTERNAL",
    "EXIT_OK",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "CliOptions",
    "GlobalOption",
    "PixalertGroup",
    "build_manager",
    "cli",
    "cli_options",
    "fail",
    "global_options",
    "json_option",
    "main",
    "run_async",
    "with_manager",
]

EXIT_OK = 0
EXIT_DELIVERY_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_INTERNAL = 4

# name -> (module, attribute, one-line help): listed without importing the module.
_CORE_COMMANDS = {
    "send": ("._commands", "send", "Send an alert (--dry-run: show what would be sent)."),
    "render": (
        "._commands",
        "render",
        "Show what each channel would send for an alert, without sending.",
    ),
    "channels": ("._commands", "channels", "List configured channels (--check to try each)."),
    "plugins": ("._commands", "plugins", "List installed plugins, their channels and errors."),
    "history": ("._commands", "history", "Show recent alerts and what happened to them."),
    "stats": (
        "._commands",
        "stats",
        "Delivery statistics: per channel, or --by priority|source|hour.",
    ),
    "config": ("._config_cmd", "config", "Check the config, or show it with each value's origin."),
    "demo": ("._demo", "demo", "Run the whole system on local sinks: no credentials needed."),
    "init": ("._init", "init", "Set up channels interactively and write the config."),
    "test": (
        "._test",
        "test",
        "Test the configured channels: all|channels|priorities|concurrent|errors.",
    ),
    "plugin": ("._plugin", "plugin", "Tools for plugin authors (plugin new NAME)."),
    "flush": ("._flush", "flush", "Deliver whatever is due now (retries, a dead process's work)."),
    "silence": (
        "._silence",
        "silence",
        "Silence alerts by matchers for a while: silence add|list|remove.",
    ),
    "ack": ("._ack", "ack", "Acknowledge an alert: its escalation stops, channels show it."),
    "resolve": ("._ack", "resolve", "Resolve an alert: send its resolve, stop its escalation."),
    "escalations": ("._ack", "escalations", "List the escalations under way."),
    "heartbeat": ("._heartbeat", "heartbeat", "Ping a heartbeat (--start, --fail)."),
    "heartbeats": ("._heartbeat", "heartbeats", "List heartbeats: state, last ping, deadline."),
    "routes": (
        "._routes",
        "routes",
        "Which routes, groups and intervals an alert gets: routes test.",
    ),
}

# ---------------------------------------------------------------------------
# Global options
# ---------------------------------------------------------------------------


@attrs.frozen
class CliOptions:
    """The global options in effect for the running command.

    Each may be given before the command name (``pixalert --config f send``)
    or after it (``pixalert send --config f``); the last one given wins.
    """

    config_file: str | None = None
    env_file: str | None = None
    json: bool = False
    verbose: int = 0
    debug: bool = False


def _root_obj(ctx: click.Context) -> dict[str, Any]:
    root = ctx.find_root()
    root.ensure_object(dict)
    obj: dict[str, Any] = root.obj
    return obj


def cli_options(ctx: click.Context | None = None) -> CliOptions:
    """The global options of the running command (defaults outside a command)."""
    ctx = ctx or click.get_current_context(silent=True)
    if ctx is None:
        return CliOptions()
    obj = _root_obj(ctx)
    return CliOptions(
        config_file=obj.get("config_file"),
        env_file=obj.get("env_file"),
        json=bool(obj.get("json")),
        verbose=int(obj.get("verbose") or 0),
        debug=bool(obj.get("debug")),
    )


class GlobalOption(click.Option):
    """An option every ``pixalert`` command accepts; its value is kept for the whole run."""

    is_global = True


def _keep_last(key: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is not None:
            _root_obj(ctx)[key] = value
        return value

    return callback


def _keep_debug(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    obj = _root_obj(ctx)
    obj["debug"] = bool(obj.get("debug")) or value
    return value


def _keep_verbose(ctx: click.Context, param: click.Parameter, value: int) -> int:
    obj = _root_obj(ctx)
    obj["verbose"] = int(obj.get("verbose") or 0) + (value or 0)
    if value:
        _configure_logging(obj["verbose"])
    return value


def _configure_logging(verbose: int) -> None:
    import logging

    level = logging.DEBUG if verbose > 1 else logging.INFO
    root = logging.getLogger()
    if not any(getattr(h, "_pixalert", False) for h in root.handlers):
        from .._redact import redact

        class Masked(logging.Formatter):
            """Masks secrets in what this handler prints (the record stays as it was)."""

            def format(self, record: logging.LogRecord) -> str:
                return redact(super().format(record))

        handler = logging.StreamHandler()  # stderr: stdout stays clean for --json
        # The command line is the host here: what its handler prints has secrets masked.
        handler.setFormatter(Masked("%(levelname)s %(name)s: %(message)s"))
        handler._pixalert = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)


def _keep_json(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    obj = _root_obj(ctx)
    wanted = bool(obj.get("json")) or value
    obj["json"] = wanted
    supported = isinstance(ctx.command, click.Group) or getattr(param, "has_json_output", False)
    if wanted and not supported:
        raise click.UsageError(f"'{ctx.command_path}' has no JSON output (--json)", ctx)
    return wanted


def _option(*decls: str, **kwargs: Any) -> click.Option:
    return GlobalOption(decls, expose_value=False, **kwargs)


def _global_params(*, root: bool) -> list[click.Option]:
    """Fresh option objects (click keeps per-command state on them)."""
    return [
        _option(
            "--config",
            "config_file",
            type=click.Path(dir_okay=False),
            envvar="PIXALERT_CONFIG" if root else None,
            callback=_keep_last("config_file"),
            help="Config file (pixalert.toml or notification_config.json).",
        ),
        _option(
            "--env-file",
            type=click.Path(dir_okay=False),
            callback=_keep_last("env_file"),
            help="A .env.notifications file to read.",
        ),
        _option(
            "-v",
            "--verbose",
            count=True,
            callback=_keep_verbose,
            help="Log more to stderr (-vv for debug).",
        ),
        _option(
            "--debug",
            is_flag=True,
            envvar="PIXALERT_DEBUG" if root else None,
            callback=_keep_debug,
            help="On an error, print the full traceback.",
        ),
    ]


def _json_param(*, supported: bool, expose: bool | None = None) -> click.Option:
    option = GlobalOption(
        ("--json", "as_json"),
        is_flag=True,
        expose_value=supported if expose is None else expose,
        hidden=not supported,
        callback=_keep_json,
        help="Print JSON for scripts (on stdout, nothing else there).",
    )
    option.has_json_output = supported  # type: ignore[attr-defined]
    return option


F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def json_option(f: F) -> F:
    """Give a command a ``--json`` flag, passed to it as ``as_json``.

    ``pixalert --json COMMAND`` sets it too. Commands without it reject
    ``--json`` with a usage error. With it, the command must print only JSON
    on stdout (messages go to stderr).
    """
    params = getattr(f, "__click_params__", None)
    if params is None:
        params = []
        f.__click_params__ = params  # type: ignore[attr-defined]
    # A refusing --json that global_options added first gives way to this one.
    params[:] = [p for p in params if not (isinstance(p, GlobalOption) and "--json" in p.opts)]
    params.append(_json_param(supported=True))
    return f


def _has_flag(command: click.Command, flag: str) -> bool:
    return any(flag in p.opts for p in command.params if isinstance(p, click.Option))


def global_options(command: Any) -> Any:
    """Give ``command`` pixalert's global options (``--config``, ``--env-file``,
    ``-v``, ``--debug``, and a ``--json`` that refuses unless :func:`json_option` added one).

    Use it as a decorator, above or below ``@click.command()``. Every command
    added to the ``pixalert`` group gets them anyway; plugins may decorate
    their commands to say so. A command that already has one of these flags
    keeps its own. Read the values with :func:`cli_options`, or call
    :func:`build_manager`, which uses them.
    """
    if not isinstance(command, click.Command):
        params = getattr(command, "__click_params__", None)
        if params is None:
            params = []
            command.__click_params__ = params
        taken = {o for p in params for o in p.opts}
        for param in [*_global_params(root=False), _json_param(supported=False)]:
            if not taken.intersection(param.opts):
                params.append(param)
        return command
    for param in [*_global_params(root=False), _json_param(supported=False)]:
        if not any(_has_flag(command, o) for o in param.opts):
            command.params.append(param)
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            global_options(sub)
    return command


# ---------------------------------------------------------------------------
# The group
# ---------------------------------------------------------------------------


class PixalertGroup(click.Group):
    """Loads core commands lazily and plugin commands on demand; gives every
    command the global options; turns any error into one clear line and an exit code."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plugins_loaded = False

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        """Add ``cmd`` with the global options (plugins call this from ``pixalert_cli``)."""
        super().add_command(global_options(cmd), name)

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
            except (ImportError, AttributeError) as exc:
                command = _broken_command(cmd_name, exc)
            self.add_command(command, cmd_name)
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

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            raise OneLineUsageError.of(exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            raise OneLineUsageError.of(exc) from None
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except BrokenPipeError:
            raise  # click's main quietens it (``pixalert history | head``)
        except KeyboardInterrupt:
            click.echo("pixalert: interrupted", err=True)
            sys.exit(130)
        except Exception as exc:
            from ._failures import report

            sys.exit(report(exc, ctx))


class OneLineUsageError(click.UsageError):
    """A usage error shown as one line: what is wrong, and where help is."""

    @classmethod
    def of(cls, exc: click.UsageError) -> OneLineUsageError:
        """The same error, shown on one line."""
        if isinstance(exc, cls):
            return exc
        return cls(exc.format_message(), exc.ctx)

    def show(self, file: Any = None) -> None:
        """``error: MESSAGE (see 'pixalert COMMAND --help')`` on stderr."""
        where = self.ctx.command_path if self.ctx is not None else "pixalert"
        click.echo(f"error: {self.format_message()} (see '{where} --help')", err=True)


def _broken_command(name: str, error: Exception) -> click.Command:
    """A stand-in for a core command whose module failed to import: running it reports why."""

    def callback(**_: Any) -> None:
        raise error

    return click.Command(
        name,
        callback=callback,
        help=f"(cannot be loaded: {type(error).__name__})",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )


def _show_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from ._output import version_lines

    for line in version_lines():
        click.echo(line)
    ctx.exit()


@click.group(cls=PixalertGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-V",
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_show_version,
    help="Show the versions of pixalert, its plugins and Python, and exit.",
)
@click.pass_context
def cli(ctx: click.Context) -> None:
    """pixalert: route alerts to email, Slack, PagerDuty and webhooks, by priority.

    Global options (--config, --env-file, --json, -v, --debug) go before or
    after the command. Exit status: 0 ok, 1 a delivery failed, 2 bad usage or
    configuration, 3 a store, server or port is unavailable, 4 internal error.
    """
    ctx.ensure_object(dict)


cli.params[:0] = [*_global_params(root=True), _json_param(supported=True, expose=False)]


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print ``message`` to stderr and exit with ``code`` (no traceback)."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def build_manager(
    ctx: click.Context | None = None, *, sweep: bool = True, **kwargs: Any
) -> NotificationManager:
    """A :class:`pixalert.NotificationManager` from the global ``--config``/``--env-file``.

    Plugins' commands call it too. A configuration error exits with status 2
    and one clear message; a store that cannot be opened later (in
    ``async with manager``) is reported by the command line, naming the store
    and where its URL was set. A command that runs for a moment passes
    ``sweep=False``: no background sweeps (``delivery.recover_interval = 0``),
    so it delivers its own alerts and takes over no backlog, which the
    long-running managers sharing the store (serve, monitor, an application)
    deliver; a command that keeps running keeps the sweeps.
    """
    from .._errors import ConfigError
    from .._manager import NotificationManager
    from .._plugins import default_plugin_manager

    if not sweep:
        config = dict(kwargs.get("config") or {})
        config["delivery"] = {**config.get("delivery", {}), "recover_interval": 0}
        kwargs["config"] = config
    ctx = ctx or click.get_current_context(silent=True)
    options = cli_options(ctx)
    kwargs.setdefault("config_file", options.config_file)
    kwargs.setdefault("env_file", options.env_file)
    kwargs.setdefault("plugin_manager", default_plugin_manager())
    try:
        manager = NotificationManager(**kwargs)
    except (ConfigError, ValueError) as exc:
        fail(str(exc))
    if ctx is not None:
        _root_obj(ctx)["settings"] = manager.settings  # to name a failing store
    return manager


def run_async(coro: Any) -> Any:
    """Run ``coro`` to completion (the CLI's one event loop).

    pixalert's warnings are held meanwhile: if ``coro`` fails, those that only
    repeat its error are dropped (the error is reported once, by the command
    line); the others are shown when it ends.
    """
    import asyncio

    from ._logs import held_warnings

    with held_warnings() as held:
        try:
            return asyncio.run(coro)
        except BaseException as exc:
            held.drop_repeating(exc)
            raise


def with_manager(call: Callable[[NotificationManager], Awaitable[T]], hint: str = "") -> T:
    """Run ``call(manager)`` on a manager built for a moment (no sweeps) and return its result.

    An unknown alert or heartbeat, or another refusal of pixalert's, exits with
    status 2 and its message (plus ``hint``); a configuration or store error
    reaches the command line's handler (one line, its exit code).
    """
    from .._errors import ConfigError, PixalertError, StoreUnavailable

    manager = build_manager(sweep=False)

    async def go() -> T:
        async with manager:
            return await call(manager)

    try:
        return run_async(go())  # type: ignore[no-any-return, unused-ignore]
    except (ConfigError, StoreUnavailable):
        raise
    except PixalertError as exc:
        fail(f"{exc}{hint}")


def main() -> None:
    """Entry point of the ``pixalert`` script."""
    import logging

    class LevelFormatter(logging.Formatter):
        """``warning: MESSAGE`` (or ``error: ...``)."""

        def format(self, record: logging.LogRecord) -> str:
            return f"{record.levelname.lower()}: {record.getMessage()}"

    # Without -v, warnings reach stderr through logging's last resort: say what they are.
    if logging.lastResort is not None:
        logging.lastResort.setFormatter(LevelFormatter())
    cli(prog_name="pixalert")
