# The "API Endpoint Integration" example of the notification_integrations README,
# exactly as written; only an import was added: the README's snippet uses
# MonitoringBridge without importing it (it comes from pixalert_monitoring, formerly
# monitoring_notification_bridge). Run it with `flask --app flask_endpoint run`;
# tests/test_examples.py drives it with Flask's test client. For new code, prefer
# `pixalert serve` (see docs/monitoring.md).
# fmt: off
# ruff: noqa: I001
from flask import Flask, request
import asyncio
from pixalert_monitoring import MonitoringBridge

app = Flask(__name__)
bridge = MonitoringBridge()

@app.route('/webhook/alerts', methods=['POST'])
def receive_alert():
    alert_data = request.json

    # Process alert asynchronously
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    result = loop.run_until_complete(
        bridge.process_external_alerts(alert_data)
    )
    loop.close()

    return {"status": "processed", "results": result}
