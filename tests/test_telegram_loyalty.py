"""The loyalty screens through Telegram: /points, /checkin, /rewards with redemption,
/vouchers with cancellation, /invite, and refusals answered by the error router."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from loyalty import ledger
from loyalty.codes import display
from loyalty.config import LoyaltySettings
from loyalty.rewards import seed_rewards
from storage.loyalty_models import EntryKind, LoyaltyAccount, Voucher, VoucherStatus
from storage.models import Customer, Message, Payment, Policy, Product
from tests import factories as f
from tests.test_telegram_support import Rig, button_data

pytest_plugins = ["tests.test_telegram_support"]


async def _credit(tg: Rig, owner: Customer, points: int, key: str, *,
                  at: datetime | None = None) -> None:
    await ledger.credit(owner.id, points, kind=EntryKind.ADJUSTMENT, key=key,
                        now=at or tg.clock() - timedelta(days=1), settings=tg.settings.loyalty,
                        reason="test", operator="test")


async def test_points_show_balance_expiry_entries_tier_and_the_next_tier(tg: Rig) -> None:
    owner, user = await tg.linked(language="en")
    # Earned 24 months ago: these lots expire at the end of this month (Nov 30).
    await _credit(tg, owner, 40, "old", at=datetime(2024, 11, 5, 4, 0, tzinfo=UTC))
    for n in range(11):
        await _credit(tg, owner, 10 + n, f"k{n}", at=tg.clock() - timedelta(days=20 - n))
    policy = await Policy.create(number="PX1", customer=owner, product=Product.COMMERCIAL,
                                 plate="沪A1", start_date=date(2026, 1, 1),
                                 end_date=date(2026, 12, 31), premium_cents=200_000)
    await Payment.create(external_id="pay1", policy=policy, customer=owner,
                         amount_cents=200_000, paid_at=datetime(2026, 5, 1, tzinfo=UTC))
    await tg.send(user, "/points")
    lines = tg.last_text(user.id).splitlines()
    t = tg.t("en")
    balance = 40 + sum(10 + n for n in range(11))
    assert lines[:2] == t("tg_points_summary", balance=balance, tier="Standard").splitlines()
    assert lines[2] == t("tg_points_expiring", points=40, date="2026-11-30")
    assert t("tg_points_next_tier", tier="Silver", missing="¥1,000.00") in lines
    assert t("tg_benefit_car_wash", count=1) in lines  # what Silver brings
    entries = lines[lines.index(t("tg_points_entries_header")) + 1:]
    assert len(entries) == 10
    assert entries[0] == t("tg_points_entry", date="2026-11-11", amount="+20", kind="adjustment")


async def test_check_in_once_per_local_day_with_the_streak(tg: Rig) -> None:
    owner, user = await tg.linked()
    t = tg.t("zh-CN")
    await tg.send(user, "/checkin")
    assert tg.last_text(user.id) == t("tg_checkin_done", points=5, streak=1)
    await tg.send(user, "/checkin")
    assert tg.last_text(user.id) == t("tg_checkin_already", streak=1)
    tg.clock.advance(days=1)
    await tg.send(user, t("tg_menu_checkin"))
    assert tg.last_text(user.id) == t("tg_checkin_done", points=5, streak=2)
    assert await ledger.get_balance(owner.id) == 10


async def test_redeeming_a_reward_after_confirmation_gives_a_voucher_once(tg: Rig) -> None:
    await seed_rewards(LoyaltySettings())
    owner, user = await tg.linked(language="en")
    await _credit(tg, owner, 1000, "seed")
    await tg.send(user, "/rewards")
    listing = tg.last(user.id)
    assert listing["text"].startswith(tg.t("en")("tg_rewards_header", balance=1000))
    assert "rwd:ask:car_wash:0" in button_data(listing)
    assert "rwd:ask:gift_dashcam:0" not in button_data(listing)  # needs Gold
    await tg.press(user, "rwd:ask:car_wash:0")
    assert tg.last_text(user.id) == tg.t("en")("tg_reward_confirm", name="Car wash", cost=300,
                                               balance=700)
    await tg.press(user, "rwd:redeem:car_wash:0", message_id=77)
    second = await tg.press(user, "rwd:redeem:car_wash:0", message_id=77)  # a double tap
    [voucher] = await Voucher.all()
    assert voucher.customer_id == owner.id and voucher.status == VoucherStatus.ISSUED
    assert tg.last_text(user.id).startswith(
        f"Done! Car wash\nVoucher code: {display(voucher.code)}\nValid until: 2027-02-19\n")
    assert await ledger.get_balance(owner.id) == 700
    # One confirmation, here in the chat: none from the outbox, none for the second tap.
    assert [t for t in tg.texts_to(user.id) if display(voucher.code) in t] == [
        tg.last_text(user.id)]
    assert await Message.filter(kind="voucher_issued").count() == 0
    assert second.callback_query is not None
    [note] = [r.params for r in tg.fake.requests_for("answerCallbackQuery")
              if r.params["callback_query_id"] == second.callback_query.id]
    assert note["text"] == tg.t("en")("tg_reward_already_redeemed")


async def test_the_rewards_screen_says_what_can_be_redeemed_and_for_how_much(tg: Rig) -> None:
    await seed_rewards(LoyaltySettings())
    owner, user = await tg.linked()
    await _credit(tg, owner, 1000, "seed")
    await tg.send(user, "/rewards")
    screen = tg.last(user.id)
    lines = screen["text"].splitlines()
    t = tg.t("zh-CN")
    assert lines[0] == t("tg_rewards_header", balance=1000)
    assert "· 精致洗车：300积分" in lines  # redeemable: in the text, not only on a button
    assert lines[-1] == t("tg_rewards_tap")
    redeemable = [line for line in lines[1:lines.index(t("tg_rewards_unavailable_header"))]]
    assert len(redeemable) == len(button_data(screen)) >= 1


async def test_the_next_tier_reads_naturally_in_chinese(tg: Rig) -> None:
    owner, user = await tg.linked()
    await _credit(tg, owner, 10, "seed")
    await tg.send(user, "/points")
    assert "近12个月累计保费再增加¥3,000.00，即可升级为银卡。" in tg.last_text(user.id).splitlines()


async def test_not_enough_points_gets_kind_words_and_changes_nothing(tg: Rig) -> None:
    await seed_rewards(LoyaltySettings())
    owner, user = await tg.linked(language="en")
    await _credit(tg, owner, 100, "seed")
    await tg.press(user, "rwd:redeem:car_wash:0")
    assert tg.last_text(user.id) == tg.t("en")("tg_error_insufficient_points", needed=300,
                                               balance=100)
    assert await Voucher.all().count() == 0
    assert await ledger.get_balance(owner.id) == 100


async def test_a_tier_benefit_is_free(tg: Rig) -> None:
    await seed_rewards(LoyaltySettings())
    owner, user = await tg.linked(language="en")
    await _credit(tg, owner, 1, "open")
    await LoyaltyAccount.filter(customer_id=owner.id).update(tier="silver")
    await tg.send(user, "/rewards")
    assert "rwd:ask:car_wash:1" in button_data(tg.last(user.id))
    await tg.press(user, "rwd:redeem:car_wash:1", message_id=5)
    [voucher] = await Voucher.all()
    assert (voucher.entitlement, voucher.points_cost) == (True, 0)


async def test_cancelling_an_unused_voucher_refunds_the_points(tg: Rig) -> None:
    await seed_rewards(LoyaltySettings())
    owner, user = await tg.linked()
    await _credit(tg, owner, 500, "seed")
    await tg.press(user, "rwd:redeem:car_wash:0", message_id=9)
    voucher = await Voucher.get()
    await tg.send(user, "/vouchers")
    listing = tg.last(user.id)
    assert display(voucher.code) in listing["text"]
    assert button_data(listing) == [f"vch:ask:{voucher.id}"]
    await tg.press(user, f"vch:ask:{voucher.id}")
    await tg.press(user, f"vch:cancel:{voucher.id}")
    assert tg.last_text(user.id) == tg.t("zh-CN")("tg_voucher_cancelled", name="精致洗车",
                                                  points=300)
    await voucher.refresh_from_db()
    assert voucher.status == VoucherStatus.CANCELLED
    assert await ledger.get_balance(owner.id) == 500


async def test_someone_elses_voucher_cannot_be_cancelled(tg: Rig) -> None:
    await seed_rewards(LoyaltySettings())
    _, user = await tg.linked(language="en")
    other = await f.customer()
    await _credit(tg, other, 500, "other")
    from loyalty.vouchers import redeem

    theirs = (await redeem(other.id, "car_wash", request_key="x", now=tg.clock(),
                           settings=tg.settings.loyalty)).voucher
    await tg.press(user, f"vch:cancel:{theirs.id}")
    assert tg.last_text(user.id) == tg.t("en")("tg_not_found")
    await theirs.refresh_from_db()
    assert theirs.status == VoucherStatus.ISSUED


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
async def test_invite_gives_the_personal_deep_link_and_the_referral_count(
    tg: Rig, lang: str
) -> None:
    owner, user = await tg.linked(language=lang)
    friend = await f.customer(referred_by=owner)
    await ledger.credit(owner.id, 200, kind=EntryKind.REFERRAL, key=f"referral:{friend.id}",
                        now=tg.clock(), settings=tg.settings.loyalty)
    await tg.send(user, "/invite")
    assert tg.last_text(user.id) == tg.t(lang)(
        "tg_invite", link=f"https://t.me/engage_test_bot?start=ref_{owner.referral_code}",
        count=1)
