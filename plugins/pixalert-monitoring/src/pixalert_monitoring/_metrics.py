"""Prometheus metrics of the receiver and of every delivery (``GET /metrics``)."""

from __future__ import annotations

from collections.abc import Mapping

from pixalert import Alert, DeliveryResult, DeliveryStatus, hookimpl

__all__ = ["ReceiverMetrics"]

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ReceiverMetrics:
    """Counters and a latency histogram in their own registry.

    Registered on a manager's plugin manager, its ``pixalert_after_delivery``
    hook counts notifications sent and failed per channel and observes
    delivery latency.
    """

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "pixalert_webhook_requests",
            "Webhook requests by HTTP status code.",
            ["code"],
            registry=self.registry,
        )
        self.received = Counter(
            "pixalert_alerts_received",
            "Alerts received by the webhook receiver, by body format and alert status.",
            ["format", "status"],
            registry=self.registry,
        )
        self.duplicates = Counter(
            "pixalert_alerts_duplicate",
            "Alerts skipped as redeliveries of a notification already taken.",
            ["format"],
            registry=self.registry,
        )
        self.sent = Counter(
            "pixalert_notifications_sent",
            "Notifications delivered, per channel.",
            ["channel"],
            registry=self.registry,
        )
        self.failed = Counter(
            "pixalert_notifications_failed",
            "Notifications that failed after every attempt, per channel.",
            ["channel"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "pixalert_delivery_latency_seconds",
            "Time to deliver one notification to one channel (all attempts).",
            ["channel"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )

    @hookimpl  # type: ignore[untyped-decorator, unused-ignore]  # core lacks py.typed
    def pixalert_after_delivery(self, alert: Alert, results: Mapping[str, DeliveryResult]) -> None:
        """Count each channel's result and observe its latency."""
        for name, result in results.items():
            channel = str(name)
            if result.status is DeliveryStatus.SENT:
                self.sent.labels(channel).inc()
            elif result.status is DeliveryStatus.FAILED:
                self.failed.labels(channel).inc()
            else:
                continue
            if result.latency is not None:
                self.latency.labels(channel).observe(result.latency)

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The exposition in the format the ``Accept`` header asks for, and its content type.

        Without one it is Prometheus text format 0.0.4, which every scraper reads.
        """
        from prometheus_client.exposition import choose_encoder

        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type
