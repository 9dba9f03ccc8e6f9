"""Threads: recording what customers, the bot and operators say, and the hand-off rules.

A free text (anything that is not a command or keyword) is recorded in the sender's thread,
then one of three things happens (``Verdict``):

* the thread is with a person (``waiting`` or ``held``): the bot keeps quiet (``HELD``);
* the customer asked for a person (a hand-off word or the 联系客服 button), or this is the
  second text in a row the bot did not understand (within ``misunderstood_window_minutes``):
  the thread joins the queue and the customer is told when someone will answer
  (``HANDED_OFF``, with ``opens_at`` set when the office is closed now);
* otherwise the bot answers as it always did (``ANSWER``).

Unknown senders (no customer record) get their own thread, but no hand-off: nothing can
reach them through the outbox, which sends to customers only; their answer stays the
bot's ("call the hotline" / "link your account").

The caller records the bot's own answer with ``bot_said``. Every write happens in one
transaction with the thread row locked, so two messages of one customer arriving together
keep the counters right.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from bot.settings import ConversationSettings, Settings
from scheduler.office_hours import OfficeHours
from storage.desk_models import (
    Author,
    Conversation,
    ConversationMessage,
    ConversationStatus,
    Direction,
    HandoffReason,
)
from storage.models import Channel

WITH_A_PERSON = (ConversationStatus.WAITING, ConversationStatus.HELD)
_SEARCH_DAYS = 400  # as far back as the office-hours calendar is searched


@dataclass(frozen=True, slots=True)
class Sender:
    """Whom a thread is with: a customer, else the SMS number or the Telegram user."""

    key: str
    customer_id: int | None
    phone: str = ""
    telegram_user_id: int | None = None

    @classmethod
    def of_customer(cls, customer_id: int, *, phone: str = "",
                    telegram_user_id: int | None = None) -> Sender:
        return cls(f"c:{customer_id}", customer_id, phone, telegram_user_id)

    @classmethod
    def of_phone(cls, phone: str) -> Sender:
        return cls(f"p:{phone}", None, phone=phone)

    @classmethod
    def of_telegram_user(cls, user_id: int) -> Sender:
        return cls(f"t:{user_id}", None, telegram_user_id=user_id)


class Verdict(StrEnum):
    ANSWER = "answer"  # the bot answers as it would
    HANDED_OFF = "handed_off"  # tell the customer a person will answer, and when
    HELD = "held"  # a person has the conversation: the bot keeps quiet


@dataclass(frozen=True, slots=True)
class Outcome:
    verdict: Verdict
    conversation_id: int
    opens_at: datetime | None = None  # when people answer, if the office is closed now
    wait_minutes: int = 0


class Desk:
    def __init__(self, settings: Settings) -> None:
        self.settings: ConversationSettings = settings.conversations
        self._tz = ZoneInfo(settings.schedule.timezone)
        self.office = OfficeHours(settings.office_hours, settings.holidays.calendar(), self._tz)

    async def inbound(self, sender: Sender, channel: Channel, body: str, *, now: datetime,
                      kind: str = "text", handoff: HandoffReason | None = None) -> Outcome:
        """Record a customer's free text and decide who answers it (see the module)."""
        async with in_transaction():
            thread = await self._thread(sender, channel, now)
            await ConversationMessage.create(
                conversation_id=thread.id, direction=Direction.IN, author=Author.CUSTOMER,
                channel=channel, kind=kind[:16], body=body, created_at=now)
            previous = thread.last_inbound_at
            thread.last_channel = channel
            thread.last_message_at = thread.last_inbound_at = now
            thread.unread += 1
            verdict = self._decide(thread, previous, handoff, now)
            if verdict is Verdict.HANDED_OFF and thread.status not in WITH_A_PERSON:
                self._hand_off(thread, handoff or HandoffReason.MISUNDERSTOOD, now)
            await thread.save()
        if verdict is not Verdict.HANDED_OFF:
            return Outcome(verdict, thread.id)
        return self._handed_off(thread.id, now)

    def _decide(self, thread: Conversation, previous: datetime | None,
                handoff: HandoffReason | None, now: datetime) -> Verdict:
        if thread.customer_id is None:  # nobody to answer through the outbox
            return Verdict.ANSWER
        if handoff is not None:
            return Verdict.HANDED_OFF  # asked again while waiting: told again when
        if thread.status in WITH_A_PERSON:
            return Verdict.HELD
        window = timedelta(minutes=self.settings.misunderstood_window_minutes)
        in_a_row = thread.misunderstood > 0 and previous is not None and now - previous <= window
        thread.misunderstood = thread.misunderstood + 1 if in_a_row else 1
        return Verdict.HANDED_OFF if thread.misunderstood >= 2 else Verdict.ANSWER

    @staticmethod
    def _hand_off(thread: Conversation, reason: HandoffReason, now: datetime) -> None:
        thread.status = ConversationStatus.WAITING
        thread.handoff_reason = reason.value
        thread.waiting_since = now
        thread.first_response_at = None
        thread.assignee_id = None
        thread.misunderstood = 0

    def _handed_off(self, conversation_id: int, now: datetime) -> Outcome:
        opens = self.office.next_open(now)
        wait = self.settings.first_response_minutes
        if opens is not None and opens > now:
            return Outcome(Verdict.HANDED_OFF, conversation_id, opens_at=opens, wait_minutes=wait)
        return Outcome(Verdict.HANDED_OFF, conversation_id, wait_minutes=wait)

    async def bot_said(self, conversation_id: int, channel: Channel, body: str, *,
                       now: datetime) -> None:
        """Record the bot's answer in the thread (after ``inbound``)."""
        if not body:
            return
        async with in_transaction():
            await ConversationMessage.create(
                conversation_id=conversation_id, direction=Direction.OUT, author=Author.BOT,
                channel=channel, body=body, created_at=now)
            await Conversation.filter(id=conversation_id).update(last_message_at=now)

    async def _thread(self, sender: Sender, channel: Channel, now: datetime) -> Conversation:
        """The sender's thread, locked for this transaction; created on first contact."""
        found = await Conversation.filter(key=sender.key).select_for_update().first()
        if found is not None:
            return found
        try:
            async with in_transaction():
                return await Conversation.create(
                    key=sender.key, customer_id=sender.customer_id, phone=sender.phone[:20],
                    telegram_user_id=sender.telegram_user_id, last_channel=channel,
                    last_message_at=now, created_at=now)
        except IntegrityError:  # the same sender's other message created it first
            return await Conversation.filter(key=sender.key).select_for_update().get()

    # -- the first-response clock -----------------------------------------------------------

    def waited(self, thread: Conversation, now: datetime) -> timedelta | None:
        """Office time a handed-off thread has waited for a person's first reply (None when
        not waiting for one)."""
        if thread.waiting_since is None or thread.status not in WITH_A_PERSON:
            return None
        end = thread.first_response_at or now
        return self.office.between(thread.waiting_since, end)

    def overdue_cutoff(self, now: datetime) -> datetime | None:
        """Threads handed off before this moment, still without a first reply, have waited
        longer than ``first_response_minutes`` of office time (None: none can have). One
        walk back over the opening hours, so a whole queue is judged by one comparison."""
        left = timedelta(minutes=self.settings.first_response_minutes)
        today = now.astimezone(self._tz).date()
        for back in range(_SEARCH_DAYS):
            found = self.office.window(today - timedelta(days=back))
            if found is None or found.start >= now:
                continue
            span = min(found.end, now) - found.start
            if span >= left:
                return min(found.end, now) - left
            left -= span
        return None

    def overdue(self, thread: Conversation, now: datetime,
                cutoff: datetime | None = None) -> bool:
        """Still without a first reply after ``first_response_minutes`` of office time
        (``cutoff``: ``overdue_cutoff(now)``, when judging many threads)."""
        if (thread.first_response_at is not None or thread.waiting_since is None
                or thread.status not in WITH_A_PERSON):
            return False
        limit = cutoff if cutoff is not None else self.overdue_cutoff(now)
        return limit is not None and thread.waiting_since < limit
