"""Claims pushed from the core system: upsert, and status events that notify the customer.

``record_event`` is idempotent by the core system's event id: the same id again returns the
event already recorded and changes nothing (a different status or claim under the same id
is a conflict). A claim's status is the status of its latest event by ``occurred_at``, so an
event that arrives late never moves a claim backwards, and only an event that becomes the
current status sends the customer a service message (through the outbox).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from bot.texts import LANGUAGES, Texts
from bot.web.operators import audit
from bot.web.operators.access import Actor
from bot.web.operators.errors import Refusal
from storage.models import Category, Claim, ClaimEvent, ClaimStatus, Policy
from storage.outbox import Outbound, enqueue


class ClaimError(Refusal):
    code = "claim_error"
    status = 409


class ClaimNotFound(ClaimError):
    code = "not_found"
    status = 404


class EventConflict(ClaimError):
    code = "idempotency_conflict"


class UnknownPolicy(ClaimError):
    code = "unknown_policy"
    status = 422


class ClaimIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    policy_number: str = Field(min_length=1, max_length=40)
    status: ClaimStatus = ClaimStatus.REPORTED
    reported_at: AwareDatetime
    description: str = Field(default="", max_length=2000)
    estimated_cents: int | None = Field(default=None, ge=0)
    paid_cents: int | None = Field(default=None, ge=0)
    required_documents: list[str] = Field(default_factory=list, max_length=50)


class ClaimEventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    external_id: str = Field(min_length=1, max_length=64, description="the core system's id")
    status: ClaimStatus
    occurred_at: AwareDatetime
    note: str = Field(default="", max_length=500)


def claim_json(claim: Claim) -> dict[str, Any]:
    return {
        "number": claim.number, "status": ClaimStatus(claim.status).value,
        "customer_id": claim.customer_id, "policy_id": claim.policy_id,
        "reported_at": claim.reported_at.isoformat(), "description": claim.description,
        "estimated_cents": claim.estimated_cents, "paid_cents": claim.paid_cents,
        "required_documents": claim.required_documents,
    }


def event_json(event: ClaimEvent) -> dict[str, Any]:
    return {"id": event.id, "external_id": event.external_id,
            "status": ClaimStatus(event.status).value,
            "occurred_at": event.occurred_at.isoformat(), "note": event.note}


def status_names(texts: Texts, status: ClaimStatus) -> dict[str, str]:
    """A claim status in every language, as a localised message parameter."""
    return {lang: texts.render(f"claim_status_{status.value}", lang, {}) for lang in LANGUAGES}


async def get_claim(number: str) -> Claim:
    claim = await Claim.get_or_none(number=number)
    if claim is None:
        raise ClaimNotFound(f"no claim {number}")
    return claim


async def upsert_claim(actor: Actor, number: str, data: ClaimIn, *,
                       now: datetime) -> tuple[Claim, bool]:
    async with in_transaction():
        policy = await Policy.get_or_none(number=data.policy_number)
        if policy is None:
            raise UnknownPolicy(f"no policy {data.policy_number}")
        values: dict[str, Any] = dict(
                      policy_id=policy.id, customer_id=policy.customer_id, status=data.status,
                      reported_at=data.reported_at, description=data.description,
                      estimated_cents=data.estimated_cents, paid_cents=data.paid_cents,
                      required_documents=data.required_documents)
        claim = await Claim.filter(number=number).select_for_update().first()
        before = claim_json(claim) if claim else None
        if claim is None:
            claim = await Claim.create(number=number, **values)
        else:
            claim.update_from_dict(values)
            await claim.save()
        await audit.record(actor, "claim.upsert", "claim", number, before=before,
                           after=claim_json(claim), now=now)
    return claim, before is None


async def record_event(actor: Actor, number: str, data: ClaimEventIn, *, texts: Texts,
                       now: datetime) -> tuple[ClaimEvent, bool]:
    """The event and whether this call recorded it (False: a replay of the same event id)."""
    claim = await get_claim(number)
    existing = await ClaimEvent.get_or_none(external_id=data.external_id)
    if existing is not None:
        return _replayed(existing, claim, data), False
    try:
        async with in_transaction():
            claim = await Claim.filter(id=claim.id).select_for_update().get()
            before = claim_json(claim)
            event = await ClaimEvent.create(claim_id=claim.id, status=data.status,
                                            occurred_at=data.occurred_at, note=data.note,
                                            external_id=data.external_id)
            latest = await ClaimEvent.filter(claim_id=claim.id).order_by(
                "-occurred_at", "-id").first()
            if latest is not None and latest.id == event.id:
                claim.status = data.status
                await claim.save(update_fields=["status", "updated_at"])
                await enqueue(Outbound(
                    dedup_key=f"claim_update:{claim.number}:{data.external_id}",
                    kind="claim_update", category=Category.SERVICE, customer_id=claim.customer_id,
                    template_key="claim_update", not_before=now,
                    params={"claim": claim.number, "status": status_names(texts, data.status),
                            "note": data.note},
                ))
            await audit.record(actor, "claim.event", "claim", number, before=before,
                               after={**claim_json(claim), "event": event_json(event)}, now=now)
    except IntegrityError:
        # Lost a race with the same event id posted concurrently: theirs stands.
        existing = await ClaimEvent.get(external_id=data.external_id)
        return _replayed(existing, claim, data), False
    return event, True


def _replayed(existing: ClaimEvent, claim: Claim, data: ClaimEventIn) -> ClaimEvent:
    if existing.claim_id != claim.id or existing.status != data.status:
        raise EventConflict(f"event {data.external_id} was recorded with other content")
    return existing
