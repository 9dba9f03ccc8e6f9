"""Earning rules: premium payments (and their refunds, and corrections when the core system
changes a settled payment), daily check-in, referrals, birthdays and operator adjustments.

Every rule is idempotent by a natural key (``payment:{id}``, ``checkin:{customer}:{day}``,
``referral:{customer}``, ``birthday:{customer}:{year}``, the operator's request key), so an
import re-run, a double tap or a retried job awards nothing twice.

A policy's premium points are settled as a whole: every entry of a payment records the
payment amount it settled (``basis_cents``, refunds negative), and what the policy should
leave the customer holding is worked out again from its payments as they stand (see
``_policy_points``) whenever a refund, a cancellation or a correction is posted.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
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

# The entries that carry a policy's premium points: earnings, refunds and cancellations,
# corrections of changed payments.
_POLICY_KINDS = (EntryKind.EARN_PREMIUM, EntryKind.PREMIUM_REVERSAL,
                 EntryKind.PAYMENT_CORRECTION)
_CREDITED_KINDS = (EntryKind.EARN_PREMIUM, EntryKind.PAYMENT_CORRECTION)


def premium_points(amount_cents: int, *, points_per_yuan: float, multiplier: float) -> int:
    """Whole points for a premium: yuan × rate × tier multiplier, rounded down."""
    value = (Decimal(amount_cents) / 100 * Decimal(str(points_per_yuan))
             * Decimal(str(multiplier)))
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


def basis_of(kind: PaymentKind | str, amount_cents: int) -> int:
    """A payment as its ledger entries record it: the amount in cents, negative for a refund."""
    return -amount_cents if kind == PaymentKind.REFUND else amount_cents


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
                                payment_id=payment.id,
                                basis_cents=basis_of(payment.kind, payment.amount_cents))
    if payment.amount_cents <= 0:
        return None
    spec = EntrySpec(EntryKind.EARN_PREMIUM, key, fp, payment_id=payment.id, policy_id=policy_id,
                     basis_cents=payment.amount_cents)
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
    return await _take_back(policy_id, key, fp, settings=settings, now=now, payment_id=None,
                            basis_cents=None)


async def _take_back(
    policy_id: int, key: str, fp: str, *, settings: LoyaltySettings, now: datetime,
    payment_id: int | None, basis_cents: int | None,
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
            points = await _policy_points(policy_id, cancelled=payment_id is None,
                                          settings=settings)
            due = points.held - points.target
            if due <= 0:
                return None
            spec = EntrySpec(EntryKind.PREMIUM_REVERSAL, key, fp, payment_id=payment_id,
                             policy_id=policy_id, basis_cents=basis_cents)
            return await ledger.post_capped_debit(conn, ref, due, spec, now=now,
                                                  settings=settings,
                                                  prefer_lots=await _policy_lots(policy_id))
    except Replay:
        return await ledger.replayed(key, fp)


async def _policy_lots(policy_id: int, *, first_of_payment: int | None = None) -> list[int]:
    """The lots the policy's premiums brought, first-expiring-first (those of one payment
    first, if given): a reversal takes the points back from them before any others."""
    rows: Sequence[tuple[int, int | None]] = await PointLot.filter(
        entry__policy_id=policy_id, entry__kind__in=_CREDITED_KINDS
    ).order_by("expires_on", "id").values_list("id", "entry__payment_id")
    if first_of_payment is None:
        return [lot for lot, _ in rows]
    own = [lot for lot, payment in rows if payment == first_of_payment]
    return own + [lot for lot, payment in rows if payment != first_of_payment]


@dataclass(frozen=True, slots=True)
class _PolicyPoints:
    target: int  # what the policy's premiums should leave the customer holding now
    held: int  # what its entries gave, counting a shortfall as taken (it is not pursued)
    received: int  # what its entries really gave


async def _policy_points(policy_id: int, *, cancelled: bool,
                         settings: LoyaltySettings) -> _PolicyPoints:
    """The policy keeps points only for the share of its premium not refunded, and none at
    all once cancelled.

    What a premium is worth comes from its own earning, not from today's tier: the points it
    earned per cent of its basis, applied to its amount now (so a corrected amount keeps the
    multiplier it earned at). A payment first settled as a refund and now a premium has no
    earning of its own: it is worth the policy's first earning's rate, or the programme's
    base rate when the policy earned nothing.
    """
    entries = await LedgerEntry.filter(policy_id=policy_id, kind__in=_POLICY_KINDS).order_by(
        "id").values_list("kind", "amount", "shortfall", "payment_id", "basis_cents")
    payments = await Payment.filter(policy_id=policy_id).values_list(
        "id", "kind", "amount_cents")
    held = received = 0
    earnings: dict[int, tuple[int, int | None]] = {}
    settled: set[int] = set()
    for kind, amount, shortfall, payment_id, basis in entries:
        held += amount - shortfall
        received += amount
        if payment_id is not None:
            settled.add(payment_id)
            if kind == EntryKind.EARN_PREMIUM:
                earnings[payment_id] = (amount, basis)
    rate = next(((p, b) for p, b in earnings.values() if b), None)
    earned = paid = refunded = 0
    for payment_id, kind, cents in payments:
        if kind == PaymentKind.REFUND:
            refunded += cents
            continue
        paid += cents
        if payment_id in earnings:
            points, basis = earnings[payment_id]
            earned += points if not basis or basis == cents else points * cents // basis
        elif payment_id in settled:
            earned += (rate[0] * cents // rate[1] if rate is not None else premium_points(
                cents, points_per_yuan=settings.points_per_yuan,
                multiplier=settings.tiers[0].points_multiplier))
    if cancelled:
        target = 0
    else:
        taken = earned if paid <= 0 or refunded >= paid else earned * refunded // paid
        target = earned - taken
    return _PolicyPoints(int(target), int(held), int(received))


async def correct_payment(
    payment_id: int, *, settings: LoyaltySettings, now: datetime
) -> Posted | None:
    """Make the ledger follow a settled payment whose amount or kind the core system changed.

    One ``payment_correction`` entry per change, recording the new basis: a credit or a
    debit that brings the policy's points to what they would be had the payment always been
    so (``_policy_points``). A debit stops at zero with the rest as shortfall, as a refund
    does; a credit never gives back points a shortfall left with the customer. The key
    ``payment:{id}:after:{entry}:{basis}`` names the payment's latest entry and the new basis,
    so a re-run, a concurrent run, or the amount changing back and forth posts each change
    once. Returns None when the payment is unsettled or unchanged.
    """
    payment = await Payment.get_or_none(id=payment_id)
    if payment is None:
        raise InvalidRequest(f"no payment {payment_id}")
    policy = await Policy.get_or_none(id=payment.policy_id)
    if policy is None:
        raise InvalidRequest(f"no policy {payment.policy_id}")
    basis = basis_of(payment.kind, payment.amount_cents)
    key = fp = ""
    try:
        async with in_transaction() as conn:
            account = await ledger.lock_account(conn, AccountRef.of_customer(policy.customer_id),
                                                settings)
            # Under the lock: what the payment was last settled at, and its amount now.
            last = await LedgerEntry.filter(payment_id=payment.id).order_by("-id").first(
            ).values("id", "basis_cents")
            current = await Payment.get(id=payment.id)
            basis = basis_of(current.kind, current.amount_cents)
            if last is None or last["basis_cents"] is None or last["basis_cents"] == basis:
                return None
            key = f"payment:{payment.id}:after:{last['id']}:{basis}"
            fp = fingerprint({"op": "payment_correction", "payment": payment.id,
                              "after": last["id"], "basis": basis})
            spec = EntrySpec(EntryKind.PAYMENT_CORRECTION, key, fp, payment_id=payment.id,
                             policy_id=policy.id, basis_cents=basis,
                             reason=f"payment {current.external_id}: {last['basis_cents']} -> "
                                    f"{basis} cents")
            if current.kind == PaymentKind.PREMIUM and basis > last["basis_cents"]:
                await upgrade_if_qualified(conn, account, now=now, settings=settings, cause=key)
            cancelled = await LedgerEntry.exists(idempotency_key=f"policy_cancel:{policy.id}")
            points = await _policy_points(policy.id, cancelled=cancelled, settings=settings)
            ref = AccountRef.of_account(account.id)
            if points.target < points.held:
                lots = await _policy_lots(policy.id, first_of_payment=payment.id)
                return await ledger.post_capped_debit(
                    conn, ref, points.held - points.target, spec, now=now, settings=settings,
                    prefer_lots=lots)
            if points.target > points.received:
                return await ledger.post_credit(conn, ref, points.target - points.received,
                                                spec, now=now, settings=settings)
            return await ledger.post_no_points(conn, ref, spec, now=now, settings=settings)
    except Replay:
        return await ledger.replayed(key, fp)


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
