# The lines marked "wrapper" provide the `bridge` and `json` the fragment uses.
import json  # wrapper
from pixalert_monitoring import MonitoringBridge  # wrapper

bridge = MonitoringBridge()  # wrapper

# Get system health summary
health = bridge.get_system_health_summary()
print(json.dumps(health, indent=2))

# Get recent alerts
alerts = bridge.get_alert_history(hours=24)
print(f"Alerts in last 24h: {len(alerts)}")
