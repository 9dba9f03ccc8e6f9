"""Prometheus metrics of the daily retention pass (``storage.retention``), on the app's
registry: what it removed, and whether its last run finished everything due."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from storage.retention import RetentionReport


class RetentionMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.removed = Counter(
            "engage_retention_removed", "What retention removed: documents, files, bytes, "
            "inbound bodies, message parameters", ["kind"], registry=registry)
        self.complete = Gauge(
            "engage_retention_last_run_complete",
            "1 if the last retention run removed everything due, 0 if some waits for the next",
            registry=registry)
        self.batches = Counter("engage_retention_batches", "Retention batches (transactions)",
                               registry=registry)

    def observe(self, report: RetentionReport) -> None:
        for kind in ("documents", "files", "bytes", "inbound_bodies", "message_params"):
            self.removed.labels(kind=kind).inc(getattr(report, kind))
        self.batches.inc(report.batches)
        self.complete.set(1 if report.complete else 0)
