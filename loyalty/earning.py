"""Earning rules: premium payments (and their refunds), daily check-in, referrals, birthdays
and operator adjustments.

Every rule is idempotent by a natural key (``payment:{id}``, ``checkin:{customer}:{day}``,
``referral:{customer}``, ``birthday:{customer}:{year}``, the operator's request key), so an
import re-run, a double tap or a retried job awards nothing twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from loyalty import ledger
from loyalty.config import LoyaltySettings
from loyalty.errors import InvalidRequest, NotEligible, UnknownCustomer
from loyalty.ledger import AccountRef, EntrySpec, Posted, Replay, fingerprint
from loyalty.periods import local_day, zone
from loyalty.tiers import upgrade_if_qualified
from storage.loyalty_models import CheckIn, EntryKind, LedgerEntry, PointLot
from storage.models import Customer, Payment, PaymentKind, Policy, PolicyStatus

log = logging.getLogger(__name__)


def premium_points(amount_cents: int, *, points_per_yuan: float, multiplier: float) -> int:
    """Whole points for a premium: yuan × rate × tier multiplier, rounded down."""
    value = (Decimal(amount_cents) / 100 * Decimal(str(points_per_yuan))
             * Decimal(str(multiplier)))
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


async def earn_for_payment(
    payment_id: int, *, settings: LoyaltySettings, now: datetime
) -> Posted | None:
    """Points for one imported payment, idempotent by payment id (key ``payment:{id}``).

    A premium first raises the tier if it now qualifies, then earns at that tier's
    multiplier. A refund takes back the policy's points in proportion to the premium refunded
    (see ``reverse_policy_points``). Returns None when there is nothing to post.
    """
    payment = await Payment.get_or_none(id=payment_id)
    if payment is None:
        raise InvalidRequest(f"no payment {payment_id}")
    key = f"payment:{payment.id}"
    fp = fingerprint({"op": "payment", "payment": payment.id})
    if (done := await ledger.find_replay(key, fp)) is not None:
        return done
    policy_id: int = payment.policy_id
    customer_id: int = payment.customer_id
    if payment.kind == PaymentKind.REFUND:
        return await _take_back(policy_id, key, fp, settings=settings, now=now,
                                payment_id=payment.id)
    if payment.amount_cents <= 0:
        return None
    spec = EntrySpec(EntryKind.EARN_PREMIUM, key, fp, payment_id=payment.id, policy_id=policy_id)
    try:
        async with in_transaction() as conn:
            account = await ledger.lock_account(conn, AccountRef.of_customer(customer_id),
                                                settings)
            tier = await upgrade_if_qualified(conn, account, now=now, settings=settings,
                                              cause=f"payment:{payment.id}")
            points = premium_points(payment.amount_cents, points_per_yuan=settings.points_per_yuan,
                                    multiplier=tier.points_multiplier)
            if points <= 0:
                return None
            return await ledger.post_credit(conn, AccountRef.of_account(account.id), points, spec,
                                            now=now, settings=settings)
    except Replay:
        return await ledger.replayed(key, fp)


async def reverse_policy_points(
    policy_id: int, *, settings: LoyaltySettings, now: datetime
) -> Posted | None:
    """A cancelled policy gives back every point its premiums earned (key
    ``policy_cancel:{id}``), down to zero but never below: the rest is recorded as shortfall."""
    key = f"policy_cancel:{policy_id}"
    fp = fingerprint({"op": "policy_cancel", "policy": policy_id})
    if (done := await ledger.find_replay(key, fp)) is not None:
        return done
    return await _take_back(policy_id, key, fp, settings=settings, now=now, payment_id=None)


async def _take_back(
    policy_id: int, key: str, fp: str, *, settings: LoyaltySettings, now: datetime,
    payment_id: int | None,
) -> Posted | None:
    policy = await Policy.get_or_none(id=policy_id)
    if policy is None:
        raise InvalidRequest(f"no policy {policy_id}")
    ref = AccountRef.of_customer(policy.customer_id)
    try:
        async with in_transaction() as conn:
            # The lock first: earnings and reversals of this customer are serialised, so the
            # sums below cannot move under us.
            await ledger.lock_account(conn, ref, settings)
            due = await _points_due_back(policy_id, cancelled=payment_id is None)
            if due <= 0:
                return None
            lots: list[int] = await PointLot.filter(
                entry__policy_id=policy_id, entry__kind=EntryKind.EARN_PREMIUM
            ).order_by("expires_on", "id").values_list("id", flat=True)  # type: ignore[assignment]
            spec = EntrySpec(EntryKind.PREMIUM_REVERSAL, key, fp, payment_id=payment_id,
                             policy_id=policy_id)
            return await ledger.post_capped_debit(conn, ref, due, spec, now=now,
                                                  settings=settings, prefer_lots=lots)
    except Replay:
        return await ledger.replayed(key, fp)


async def _points_due_back(policy_id: int, *, cancelled: bool) -> int:
    """Points still to take back so that, in total, the policy keeps points only for the
    share of its premium not refunded (none at all once it is cancelled)."""
    entries = await LedgerEntry.filter(
        policy_id=policy_id,
        kind__in=[EntryKind.EARN_PREMIUM, EntryKind.PREMIUM_REVERSAL],
    ).values_list("kind", "amount", "shortfall")
    earned = sum(a for k, a, _ in entries if k == EntryKind.EARN_PREMIUM)
    taken_back = sum(-a + s for k, a, s in entries if k == EntryKind.PREMIUM_REVERSAL)
    if cancelled:
        target = earned
    else:
        payments = await Payment.filter(policy_id=policy_id).values_list("kind", "amount_cents")
        paid = sum(a for k, a in payments if k == PaymentKind.PREMIUM)
        refunded = sum(a for k, a in payments if k == PaymentKind.REFUND)
        target = earned if paid <= 0 or refunded >= paid else earned * refunded // paid
    return int(target - taken_back)


@dataclass(frozen=True, slots=True)
class CheckInResult:
    day: str
    streak: int
    awarded: bool
    points: int
    bonus: int


async def check_in(customer_id: int, *, now: datetime, settings: LoyaltySettings) -> CheckInResult:
    """Once per customer-local day (``Customer.timezone``): the daily points, plus the streak
    bonus on every Nth consecutive day. A second check-in the same day awards nothing and
    says so (``awarded=False``) with the current streak."""
    customer = await Customer.get_or_none(id=customer_id)
    if customer is None:
        raise UnknownCustomer(f"no customer {customer_id}")
    day = local_day(now, zone(customer.timezone))
    try:
        async with in_transaction() as conn:
            account = await ledger.lock_account(conn, AccountRef.of_customer(customer_id),
                                                settings)
            existing = await CheckIn.get_or_none(customer_id=customer_id, day=day)
            if existing is not None:
                return CheckInResult(day.isoformat(), existing.streak, False, 0, 0)
            previous = await CheckIn.get_or_none(customer_id=customer_id,
                                                 day=day - timedelta(days=1))
            streak = previous.streak + 1 if previous else 1
            await CheckIn.create(customer_id=customer_id, day=day, streak=streak)
            ref = AccountRef.of_account(account.id)
            points = settings.checkin_points
            if points:
                key = f"checkin:{customer_id}:{day.isoformat()}"
                await ledger.post_credit(
                    conn, ref, points,
                    EntrySpec(EntryKind.CHECKIN, key, fingerprint({"op": "checkin", "key": key})),
                    now=now, settings=settings)
            bonus = 0
            if streak % settings.checkin_streak_days == 0 and settings.checkin_streak_bonus:
                bonus = settings.checkin_streak_bonus
                key = f"checkin_streak:{customer_id}:{day.isoformat()}"
                await ledger.post_credit(
                    conn, ref, bonus,
                    EntrySpec(EntryKind.CHECKIN_STREAK, key,
                              fingerprint({"op": "checkin_streak", "key": key})),
                    now=now, settings=settings)
            return CheckInResult(day.isoformat(), streak, True, points, bonus)
    except (IntegrityError, Replay):
        # Another process checked this customer in for this day first.
        existing = await CheckIn.get(customer_id=customer_id, day=day)
        return CheckInResult(day.isoformat(), existing.streak, False, 0, 0)


async def link_referrer(customer_id: int, referral_code: str) -> Customer:
    """Record who referred a new customer (the ``/start ref_<code>`` deep link).

    One referrer per customer, never oneself, and only before the customer's first policy:
    an existing policyholder was not brought in by anyone. Linking the same referrer again is
    a no-op; returns the referrer.
    """
    customer = await Customer.get_or_none(id=customer_id)
    if customer is None:
        raise UnknownCustomer(f"no customer {customer_id}")
    referrer = await Customer.get_or_none(referral_code=referral_code.strip())
    if referrer is None:
        raise NotEligible("unknown_code", "no customer has this referral code")
    if referrer.id == customer.id:
        raise NotEligible("self_referral", "a customer cannot refer themselves")
    if customer.referred_by_id is not None:
        if customer.referred_by_id == referrer.id:
            return referrer
        raise NotEligible("already_referred", "this customer already has a referrer")
    if await Policy.exists(customer_id=customer.id):
        raise NotEligible("not_new_customer", "only new customers can be referred")
    changed = await Customer.filter(id=customer.id, referred_by_id=None).update(
        referred_by_id=referrer.id)
    if not changed:
        raise NotEligible("already_referred", "this customer already has a referrer")
    return referrer


async def award_referral_if_due(
    customer_id: int, *, now: datetime, settings: LoyaltySettings
) -> Posted | None:
    """Call when a policy of ``customer_id`` becomes active: the first time the referred
    customer has an active policy, their referrer gets the referral bonus (key
    ``referral:{customer}``, so once per referred customer, whatever calls it how often)."""
    customer = await Customer.get_or_none(id=customer_id)
    if customer is None:
        raise UnknownCustomer(f"no customer {customer_id}")
    referrer_id: int | None = customer.referred_by_id
    if referrer_id is None or referrer_id == customer_id or settings.referral_bonus <= 0:
        return None
    if not await Policy.exists(customer_id=customer_id, status=PolicyStatus.ACTIVE):
        return None
    key = f"referral:{customer_id}"
    fp = fingerprint({"op": "referral", "referred": customer_id})
    if (done := await ledger.find_replay(key, fp)) is not None:
        return done
    spec = EntrySpec(EntryKind.REFERRAL, key, fp, reason=f"referred customer {customer_id}")
    try:
        async with in_transaction() as conn:
            return await ledger.post_credit(conn, AccountRef.of_customer(referrer_id),
                                            settings.referral_bonus, spec, now=now,
                                            settings=settings)
    except Replay:
        return await ledger.replayed(key, fp)


async def referral_count(customer_id: int) -> int:
    """How many referred customers have earned this customer a bonus."""
    return await LedgerEntry.filter(account__customer_id=customer_id,
                                    kind=EntryKind.REFERRAL).count()


async def award_birthday_bonus(
    customer_id: int, *, year: int, now: datetime, settings: LoyaltySettings
) -> Posted | None:
    """The tier's birthday bonus, once per customer per year (key ``birthday:{customer}:{year}``).

    The scheduler's birthday rule knows whose (solar or lunar) birthday it is and calls this.
    """
    key = f"birthday:{customer_id}:{year}"
    fp = fingerprint({"op": "birthday", "customer": customer_id, "year": year})
    if (done := await ledger.find_replay(key, fp)) is not None:
        return done
    try:
        async with in_transaction() as conn:
            account = await ledger.lock_account(conn, AccountRef.of_customer(customer_id),
                                                settings)
            bonus = settings.tier(account.tier).birthday_bonus
            if bonus <= 0:
                return None
            return await ledger.post_credit(conn, AccountRef.of_account(account.id), bonus,
                                            EntrySpec(EntryKind.BIRTHDAY, key, fp), now=now,
                                            settings=settings)
    except Replay:
        return await ledger.replayed(key, fp)


async def adjust_points(
    customer_id: int,
    points: int,
    *,
    reason: str,
    operator: str,
    key: str,
    now: datetime,
    settings: LoyaltySettings,
) -> Posted:
    """An operator's manual credit (``points`` > 0) or debit (< 0), with a reason and the
    operator's identity, idempotent by the caller's request ``key``. A debit below zero
    raises ``InsufficientPoints``."""
    if not reason.strip():
        raise InvalidRequest("an adjustment needs a reason")
    if not operator.strip():
        raise InvalidRequest("an adjustment needs the operator's identity")
    if points == 0 or not key.strip():
        raise InvalidRequest("an adjustment needs a non-zero amount and a request key")
    full_key = f"adjust:{key}"
    if points > 0:
        return await ledger.credit(customer_id, points, kind=EntryKind.ADJUSTMENT, key=full_key,
                                   now=now, settings=settings, reason=reason, operator=operator)
    return await ledger.debit(customer_id, -points, kind=EntryKind.ADJUSTMENT, key=full_key,
                              now=now, reason=reason, operator=operator)
