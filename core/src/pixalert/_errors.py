"""Every error pixalert raises on purpose, under one base: :class:`PixalertError`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "AlertNotFound",
    "ChannelConflictError",
    "ConfigError",
    "DeliveryError",
    "HeartbeatNotFound",
    "PixalertError",
    "PluginError",
    "StoreUnavailable",
    "SubmitError",
]


class PixalertError(Exception):
    """The base of every error pixalert raises on purpose.

    ``except pixalert.PixalertError`` catches a bad configuration, a failed
    delivery, an unreachable store and a broken plugin alike. Messages never
    carry a secret.
    """


class ConfigError(PixalertError, ValueError):
    """The configuration is wrong. ``errors`` holds one line per problem.

    Each line reads ``<source>: <what was expected> @ <key path>``. It is a
    ``ValueError`` too, so code that checked for one keeps working.
    """

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = list(errors)
        super().__init__("invalid configuration:\n  " + "\n  ".join(self.errors))


class DeliveryError(PixalertError):
    """Raised by a channel's ``send`` when delivery failed.

    ``retryable`` says whether trying again may help (a timeout, a 5xx, a 429)
    or not (bad credentials, a 4xx). ``retry_after`` is the delay in seconds
    the service asked for, if any. The message must carry no secret.
    """

    def __init__(
        self, message: str, *, retryable: bool = True, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after

    @classmethod
    def permanent(cls, message: str) -> DeliveryError:
        """A failure that trying again will not fix."""
        return cls(message, retryable=False)

    def __repr__(self) -> str:
        return (
            f"DeliveryError({self.message!r}, retryable={self.retryable}, "
            f"retry_after={self.retry_after})"
        )


class StoreUnavailable(PixalertError, RuntimeError):
    """A history store or state backend could not be reached or refused the work.

    The message names the store (its URL with the password masked) and what
    went wrong, never a secret.
    """


class PluginError(PixalertError):
    """A plugin is broken in a way that stops pixalert from using it.

    Plugins that merely fail to load are not raised but reported (see
    :class:`pixalert.plugins.PluginProblem`); this is raised where going on
    would be wrong, such as two plugins claiming one channel type.
    """


class ChannelConflictError(PluginError, ValueError):
    """Two plugins declared the same channel type name."""


class SubmitError(PixalertError):
    """Raised by ``NotificationManager.submit_many`` when the store failed part way.

    ``stored`` holds the ids of the alerts that were stored (and are being
    delivered); the others were not stored. The store's own error is the
    ``__cause__``. A store that records a batch in one transaction stores
    all or none.
    """

    def __init__(self, message: str, *, stored: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.stored = list(stored)
        #: What a store kept before it failed (the manager delivers those).
        self.recorded: list[Any] = []


class AlertNotFound(PixalertError, KeyError):
    """No alert with this id is in the history (``manager.ack``, ``manager.resolve``).

    It is a ``KeyError`` too; ``alert_id`` is the id asked for.
    """

    def __init__(self, alert_id: str) -> None:
        super().__init__(alert_id)
        self.alert_id = alert_id

    def __str__(self) -> str:
        return f"no alert {self.alert_id!r} in the history"


class HeartbeatNotFound(PixalertError, KeyError):
    """No heartbeat of this name is configured (``[heartbeats.NAME]``).

    It is a ``KeyError`` too; ``name`` is the name asked for, ``known`` the
    configured names.
    """

    def __init__(self, name: str, known: Sequence[str] = ()) -> None:
        super().__init__(name)
        self.name = name
        self.known = list(known)

    def __str__(self) -> str:
        known = ", ".join(self.known) or "none"
        return f"no heartbeat {self.name!r} is configured (configured: {known})"
