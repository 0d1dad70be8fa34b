# start_monitoring_loop() runs until bridge.stop() is called (or Ctrl-C).
import asyncio
from pixalert_monitoring import MonitoringBridge

async def setup_monitoring():
    bridge = MonitoringBridge()

    # Setup default alert rules
    bridge.setup_default_alert_rules()

    # Record metrics
    bridge.record_metric("cpu_usage_percent", 45.2, "%", "api-server")
    bridge.record_metric("memory_usage_percent", 67.8, "%", "api-server")

    # Check for alert conditions
    await bridge.check_alert_conditions()

    # Start continuous monitoring
    await bridge.start_monitoring_loop(check_interval=60)

asyncio.run(setup_monitoring())
