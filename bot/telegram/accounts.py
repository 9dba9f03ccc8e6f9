"""Telegram accounts: who is this Telegram user, linking by phone number, re-linking with a
one-time SMS code, unlinking, and the blocked flag. No aiogram in here: the handlers pass in
plain values and turn the outcomes into replies.

Rules (issue 6):

* Only a contact whose ``user_id`` is the sender's own id is accepted: Telegram has verified
  that phone number for that account. Someone else's contact is refused and counted.
* A customer has at most one linked Telegram account. A phone already linked to another
  account moves only after the one-time code sent by SMS to that phone is typed back (when
  ``relink_sms_code`` is on and SMS is configured); the code is kept only as a hash, lives
  10 minutes and may be tried ``CODE_TRIES`` times.
* Every share of a contact is a ``LinkAttempt``; more than ``link_attempts_per_hour`` in the
  last hour are refused before anything is looked up.
* A phone number several customers share (a family): when two customers have it and neither
  is linked to another account, the contact links both — they already share its SMS. The
  account acts for one of them at a time (``customer``; ``/switch`` swaps to
  ``second_customer``) and messages to either come to this chat. Three or more (or two, one of
  them linked elsewhere): the number alone does not say who this is, so the policy number
  is asked for, and each wrong one counts as an attempt.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F, Q
from tortoise.transactions import in_transaction

from storage.choices import TELEGRAM, record_choice
from storage.models import (
    Category,
    Customer,
    LinkAttempt,
    LinkCode,
    TelegramAccount,
)
from storage.outbox import Outbound, enqueue
from storage.phones import InvalidPhone, mask_phone, normalise_phone
from storage.sql import Row, current, fetch

log = logging.getLogger(__name__)

CODE_TTL = timedelta(minutes=10)  # the link_code template says 10 minutes
CODE_TRIES = 5
CODE_DIGITS = 6


class LinkOutcome(StrEnum):
    LINKED = "linked"
    ALREADY_LINKED = "already_linked"
    CODE_SENT = "code_sent"
    NO_MATCH = "no_match"
    INVALID_PHONE = "invalid_phone"
    NOT_OWN_CONTACT = "not_own_contact"
    RATE_LIMITED = "rate_limited"
    ASK_POLICY = "ask_policy"  # a shared number: which customer is it?
    WRONG_POLICY = "wrong_policy"


@dataclass(frozen=True, slots=True)
class LinkResult:
    outcome: LinkOutcome
    customer: Customer | None = None
    code_id: int | None = None
    masked_phone: str = ""
    second: Customer | None = None  # linked too: the other customer of a shared number
    phone: str = ""  # the number, for ASK_POLICY (kept in the conversation, never logged)


class CodeOutcome(StrEnum):
    LINKED = "linked"
    WRONG = "wrong"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class CodeResult:
    outcome: CodeOutcome
    customer: Customer | None = None
    tries_left: int = 0


@dataclass(frozen=True, slots=True)
class Sender:
    """The Telegram user an update came from, as far as linking cares."""

    user_id: int
    chat_id: int
    username: str = ""
    language_code: str = ""


@dataclass(frozen=True, slots=True)
class Account:
    """The sender's Telegram account row, as the handlers of one update need it."""

    id: int
    telegram_user_id: int
    customer_id: int | None
    linked: bool
    language_code: str


@dataclass(frozen=True, slots=True)
class Policyholder:
    """The linked customer, read-only for the handlers of one update."""

    id: int
    name: str
    phone: str
    language: str
    timezone: str
    referral_code: str


Conversation = tuple[Account, Policyholder | None]

_COLUMNS = ("a.id, a.customer_id, a.linked_at IS NOT NULL AS linked, a.language_code, "
            "c.name, c.phone, c.language, c.timezone, c.referral_code")
_LOOKUP = (f"SELECT {_COLUMNS} FROM telegram_account a "
           "LEFT JOIN customer c ON c.id = a.customer_id WHERE a.telegram_user_id = :user_id")
