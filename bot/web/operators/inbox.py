"""The conversations inbox for operators: the queue, one thread, replies, assignment,
resolving. The console and the API call these alike.

Views: ``waiting`` (handed off, nobody has it yet), ``mine`` (held by the caller), both
oldest hand-off first, with the first-response clock; ``all`` (every thread, latest message
first). A reply is stored in the thread and queued in the outbox as a service message on the
channel the customer last wrote on; replying or assigning takes the thread from the queue;
resolving gives it back to the bot. Unknown senders' threads can be read but not answered:
the outbox sends to customers only.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from tortoise.functions import Sum
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from bot.delivery.segments import count_segments, sms_encoding
from bot.delivery.sms_signing import signed_sms
from bot.desk import surveys
from bot.desk.threads import WITH_A_PERSON, Desk
from bot.settings import Settings
from bot.web.operators import audit
from bot.web.operators.access import Actor
from bot.web.operators.errors import Refusal
from bot.web.operators.paging import DEFAULT_LIMIT, Page, page
from bot.web.operators.rows import (
    ConversationJson,
    ConversationMessageJson,
    InboxCountsJson,
    ReplyPreviewJson,
    ThreadJson,
)
from loyalty.ledger import get_balance
from storage.desk_models import (
    Author,
    Conversation,
    ConversationMessage,
    ConversationStatus,
    Direction,
    HandoffReason,
    SurveyCase,
)
from storage.models import Category, Channel, Claim, Customer, Message, Policy
from storage.operator_models import Operator
from storage.outbox import ChannelPolicy, Outbound, enqueue
from storage.phones import mask_phone

View = Literal["waiting", "mine", "all"]
VIEWS: tuple[View, ...] = ("waiting", "mine", "all")
REPLY_KIND = "desk_reply"
THREAD_MESSAGES = 200  # the latest ones a thread page shows
_CHANNEL_POLICY: dict[Channel, ChannelPolicy] = {Channel.TELEGRAM: "telegram_only",
                                                 Channel.SMS: "sms_only"}


class InboxError(Refusal):
    code = "conversation_error"
    status = 409


class ConversationNotFound(InboxError):
    code = "not_found"
    status = 404


class NoCustomer(InboxError):
    code = "conversation_no_customer"


class OperatorNotFound(InboxError):
    code = "operator_not_found"
    status = 422


class ReplyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=1000)
    request_key: str = Field(default="", max_length=64,
                             description="the same key again sends nothing more (retries)")

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("empty")
        return value.strip()


class AssignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    operator: str = Field(default="", max_length=64,
                          description="the colleague's name; empty: the caller")


# -- reading ----------------------------------------------------------------------------------


def _who(thread: Conversation, customer: Customer | None) -> tuple[str, str]:
    """The name and masked phone a thread is shown under."""
    if customer is not None:
        return customer.name, mask_phone(customer.phone)
    if thread.phone:
        return "", mask_phone(thread.phone)
    return f"Telegram {thread.telegram_user_id}", ""


def conversation_json(thread: Conversation, desk: Desk, now: datetime, *,
                      customer: Customer | None = None, assignee: str | None = None,
                      cutoff: datetime | None = None) -> ConversationJson:
    waited = desk.waited(thread, now)
    name, phone = _who(thread, customer)
    return {
        "id": thread.id, "customer_id": thread.customer_id, "name": name, "phone": phone,
        "status": ConversationStatus(thread.status).value,
        "handoff_reason": thread.handoff_reason, "assignee": assignee or "",
        "last_channel": Channel(thread.last_channel).value, "unread": thread.unread,
        "waiting_since": thread.waiting_since.isoformat() if thread.waiting_since else None,
        "first_response_at": (thread.first_response_at.isoformat()
                              if thread.first_response_at else None),
        "waited_minutes": int(waited.total_seconds() // 60) if waited is not None else None,
        "overdue": desk.overdue(thread, now, cutoff),
        "last_message_at": thread.last_message_at.isoformat(),
        "answerable": thread.customer_id is not None,
    }


def message_json(message: ConversationMessage, operator: str = "") -> ConversationMessageJson:
    return {"id": message.id, "direction": Direction(message.direction).value,
            "author": Author(message.author).value, "operator": operator,
            "channel": Channel(message.channel).value, "kind": message.kind,
            "body": message.body, "created_at": message.created_at.isoformat()}


async def _names(ids: Sequence[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {int(i): str(n) for i, n in
            await Operator.filter(id__in=wanted).values_list("id", "name")}


async def _customers(ids: Sequence[int | None]) -> dict[int, Customer]:
    wanted = {i for i in ids if i is not None}
    return {c.id: c for c in await Customer.filter(id__in=wanted)} if wanted else {}


async def threads_json(threads: Sequence[Conversation], desk: Desk,
                       now: datetime) -> list[ConversationJson]:
    customers = await _customers([t.customer_id for t in threads])
    names = await _names([t.assignee_id for t in threads])
    cutoff = desk.overdue_cutoff(now)
    return [conversation_json(t, desk, now, customer=customers.get(t.customer_id or 0),
                              assignee=names.get(t.assignee_id or 0), cutoff=cutoff)
            for t in threads]


async def list_threads(actor: Actor, view: View, desk: Desk, now: datetime, *,
                       limit: int = DEFAULT_LIMIT,
                       cursor: str = "") -> tuple[list[ConversationJson], Page[Conversation]]:
    if view == "waiting":
        found = await page(Conversation.filter(status=ConversationStatus.WAITING),
                           ("waiting_since", "id"), limit=limit, cursor=cursor)
    elif view == "mine":
        found = await page(Conversation.filter(status=ConversationStatus.HELD,
                                               assignee_id=actor.operator.id),
                           ("waiting_since", "id"), limit=limit, cursor=cursor)
    else:
        found = await page(Conversation.all(), ("-last_message_at", "-id"), limit=limit,
                           cursor=cursor)
    return await threads_json(found.rows, desk, now), found


async def _unread(query: QuerySet[Conversation]) -> int:
    rows = await query.annotate(total=Sum("unread")).values("total")
    return int(rows[0]["total"] or 0) if rows else 0


async def counts(actor: Actor, desk: Desk, now: datetime) -> InboxCountsJson:
    """For the nav and the inbox tabs: threads waiting, mine, their unread messages, and how
    many wait beyond the first-response target."""
    waiting = Conversation.filter(status=ConversationStatus.WAITING)
    mine = Conversation.filter(status=ConversationStatus.HELD, assignee_id=actor.operator.id)
    cutoff = desk.overdue_cutoff(now)
    overdue = 0 if cutoff is None else await Conversation.filter(
        status__in=list(WITH_A_PERSON), first_response_at__isnull=True,
        waiting_since__lt=cutoff.astimezone(UTC)).count()
    return {
        "waiting": await waiting.count(), "mine": await mine.count(),
        "waiting_unread": await _unread(waiting),
        "mine_unread": await _unread(mine),
        "overdue": overdue,
    }


async def get_thread(conversation_id: int) -> Conversation:
    thread = await Conversation.get_or_none(id=conversation_id)
    if thread is None:
        raise ConversationNotFound(f"no conversation {conversation_id}")
    return thread


async def messages(conversation_id: int, *, after: int = 0) -> list[ConversationMessageJson]:
    """The thread's latest messages (after message id ``after``), oldest first."""
    query = ConversationMessage.filter(conversation_id=conversation_id)
    if after:
        query = query.filter(id__gt=after)
    rows = list(reversed(await query.order_by("-id").limit(THREAD_MESSAGES)))
    names = await _names([m.operator_id for m in rows])
    return [message_json(m, names.get(m.operator_id or 0, "")) for m in rows]


