"""The guided accident report's state: one ``ReportDraft`` row per report, with its step and
answers, read and written on every answer — so a report survives a restart and a second
process sees the same step. The rules live here too: one open draft per customer, at most
``report.max_per_day`` confirmed reports per local day, and only the customer's own policies
that cover the accident day (``storage.coverage``'s definition: any status but cancelled).

``submit`` turns a draft into a Claim in status ``reported`` with its first timeline step, the
photos of the draft attached, and a row in the core-system delivery queue — one transaction.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from tortoise.exceptions import IntegrityError
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from storage.accident_models import CoreDelivery, CoreDeliveryStatus, DraftStatus, ReportDraft
from storage.models import Claim, ClaimEvent, ClaimStatus, Customer, Document, Policy, PolicyStatus

LOOKBACK_DAYS = 30
REQUIRED_DOCUMENTS = ["driving_licence", "vehicle_licence", "photos"]
ACCIDENT_TYPES = ("rear_end", "scrape", "single_vehicle", "glass", "theft", "flood", "other")
_REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


class Step(StrEnum):
    SAFETY = "safety"
    EMERGENCY = "emergency"  # the emergency numbers were shown: continue when safe
    CAR = "car"
    WHEN = "when"
    WHEN_DAY = "when_day"
    WHEN_HOUR = "when_hour"
    WHERE = "where"
    WHAT = "what"
    OTHER_PARTY = "other_party"
    PHOTOS = "photos"
    PHONE = "phone"
    CONFIRM = "confirm"


BACK: dict[Step, Step] = {
    Step.EMERGENCY: Step.SAFETY, Step.CAR: Step.SAFETY, Step.WHEN: Step.CAR,
    Step.WHEN_DAY: Step.WHEN, Step.WHEN_HOUR: Step.WHEN_DAY, Step.WHERE: Step.WHEN,
    Step.WHAT: Step.WHERE, Step.OTHER_PARTY: Step.WHAT, Step.PHOTOS: Step.OTHER_PARTY,
    Step.PHONE: Step.PHOTOS, Step.CONFIRM: Step.PHONE,
}
"""Where "back" goes from each step (from the first one, back is cancel)."""


class ReportRefused(Exception):
    """A report that cannot go on; ``reason``: ``daily_limit``, ``no_policy``,
    ``not_in_force``, ``not_yours``, ``too_early``, ``in_future``, ``gone``."""

    def __init__(self, reason: str, **detail: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Car:
    """A plate the customer may report for, with the policy shown for it."""

    plate: str
    policy_id: int
    vehicle: str


def local_zone(timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone)
    except (KeyError, ValueError):
        return ZoneInfo("Asia/Shanghai")


def local_day(moment: datetime, timezone: str) -> date:
    return moment.astimezone(local_zone(timezone)).date()


def _day_start(day: date, timezone: str) -> datetime:
    return datetime.combine(day, time(), local_zone(timezone)).astimezone(UTC)


# -- the draft ---------------------------------------------------------------------------------


async def open_draft(customer_id: int) -> ReportDraft | None:
    return await ReportDraft.get_or_none(open_for=customer_id)


async def start(customer_id: int, telegram_user_id: int, chat_id: int, *, timezone: str,
                max_per_day: int, now: datetime) -> tuple[ReportDraft, bool]:
    """The customer's open draft, or a new one at the safety question; returns (draft, new).
    Raises ``ReportRefused("daily_limit")`` when no new report may start today."""
    draft = await open_draft(customer_id)
    if draft is not None:
        return draft, False
    if await reports_today(customer_id, timezone=timezone, now=now) >= max_per_day:
        raise ReportRefused("daily_limit", limit=max_per_day)
    try:
        draft = await ReportDraft.create(
            customer_id=customer_id, open_for=customer_id, telegram_user_id=telegram_user_id,
            chat_id=chat_id, step=Step.SAFETY, data={}, started_at=now, touched_at=now)
    except IntegrityError:  # a second process opened it a moment ago: that one stands
        existing = await open_draft(customer_id)
        if existing is None:
            raise
        return existing, False
    return draft, True


async def advance(draft: ReportDraft, step: Step, *, now: datetime, **answers: Any) -> None:
    """Record answers and move to ``step``; the silence the reminder and the expiry count
    starts again now (a draft gets one reminder all the same)."""
    draft.data = {**draft.data, **answers}
    draft.step = step
    draft.touched_at = now
    await draft.save(update_fields=["data", "step", "touched_at"])


async def close(draft: ReportDraft, status: DraftStatus, *, now: datetime) -> bool:
    """Close an open draft; False when it was closed already (expired meanwhile)."""
    closed = await ReportDraft.filter(id=draft.id, status=DraftStatus.OPEN).update(
        status=status, open_for=None, closed_at=now)
    return closed == 1


async def reports_today(customer_id: int, *, timezone: str, now: datetime) -> int:
    since = _day_start(local_day(now, timezone), timezone)
    return await ReportDraft.filter(customer_id=customer_id, status=DraftStatus.SUBMITTED,
                                    closed_at__gte=since).count()


# -- cars and cover ----------------------------------------------------------------------------


def _covering(customer_id: int, first: date, last: date) -> QuerySet[Policy]:
    return Policy.filter(customer_id=customer_id, start_date__lte=last,
                         end_date__gte=first).exclude(status=PolicyStatus.CANCELLED)


async def cars(customer_id: int, today: date) -> list[Car]:
    """The customer's plates with a policy covering some day of the last ``LOOKBACK_DAYS``
    (an accident can be reported for any of them): one per plate, the commercial policy
    shown before the compulsory one."""
    policies = await _covering(customer_id, today - timedelta(days=LOOKBACK_DAYS), today
                               ).order_by("plate", "product", "-end_date")
    seen: dict[str, Car] = {}
    for policy in policies:
        seen.setdefault(policy.plate, Car(policy.plate, policy.id, policy.vehicle))
    return list(seen.values())


async def own_policy(customer_id: int, policy_id: int) -> Policy | None:
    """The policy if it is this customer's (callback data proves nothing)."""
    return await Policy.get_or_none(id=policy_id, customer_id=customer_id)


