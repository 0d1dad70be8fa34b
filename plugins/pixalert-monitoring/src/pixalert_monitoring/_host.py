"""Sampling this host's CPU, memory and disk with psutil (``pixalert monitor``)."""

from __future__ import annotations

import time
from typing import Any

from pixalert import Priority

__all__ = ["HOST_RULES", "HostSampler"]

#: Disk rules ``pixalert monitor`` adds to the eight default rules (which have none for disk).
HOST_RULES: tuple[tuple[str, str, float, str, Priority, float], ...] = (
    ("high_disk_usage", "disk_usage_percent", 85.0, ">", Priority.MEDIUM, 30),
    ("critical_disk_usage", "disk_usage_percent", 95.0, ">", Priority.HIGH, 15),
)


class HostSampler:
    """Records ``cpu_usage_percent``, ``memory_usage_percent`` and ``disk_usage_percent``.

    Call it (it is the ``collect`` of :meth:`MonitoringBridge.start_monitoring_loop`)
    to record one sample for ``service``. CPU is the average since the last call;
    it is left out until at least :attr:`min_cpu_window` seconds have been measured
    (a shorter window reads as 0 or 100%).
    """

    min_cpu_window = 0.5

    def __init__(self, service: str, disk_path: str = "/") -> None:
        import psutil

        self._psutil = psutil
        self.service = service
        self.disk_path = disk_path
        psutil.disk_usage(disk_path)  # fail now, with a clear error, on a bad path
        psutil.cpu_percent(interval=None)  # the first call only starts the measurement
        self._cpu_since = time.monotonic()

    def sample(self) -> dict[str, float]:
        """One reading of each metric, in percent."""
        psutil = self._psutil
        values: dict[str, float] = {}
        now = time.monotonic()
        if now - self._cpu_since >= self.min_cpu_window:
            values["cpu_usage_percent"] = float(psutil.cpu_percent(interval=None))
            self._cpu_since = now
        values["memory_usage_percent"] = float(psutil.virtual_memory().percent)
        values["disk_usage_percent"] = float(psutil.disk_usage(self.disk_path).percent)
        return values

    def __call__(self, bridge: Any) -> None:
        """Record one sample of every metric on ``bridge``."""
        for name, value in self.sample().items():
            bridge.record_metric(name, value, "%", self.service)