# One round trip for the two questions every update asks: handled before? who is it?
_SEEN_AND_LOOKUP = (
    "SELECT EXISTS (SELECT 1 FROM telegram_processed_update WHERE update_id = :update_id) "
    f"AS seen, {_COLUMNS} FROM (SELECT CAST(:user_id AS BIGINT) AS user_id) s "
    "LEFT JOIN telegram_account a ON a.telegram_user_id = s.user_id "
    "LEFT JOIN customer c ON c.id = a.customer_id"
)


def _conversation(row: Row, telegram_user_id: int) -> Conversation:
    linked = bool(row["linked"]) and row["customer_id"] is not None
    account = Account(int(row["id"]), telegram_user_id, row["customer_id"], linked,
                      str(row["language_code"] or ""))
    if not linked:
        return account, None
    return account, Policyholder(int(row["customer_id"]), str(row["name"]), str(row["phone"]),
                                 str(row["language"]), str(row["timezone"]),
                                 str(row["referral_code"]))


async def seen_and_conversation(update_id: int,
                                telegram_user_id: int) -> tuple[bool, Conversation | None]:
    """Whether the update was processed already, and the sender's conversation if they
    have an account yet — in one query (the update feed asks this for every update)."""
    [row] = await fetch(current(), _SEEN_AND_LOOKUP,
                       {"update_id": update_id, "user_id": telegram_user_id})
    found = _conversation(row, telegram_user_id) if row["id"] is not None else None
    return bool(row["seen"]), found


async def conversation(sender: Sender) -> Conversation:
    """Who is writing: the account (created on first contact, language = Telegram's guess
    until they choose) and the linked customer, in one indexed query."""
    rows = await fetch(current(), _LOOKUP, {"user_id": sender.user_id})
    if not rows:
        try:
            await TelegramAccount.create(
                telegram_user_id=sender.user_id, chat_id=sender.chat_id,
                username=sender.username[:64], language_code=sender.language_code[:16])
        except IntegrityError:
            pass  # two first updates of one user at once: the other one created it
        rows = await fetch(current(), _LOOKUP, {"user_id": sender.user_id})
    return _conversation(rows[0], sender.user_id)


async def _recent_attempts(telegram_user_id: int, now: datetime) -> int:
    return await LinkAttempt.filter(
        telegram_user_id=telegram_user_id, created_at__gt=now - timedelta(hours=1)
    ).exclude(outcome=LinkOutcome.RATE_LIMITED).count()


async def _record(telegram_user_id: int, phone: str, outcome: LinkOutcome,
                  now: datetime) -> None:
    await LinkAttempt.create(telegram_user_id=telegram_user_id,
                             phone=mask_phone(phone) if phone else "", outcome=outcome,
                             created_at=now)


def _code_hash(telegram_user_id: int, customer_id: int, code: str) -> str:
    return hashlib.sha256(f"{telegram_user_id}:{customer_id}:{code}".encode()).hexdigest()


def _linked_to(customer_id: int) -> Q:
    return Q(customer_id=customer_id) | Q(second_customer_id=customer_id)


async def _attach(sender: Sender, customer_id: int, now: datetime,
                  second_id: int | None = None) -> None:
    """Link the sender's account to the customer (and the second customer of a shared
    number), and unlink any other account of theirs, in one transaction."""
    async with in_transaction():
        for linked in filter(None, (customer_id, second_id)):
            others = TelegramAccount.exclude(telegram_user_id=sender.user_id)
            await others.filter(customer_id=linked).update(customer_id=None, linked_at=None)
            await others.filter(second_customer_id=linked).update(second_customer_id=None)
            # an account left with only its second customer acts for that one
            await TelegramAccount.filter(customer_id=None, second_customer_id__isnull=False,
                                         linked_at__isnull=True).update(
                customer_id=F("second_customer_id"), second_customer_id=None, linked_at=now)
        changed = await TelegramAccount.filter(telegram_user_id=sender.user_id).update(
            customer_id=customer_id, second_customer_id=second_id, chat_id=sender.chat_id,
            linked_at=now, blocked_at=None)
        if not changed:
            await TelegramAccount.create(
                telegram_user_id=sender.user_id, chat_id=sender.chat_id,
                username=sender.username[:64], language_code=sender.language_code[:16],
                customer_id=customer_id, second_customer_id=second_id, linked_at=now)


