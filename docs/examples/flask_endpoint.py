# Run it with `flask --app flask_endpoint run`. For new code, prefer `pixalert serve`
# (see the monitoring page).
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
