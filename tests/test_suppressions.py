"""Opt-outs remembered by phone number, applied to customers created later: newest wins per
channel and category, a customer's own later choice stands, applying twice changes nothing."""

from __future__ import annotations

from datetime import timedelta

from bot.delivery.recipients import load_recipients
from storage.models import Category, Consent
from storage.suppressions import apply_number_opt_outs, remember_number_choice
from tests import factories as f

T0 = f.NOON_SHANGHAI
PHONE = "+8613912345678"
CATEGORIES = ["marketing", "care", "reminder"]


async def consents(customer_id: int) -> dict[tuple[str, str], bool]:
    recipient = (await load_recipients([customer_id], now=T0))[customer_id]
    return dict(recipient.consents)


async def test_an_opt_out_in_force_becomes_the_new_customers_consent_once(db: str) -> None:
    await remember_number_choice(PHONE, CATEGORIES, suppressed=True, channel="sms",
                                 source="sms:keyword", reference="SM1", now=T0)
    owner = await f.customer(phone=PHONE)
    bystander = await f.customer()
    assert await apply_number_opt_outs([PHONE, bystander.phone]) == 3
    assert await consents(owner.id) == {("sms", c): False for c in CATEGORIES}
    assert await consents(bystander.id) == {}
    rows = await Consent.filter(customer_id=owner.id).values_list("source", "created_at")
    assert {(str(source), at) for source, at in rows} == {("sms:keyword", T0)}
    assert await apply_number_opt_outs([PHONE]) == 0  # idempotent
    assert await Consent.all().count() == 3


async def test_a_lifted_opt_out_is_not_applied(db: str) -> None:
    await remember_number_choice(PHONE, CATEGORIES, suppressed=True, channel="sms",
                                 source="sms:keyword", reference="SM1", now=T0)
    await remember_number_choice(PHONE, ["care"], suppressed=False, channel="sms",
                                 source="sms:keyword", reference="SM2",
                                 now=T0 + timedelta(minutes=5))
    owner = await f.customer(phone=PHONE)
    assert await apply_number_opt_outs([PHONE]) == 2
    assert await consents(owner.id) == {("sms", "marketing"): False, ("sms", "reminder"): False}


async def test_the_customers_own_later_choice_stands(db: str) -> None:
    await remember_number_choice(PHONE, CATEGORIES, suppressed=True, channel="sms",
                                 source="sms:keyword", reference="SM1", now=T0)
    owner = await f.customer(phone=PHONE)
    await Consent.create(customer=owner, channel="sms", category=Category.CARE, granted=True,
                         source="sms:keyword", created_at=T0 + timedelta(days=1))
    assert await apply_number_opt_outs([PHONE]) == 2
    assert await consents(owner.id) == {("sms", "marketing"): False, ("sms", "care"): True,
                                        ("sms", "reminder"): False}


async def test_a_number_that_must_get_nothing_covers_every_channel_and_category(
    db: str,
) -> None:
    every = [c.value for c in Category]
    await remember_number_choice(PHONE, every, suppressed=True, channel="*",
                                 source="pipl:erasure", reference="REQ-7", now=T0)
    owner = await f.customer(phone=PHONE)
    assert await apply_number_opt_outs([PHONE]) == len(every)
    assert await consents(owner.id) == {("*", c): False for c in every}