async def thread_json(conversation_id: int, desk: Desk, now: datetime, *,
                      after: int = 0) -> ThreadJson:
    thread = await get_thread(conversation_id)
    [row] = await threads_json([thread], desk, now)
    return ThreadJson(**row, messages=await messages(conversation_id, after=after))


async def mark_read(conversation_id: int) -> None:
    await Conversation.filter(id=conversation_id).update(unread=0)


async def beside(customer_id: int, *, today: Any) -> dict[str, Any]:
    """What an operator sees beside the thread: the customer's policies, claims and points."""
    policies = await Policy.filter(customer_id=customer_id).order_by("-end_date").limit(10)
    claims = await Claim.filter(customer_id=customer_id).order_by("-reported_at").limit(10)
    return {
        "policies": [{"number": p.number, "plate": p.plate, "end_date": p.end_date.isoformat(),
                      "status": str(p.status), "in_force": p.start_date <= today <= p.end_date}
                     for p in policies],
        "claims": [{"number": c.number, "status": str(c.status),
                    "reported_at": c.reported_at.isoformat()} for c in claims],
        "points": await get_balance(customer_id),
    }


async def reply_preview(thread: Conversation, text: str,
                        settings: Settings) -> ReplyPreviewJson:
    """How a reply will go: the channel, and for SMS the signed text's segment count."""
    channel = Channel(thread.last_channel)
    if channel is not Channel.SMS or thread.customer_id is None:
        return {"channel": channel.value, "segments": None, "encoding": None}
    customer = await Customer.get(id=thread.customer_id)
    signed = signed_sms(settings.sms, text, language=str(customer.language), to=customer.phone)
    return {"channel": channel.value, "segments": count_segments(signed),
            "encoding": sms_encoding(signed)}


