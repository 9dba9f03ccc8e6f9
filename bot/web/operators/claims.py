"""Claims pushed from the core system: upsert, and status events that notify the customer.

``record_event`` is idempotent by the core system's event id: the same id again returns the
event already recorded and changes nothing (a different status or claim under the same id
is a conflict). A claim's status is the status of its latest timeline step by ``occurred_at``,
whatever path changed it: an event, or a ``PUT`` that creates the claim or carries another
status (its step is dated ``status_at``, by default the report time or now). So an update
that arrives late never moves a claim backwards, the status and the timeline always agree,
and only a step that becomes the current status sends the customer a service message
(through the outbox).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from bot.desk import surveys
from bot.texts import LANGUAGES, Texts
from bot.web.operators import audit
from bot.web.operators.access import Actor
from bot.web.operators.customers import phone_condition, plate_of
from bot.web.operators.errors import Refusal
from bot.web.operators.paging import DEFAULT_LIMIT, Page, page
from bot.web.operators.rows import ClaimEventJson, ClaimJson
from storage.desk_models import SurveyCase
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
    status_at: AwareDatetime | None = Field(
        default=None, description="when the status took effect (default: the report time for "
        "a new claim, now for a change); an earlier time than the latest step is recorded "
        "in the timeline without moving the claim back")


class ClaimEventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    external_id: str = Field(min_length=1, max_length=64, description="the core system's id")
    status: ClaimStatus
    occurred_at: AwareDatetime
    note: str = Field(default="", max_length=500)


def claim_json(claim: Claim) -> ClaimJson:
    return {
        "number": claim.number, "status": ClaimStatus(claim.status).value,
        "customer_id": claim.customer_id, "policy_id": claim.policy_id,
        "reported_at": claim.reported_at.isoformat(), "description": claim.description,
        "estimated_cents": claim.estimated_cents, "paid_cents": claim.paid_cents,
        "required_documents": claim.required_documents,
    }


def event_json(event: ClaimEvent) -> ClaimEventJson:
    return {"id": event.id, "external_id": event.external_id,
            "status": ClaimStatus(event.status).value,
            "occurred_at": event.occurred_at.isoformat(), "note": event.note}


def status_names(texts: Texts, status: ClaimStatus) -> dict[str, str]:
    """A claim status in every language, as a localised message parameter."""
    return {lang: texts.render(f"claim_status_{status.value}", lang, {}) for lang in LANGUAGES}


LIST_ORDER = ("-reported_at", "-id")


def search_condition(text: str, *, default_region: str) -> Q:
    """Claims by claim number (or its beginning), policy number, plate or the customer's
    phone (whole, last digits, or masked as lists show it)."""
    text = text.strip()
    condition = (Q(number__startswith=text) | Q(policy__number=text)
                 | Q(policy__plate=plate_of(text)))
    phone = phone_condition(text, default_region=default_region, field="customer__phone")
    return condition | phone if phone is not None else condition


async def list_claims(*, status: ClaimStatus | None, q: str, default_region: str,
                      limit: int = DEFAULT_LIMIT, cursor: str = "") -> Page[Claim]:
    """Claims, newest report first, filtered by status and a search text."""
    query = Claim.all()
    if status is not None:
        query = query.filter(status=status)
    if q.strip():
        query = query.filter(search_condition(q, default_region=default_region))
    return await page(query, LIST_ORDER, limit=limit, cursor=cursor)


async def get_claim(number: str) -> Claim:
    claim = await Claim.get_or_none(number=number)
    if claim is None:
        raise ClaimNotFound(f"no claim {number}")
    return claim


async def upsert_claim(actor: Actor, number: str, data: ClaimIn, *, texts: Texts,
                       now: datetime) -> tuple[Claim, bool]:
    """Create or update a claim; a new claim, or a status that differs from the current one,
    adds its timeline step (see ``_add_step``) in the same transaction."""
    async with in_transaction():
        policy = await Policy.get_or_none(number=data.policy_number)
        if policy is None:
            raise UnknownPolicy(f"no policy {data.policy_number}")
        values: dict[str, Any] = dict(
            policy_id=policy.id, customer_id=policy.customer_id,
            reported_at=data.reported_at.astimezone(UTC), description=data.description,
            estimated_cents=data.estimated_cents, paid_cents=data.paid_cents,
            required_documents=data.required_documents)
        claim = await Claim.filter(number=number).select_for_update().first()
        before = claim_json(claim) if claim else None
        if claim is None:
            claim = await Claim.create(number=number, status=data.status, **values)
            await _add_step(claim, data.status, data.status_at or data.reported_at,
                            texts=texts, now=now)
        else:
            claim.update_from_dict(values)
            await claim.save()
            at = (data.status_at or now).astimezone(UTC)
            # a repeated PUT of a late status is that same step again, not a new one
            if data.status != claim.status and not await ClaimEvent.exists(
                    claim_id=claim.id, status=data.status, occurred_at=at):
                await _add_step(claim, data.status, at, texts=texts, now=now)
        await audit.record(actor, "claim.upsert", "claim", number, before=before,
                           after=claim_json(claim), now=now)
    return claim, before is None


async def _add_step(claim: Claim, status: ClaimStatus, occurred_at: datetime, *, texts: Texts,
                    now: datetime, note: str = "", external_id: str | None = None) -> ClaimEvent:
    """Record a step of the claim's timeline and keep the claim's status that of its latest
    step (by ``occurred_at``): a step that arrives late never moves the claim backwards, and
    only a step that becomes the current status sends the customer a service message."""
    event = await ClaimEvent.create(claim_id=claim.id, status=status, note=note,
                                    occurred_at=occurred_at.astimezone(UTC),
                                    external_id=external_id)
    latest = await ClaimEvent.filter(claim_id=claim.id).order_by("-occurred_at", "-id").first()
    if latest is None or latest.id != event.id:
        return event
    claim.status = status
    await claim.save(update_fields=["status", "updated_at"])
    await enqueue(Outbound(
        dedup_key=f"claim_update:{claim.number}:{external_id or f'step-{event.id}'}",
        kind="claim_update", category=Category.SERVICE, customer_id=claim.customer_id,
        template_key="claim_update", not_before=now,
        params={"claim": claim.number, "status": status_names(texts, status), "note": note},
    ))
    if status in (ClaimStatus.PAID, ClaimStatus.CLOSED):  # the case is over: how did we do?
        await surveys.offer(SurveyCase.CLAIM, claim.id, claim.customer_id, now=now)
    return event


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
            event = await _add_step(claim, data.status, data.occurred_at, texts=texts, now=now,
                                    note=data.note, external_id=data.external_id)
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
