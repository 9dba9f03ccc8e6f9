"""Accident reports made in Telegram, on their way to the core system: the delivery queue
(dead letters first), a retry for a dead letter, and the core system's claim number for a
report when it comes later than the delivery's answer (``PUT``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from tortoise.transactions import in_transaction

from bot.accident import core
from bot.web.operators import audit
from bot.web.operators.access import Actor
from bot.web.operators.errors import Refusal
from bot.web.operators.paging import DEFAULT_LIMIT, Page, page
from storage.accident_models import CoreDelivery, CoreDeliveryStatus
from storage.models import Claim


class ReportError(Refusal):
    code = "report_error"
    status = 409


class ReportNotFound(ReportError):
    code = "report_not_found"
    status = 404


class NotADeadLetter(ReportError):
    code = "not_a_dead_letter"


class CoreNumberConflict(ReportError):
    code = "core_number_conflict"


class CoreNumberIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    claim_number: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9-]+$",
                              description="the core system's claim number for the report")


def delivery_json(row: CoreDelivery, claim_number: str | None = None) -> dict[str, Any]:
    return {"id": row.id, "reference": row.reference, "claim_number": claim_number,
            "status": CoreDeliveryStatus(row.status).value, "attempts": row.attempts,
            "next_attempt_at": row.next_attempt_at.isoformat(),
            "last_error": row.last_error, "core_claim_number": row.core_claim_number,
            "created_at": row.created_at.isoformat(),
            "delivered_at": row.delivered_at.isoformat() if row.delivered_at else None,
            "dead_at": row.dead_at.isoformat() if row.dead_at else None}


async def list_deliveries(status: CoreDeliveryStatus | None, *, limit: int = DEFAULT_LIMIT,
                          cursor: str = "") -> tuple[Page[CoreDelivery], dict[int, str]]:
    """A page of deliveries, newest first, and each one's claim number now (by claim id)."""
    query = CoreDelivery.all()
    if status is not None:
        query = query.filter(status=status)
    found = await page(query, ("-created_at", "-id"), limit=limit, cursor=cursor)
    numbers: dict[int, str] = dict(await Claim.filter(
        id__in=[r.claim_id for r in found.rows]).values_list("id", "number"))
    return found, numbers


async def retry(actor: Actor, delivery_id: int, *, now: datetime) -> dict[str, Any]:
    async with in_transaction():
        row = await core.retry(delivery_id, now=now)
        if row is None:
            if not await CoreDelivery.exists(id=delivery_id):
                raise ReportNotFound(f"no accident report delivery {delivery_id}")
            raise NotADeadLetter(f"delivery {delivery_id} is not a dead letter")
        await audit.record(actor, "accident_report.retry", "core_report_delivery", delivery_id,
                           after=delivery_json(row), now=now)
    return delivery_json(row)


async def set_core_number(actor: Actor, reference: str, data: CoreNumberIn, *,
                          now: datetime) -> tuple[Claim, bool]:
    try:
        claim, changed = await core.assign_core_number(reference, data.claim_number, now=now)
    except core.CoreNumberRefused as refused:
        if refused.reason == "not_found":
            raise ReportNotFound(str(refused)) from None
        raise CoreNumberConflict(str(refused)) from None
    if changed:
        await audit.record(actor, "accident_report.core_number", "claim", reference,
                           after={"claim_number": claim.number}, now=now)
    return claim, changed
