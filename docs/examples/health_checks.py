# The "Health Checks" example of the notification_integrations README. Its fragment uses
# `bridge` and `json`; the lines marked "wrapper" provide them. The fragment is as
# written. tests/test_examples.py runs it.
# fmt: off
# ruff: noqa: I001
import json  # wrapper
from pixalert_monitoring import MonitoringBridge  # wrapper

bridge = MonitoringBridge()  # wrapper

# Get system health summary
health = bridge.get_system_health_summary()
print(json.dumps(health, indent=2))

# Get recent alerts
alerts = bridge.get_alert_history(hours=24)
print(f"Alerts in last 24h: {len(alerts)}")
