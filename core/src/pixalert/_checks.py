"""Checks of a whole configuration, beyond what loading it checks.

Loading checks each value's type and range and rejects unknown keys. The
checks here look at how the parts fit: a routed channel that nothing
provides, a channel section whose plugin is not installed. ``pixalert config
check`` runs every registered check and reports what they find as errors;
building a manager logs them as warnings.

A config section adds its own check with :func:`config_check`::

    @config_check
    def check_time_intervals(ctx: CheckContext) -> Iterator[ConfigProblem]:
        for name, interval in ctx.settings.time_intervals.items():
            if ...:
                yield ctx.error(f"time_intervals.{name}.times", "expected HH:MM-HH:MM")

The check must live in this module or in one this module imports, so that
it is registered whenever checks run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Literal

import attrs

from ._channels import ChannelSpec
from ._config import Settings, _origin_for, channel_type, did_you_mean

__all__ = ["CheckContext", "ConfigProblem", "config_check", "log_problems", "run_checks"]

log = logging.getLogger("pixalert.config")

# The channel types this repository ships: routing to one that is not
# configured is the documented "skipped", not a typo.
_SHIPPED_TYPES = ("email", "slack", "pagerduty", "webhook")


@attrs.frozen
class ConfigProblem:
    """One thing wrong (``error``) or worth knowing (``note``) about a configuration."""

    source: str
    path: str
    message: str
    severity: Literal["error", "note"] = "error"

    def __str__(self) -> str:
        where = f" @ {self.path}" if self.path else ""
        return f"{self.source}: {self.message}{where}"

    def to_dict(self) -> dict[str, str]:
        """JSON-safe form."""
        return {
            "source": self.source,
            "path": self.path,
            "message": self.message,
            "severity": self.severity,
        }


@attrs.frozen
class CheckContext:
    """What a check looks at: the loaded settings and the installed channel types."""

    settings: Settings
    specs: Mapping[str, ChannelSpec]

    def origin(self, path: str) -> str:
        """Where the value at ``path`` came from (a file, an environment variable...)."""
        return _origin_for(path, self.settings.sources)

    def is_default(self, path: str) -> bool:
        """True if no source set the value at ``path`` itself."""
        return path not in self.settings.sources

    def error(self, path: str, message: str) -> ConfigProblem:
        """An error at ``path``, with its origin filled in."""
        return ConfigProblem(self.origin(path), path, message)

    def note(self, path: str, message: str) -> ConfigProblem:
        """A note at ``path`` (reported, never fatal)."""
        return ConfigProblem(self.origin(path), path, message, "note")

    @property
    def channel_names(self) -> list[str]:
        """The names of the configured channel sections."""
        return list(self.settings.channels)

    @property
    def known_types(self) -> list[str]:
        """Every channel type an alert could be routed to by name."""
        return sorted(set(self.specs) | set(_SHIPPED_TYPES))

    def check_channel_name(self, path: str, name: str) -> ConfigProblem | None:
        """The problem with routing to ``name`` at ``path``, if any.

        ``"*"`` and configured channels are fine; an installed or shipped
        channel type that is not configured is a note (alerts routed there are
        skipped); anything else is an error, with a suggestion.
        """
        if name == "*" or name in self.settings.channels:
            return None
        if name in self.known_types:
            if self.is_default(path):
                return None  # the default table names every shipped type
            return self.note(
                path, f"channel {name!r} is not configured: alerts routed to it are skipped"
            )
        guess = did_you_mean(name, [*self.channel_names, *self.known_types])
        hint = f" (did you mean {guess!r}?)" if guess else ""
        configured = ", ".join(sorted(self.channel_names)) or "none"
        return self.error(
            path,
            f"unknown channel {name!r}{hint}; expected a configured channel ({configured}), "
            'a channel type, or "*"',
        )


Check = Callable[[CheckContext], Iterable[ConfigProblem]]
_CHECKS: list[Check] = []


def config_check(check: Check) -> Check:
    """Register ``check``: a function of a :class:`CheckContext` yielding problems."""
    if check not in _CHECKS:
        _CHECKS.append(check)
    return check


def run_checks(settings: Settings, specs: Mapping[str, ChannelSpec]) -> list[ConfigProblem]:
    """Every registered check's problems, in registration order.

    A check that raises is reported as an error naming it, not raised.
    """
    ctx = CheckContext(settings, specs)
    problems: list[ConfigProblem] = []
    for check in _CHECKS:
        try:
            problems.extend(check(ctx))
        except Exception as exc:
            problems.append(
                ConfigProblem("pixalert", "", f"check {check.__name__} failed: {exc!r}")
            )
    return problems


def log_problems(settings: Settings, specs: Mapping[str, ChannelSpec]) -> None:
    """Log the checks' errors as warnings (those of explicit arguments excepted:
    a program may pass channel objects that the settings do not know)."""
    try:
        problems = run_checks(settings, specs)
    except Exception:  # pragma: no cover - run_checks does not raise
        return
    for problem in problems:
        if problem.severity == "error" and problem.source != "arguments":
            log.warning("%s", problem)


# ---------------------------------------------------------------------------
# The core's checks
# ---------------------------------------------------------------------------

_PRIORITIES = ("low", "medium", "high", "critical")


@config_check
def check_routing(ctx: CheckContext) -> Iterator[ConfigProblem]:
    """Every channel the priority table names is configured, a channel type, or ``*``."""
    for priority in _PRIORITIES:
        path = f"routing.{priority}"
        for name in getattr(ctx.settings.routing, priority):
            problem = ctx.check_channel_name(path, name)
            if problem is not None:
                yield problem


@config_check
def check_channel_types(ctx: CheckContext) -> Iterator[ConfigProblem]:
    """Every channel section's type is provided by an installed plugin."""
    for name, section in ctx.settings.channels.items():
        kind = channel_type(name, section)
        if kind in ctx.specs:
            continue
        path = f"channels.{name}.type" if "type" in section else f"channels.{name}"
        guess = did_you_mean(kind, list(ctx.specs))
        hint = f"did you mean {guess!r}? " if guess else ""
        installed = ", ".join(sorted(ctx.specs)) or "none"
        yield ctx.error(
            path,
            f"no installed plugin provides channel type {kind!r} ({hint}installed: "
            f"{installed}); install it (pip install pixalert-{kind}) or fix the type",
        )
