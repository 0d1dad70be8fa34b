"""Hosting plugins: the plugin manager and what it reports about broken plugins.

For code that embeds pixalert and wants control over which plugins load
(an application with its own plugins, a test). Most applications never need
it: :class:`pixalert.NotificationManager` loads the installed plugins itself.
"""

from ._errors import ChannelConflictError, PluginError
from ._plugins import (
    ENTRY_POINT_GROUP,
    PluginInfo,
    PluginManager,
    PluginProblem,
    get_plugin_manager,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "ChannelConflictError",
    "PluginError",
    "PluginInfo",
    "PluginManager",
    "PluginProblem",
    "get_plugin_manager",
]