async def link_by_contact(
    sender: Sender,
    *,
    contact_user_id: int | None,
    phone: str,
    default_region: str,
    now: datetime,
    attempts_per_hour: int,
    require_code: bool,
) -> LinkResult:
    """One share of a contact: link, ask for an SMS code, or refuse (see the module rules)."""
    if await _recent_attempts(sender.user_id, now) >= attempts_per_hour:
        await _record(sender.user_id, "", LinkOutcome.RATE_LIMITED, now)
        return LinkResult(LinkOutcome.RATE_LIMITED)
    if contact_user_id != sender.user_id:
        await _record(sender.user_id, "", LinkOutcome.NOT_OWN_CONTACT, now)
        log.info("telegram user %d shared a contact that is not their own", sender.user_id)
        return LinkResult(LinkOutcome.NOT_OWN_CONTACT)
    try:
        e164 = normalise_phone(phone, default_region)
    except InvalidPhone:
        await _record(sender.user_id, "", LinkOutcome.INVALID_PHONE, now)
        return LinkResult(LinkOutcome.INVALID_PHONE)
    masked = mask_phone(e164)
    customers = await Customer.filter(phone=e164).order_by("id")
    if not customers:
        await _record(sender.user_id, e164, LinkOutcome.NO_MATCH, now)
        log.info("telegram user %d: no customer for %s", sender.user_id, masked)
        return LinkResult(LinkOutcome.NO_MATCH, masked_phone=masked)
    if len(customers) == 2 and not any([await _linked_elsewhere(sender, c) for c in customers]):
        first, second = customers
        await _attach(sender, first.id, now, second.id)
        await _record(sender.user_id, e164, LinkOutcome.LINKED, now)
        log.info("telegram user %d linked to customers %d and %d (%s)", sender.user_id,
                 first.id, second.id, masked)
        return LinkResult(LinkOutcome.LINKED, first, masked_phone=masked, second=second)
    if len(customers) > 1:
        await _record(sender.user_id, e164, LinkOutcome.ASK_POLICY, now)
        return LinkResult(LinkOutcome.ASK_POLICY, masked_phone=masked, phone=e164)
    return await _link_one(sender, customers[0], e164, now=now, require_code=require_code)


async def link_by_policy(sender: Sender, *, phone: str, number: str, now: datetime,
                         attempts_per_hour: int, require_code: bool) -> LinkResult:
    """The policy number typed after sharing a number several customers have: link its
    holder, if they have that number (otherwise the number says nothing about them)."""
    if await _recent_attempts(sender.user_id, now) >= attempts_per_hour:
        await _record(sender.user_id, "", LinkOutcome.RATE_LIMITED, now)
        return LinkResult(LinkOutcome.RATE_LIMITED)
    holder = await Customer.filter(phone=phone, policies__number=number.strip()).first()
    if holder is None:
        await _record(sender.user_id, phone, LinkOutcome.WRONG_POLICY, now)
        return LinkResult(LinkOutcome.WRONG_POLICY, masked_phone=mask_phone(phone), phone=phone)
    return await _link_one(sender, holder, phone, now=now, require_code=require_code)


async def _linked_elsewhere(sender: Sender, customer: Customer) -> bool:
    return await TelegramAccount.filter(_linked_to(customer.id), linked_at__isnull=False
                                        ).exclude(telegram_user_id=sender.user_id).exists()


async def _link_one(sender: Sender, customer: Customer, e164: str, *, now: datetime,
                    require_code: bool) -> LinkResult:
    """Link the one customer this is (see the module rules)."""
    masked = mask_phone(e164)
    others = await _linked_elsewhere(sender, customer)
    mine = await TelegramAccount.filter(telegram_user_id=sender.user_id, customer_id=customer.id,
                                        linked_at__isnull=False).exists()
    if mine and not others:
        await _record(sender.user_id, e164, LinkOutcome.ALREADY_LINKED, now)
        return LinkResult(LinkOutcome.ALREADY_LINKED, customer, masked_phone=masked)
    if others and require_code:
        code_id = await _send_code(sender, customer, now)
        await _record(sender.user_id, e164, LinkOutcome.CODE_SENT, now)
        log.info("telegram user %d: %s is linked elsewhere, code %d sent by SMS",
                 sender.user_id, masked, code_id)
        return LinkResult(LinkOutcome.CODE_SENT, customer, code_id=code_id, masked_phone=masked)
    await _attach(sender, customer.id, now)
    await _record(sender.user_id, e164, LinkOutcome.LINKED, now)
    log.info("telegram user %d linked to customer %d (%s)", sender.user_id, customer.id, masked)
    return LinkResult(LinkOutcome.LINKED, customer, masked_phone=masked)


