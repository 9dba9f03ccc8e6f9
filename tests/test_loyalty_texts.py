"""``bot/texts/loyalty.toml`` matches what the loyalty producers put in the outbox."""

from __future__ import annotations

import string
import tomllib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from bot.texts import Texts
from loyalty import ledger
from loyalty.config import LoyaltySettings
from loyalty.earning import earn_for_payment
from loyalty.jobs import queue_daily_summaries, queue_expiry_warnings
from loyalty.partners import create_partner, use_voucher
from loyalty.rewards import seed_rewards
from loyalty.vouchers import redeem
from storage.loyalty_models import EntryKind
from storage.models import Customer, Message, Payment, Policy, Product

TEMPLATES = Path(__file__).parent.parent / "bot" / "texts" / "loyalty.toml"
S = LoyaltySettings()
NOW = datetime(2026, 3, 15, 2, 0, tzinfo=UTC)


def _templates() -> dict[str, dict[str, object]]:
    return tomllib.loads(TEMPLATES.read_text(encoding="utf-8"))


def _placeholders(text: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}


def test_each_language_uses_exactly_the_declared_params() -> None:
    templates = _templates()
    assert set(templates) == {"voucher_issued", "voucher_used", "tier_upgrade",
                              "points_summary", "points_expiring"}
    for key, table in templates.items():
        params = set(table["params"])  # type: ignore[call-overload]
        for language in ("zh-CN", "en"):
            assert _placeholders(str(table[language])) == params, (key, language)
            sms = table["sms"][language]  # type: ignore[index]
            assert _placeholders(sms) <= params, (key, "sms", language)
            assert len(sms) <= 70, (key, "sms", language)  # one segment before params


async def test_every_queued_loyalty_message_fits_its_template(db: str) -> None:
    await seed_rewards(S)
    for language in ("zh-CN", "en"):
        owner = await Customer.create(name="李四", phone=f"+8613800{len(language):06d}",
                                      referral_code=f"T{language}", language=language)
        policy = await Policy.create(number=f"P-{language}", customer=owner,
                                     product=Product.COMMERCIAL, plate="沪A00001",
                                     start_date=date(2026, 1, 1), end_date=date(2026, 12, 31),
                                     premium_cents=600_000)
        payment = await Payment.create(external_id=f"X{language}", policy=policy, customer=owner,
                                       amount_cents=600_000, paid_at=NOW)
        await earn_for_payment(payment.id, settings=S, now=NOW)  # tier_upgrade
        await ledger.credit(owner.id, 1000, kind=EntryKind.ADJUSTMENT, key=f"old{language}",
                            now=datetime(2024, 3, 1, tzinfo=UTC), settings=S, reason="t",
                            operator="t")
        voucher = (await redeem(owner.id, "car_wash", request_key=f"k{language}", now=NOW,
                                settings=S)).voucher  # voucher_issued
        partner, _ = await create_partner(f"洗车{language}", ["car_wash"])
        await use_voucher(partner, voucher.code, now=NOW + timedelta(hours=1))  # voucher_used
    await queue_daily_summaries(date(2026, 3, 15), settings=S)
    await queue_expiry_warnings(date(2026, 3, 15), settings=S)

    templates = _templates()
    messages = await Message.all()
    assert {m.kind for m in messages} == set(templates)
    for message in messages:
        table = templates[message.template_key]
        assert set(message.params) == set(table["params"])  # type: ignore[call-overload]
        assert all(isinstance(v, str | int) for v in message.params.values())
        for language in ("zh-CN", "en"):
            assert Texts.load().render(message.template_key, language, message.params)
