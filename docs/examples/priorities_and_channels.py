# The print at the end (marked "wrapper") shows what the names are.
from pixalert import NotificationPriority

NotificationPriority.LOW       # Informational alerts
NotificationPriority.MEDIUM    # Warning alerts
NotificationPriority.HIGH      # Error alerts requiring attention
NotificationPriority.CRITICAL  # Critical alerts requiring immediate action

from pixalert import NotificationChannel

NotificationChannel.EMAIL      # Email notifications
NotificationChannel.SLACK      # Slack notifications
NotificationChannel.PAGERDUTY  # PagerDuty notifications
NotificationChannel.WEBHOOK    # Generic webhook notifications

print(sorted(NotificationPriority), [c.value for c in NotificationChannel])  # wrapper