# -- acting -----------------------------------------------------------------------------------


async def _locked(conversation_id: int) -> Conversation:
    thread = await Conversation.filter(id=conversation_id).select_for_update().first()
    if thread is None:
        raise ConversationNotFound(f"no conversation {conversation_id}")
    return thread


def _take(thread: Conversation, operator_id: int, now: datetime) -> None:
    """A person has the thread now (an operator who answers or takes one the bot had
    starts its clock at once)."""
    if thread.status == ConversationStatus.BOT:
        thread.waiting_since = now
        thread.handoff_reason = HandoffReason.OPERATOR.value
        thread.first_response_at = None
        thread.misunderstood = 0
    thread.status = ConversationStatus.HELD
    thread.assignee_id = operator_id


async def reply(actor: Actor, conversation_id: int, data: ReplyIn, *,
                now: datetime) -> ConversationMessage:
    """Store the reply and queue it on the customer's last channel; the same ``request_key``
    again returns the first reply and sends nothing more."""
    async with in_transaction():
        thread = await _locked(conversation_id)
        if thread.customer_id is None:
            raise NoCustomer(f"conversation {conversation_id} is with an unknown sender")
        key = (f"{REPLY_KIND}:{thread.id}:{data.request_key}" if data.request_key else "")
        if key and (sent := await Message.get_or_none(dedup_key=key)) is not None:
            return await ConversationMessage.get(outbox_id=sent.id)
        channel = Channel(thread.last_channel)
        message = await ConversationMessage.create(
            conversation_id=thread.id, direction=Direction.OUT, author=Author.OPERATOR,
            operator_id=actor.operator.id, channel=channel, body=data.text, created_at=now)
        queued, _ = await enqueue(Outbound(
            dedup_key=key or f"{REPLY_KIND}:{thread.id}:m{message.id}", kind=REPLY_KIND,
            category=Category.SERVICE, customer_id=thread.customer_id,
            template_key=REPLY_KIND, params={"body": data.text}, not_before=now,
            channel_policy=_CHANNEL_POLICY.get(channel, "telegram_then_sms")))
        message.outbox_id = queued.id
        await message.save(update_fields=["outbox_id"])
        if thread.status != ConversationStatus.HELD or thread.assignee_id is None:
            _take(thread, actor.operator.id, now)
        if thread.first_response_at is None:
            thread.first_response_at = now
        thread.last_message_at = now
        thread.unread = 0
        await thread.save()
    return message


async def assign(actor: Actor, conversation_id: int, data: AssignIn, *,
                 now: datetime) -> Conversation:
    name = data.operator.strip() or actor.name
    async with in_transaction():
        operator = await Operator.get_or_none(name=name, active=True)
        if operator is None:
            raise OperatorNotFound(f"no active operator {name!r}")
        thread = await _locked(conversation_id)
        if thread.customer_id is None:
            raise NoCustomer(f"conversation {conversation_id} is with an unknown sender")
        before = {"status": str(thread.status), "assignee_id": thread.assignee_id}
        _take(thread, operator.id, now)
        await thread.save()
        await audit.record(actor, "conversation.assign", "conversation", thread.id,
                           before=before, after={"status": str(thread.status),
                                                 "assignee_id": operator.id}, now=now)
    return thread


async def _survey(thread: Conversation, actor: Actor, now: datetime) -> None:
    """The case that ends here is the stretch since the hand-off: its survey is keyed by the
    thread's latest message, so a later hand-off of the same thread is a case of its own."""
    last = await ConversationMessage.filter(conversation_id=thread.id).order_by("-id").first()
    if last is None:
        return
    names = await _names([thread.assignee_id])
    await surveys.offer(SurveyCase.CONVERSATION, int(last.id), int(thread.customer_id or 0),
                        now=now, operator_name=names.get(thread.assignee_id or 0, actor.name))


async def resolve(actor: Actor, conversation_id: int, *, now: datetime) -> Conversation:
    """Give the thread back to the bot."""
    async with in_transaction():
        thread = await _locked(conversation_id)
        before = {"status": str(thread.status), "assignee_id": thread.assignee_id}
        if thread.status in WITH_A_PERSON and thread.customer_id is not None:
            await _survey(thread, actor, now)
        thread.status = ConversationStatus.BOT
        thread.assignee_id = None
        thread.misunderstood = 0
        thread.unread = 0
        thread.resolved_at = now
        await thread.save()
        await audit.record(actor, "conversation.resolve", "conversation", thread.id,
                           before=before, after={"status": str(thread.status)}, now=now)
    return thread