async def _send_code(sender: Sender, customer: Customer, now: datetime) -> int:
    code = f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"
    async with in_transaction():
        # A new code replaces any earlier one this user still holds.
        await LinkCode.filter(telegram_user_id=sender.user_id, used_at__isnull=True).update(
            used_at=now)
        row = await LinkCode.create(
            telegram_user_id=sender.user_id, customer_id=customer.id,
            code_hash=_code_hash(sender.user_id, customer.id, code),
            expires_at=now + CODE_TTL, created_at=now)
        await enqueue(Outbound(
            dedup_key=f"link_code:{row.id}", kind="link_code", category=Category.SERVICE,
            customer_id=customer.id, template_key="link_code", params={"code": code},
            not_before=now, stale_after=now + CODE_TTL, channel_policy="sms_only"))
    return row.id


async def confirm_code(sender: Sender, code_id: int, typed: str, *, now: datetime) -> CodeResult:
    """Check a typed code against the one sent; on success the link moves to the sender."""
    row = await LinkCode.get_or_none(id=code_id, telegram_user_id=sender.user_id)
    if row is None or row.used_at is not None or row.expires_at <= now or row.tries >= CODE_TRIES:
        return CodeResult(CodeOutcome.EXPIRED)
    expected = _code_hash(sender.user_id, row.customer_id, typed.strip())
    if not hmac.compare_digest(expected, row.code_hash):
        await LinkCode.filter(id=row.id).update(tries=F("tries") + 1)
        left = CODE_TRIES - row.tries - 1
        if left <= 0:
            return CodeResult(CodeOutcome.EXPIRED)
        return CodeResult(CodeOutcome.WRONG, tries_left=left)
    used = await LinkCode.filter(id=row.id, used_at__isnull=True).update(used_at=now)
    if not used:  # the same code typed twice at once: the first one wins
        return CodeResult(CodeOutcome.EXPIRED)
    await _attach(sender, row.customer_id, now)
    log.info("telegram user %d re-linked to customer %d with an SMS code", sender.user_id,
             row.customer_id)
    return CodeResult(CodeOutcome.LINKED, await Customer.get(id=row.customer_id))


async def unlink(telegram_user_id: int) -> bool:
    changed = await TelegramAccount.filter(
        telegram_user_id=telegram_user_id, customer_id__isnull=False
    ).update(customer_id=None, second_customer_id=None, linked_at=None)
    return changed > 0


async def switch(account: Account) -> Customer | None:
    """Act for the other customer of a shared number linked to this account; None when the
    account has only one."""
    row = await TelegramAccount.get_or_none(id=account.id, linked_at__isnull=False,
                                            second_customer_id__isnull=False)
    if row is None or row.customer_id is None or row.second_customer_id is None:
        return None
    changed = await TelegramAccount.filter(id=row.id, customer_id=row.customer_id).update(
        customer_id=row.second_customer_id, second_customer_id=row.customer_id)
    return await Customer.get(id=row.second_customer_id) if changed else None


async def set_blocked(telegram_user_id: int, *, blocked: bool, now: datetime) -> None:
    """``my_chat_member``: the user blocked (kicked) or restarted the bot."""
    await TelegramAccount.filter(telegram_user_id=telegram_user_id).update(
        blocked_at=now if blocked else None)


async def set_language(account: Account, language: str, *, now: datetime) -> None:
    """The chosen language: on the account, and on the customer when linked (so outbound
    messages follow it too) as the customer's own choice, which an import never overrides."""
    await TelegramAccount.filter(id=account.id).update(language_code=language)
    if account.linked and account.customer_id is not None:
        await record_choice(account.customer_id, source=TELEGRAM, now=now, language=language)
