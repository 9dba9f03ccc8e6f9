"""Confirmed accident reports to the insurer's core system, from the durable queue table
``core_report_delivery`` (one row per report, written with the Claim in one transaction).

The wire: ``POST core.report_webhook_url`` with the report as JSON (its ``idempotency_key``
inside), ``X-Engage-Timestamp`` (Unix seconds) and ``X-Engage-Signature:
sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>``. The receiver recomputes the HMAC
over the exact bytes and refuses a timestamp far from its clock (a replayed request).

Delivery is at least once: a pass leases due rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL)
before it sends, and writes the outcome after. A process that dies in between leaves the row
leased; when the lease runs out the row is sent again with the same idempotency key, which
the core system uses to answer the repeat without a second claim.

Outcomes: 2xx delivered (a ``claim_number`` in the answer is the core system's own claim
number: see ``assign_core_number``); a timeout, a connection error, 408, 425, 429 or 5xx is
retried with a doubling back-off up to ``core.max_attempts``; any other answer (a 4xx: the
same request would fail again) and the last failed attempt make the row a dead letter, shown
in the console with a retry button and counted by ``engage_core_reports_dead``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry, Counter, Gauge
from tortoise.expressions import F, Q
from tortoise.transactions import in_transaction

from bot.settings import CoreSettings
from bot.supervisor import Beat
from storage.accident_models import CoreDelivery, CoreDeliveryStatus
from storage.models import Category, Claim
from storage.outbox import Outbound, enqueue

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Engage-Signature"
TIMESTAMP_HEADER = "X-Engage-Timestamp"
BATCH = 20
_RETRY_STATUSES = frozenset({408, 425, 429})


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """The ``X-Engage-Signature`` value of one request."""
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def body_of(row: CoreDelivery) -> bytes:
    return json.dumps({**row.payload, "idempotency_key": row.idempotency_key},
                      ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


class CoreMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.attempts = Counter(
            "engage_core_report_attempts_total",
            "Deliveries of accident reports to the core system, by outcome",
            ["outcome"], registry=registry)
        self.dead = Gauge(
            "engage_core_reports_dead",
            "Accident reports the core system never took (dead letters), at the last pass",
            registry=registry)


@dataclass(frozen=True, slots=True)
class Outcome:
    status: CoreDeliveryStatus  # delivered, pending (retry) or dead
    error: str = ""
    claim_number: str | None = None


class CoreNumberRefused(Exception):
    """A core claim number that cannot be recorded: ``reason`` is ``not_found`` (no such
    report), ``conflict`` (the report has another number) or ``taken`` (another claim has
    this number)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class CoreReports:
    """The delivery loop (``run``, supervised as ``core-reports``) and its single pass."""

    def __init__(self, settings: CoreSettings, *, clock: Callable[[], datetime],
                 metrics: CoreMetrics | None = None, skip_locked: bool = False) -> None:
        self.settings = settings
        self.clock = clock
        self.metrics = metrics
        self.skip_locked = skip_locked
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout_seconds))
        return self._session

    async def run(self, stop: asyncio.Event, beat: Beat) -> None:
        while not stop.is_set():
            sent = await self.deliver_due() if self.settings.enabled else 0
            beat()
            if sent >= BATCH:
                continue  # more may be due: no pause
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.poll_interval_seconds)

    async def deliver_due(self) -> int:
        """One pass: lease the due rows, send each, record each outcome. Returns how many
        were sent."""
        rows = await self.lease()
        for row in rows:
            outcome = await self.send(row)
            await self.record(row, outcome)
        if self.metrics is not None:
            self.metrics.dead.set(await CoreDelivery.filter(
                status=CoreDeliveryStatus.DEAD).count())
        return len(rows)

    async def lease(self) -> list[CoreDelivery]:
        now = self.clock()
        lease_until = now + timedelta(seconds=self.settings.lease_seconds)
        async with in_transaction():
            due = (Q(status=CoreDeliveryStatus.PENDING, next_attempt_at__lte=now)
                   | Q(status=CoreDeliveryStatus.SENDING, lease_expires_at__lte=now))
            rows = await CoreDelivery.filter(due).order_by("next_attempt_at", "id").limit(
                BATCH).select_for_update(skip_locked=self.skip_locked)
            if rows:
                await CoreDelivery.filter(id__in=[r.id for r in rows]).update(
                    status=CoreDeliveryStatus.SENDING, lease_expires_at=lease_until,
                    attempts=F("attempts") + 1)
        for row in rows:
            row.status, row.lease_expires_at = CoreDeliveryStatus.SENDING, lease_until
            row.attempts += 1
        return list(rows)

    async def send(self, row: CoreDelivery) -> Outcome:
        body = body_of(row)
        timestamp = str(int(self.clock().timestamp()))
        secret = self.settings.report_webhook_secret.get_secret_value().encode()
        headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp,
                   SIGNATURE_HEADER: signature(secret, timestamp, body),
                   "Idempotency-Key": row.idempotency_key}
        try:
            async with self._http().post(self.settings.report_webhook_url, data=body,
                                         headers=headers) as response:
                text = await response.text(errors="replace")
                status = response.status
        except TimeoutError:
            return self._retry(row, "timeout")
        except aiohttp.ClientError as exc:
            return self._retry(row, f"{type(exc).__name__}: {exc}"[:300])
        if 200 <= status < 300:
            return Outcome(CoreDeliveryStatus.DELIVERED, claim_number=_claim_number(text))
        error = f"HTTP {status}: {text[:200]}"
        if status >= 500 or status in _RETRY_STATUSES:
            return self._retry(row, error)
        return Outcome(CoreDeliveryStatus.DEAD, error)

    def _retry(self, row: CoreDelivery, error: str) -> Outcome:
        if row.attempts >= self.settings.max_attempts:
            return Outcome(CoreDeliveryStatus.DEAD, error)
        return Outcome(CoreDeliveryStatus.PENDING, error)

    async def record(self, row: CoreDelivery, outcome: Outcome) -> None:
        now = self.clock()
        values: dict[str, Any] = {"status": outcome.status, "lease_expires_at": None,
                                  "last_error": outcome.error[:300]}
        if outcome.status == CoreDeliveryStatus.DELIVERED:
            values["delivered_at"] = now
        elif outcome.status == CoreDeliveryStatus.DEAD:
            values["dead_at"] = now
            log.error("accident report %s: the core system did not take it after %d "
                      "attempts (%s): a dead letter", row.reference, row.attempts, outcome.error)
        else:
            values["next_attempt_at"] = now + self._backoff(row.attempts)
            log.warning("accident report %s: attempt %d failed (%s); retrying at %s",
                        row.reference, row.attempts, outcome.error, values["next_attempt_at"])
        # only while the lease is ours: a row another process took over is its to record
        await CoreDelivery.filter(id=row.id, status=CoreDeliveryStatus.SENDING,
                                  lease_expires_at=row.lease_expires_at).update(**values)
        if self.metrics is not None:
            self.metrics.attempts.labels(outcome=outcome.status.value).inc()
        if outcome.claim_number:
            with suppress(CoreNumberRefused):  # logged inside; the report itself is delivered
                await assign_core_number(row.reference, outcome.claim_number, now=now)

    def _backoff(self, attempts: int) -> timedelta:
        seconds = self.settings.backoff_base_seconds * 2 ** max(attempts - 1, 0)
        return timedelta(seconds=min(seconds, self.settings.backoff_max_seconds))


