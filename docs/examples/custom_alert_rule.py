# The lines marked "wrapper" create the `bridge` the fragment uses and show the rule.
from pixalert_monitoring import MonitoringBridge  # wrapper

bridge = MonitoringBridge()  # wrapper

# Add custom alert rule
bridge.add_alert_rule(
    rule_name="custom_metric_alert",
    metric_name="custom_metric",
    threshold=100.0,
    operator=">",
    priority="high",
    cooldown_minutes=20
)

print(bridge.alert_rules["custom_metric_alert"])  # wrapper