async def policy_on(customer_id: int, plate: str, day: date) -> Policy:
    """The customer's policy for ``plate`` covering ``day`` (commercial first); raises
    ``ReportRefused("not_in_force")`` with the nearest cover period otherwise."""
    found = await _covering(customer_id, day, day).filter(plate=plate).order_by("product").first()
    if found is not None:
        return found
    nearest = await Policy.filter(customer_id=customer_id, plate=plate).order_by(
        "-end_date").first()
    raise ReportRefused("not_in_force", plate=plate,
                        start=nearest.start_date if nearest else None,
                        end=nearest.end_date if nearest else None,
                        cancelled=bool(nearest and nearest.status == PolicyStatus.CANCELLED))


def check_moment(moment: datetime, *, now: datetime) -> None:
    """An accident time must be in the past ``LOOKBACK_DAYS`` days."""
    if moment > now + timedelta(minutes=5):
        raise ReportRefused("in_future")
    if moment < now - timedelta(days=LOOKBACK_DAYS):
        raise ReportRefused("too_early", days=LOOKBACK_DAYS)


# -- submitting --------------------------------------------------------------------------------


def new_reference(now: datetime, timezone: str) -> str:
    """``BA`` + the local date + six random characters: ``BA261205K7QX3M`` (not guessable,
    and unique by the claim number's constraint)."""
    suffix = "".join(secrets.choice(_REFERENCE_ALPHABET) for _ in range(6))
    return f"BA{local_day(now, timezone):%y%m%d}{suffix}"


@dataclass(frozen=True, slots=True)
class Submitted:
    claim: Claim
    reference: str
    documents: int


async def submit(draft: ReportDraft, *, description: str, max_per_day: int,
                 now: datetime) -> Submitted:
    """The confirmed report: Claim ``reported`` + timeline step + documents + delivery row, and
    the draft closed — all or nothing. Re-checks every rule (the summary may be old)."""
    customer = await Customer.get(id=draft.customer_id)
    data = draft.data
    occurred = datetime.fromisoformat(str(data["occurred_at"]))
    check_moment(occurred, now=now)
    async with in_transaction():
        row = await ReportDraft.filter(id=draft.id, status=DraftStatus.OPEN
                                       ).select_for_update().first()
        if row is None:
            raise ReportRefused("gone")
        if await reports_today(customer.id, timezone=customer.timezone, now=now) >= max_per_day:
            raise ReportRefused("daily_limit", limit=max_per_day)
        policy = await policy_on(customer.id, str(data["plate"]),
                                 local_day(occurred, customer.timezone))
        claim = await _new_claim(customer, policy, description, now)
        documents = [int(d) for d in data.get("documents", [])]
        attached = await Document.filter(id__in=documents, customer_id=customer.id,
                                         claim_id=None).update(claim_id=claim.id) \
            if documents else 0
        await ClaimEvent.create(claim_id=claim.id, status=ClaimStatus.REPORTED, occurred_at=now,
                                note="Telegram")
        kept = await Document.filter(claim_id=claim.id).order_by("id")
        await CoreDelivery.create(
            claim_id=claim.id, reference=claim.number, idempotency_key=uuid.uuid4().hex,
            payload=core_payload(claim, policy, customer, data, kept),
            status=CoreDeliveryStatus.PENDING, next_attempt_at=now, created_at=now)
        await ReportDraft.filter(id=draft.id).update(
            status=DraftStatus.SUBMITTED, open_for=None, closed_at=now, claim_id=claim.id)
    return Submitted(claim, claim.number, attached)


async def _new_claim(customer: Customer, policy: Policy, description: str,
                     now: datetime) -> Claim:
    for _ in range(5):
        number = new_reference(now, customer.timezone)
        if not await Claim.exists(number=number):
            return await Claim.create(number=number, policy_id=policy.id,
                                      customer_id=customer.id, status=ClaimStatus.REPORTED,
                                      reported_at=now, description=description[:2000],
                                      required_documents=REQUIRED_DOCUMENTS)
    raise RuntimeError("no free report reference after 5 tries")


def core_payload(claim: Claim, policy: Policy, customer: Customer, data: dict[str, Any],
                 documents: list[Document]) -> dict[str, Any]:
    """What the core system's intake receives (the idempotency key is added at sending).
    Photos are listed, not sent: the intake fetches each from the operator API (``path``)."""
    where = data.get("where") or {}
    return {
        "reference": claim.number,
        "reported_at": claim.reported_at.astimezone(UTC).isoformat(),
        "channel": "telegram",
        "policy_number": policy.number,
        "plate": policy.plate,
        "customer": {"customer_no": customer.customer_no, "name": customer.name,
                     "contact_phone": str(data.get("phone") or customer.phone)},
        "accident": {
            "occurred_at": str(data["occurred_at"]),
            "timezone": customer.timezone,
            "injury_or_blocking": bool(data.get("danger", False)),
            "type": str(data.get("type") or "other"),
            "description": str(data.get("description") or ""),
            "location": {"latitude": where.get("latitude"), "longitude": where.get("longitude"),
                         "address": str(where.get("address") or "")},
            "other_party_plate": data.get("other_plate") or None,
        },
        "documents": [{"id": d.id, "mime_type": d.mime_type, "size": d.size,
                       "sha256": d.sha256, "path": f"/api/v1/documents/{d.id}/file"}
                      for d in documents],
    }
