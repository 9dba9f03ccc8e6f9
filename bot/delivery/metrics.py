"""Prometheus metrics for delivery, on a registry the composition root owns."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class DeliveryMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.messages = Counter(
            "engage_messages_total", "Outbox messages by final outcome of a dispatch",
            ["kind", "channel", "status"], registry=registry,
        )
        self.latency = Histogram(
            "engage_dispatch_latency_seconds", "From not-before time to provider acceptance",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
            registry=registry,
        )
        self.provider_errors = Counter(
            "engage_provider_errors_total", "Errors answered by Telegram or Twilio",
            ["channel", "code"], registry=registry,
        )
