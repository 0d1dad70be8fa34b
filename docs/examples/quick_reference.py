# The lines marked "wrapper" provide the `manager` (async) and `bridge` they use.
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
