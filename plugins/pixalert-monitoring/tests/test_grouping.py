"""The bridge's rules and the receiver's Alertmanager alerts go through the same routes and
groups as any alert; an Alertmanager group stays one group."""

from __future__ import annotations

from typing import Any

from pixalert.channels import Group, Receipt
from pixalert.testing import FakeClock, RecordingChannel, make_manager
from pixalert_monitoring import MonitoringBridge, create_app
from pixalert_monitoring.testing import running_server


class GroupChannel(RecordingChannel):
    def __init__(self) -> None:
        super().__init__("recording")
        self.groups: list[Group] = []

    async def send_group(self, group: Group, *, previous: Receipt | None = None) -> Receipt:
        self.groups.append(group)
        return {"n": str(len(self.groups))}


CONFIG = {
    "routes": [
        {
            "match": {"source": "=~alertmanager|grafana"},
            "channels": ["recording"],
            "group_by": ["alertname"],  # ignored for a group Alertmanager made
        },
        {"match": {}, "channels": ["recording"], "group_by": ["source"], "group_wait": "10s"},
    ]
}


async def test_an_alertmanager_group_is_kept_as_one_group(am: Any, clock: FakeClock) -> None:
    import httpx

    channel = GroupChannel()
    body = am.json("firing_group")
    manager = make_manager([channel], clock=clock, config=CONFIG)
    async with manager, running_server(create_app(manager)) as server:
        host, port = server.bound
        async with httpx.AsyncClient() as client:
            response = await client.post(
                f"http://{host}:{port}/webhook/alerts",
                content=am.raw("firing_group"),
                headers={"Content-Type": "application/json"},
            )
            assert response.status_code == 200, response.text
        await manager.drain()
        await manager.resume_pending()  # Alertmanager waited its group_wait already
    (group,) = channel.groups
    assert group.external_key == body["groupKey"]
    assert group.labels == body["groupLabels"]
    assert sorted(a.metadata["fingerprint"] for a in group.alerts) == sorted(
        a["fingerprint"] for a in body["alerts"]
    )
    assert channel.sent == []


async def test_the_bridge_s_rules_are_grouped_like_any_alert(clock: FakeClock) -> None:
    channel = GroupChannel()
    async with make_manager([channel], clock=clock, config=CONFIG) as manager:
        bridge = MonitoringBridge(manager)
        try:
            bridge.setup_default_alert_rules()
            bridge.record_metric("cpu_usage_percent", 97, "%", "api-server")
            bridge.record_metric("memory_usage_percent", 93, "%", "api-server")
            await bridge.check_alert_conditions()
            assert channel.groups == []  # waiting for group_wait
            clock.advance(10)
            await manager.resume_pending()
        finally:
            await bridge.aclose()
    (group,) = channel.groups
    assert len(group.alerts) >= 2 and len({a.source for a in group.alerts}) == 1
