"""Flask without managing an event loop: one manager for the process, its sync methods.

``send_alert_sync`` (and ``run_sync`` for any other coroutine) run on the
manager's own event loop in a background thread, so channels and their
connections live on one loop for the life of the process. Run it with
``flask --app flask_sync run``.
"""

from flask import Flask, request
from pixalert import NotificationManager
from pixalert_monitoring import MonitoringBridge

app = Flask(__name__)
manager = NotificationManager()
bridge = MonitoringBridge(manager)


@app.post("/orders/<order_id>/failed")
def order_failed(order_id: str) -> dict[str, str]:
    """Page when an order cannot be charged."""
    results = manager.send_alert_sync(
        "Payment failed",
        f"Order {order_id} could not be charged",
        "high",
        metadata={"order": order_id},
    )
    return {channel.value: result.status.value for channel, result in results.items()}


@app.post("/webhook/alerts")
def receive_alert() -> dict[str, object]:
    """The Alertmanager endpoint of the Flask example, on the manager's loop."""
    result = manager.run_sync(bridge.process_external_alerts(request.get_json()))
    return {"status": "processed", "results": result}
