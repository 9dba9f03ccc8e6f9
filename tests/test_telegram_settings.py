"""/settings and /language: switches become Consent rows that the delivery policy reads, an
SMS opt-out is never overridden from Telegram, the preferred channel, and the language."""

from __future__ import annotations

from bot.delivery.policy import Recipient, Rules, Skip, allowed, choose_channel
from bot.delivery.recipients import load_recipients, record_sms_opt_out
from bot.sms.conversations import KEYWORD_SOURCE
from storage.models import Category, Channel, Consent, Customer, TelegramAccount
from tests.test_telegram_support import Rig, User

pytest_plugins = ["tests.test_telegram_support"]


async def _recipient(tg: Rig, owner: Customer) -> Recipient:
    return (await load_recipients([owner.id], now=tg.clock()))[owner.id]


async def _allowed(tg: Rig, owner: Customer, category: Category) -> tuple[bool, bool]:
    r = await _recipient(tg, owner)
    return allowed(r, Channel.TELEGRAM, category), allowed(r, Channel.SMS, category)


async def test_switching_a_category_off_stops_it_on_every_channel(tg: Rig) -> None:
    owner, user = await tg.linked(language="en")
    await tg.send(user, "/settings")
    assert await _allowed(tg, owner, Category.CARE) == (True, True)
    pressed = await tg.press(user, "set:toggle:care")
    assert await _allowed(tg, owner, Category.CARE) == (False, False)
    assert await _allowed(tg, owner, Category.REMINDER) == (True, True)
    # the evidence of each row: the update that asked for it
    assert set(await Consent.filter(customer_id=owner.id).values_list(
        "reference", flat=True)) == {f"update:{pressed.update_id}"}
    assert await _allowed(tg, owner, Category.SERVICE) == (True, True)
    rows = await Consent.filter(customer_id=owner.id).values_list("channel", "category",
                                                                  "granted")
    assert sorted(rows) == [("*", "care", False), ("sms", "care", False),
                            ("telegram", "care", False)]
    [edit] = tg.sent(user.id, "editMessageText")
    t = tg.t("en")
    assert t("tg_settings_toggle", category=t("tg_category_care"), state=t("tg_off")) in [
        b["text"] for row in edit["reply_markup"]["inline_keyboard"] for b in row]
    tg.clock.advance(minutes=1)
    await tg.press(user, "set:toggle:care")
    assert await _allowed(tg, owner, Category.CARE) == (True, True)


async def test_an_sms_opt_out_is_not_overridden_from_telegram(tg: Rig) -> None:
    owner, user = await tg.linked()
    await Consent.create(customer=owner, channel="sms", category=Category.CARE, granted=False,
                         source="sms_keyword", created_at=tg.clock())
    tg.clock.advance(minutes=1)
    await tg.press(user, "set:toggle:care")  # off
    tg.clock.advance(minutes=1)
    await tg.press(user, "set:toggle:care")  # on again
    assert await _allowed(tg, owner, Category.CARE) == (True, False)


async def test_an_sms_opt_out_shows_on_the_settings_screen(tg: Rig) -> None:
    owner, user = await tg.linked(language="en")
    await record_sms_opt_out(owner.id, ["care", "reminder"], source=KEYWORD_SOURCE,
                             now=tg.clock())
    await tg.send(user, "/settings")
    t = tg.t("en")
    assert tg.last_text(user.id) == t(
        "tg_settings", language="English", care=t("tg_on_but_sms_off"), alert=t("tg_on"),
        reminder=t("tg_on_but_sms_off"), marketing=t("tg_off"),
        channel=t("tg_channel_telegram")) + "\n\n" + t("tg_settings_sms_opted_out")
    # Switching care off and on again in Telegram leaves the SMS opt-out, and says so.
    tg.clock.advance(minutes=1)
    await tg.press(user, "set:toggle:care")
    tg.clock.advance(minutes=1)
    await tg.press(user, "set:toggle:care")
    [_, edit] = tg.sent(user.id, "editMessageText")
    assert t("tg_settings_toggle", category=t("tg_category_care"),
             state=t("tg_on_but_sms_off")) in [
        b["text"] for row in edit["reply_markup"]["inline_keyboard"] for b in row]
    assert edit["text"].endswith(t("tg_settings_sms_opted_out"))
    # A category switched off here (not by SMS) shows plainly as off, without the note.
    _, user2 = await tg.linked(language="en")
    await tg.press(user2, "set:toggle:care")
    [edit2] = tg.sent(user2.id, "editMessageText")
    assert t("tg_settings_sms_opted_out") not in edit2["text"]


