# The "Quick Reference" lines of the notification_integrations README (send an alert,
# record a metric, check health). They use `manager` (async) and `bridge`; the lines
# marked "wrapper" provide them. The three reference lines are as written.
# tests/test_examples.py runs it.
# fmt: off
# ruff: noqa: I001
import asyncio  # wrapper
from pixalert import NotificationManager, NotificationPriority  # wrapper
from pixalert_monitoring import MonitoringBridge  # wrapper


async def main():  # wrapper
    manager = NotificationManager()  # wrapper
    bridge = MonitoringBridge(manager)  # wrapper

    # Send Alert
    await manager.send_alert("Title", "Message", NotificationPriority.HIGH)

    # Record Metric
    bridge.record_metric("cpu_usage", 85.2, "%", "server-01")

    # Check Health
    health = bridge.get_system_health_summary()

    print(health["status"] if "status" in health else sorted(health))  # wrapper


asyncio.run(main())  # wrapper
