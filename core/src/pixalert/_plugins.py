"""Finding and loading plugins, one at a time, each in its own ``try``."""

from __future__ import annotations

import contextlib
import logging
import os
import types
from collections.abc import Iterable
from importlib import metadata
from typing import Any, cast

import attrs
import pluggy

from . import hookspecs
from ._channels import ChannelSpec
from ._errors import ChannelConflictError
from ._redact import redact

__all__ = [
    "ENTRY_POINT_GROUP",
    "PluginInfo",
    "PluginManager",
    "PluginProblem",
    "get_plugin_manager",
]

log = logging.getLogger("pixalert.plugins")

ENTRY_POINT_GROUP = "pixalert"
"""The entry point group plugins register under (``[project.entry-points.pixalert]``)."""
#: The name of the core's own plugin (its stores), registered in every manager.
BUILTIN = "pixalert.builtin"


@attrs.frozen
class PluginProblem:
    """A plugin that could not be loaded or whose hook failed: reported, never raised."""

    name: str
    error: str

    def __str__(self) -> str:
        return f"plugin {self.name!r}: {self.error}"


@attrs.frozen
class PluginInfo:
    """What ``pixalert plugins`` shows for one plugin."""

    name: str
    distribution: str | None
    version: str | None
    channels: tuple[str, ...]
    hooks: tuple[str, ...]


class PluginManager(pluggy.PluginManager):
    """pluggy's manager for the ``pixalert`` project, with load errors kept.

    A plugin that fails to import, or whose ``pixalert_channels`` raises, is
    recorded in :attr:`problems` and logged; it never takes the host down.
    """

    def __init__(self) -> None:
        super().__init__("pixalert")
        self.add_hookspecs(hookspecs)
        from . import _builtin

        self.register(_builtin, name=BUILTIN)
        self.problems: list[PluginProblem] = []
        # Distributions by plugin name; their metadata is read only by plugin_infos().
        self._dists: dict[str, Any] = {}
        self._specs: dict[str, ChannelSpec] | None = None
        self._spec_owner: dict[str, str] = {}

    def load_entrypoints(self, names: Iterable[str] | None = None) -> None:
        """Load every plugin of the ``pixalert`` entry point group.

        ``names`` (or the ``PIXALERT_PLUGINS`` variable, comma-separated)
        limits loading to those entry point names; an empty value loads none.
        """
        if names is None:
            env = os.environ.get("PIXALERT_PLUGINS")
            names = None if env is None else [n.strip() for n in env.split(",") if n.strip()]
        wanted = None if names is None else set(names)
        for ep in _entry_points():
            if wanted is not None and ep.name not in wanted:
                continue
            if self.get_plugin(ep.name) is not None or self.is_blocked(ep.name):
                continue
            try:
                plugin = ep.load()
                self.register(plugin, name=ep.name)
            except Exception as exc:
                self._fail(ep.name, f"failed to load: {type(exc).__name__}: {exc}")
                continue
            dist = getattr(ep, "dist", None)
            if dist is not None:
                self._dists[ep.name] = dist
        self.report_unknown_hooks()
        self._specs = None

    def report_unknown_hooks(self) -> list[PluginProblem]:
        """Record a problem for each hook implementation that matches no hook spec
        (``pixalert_chanels``, a typo, is never called); return the new problems.

        pluggy's ``check_pending`` raises at the first; this names every one, with
        the hook that was probably meant.
        """
        import difflib

        callers = {n: getattr(self.hook, n) for n in vars(self.hook) if not n.startswith("_")}
        known = [n for n, caller in callers.items() if caller.has_spec()]
        found = []
        for name, caller in callers.items():
            if caller.has_spec():
                continue
            for impl in caller.get_hookimpls():
                if impl.optionalhook:
                    continue
                owner = self.get_name(impl.plugin) or repr(impl.plugin)
                guess = difflib.get_close_matches(name, known, n=1)
                hint = f" (did you mean {guess[0]!r}?)" if guess else ""
                message = f"implements unknown hook {name!r}{hint}: it is never called"
                if all(p.error != message or p.name != owner for p in self.problems):
                    found.append(self._fail(owner, message))
        return found

    def parse_hookimpl_opts(self, plugin: object, name: str) -> pluggy.HookimplOpts | None:
        """pluggy's lookup, skipping a plugin module's lazy attributes.

        pluggy looks up every name in ``dir(plugin)``; for a module with a
        ``__getattr__`` that would import what the plugin keeps lazy (httpx,
        aiosmtplib) on every ``pixalert --help``. Hook implementations are
        always real module attributes.
        """
        if isinstance(plugin, types.ModuleType) and name not in vars(plugin):
            return None
        return super().parse_hookimpl_opts(plugin, name)

    def _fail(self, name: str, message: str) -> PluginProblem:
        error = PluginProblem(name, message)
        self.problems.append(error)
        log.warning("%s", redact(str(error)))
        return error

    def channel_specs(self) -> dict[str, ChannelSpec]:
        """Every channel type the registered plugins declare, by name."""
        if self._specs is not None:
            return self._specs
        specs: dict[str, ChannelSpec] = {}
        owners: dict[str, str] = {}
        for impl in reversed(self.hook.pixalert_channels.get_hookimpls()):
            owner = self.get_name(impl.plugin) or repr(impl.plugin)
            try:
                declared: list[Any] = list(cast("Iterable[Any]", impl.function()) or ())
            except Exception as exc:
                self._fail(owner, f"pixalert_channels raised {type(exc).__name__}: {exc}")
                continue
            for spec in declared:
                if not isinstance(spec, ChannelSpec):
                    self._fail(owner, f"pixalert_channels returned {spec!r}, expected ChannelSpec")
                    continue
                if spec.name in specs:
                    first, second = sorted([owners[spec.name], owner])
                    raise ChannelConflictError(
                        f"channel type {spec.name!r} is declared by both plugin "
                        f"{first!r} and plugin {second!r}; uninstall one, "
                        "or limit loading with PIXALERT_PLUGINS"
                    )
                specs[spec.name] = spec
                owners[spec.name] = owner
        self._specs = specs
        self._spec_owner = owners
        return specs

    def plugin_infos(self) -> list[PluginInfo]:
        """One :class:`PluginInfo` per registered plugin (for ``pixalert plugins``)."""
        with contextlib.suppress(ChannelConflictError):
            self.channel_specs()
        infos = []
        for name, plugin in self.list_name_plugin():
            if plugin is None or name == BUILTIN:
                continue
            found = self._dists.get(name)
            dist, version = (found.metadata["Name"], found.version) if found else (None, None)
            hooks = tuple(sorted(caller.name for caller in self.get_hookcallers(plugin) or ()))
            channels = tuple(sorted(c for c, owner in self._spec_owner.items() if owner == name))
            infos.append(PluginInfo(name, dist, version, channels, hooks))
        return sorted(infos, key=lambda info: info.name)


def _entry_points() -> list[Any]:
    return list(metadata.entry_points(group=ENTRY_POINT_GROUP))


def get_plugin_manager(
    *, entrypoints: bool = True, plugins: Iterable[object] = ()
) -> PluginManager:
    """A new :class:`PluginManager` with installed plugins (and ``plugins``) registered."""
    pm = PluginManager()
    for plugin in plugins:
        pm.register(plugin)
    if entrypoints:
        pm.load_entrypoints()
    else:
        pm.report_unknown_hooks()
    return pm


_default: PluginManager | None = None


def default_plugin_manager() -> PluginManager:
    """The process-wide plugin manager with installed plugins loaded (created once)."""
    global _default
    if _default is None:
        _default = get_plugin_manager()
    return _default