def _claim_number(text: str) -> str | None:
    try:
        answer = json.loads(text) if text else None
    except ValueError:
        return None
    number = answer.get("claim_number") if isinstance(answer, dict) else None
    if isinstance(number, str) and 1 <= len(number.strip()) <= 40:
        return number.strip()
    return None


async def assign_core_number(reference: str, claim_number: str, *,
                             now: datetime) -> tuple[Claim, bool]:
    """The core system's claim number for a report (in its answer, or a later PUT): the
    claim takes that number — so the core system's later updates by number reach it — and
    the customer is told, once. Returns (claim, whether this call changed anything)."""
    async with in_transaction():
        row = await CoreDelivery.filter(reference=reference).select_for_update().first()
        if row is None:
            raise CoreNumberRefused("not_found", f"no report {reference}")
        claim = await Claim.get(id=row.claim_id)
        if row.core_claim_number == claim_number:
            return claim, False
        if row.core_claim_number is not None:
            log.warning("accident report %s already has core claim number %s, not %s",
                        reference, row.core_claim_number, claim_number)
            raise CoreNumberRefused("conflict", f"report {reference} is claim "
                                                f"{row.core_claim_number}")
        if await Claim.filter(number=claim_number).exclude(id=claim.id).exists():
            log.warning("accident report %s: core claim number %s belongs to another claim",
                        reference, claim_number)
            raise CoreNumberRefused("taken", f"claim {claim_number} exists")
        claim.number = claim_number
        await claim.save(update_fields=["number", "updated_at"])
        values: dict[str, Any] = {"core_claim_number": claim_number}
        if row.status != CoreDeliveryStatus.DELIVERED:  # the core system has it, evidently
            values.update(status=CoreDeliveryStatus.DELIVERED, delivered_at=now,
                          lease_expires_at=None)
        await CoreDelivery.filter(id=row.id).update(**values)
        await enqueue(Outbound(
            dedup_key=f"report_core_number:{reference}", kind="report_core_number",
            category=Category.SERVICE, customer_id=claim.customer_id,
            template_key="report_core_number", not_before=now,
            params={"reference": reference, "claim": claim_number}))
    log.info("accident report %s is core claim %s", reference, claim_number)
    return claim, True


async def retry(delivery_id: int, *, now: datetime) -> CoreDelivery | None:
    """A dead letter back in the queue, due now, with a fresh set of attempts; None when
    there is no such dead letter."""
    updated = await CoreDelivery.filter(id=delivery_id, status=CoreDeliveryStatus.DEAD).update(
        status=CoreDeliveryStatus.PENDING, attempts=0, next_attempt_at=now, dead_at=None)
    return await CoreDelivery.get(id=delivery_id) if updated else None
