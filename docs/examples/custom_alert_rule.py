# The "Custom Alert Rules" example of the notification_integrations README. Its fragment
# uses a `bridge`; the lines marked "wrapper" create one and show the rule. The fragment
# is as written. tests/test_examples.py runs it.
# fmt: off
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
