"""Linking a Telegram account by the shared contact: own contact, someone else's, an unknown
number, re-linking with an SMS code read from the outbox, the hourly limit, referrals, and
unlinking."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from aiogram.fsm.storage.redis import RedisStorage
from redis.exceptions import ConnectionError as RedisConnectionError

from bot.delivery.recipients import load_recipients
from bot.settings import RedisSettings
from bot.telegram.accounts import CODE_TRIES
from bot.telegram.runtime import build_dispatcher, fsm_storage
from bot.telegram.updates import UpdateFeed
from storage.importer import import_csv
from storage.models import (
    Category,
    Customer,
    LinkAttempt,
    LinkCode,
    Message,
    TelegramAccount,
)
from tests import factories as f
from tests.test_telegram_support import Rig, User

pytest_plugins = ["tests.test_telegram_support"]


async def _account(user: User) -> TelegramAccount:
    return await TelegramAccount.get(telegram_user_id=user.id)


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
async def test_own_contact_links_the_account_in_the_customers_language(tg: Rig, lang: str) -> None:
    owner = await f.customer(name="王芳", phone="+8613800138000", language=lang)
    user = User(9001, "en-GB")
    await tg.send(user, "/start")
    await TelegramAccount.filter(telegram_user_id=user.id).update(blocked_at=tg.clock())
    await tg.contact(user, "8613800138000")  # Telegram sends the number without "+"
    account = await _account(user)
    assert (account.customer_id, account.chat_id, account.linked_at, account.blocked_at) == (
        owner.id, user.id, tg.clock(), None)
    reply = tg.last(user.id)
    assert reply["text"] == tg.t(lang)("tg_link_done", name="王芳")
    assert reply["reply_markup"]["keyboard"][0][0]["text"] == tg.t(lang)("tg_menu_report")
    [attempt] = await LinkAttempt.all()
    assert (attempt.outcome, attempt.phone) == ("linked", "+86*******8000")


@pytest.mark.parametrize("shared", ["85291234567", "+85291234567", "852 9123 4567"])
async def test_a_contact_is_read_with_its_country_code_plus_or_not(tg: Rig, shared: str) -> None:
    """Telegram sends the country code, not always the "+": a Hong Kong number is not read
    as a (too short) mainland one."""
    owner = await f.customer(name="陳大文", phone="+85291234567", language="en")
    user = User(9010, "zh-hk")
    await tg.contact(user, shared)
    assert (await _account(user)).customer_id == owner.id
    assert tg.last_text(user.id) == tg.t("en")("tg_link_done", name="陳大文")
    [attempt] = await LinkAttempt.all()
    assert (attempt.outcome, attempt.phone) == ("linked", "+852****4567")


async def test_someone_elses_contact_is_refused_and_nothing_is_linked(tg: Rig) -> None:
    await f.customer(phone="+8613800138000")
    user = User(9002, "en")
    await tg.contact(user, "+8613800138000", owner=123)
    assert tg.last_text(user.id) == tg.t("en")("tg_link_not_own_contact")
    assert (await _account(user)).customer_id is None
    assert [a.outcome for a in await LinkAttempt.all()] == ["not_own_contact"]


async def test_unknown_phone_gets_the_hotline_and_nothing_is_linked(tg: Rig) -> None:
    user = User(9003, "zh")
    await tg.contact(user, "+8613999999999")
    assert tg.last_text(user.id) == tg.t("zh-CN")("tg_link_no_match", hotline="95500")
    assert (await _account(user)).customer_id is None
    assert await TelegramAccount.filter(customer_id__isnull=False).count() == 0


async def test_relinking_a_phone_needs_the_sms_code_from_the_outbox(tg: Rig) -> None:
    owner, old = await tg.linked(language="en", phone="+8613800138001")
    new = User(9004, "en")
    await tg.contact(new, "+8613800138001")
    assert tg.last_text(new.id) == tg.t("en")("tg_link_code_sent", phone="+86*******8001")
    assert (await _account(new)).customer_id is None  # not yet
    [sms] = await Message.filter(kind="link_code")
    assert (sms.customer_id, sms.template_key, sms.channel_policy, sms.category) == (
        owner.id, "link_code", "sms_only", Category.SERVICE)
    code = sms.params["code"]
    [stored] = await LinkCode.all()
    assert code not in stored.code_hash and len(code) == 6

    wrong = "000000" if code != "000000" else "111111"
    await tg.send(new, wrong)
    assert tg.last_text(new.id) == tg.t("en")("tg_link_code_wrong", tries=CODE_TRIES - 1)
    await tg.send(new, f" {code} ")
    assert tg.last_text(new.id) == tg.t("en")("tg_link_done", name=owner.name)
    assert (await _account(new)).customer_id == owner.id
    former = await _account(old)
    assert (former.customer_id, former.linked_at) == (None, None)
    await tg.send(new, code)  # the code is spent: now it is just a number
    assert (await _account(new)).customer_id == owner.id
    await stored.refresh_from_db()
    assert stored.used_at == tg.clock()


async def test_an_expired_code_links_nothing(tg: Rig) -> None:
    owner, old = await tg.linked(phone="+8613800138002")
    new = User(9005)
    await tg.contact(new, "+8613800138002")
    code = (await Message.get(kind="link_code")).params["code"]
    tg.clock.advance(minutes=11)
    await tg.send(new, code)
    assert tg.last_text(new.id) == tg.t("zh-CN")("tg_link_code_expired")
    assert (await _account(new)).customer_id is None
    assert (await _account(old)).customer_id == owner.id


async def test_a_code_tried_too_often_is_dead_even_when_right(tg: Rig) -> None:
    await tg.linked(phone="+8613800138003")
    new = User(9006)
    await tg.contact(new, "+8613800138003")
    code = (await Message.get(kind="link_code")).params["code"]
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(CODE_TRIES):
        await tg.send(new, wrong)
    await tg.send(new, code)
    assert (await _account(new)).customer_id is None


async def test_without_sms_the_phone_moves_to_the_new_account_at_once(tg: Rig) -> None:
    tg.dispatcher["settings"] = f.settings_for(db_url="sqlite://unused", telegram_base="x")
    owner, old = await tg.linked(phone="+8613800138004")
    new = User(9007)
    await tg.contact(new, "+8613800138004")
    assert (await _account(new)).customer_id == owner.id
    assert (await _account(old)).customer_id is None
    assert await Message.filter(kind="link_code").count() == 0


async def test_at_most_five_link_attempts_per_hour(tg: Rig) -> None:
    user = User(9008, "en")
    for _ in range(5):
        await tg.contact(user, "+8613999999999")
    owner = await f.customer(phone="+8613800138005")
    await tg.contact(user, "+8613800138005")
    assert tg.last_text(user.id) == tg.t("en")("tg_link_rate_limited", hotline="95500")
    assert (await _account(user)).customer_id is None
    tg.clock.advance(hours=1, seconds=1)
    await tg.contact(user, "+8613800138005")
    assert (await _account(user)).customer_id == owner.id


async def test_referral_deep_link_records_the_referrer_of_a_new_customer(tg: Rig) -> None:
    referrer = await f.customer(name="推荐人")
    newcomer = await f.customer(phone="+8613800138006")
    user = User(9009)
    await tg.send(user, f"/start ref_{referrer.referral_code}")
    await tg.contact(user, "+8613800138006")
    await newcomer.refresh_from_db()
    assert newcomer.referred_by_id == referrer.id
    assert tg.last_text(user.id) == tg.t("zh-CN")("tg_referral_recorded")


@pytest.mark.parametrize("case", ["self", "already_referred", "has_policy"])
async def test_referral_is_not_recorded_for_self_or_an_existing_relationship(
    tg: Rig, case: str
) -> None:
    referrer = await f.customer()
    newcomer = await f.customer(phone="+8613800138007")
    code = newcomer.referral_code if case == "self" else referrer.referral_code
    before = None
    if case == "already_referred":
        before = (await f.customer()).id
        await Customer.filter(id=newcomer.id).update(referred_by_id=before)
    if case == "has_policy":
        await f.policy(newcomer)
    user = User(9010)
    await tg.send(user, f"/start ref_{code}")
    await tg.contact(user, "+8613800138007")
    await newcomer.refresh_from_db()
    assert newcomer.referred_by_id == before
    assert tg.last_text(user.id) == tg.t("zh-CN")("tg_link_done", name=newcomer.name)


async def test_unlink_after_confirmation(tg: Rig) -> None:
    owner, user = await tg.linked(language="en")
    await tg.send(user, "/unlink")
    await tg.press(user, "unl:0")
    assert (await _account(user)).customer_id == owner.id
    await tg.press(user, "unl:1")
    account = await _account(user)
    assert (account.customer_id, account.linked_at) == (None, None)
    assert tg.last_text(user.id) == tg.t("en")("tg_unlink_done")
    await tg.send(user, "/points")
    assert tg.last_text(user.id) == tg.t("en")("tg_link_first")


async def test_sharing_the_same_contact_again_says_already_linked(tg: Rig) -> None:
    owner, user = await tg.linked(phone="+8613800138008")
    await tg.contact(user, "+8613800138008")
    assert tg.last_text(user.id) == tg.t("zh-CN")("tg_link_already", name=owner.name)
    assert await Message.filter(kind="link_code").count() == 0



REDIS_URL = os.environ.get("ENGAGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


async def test_with_redis_the_conversation_continues_in_another_process(tg: Rig) -> None:
    """``redis.url`` set: the deep link read by one process is still there when another
    process handles the contact (aiogram RedisStorage, shared by both)."""
    settings = tg.settings.model_copy(update={"redis": RedisSettings(url=REDIS_URL)})
    first_storage, first_isolation = fsm_storage(settings)
    second_storage, second_isolation = fsm_storage(settings)
    assert isinstance(first_storage, RedisStorage)
    try:
        await first_storage.redis.ping()
    except (RedisConnectionError, OSError) as exc:
        await first_storage.close()
        await second_storage.close()
        pytest.skip(f"Redis not reachable at {REDIS_URL} ({exc}); CI provides one")
    referrer = await f.customer()
    newcomer = await f.customer(phone="+8613800138099")
    user = User(9099 + newcomer.id)
    try:
        for storage, isolation, text in ((first_storage, first_isolation, "start"),
                                         (second_storage, second_isolation, "contact")):
            dp = build_dispatcher(tg.settings, tg.texts, clock=tg.clock, storage=storage,
                                  isolation=isolation, bot_username="engage_test_bot")
            tg.feed = UpdateFeed(dp, tg.bot, tg.clock)
            if text == "start":
                await tg.send(user, f"/start ref_{referrer.referral_code}")
            else:
                await tg.contact(user, "+8613800138099")
    finally:
        await first_storage.close()
        await second_storage.close()
    await newcomer.refresh_from_db()
    assert newcomer.referred_by_id == referrer.id


# -- a phone several customers share ----------------------------------------------------------


async def test_a_phone_two_customers_share_links_both_and_switch_swaps_them(tg: Rig) -> None:
    husband = await f.customer(name="张伟", phone="+8613800138008")
    wife = await f.customer(name="李娜", phone="+8613800138008", language="en")
    await f.policy(husband, plate="沪A11111")
    await f.policy(wife, plate="沪B22222")
    user = User(9101, "zh")
    await tg.contact(user, "+8613800138008")
    account = await _account(user)
    assert (account.customer_id, account.second_customer_id) == (husband.id, wife.id)
    assert tg.last_text(user.id) == tg.t("zh-CN")("tg_link_done_shared", name="张伟",
                                                   other="李娜")
    # messages to either customer come to this chat
    recipients = await load_recipients([husband.id, wife.id], now=tg.clock())
    assert {r.telegram_chat_id for r in recipients.values()} == {user.id}

    await tg.send(user, "/switch")
    account = await _account(user)
    assert (account.customer_id, account.second_customer_id) == (wife.id, husband.id)
    assert tg.last_text(user.id) == tg.t("en")("tg_switch_done", name="李娜")
    await tg.send(user, "/policies")  # the chat now acts for her, in her language
    assert "沪B22222" in tg.last_text(user.id) and "沪A11111" not in tg.last_text(user.id)
    await tg.send(user, "/switch")
    assert (await _account(user)).customer_id == husband.id


async def test_switch_with_one_customer_says_there_is_no_one_to_switch_to(tg: Rig) -> None:
    _, user = await tg.linked(language="en")
    await tg.send(user, "/switch")
    assert tg.last_text(user.id) == tg.t("en")("tg_switch_single")


async def test_three_customers_on_a_phone_are_told_apart_by_a_policy_number(tg: Rig) -> None:
    people = [await f.customer(name=name, phone="+8613800138008") for name in
              ("张伟", "李娜", "王强")]
    policy = await f.policy(people[1], number="PDAA2026000123")
    await f.policy(await f.customer(phone="+8613900139000"), number="POTHER")
    user = User(9102, "zh")
    await tg.contact(user, "+8613800138008")
    assert tg.last_text(user.id) == tg.t("zh-CN")("tg_link_ask_policy")
    assert (await _account(user)).customer_id is None

    for wrong in ("PDAA2026000999", "POTHER"):  # someone else's policy says nothing either
        await tg.send(user, wrong)
        assert tg.last_text(user.id) == tg.t("zh-CN")("tg_link_wrong_policy", hotline="95500")
    assert (await _account(user)).customer_id is None
    await tg.send(user, f" {policy.number} ")
    account = await _account(user)
    assert (account.customer_id, account.second_customer_id) == (people[1].id, None)
    assert tg.last_text(user.id) == tg.t("zh-CN")("tg_link_done", name="李娜")
    assert [a.outcome for a in await LinkAttempt.all().order_by("id")] == [
        "ask_policy", "wrong_policy", "wrong_policy", "linked"]
    assert all("138008" not in a.phone for a in await LinkAttempt.all())


async def test_wrong_policy_numbers_count_against_the_hourly_limit(tg: Rig) -> None:
    for name in ("张伟", "李娜", "王强"):
        await f.customer(name=name, phone="+8613800138008")
    user = User(9103, "en")
    await tg.contact(user, "+8613800138008")
    limit = tg.settings.telegram.link_attempts_per_hour
    for _ in range(limit):
        await tg.send(user, "P-NOPE")
    assert tg.last_text(user.id) == tg.t("en")("tg_link_rate_limited", hotline="95500")
    assert (await _account(user)).customer_id is None


async def test_two_on_a_phone_one_linked_elsewhere_asks_for_the_policy_number(tg: Rig) -> None:
    her, her_user = await tg.linked(name="李娜", phone="+8613800138008")
    him = await f.customer(name="张伟", phone="+8613800138008")
    policy = await f.policy(him)
    user = User(9104, "zh")
    await tg.contact(user, "+8613800138008")
    assert tg.last_text(user.id) == tg.t("zh-CN")("tg_link_ask_policy")
    await tg.send(user, policy.number)
    assert (await _account(user)).customer_id == him.id
    assert (await _account(her_user)).customer_id == her.id  # hers stays hers


async def test_a_language_chosen_in_telegram_survives_the_nightly_import(
        tg: Rig, tmp_path: Path) -> None:
    owner, user = await tg.linked(language="zh-CN", phone="+8613800138000", name="王芳")
    await tg.press(user, "lang:en")
    chosen = await Customer.get(id=owner.id)
    assert (chosen.language, chosen.language_set_by, chosen.language_set_at) == (
        "en", "telegram", tg.clock())
    nightly = tmp_path / "customers.csv"
    nightly.write_text("phone,name,language\n13800138000,王芳,zh-CN\n", encoding="utf-8")
    report = await import_csv("customers", nightly, out=io.StringIO())
    assert report.kept == 1
    assert (await Customer.get(id=owner.id)).language == "en"
