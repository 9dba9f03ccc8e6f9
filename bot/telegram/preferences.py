"""/settings (notifications per category, preferred channel, language, unlink) and /language.
What a switch means for each channel is decided in ``bot.telegram.consents``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject, or_f
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message, Update

from bot.settings import Settings
from bot.telegram import accounts, consents, keyboards
from bot.telegram.accounts import Account, Policyholder
from bot.telegram.callbacks import LanguageCb, SettingsAction, SettingsCb
from bot.telegram.context import LINKED
from bot.telegram.filters import MenuButton
from bot.telegram.i18n import Translator
from bot.texts import LANGUAGES, Texts
from storage.models import Category, Channel


def screen(t: Translator, prefs: consents.Preferences) -> tuple[str, InlineKeyboardMarkup]:
    def state(category: Category) -> str:
        if not prefs.is_on(category):
            return t("tg_off")
        return t("tg_on_but_sms_off") if prefs.sms_off(category) else t("tg_on")

    channel = t(f"tg_channel_{prefs.preferred}")
    text = t("tg_settings", language=t("tg_language_name_en" if t.lang == "en"
                                       else "tg_language_name_zh"),
             care=state(Category.CARE), alert=state(Category.ALERT),
             reminder=state(Category.REMINDER),
             marketing=state(Category.MARKETING), channel=channel)
    if prefs.sms_opted_out:
        text += "\n\n" + t("tg_settings_sms_opted_out")
    toggles = [(c.value, t("tg_settings_toggle", category=t(f"tg_category_{c}"),
                           state=state(c))) for c in consents.SWITCHABLE]
    return text, keyboards.settings(t, toggles, t("tg_settings_channel_button", channel=channel))


async def show_settings(message: Message, customer: Policyholder, t: Translator,
                        settings: Settings) -> None:
    prefs = await consents.load_preferences(
        customer.id, customer.phone,
        marketing_consent_prefixes=settings.delivery.marketing_requires_consent_prefixes)
    text, markup = screen(t, prefs)
    await message.answer(text, reply_markup=markup)


async def change(query: CallbackQuery, callback_data: SettingsCb, bot: Bot, customer: Policyholder,
                 t: Translator, settings: Settings, clock: Callable[[], datetime],
                 event_update: Update) -> None:
    await query.answer()
    reference = f"update:{event_update.update_id}"  # the consent's evidence
    prefixes = settings.delivery.marketing_requires_consent_prefixes
    current = await consents.load_preferences(customer.id, customer.phone,
                                              marketing_consent_prefixes=prefixes)
    if callback_data.action == SettingsAction.TOGGLE:
        try:
            category = Category(callback_data.value)
        except ValueError:
            category = Category.SERVICE  # forged: refused just below
        if category not in consents.SWITCHABLE:
            await bot.send_message(query.from_user.id, t("tg_not_found"))
            return
        prefs = await consents.set_category(customer.id, customer.phone, category,
                                            not current.is_on(category), now=clock(),
                                            marketing_consent_prefixes=prefixes,
                                            reference=reference)
    else:
        other = Channel.SMS if current.preferred is Channel.TELEGRAM else Channel.TELEGRAM
        prefs = await consents.set_preferred_channel(customer.id, customer.phone, other,
                                                     now=clock(),
                                                     marketing_consent_prefixes=prefixes,
                                                     reference=reference)
    text, markup = screen(t, prefs)
    if isinstance(query.message, Message):
        await query.message.edit_text(text, reply_markup=markup)
    else:
        await bot.send_message(query.from_user.id, text, reply_markup=markup)


# What people type after /language, lower-cased.
LANGUAGE_WORDS: dict[str, str] = {
    "zh": "zh-CN", "zh-cn": "zh-CN", "zh_cn": "zh-CN", "cn": "zh-CN", "chinese": "zh-CN",
    "中文": "zh-CN", "简体中文": "zh-CN", "汉语": "zh-CN",
    "en": "en", "english": "en", "英文": "en", "英语": "en",
}


async def _switch(bot: Bot, chat_id: int, account: Account, customer: Policyholder | None,
                  texts: Texts, code: str, *, now: datetime) -> None:
    """Switch the conversation (and a linked customer's messages) to ``code`` and say so in
    it, with the menu in that language; the customer's own choice, made at ``now``."""
    await accounts.set_language(account, code, now=now)
    t = Translator(texts, code)
    menu = keyboards.main_menu(t) if customer is not None else keyboards.share_contact(t)
    await bot.send_message(chat_id, t("tg_language_set"), reply_markup=menu)


async def language_command(message: Message, command: CommandObject, bot: Bot,
                           account: Account | None, customer: Policyholder | None,
                           texts: Texts, t: Translator, clock: Callable[[], datetime]) -> None:
    """``/language en`` switches at once; ``/language`` alone (or an unknown word) asks."""
    code = LANGUAGE_WORDS.get((command.args or "").strip().lower())
    if code is None or account is None:
        await message.answer(t("tg_language_choose"), reply_markup=keyboards.languages(t))
        return
    await _switch(bot, message.chat.id, account, customer, texts, code, now=clock())


async def language_button(query: CallbackQuery, bot: Bot, t: Translator) -> None:
    await query.answer()
    await bot.send_message(query.from_user.id, t("tg_language_choose"),
                           reply_markup=keyboards.languages(t))


async def ask_unlink(query: CallbackQuery, bot: Bot, t: Translator) -> None:
    await query.answer()
    await bot.send_message(query.from_user.id, t("tg_unlink_confirm"),
                           reply_markup=keyboards.confirm_unlink(t))


async def set_language(query: CallbackQuery, callback_data: LanguageCb, bot: Bot,
                       account: Account | None, customer: Policyholder | None,
                       texts: Texts, clock: Callable[[], datetime]) -> None:
    await query.answer()
    if account is None or callback_data.code not in LANGUAGES:
        return
    await _switch(bot, query.from_user.id, account, customer, texts, callback_data.code,
                  now=clock())


def get_router() -> Router:
    router = Router(name=__name__)
    router.message.register(show_settings,
                            or_f(Command("settings"), MenuButton("tg_menu_settings")),
                            flags=LINKED)
    router.message.register(language_command, Command("language"))
    router.callback_query.register(
        change, SettingsCb.filter(F.action.in_({SettingsAction.TOGGLE, SettingsAction.CHANNEL})),
        flags=LINKED)
    router.callback_query.register(language_button,
                                   SettingsCb.filter(F.action == SettingsAction.LANGUAGE))
    router.callback_query.register(ask_unlink, SettingsCb.filter(F.action == SettingsAction.UNLINK),
                                   flags=LINKED)
    router.callback_query.register(set_language, LanguageCb.filter())
    return router