async def test_preferring_sms_moves_notifications_but_not_service_messages(tg: Rig) -> None:
    owner, user = await tg.linked(language="en")
    await tg.press(user, "set:channel:")
    assert await _allowed(tg, owner, Category.REMINDER) == (False, True)
    assert await _allowed(tg, owner, Category.SERVICE) == (True, True)
    t = tg.t("en")
    assert t("tg_channel_sms") in tg.sent(user.id, "editMessageText")[-1]["text"]
    tg.clock.advance(minutes=1)
    await tg.press(user, "set:toggle:care")  # a switch keeps the preference
    await tg.send(user, "/settings")
    assert tg.last_text(user.id) == t("tg_settings", language="English", care=t("tg_off"),
                                      alert=t("tg_on"), reminder=t("tg_on"), marketing=t("tg_off"),
                                      channel=t("tg_channel_sms"))
    tg.clock.advance(minutes=1)
    await tg.press(user, "set:channel:")
    assert await _allowed(tg, owner, Category.REMINDER) == (True, True)


async def test_marketing_to_a_mainland_number_starts_off_and_needs_the_switch(tg: Rig) -> None:
    owner, user = await tg.linked(language="en")
    rules = tg.dispatcher["settings"]
    assert owner.phone.startswith("+86") and rules.delivery.marketing_requires_consent_prefixes
    await tg.send(user, "/settings")
    assert "Offers and campaigns: off" in tg.last_text(user.id)
    await tg.press(user, "set:toggle:marketing")
    recipient = await _recipient(tg, owner)
    channel = choose_channel(recipient, "marketing", "telegram_then_sms", Rules(
        quiet_start=rules.schedule.quiet_hours_start, quiet_end=rules.schedule.quiet_hours_end,
        quiet_exempt=frozenset(), weekly_cap=3, sms_enabled=True, telegram_enabled=True,
        marketing_consent_prefixes=("+86",)))
    assert channel == Channel.TELEGRAM and not isinstance(channel, Skip)


async def test_a_forged_switch_for_service_messages_changes_nothing(tg: Rig) -> None:
    owner, user = await tg.linked(language="en")
    await tg.press(user, "set:toggle:service")
    assert tg.last_text(user.id) == tg.t("en")("tg_not_found")
    assert await Consent.filter(customer_id=owner.id).count() == 0


async def test_language_switch_changes_the_customer_and_the_menu(tg: Rig) -> None:
    owner, user = await tg.linked(language="zh-CN")
    await tg.send(user, "/language")
    assert tg.last_text(user.id) == tg.t("zh-CN")("tg_language_choose")
    await tg.press(user, "lang:en")
    reply = tg.last(user.id)
    assert reply["text"] == "Language set to English."
    assert reply["reply_markup"]["keyboard"][1][0]["text"] == "📄 Policies"  # under 报案
    await owner.refresh_from_db()
    assert owner.language == "en"
    await tg.send(user, "/help")
    assert tg.last_text(user.id).startswith("The Anxing Insurance assistant can:")


async def test_an_unlinked_user_can_choose_a_language_before_linking(tg: Rig) -> None:
    user = User(8080, "zh-hans")
    await tg.send(user, "/language")
    await tg.press(user, "lang:en")
    assert (await TelegramAccount.get(telegram_user_id=8080)).language_code == "en"
    await tg.send(user, "/start")
    assert tg.last_text(user.id).startswith("Hello, welcome to Anxing Insurance")
