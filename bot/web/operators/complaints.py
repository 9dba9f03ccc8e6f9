"""Complaints for operators: the register, one complaint, and what may happen to it.

* The handler is never the staff member complained about: assigning them, or their closing
  it, is refused (``recusal``).
* Extensions: the first (to ``extended_days``) needs a reason; the further one needs a
  reason and an admin's approval, and counts only once approved. Who asked and who approved,
  and when, are kept (``ComplaintExtension``) and listed in the register.
* Closing records the outcome and sends the customer the decision with the redress channels
  from ``complaints.redress_*`` through the outbox (a service message).
* ``sweep`` (run every ``complaints.sweep_minutes``): a task for the handler
  ``remind_days_before`` days before the due date, and an escalation task for the admins once
  a complaint is overdue — each once per complaint.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from tortoise.transactions import in_transaction

from bot.desk import surveys
from bot.desk.complaints import (
    Filing,
    NotTheirs,
    days_for,
    due_at,
    due_day,
    file_complaint,
)
from bot.settings import Settings
from bot.web.operators import audit
from bot.web.operators.access import Actor
from bot.web.operators.errors import Refusal
from bot.web.operators.paging import DEFAULT_LIMIT, Page, page
from bot.web.operators.rows import ComplaintExtensionJson, ComplaintJson
from storage.desk_models import (
    Complaint,
    ComplaintExtension,
    ComplaintStatus,
    Conversation,
    SurveyCase,
)
from storage.models import Category, Channel, Claim, Customer, Policy, Task, TaskStatus
from storage.operator_models import Operator, Role
from storage.outbox import Outbound, enqueue
from storage.phones import mask_phone

log = logging.getLogger(__name__)

DECISION_KIND = "complaint_decision"
RECEIVED_KIND = "complaint_received"
REMINDER_TASK = "complaint_due"
OVERDUE_TASK = "complaint_overdue"
ComplaintCategory = Literal["claims", "renewal_pricing", "sales_conduct", "service_attitude",
                    "privacy", "other"]
REGISTER_COLUMNS = ("reference", "received", "channel", "category", "handler", "extensions",
                    "outcome", "closed", "within_deadline")


class ComplaintError(Refusal):
    code = "complaint_error"
    status = 409


class ComplaintNotFound(ComplaintError):
    code = "not_found"
    status = 404


class Recusal(ComplaintError):
    code = "complaint_recusal"


class ComplaintClosed(ComplaintError):
    code = "complaint_closed"


class ExtensionRefused(ComplaintError):
    code = "complaint_extension_refused"


class NotTheCustomers(ComplaintError):
    code = "complaint_not_customers"
    status = 422


class HandlerNotFound(ComplaintError):
    code = "operator_not_found"
    status = 422


def _text(value: str) -> str:
    if not value.strip():
        raise ValueError("empty")
    return value.strip()


class FromConversationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    category: ComplaintCategory
    description: str = Field(min_length=1, max_length=4000)
    policy_number: str = Field(default="", max_length=40)
    claim_number: str = Field(default="", max_length=40)
    staff_complained: str = Field(default="", max_length=64)

    _check = field_validator("description")(_text)


class HandlerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    operator: str = Field(default="", max_length=64, description="empty: the caller")


class StaffIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    staff_complained: str = Field(max_length=64, description="empty: nobody in particular")


class ExtendIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=1000)

    _check = field_validator("reason")(_text)


class CloseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: str = Field(min_length=1, max_length=2000)

    _check = field_validator("outcome")(_text)


# -- reading ----------------------------------------------------------------------------------


def _same_person(name: str, staff: str) -> bool:
    return bool(staff.strip()) and name.strip().casefold() == staff.strip().casefold()


async def _extensions(ids: Sequence[int]) -> dict[int, list[ComplaintExtension]]:
    found: dict[int, list[ComplaintExtension]] = {i: [] for i in ids}
    if ids:
        for ext in await ComplaintExtension.filter(complaint_id__in=list(ids)).order_by(
                "complaint_id", "level"):
            found[ext.complaint_id].append(ext)
    return found


def _extension_json(ext: ComplaintExtension) -> ComplaintExtensionJson:
    return {"level": ext.level, "reason": ext.reason, "requested_by": ext.requested_by,
            "requested_at": ext.requested_at.isoformat(), "approved_by": ext.approved_by,
            "approved_at": ext.approved_at.isoformat() if ext.approved_at else None}


def complaint_json(c: Complaint, now: datetime, *, customer: Customer | None = None,
                   handler: str = "",
                   extensions: Sequence[ComplaintExtension] = ()) -> ComplaintJson:
    open_ = c.status == ComplaintStatus.OPEN
    return {
        "id": c.id, "reference": c.reference, "customer_id": c.customer_id,
        "name": customer.name if customer else "",
        "phone": mask_phone(customer.phone) if customer else "",
        "conversation_id": c.conversation_id, "channel": Channel(c.channel).value,
        "category": c.category, "description": c.description,
        "staff_complained": c.staff_complained, "handler": handler,
        "status": ComplaintStatus(c.status).value,
        "received_at": c.received_at.isoformat(), "due_at": c.due_at.isoformat(),
        "extension": c.extension, "overdue": open_ and now > c.due_at,
        "extensions": [_extension_json(e) for e in extensions],
        "outcome": c.outcome, "closed_at": c.closed_at.isoformat() if c.closed_at else None,
        "within_deadline": (c.closed_at <= c.due_at) if c.closed_at else None,
    }


async def complaints_json(rows: Sequence[Complaint], now: datetime) -> list[ComplaintJson]:
    customers = {c.id: c for c in await Customer.filter(
        id__in={r.customer_id for r in rows})} if rows else {}
    handlers = {int(i): str(n) for i, n in await Operator.filter(
        id__in={r.handler_id for r in rows if r.handler_id}).values_list("id", "name")}
    extensions = await _extensions([r.id for r in rows])
    return [complaint_json(r, now, customer=customers.get(r.customer_id),
                           handler=handlers.get(r.handler_id or 0, ""),
                           extensions=extensions[r.id]) for r in rows]


async def list_complaints(state: str, now: datetime, *, limit: int = DEFAULT_LIMIT,
                          cursor: str = "") -> tuple[list[ComplaintJson], Page[Complaint]]:
    """``open`` (soonest due first), ``overdue``, ``closed`` or everything (newest first)."""
    now = now.astimezone(UTC)
    if state == "open":
        found = await page(Complaint.filter(status=ComplaintStatus.OPEN), ("due_at", "id"),
                           limit=limit, cursor=cursor)
    elif state == "overdue":
        found = await page(Complaint.filter(status=ComplaintStatus.OPEN, due_at__lt=now),
                           ("due_at", "id"), limit=limit, cursor=cursor)
    elif state == "closed":
        found = await page(Complaint.filter(status=ComplaintStatus.CLOSED),
                           ("-received_at", "-id"), limit=limit, cursor=cursor)
    else:
        found = await page(Complaint.all(), ("-received_at", "-id"), limit=limit, cursor=cursor)
    return await complaints_json(found.rows, now), found


async def get_complaint(complaint_id: int) -> Complaint:
    found = await Complaint.get_or_none(id=complaint_id)
    if found is None:
        raise ComplaintNotFound(f"no complaint {complaint_id}")
    return found


async def complaint_detail(complaint_id: int, now: datetime) -> ComplaintJson:
    [row] = await complaints_json([await get_complaint(complaint_id)], now)
    return row


async def overdue_count(now: datetime) -> int:
    return await Complaint.filter(status=ComplaintStatus.OPEN,
                                  due_at__lt=now.astimezone(UTC)).count()


# -- acting -----------------------------------------------------------------------------------


async def _locked(complaint_id: int) -> Complaint:
    found = await Complaint.filter(id=complaint_id).select_for_update().first()
    if found is None:
        raise ComplaintNotFound(f"no complaint {complaint_id}")
    if found.status == ComplaintStatus.CLOSED:
        raise ComplaintClosed(f"complaint {found.reference} is closed")
    return found


def _tz(settings: Settings) -> str:
    return settings.schedule.timezone


async def from_conversation(actor: Actor, conversation_id: int, data: FromConversationIn, *,
                            now: datetime, settings: Settings) -> Complaint:
    """An operator turns a conversation into a complaint; the customer is told its reference
    and due date through the outbox."""
    thread = await Conversation.get_or_none(id=conversation_id)
    if thread is None or thread.customer_id is None:
        raise ComplaintNotFound(f"no customer conversation {conversation_id}")
    policy = (await Policy.get_or_none(number=data.policy_number.strip())
              if data.policy_number.strip() else None)
    claim = (await Claim.get_or_none(number=data.claim_number.strip())
             if data.claim_number.strip() else None)
    if (data.policy_number.strip() and policy is None) or (
            data.claim_number.strip() and claim is None):
        raise NotTheCustomers("no such policy or claim")
    policy_id = policy.id if policy else None
    claim_id = claim.id if claim else None
    async with in_transaction():
        try:
            complaint = await file_complaint(Filing(
                thread.customer_id, Channel(thread.last_channel), data.category,
                data.description, policy_id, claim_id, data.staff_complained, thread.id),
                now=now, settings=settings.complaints, timezone=_tz(settings))
        except NotTheirs as exc:
            raise NotTheCustomers(str(exc)) from None
        await enqueue(Outbound(
            dedup_key=f"{RECEIVED_KIND}:{complaint.id}", kind=RECEIVED_KIND,
            category=Category.SERVICE, customer_id=complaint.customer_id,
            template_key=RECEIVED_KIND, not_before=now,
            params={"reference": complaint.reference,
                    "due": _due_words(complaint, _tz(settings))}))
        await audit.record(actor, "complaint.create", "complaint", complaint.id,
                           after={"reference": complaint.reference}, now=now)
    return complaint


def _due_words(complaint: Complaint, timezone: str) -> dict[str, str]:
    return {lang: due_day(complaint, lang, timezone) for lang in ("zh-CN", "en")}


async def assign(actor: Actor, complaint_id: int, data: HandlerIn, *,
                 now: datetime) -> Complaint:
    name = data.operator.strip() or actor.name
    async with in_transaction():
        complaint = await _locked(complaint_id)
        if _same_person(name, complaint.staff_complained):
            raise Recusal(f"{name} is the staff member complained about")
        operator = await Operator.get_or_none(name=name, active=True)
        if operator is None:
            raise HandlerNotFound(f"no active operator {name!r}")
        before = {"handler_id": complaint.handler_id}
        complaint.handler_id = operator.id
        await complaint.save(update_fields=["handler_id"])
        await audit.record(actor, "complaint.assign", "complaint", complaint.id, before=before,
                           after={"handler_id": operator.id}, now=now)
    return complaint


async def set_staff(actor: Actor, complaint_id: int, data: StaffIn, *,
                    now: datetime) -> Complaint:
    """Record whom the complaint is about (a customer may name them in the description);
    refused while that person is its handler."""
    staff = data.staff_complained.strip()
    async with in_transaction():
        complaint = await _locked(complaint_id)
        handler = (await Operator.get_or_none(id=complaint.handler_id)
                   if complaint.handler_id else None)
        if handler is not None and _same_person(handler.name, staff):
            raise Recusal(f"{handler.name} handles complaint {complaint.reference}")
        before = {"staff_complained": complaint.staff_complained}
        complaint.staff_complained = staff
        await complaint.save(update_fields=["staff_complained"])
        await audit.record(actor, "complaint.staff", "complaint", complaint.id, before=before,
                           after={"staff_complained": staff}, now=now)
    return complaint


async def extend(actor: Actor, complaint_id: int, data: ExtendIn, *, now: datetime,
                 settings: Settings) -> Complaint:
    """The first extension applies at once; the further one waits for an admin."""
    async with in_transaction():
        complaint = await _locked(complaint_id)
        existing = await ComplaintExtension.filter(complaint_id=complaint.id).count()
        if existing >= 2:
            raise ExtensionRefused(f"complaint {complaint.reference} has both extensions")
        level = existing + 1
        await ComplaintExtension.create(complaint_id=complaint.id, level=level,
                                        reason=data.reason, requested_by=actor.name,
                                        requested_at=now)
        if level == 1:
            await _apply(complaint, 1, settings)
        await audit.record(actor, "complaint.extend", "complaint", complaint.id,
                           after={"level": level, "reason": data.reason}, now=now)
    return complaint


async def _apply(complaint: Complaint, level: int, settings: Settings) -> None:
    complaint.extension = level
    complaint.due_at = due_at(complaint.received_at, days_for(level, settings.complaints),
                              _tz(settings))
    complaint.reminded_at = complaint.escalated_at = None  # the new due date gets its own
    await complaint.save(update_fields=["extension", "due_at", "reminded_at", "escalated_at"])


async def approve(actor: Actor, complaint_id: int, *, now: datetime,
                  settings: Settings) -> Complaint:
    """An admin approves the pending further extension."""
    if not actor.may(Role.ADMIN):
        raise ExtensionRefused("only an admin approves the further extension")
    async with in_transaction():
        complaint = await _locked(complaint_id)
        pending = await ComplaintExtension.get_or_none(complaint_id=complaint.id, level=2,
                                                       approved_at=None)
        if pending is None:
            raise ExtensionRefused(f"complaint {complaint.reference} has no pending extension")
        pending.approved_by, pending.approved_at = actor.name, now
        await pending.save(update_fields=["approved_by", "approved_at"])
        await _apply(complaint, 2, settings)
        await audit.record(actor, "complaint.approve_extension", "complaint", complaint.id,
                           after={"level": 2}, now=now)
    return complaint


async def close(actor: Actor, complaint_id: int, data: CloseIn, *, now: datetime,
                settings: Settings) -> Complaint:
    async with in_transaction():
        complaint = await _locked(complaint_id)
        if _same_person(actor.name, complaint.staff_complained):
            raise Recusal(f"{actor.name} is the staff member complained about")
        complaint.status = ComplaintStatus.CLOSED
        complaint.outcome = data.outcome
        complaint.closed_by = actor.name
        complaint.closed_at = now
        await complaint.save(update_fields=["status", "outcome", "closed_by", "closed_at"])
        redress = {"zh-CN": settings.complaints.redress_zh,
                   "en": settings.complaints.redress_en}
        await enqueue(Outbound(
            dedup_key=f"{DECISION_KIND}:{complaint.id}", kind=DECISION_KIND,
            category=Category.SERVICE, customer_id=complaint.customer_id,
            template_key=DECISION_KIND, not_before=now,
            params={"reference": complaint.reference, "outcome": data.outcome,
                    "redress": redress}))
        handler = (await Operator.get_or_none(id=complaint.handler_id)
                   if complaint.handler_id else None)
        await surveys.offer(SurveyCase.COMPLAINT, complaint.id, complaint.customer_id, now=now,
                            operator_name=handler.name if handler else actor.name)
        await audit.record(actor, "complaint.close", "complaint", complaint.id,
                           after={"outcome": data.outcome}, now=now)
    return complaint


# -- the clock --------------------------------------------------------------------------------


async def sweep(now: datetime, settings: Settings) -> tuple[int, int]:
    """Remind handlers of complaints due within ``remind_days_before`` days and escalate the
    overdue ones to the admins, each once per due date; how many of each."""
    now = now.astimezone(UTC)  # compared in the database, which stores UTC
    soon = now + timedelta(days=settings.complaints.remind_days_before)
    reminded = escalated = 0
    async with in_transaction():
        for c in await Complaint.filter(status=ComplaintStatus.OPEN, reminded_at=None,
                                        due_at__lte=soon, due_at__gte=now
                                        ).select_for_update():
            handler = await Operator.get_or_none(id=c.handler_id) if c.handler_id else None
            await Task.create(kind=REMINDER_TASK, customer_id=c.customer_id, source="web",
                              status=TaskStatus.ASSIGNED if handler else TaskStatus.OPEN,
                              assignee=handler.name if handler else "", due_at=c.due_at,
                              note=f"{c.reference}")
            c.reminded_at = now
            await c.save(update_fields=["reminded_at"])
            reminded += 1
        for c in await Complaint.filter(status=ComplaintStatus.OPEN, escalated_at=None,
                                        due_at__lt=now).select_for_update():
            await Task.create(kind=OVERDUE_TASK, customer_id=c.customer_id, source="web",
                              status=TaskStatus.OPEN, due_at=c.due_at, note=f"{c.reference}")
            c.escalated_at = now
            await c.save(update_fields=["escalated_at"])
            escalated += 1
    return reminded, escalated


async def run_clock(settings: Settings, clock: Callable[[], datetime], stop: asyncio.Event,
                    beat: Callable[..., None] = lambda **_: None) -> None:
    """``sweep`` every ``complaints.sweep_minutes`` until ``stop`` (a supervised loop)."""
    every = settings.complaints.sweep_minutes * 60
    while not stop.is_set():
        reminded, escalated = await sweep(clock(), settings)
        if reminded or escalated:
            log.info("complaints: %d handler reminder(s), %d overdue escalation(s)",
                     reminded, escalated)
        beat()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)


# -- the register -----------------------------------------------------------------------------


def _extensions_text(row: ComplaintJson) -> str:
    parts = []
    for e in row["extensions"]:
        approved = (f"; approved by {e['approved_by']} {e['approved_at']}"
                    if e["approved_at"] else "; pending approval" if e["level"] == 2 else "")
        parts.append(f"{e['level']}: {e['reason']} ({e['requested_by']} "
                     f"{e['requested_at']}{approved})")
    return " | ".join(parts)


async def register_csv(now: datetime, *, received_from: datetime | None = None,
                       received_to: datetime | None = None) -> str:
    """The complaint register for the regulator's reporting, oldest first."""
    query = Complaint.all()
    if received_from is not None:
        query = query.filter(received_at__gte=received_from)
    if received_to is not None:
        query = query.filter(received_at__lt=received_to)
    rows = await complaints_json(await query.order_by("received_at", "id"), now)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(REGISTER_COLUMNS)
    for row in rows:
        within = row["within_deadline"]
        writer.writerow([
            row["reference"], row["received_at"], row["channel"], row["category"],
            row["handler"], _extensions_text(row), row["outcome"], row["closed_at"] or "",
            "" if within is None else ("yes" if within else "no")])
    return out.getvalue()

