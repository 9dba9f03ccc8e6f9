"""Reply and inline keyboards, built in the conversation's language."""

from __future__ import annotations

from collections.abc import Iterable

from aiogram.types import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
)
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.telegram.callbacks import (
    ClaimAction,
    ClaimCb,
    LanguageCb,
    PolicyAction,
    PolicyCb,
    RewardAction,
    RewardCb,
    SettingsAction,
    SettingsCb,
    UnlinkCb,
    UploadAction,
    UploadCb,
    VoucherAction,
    VoucherCb,
)
from bot.telegram.i18n import Translator

# The main menu, row by row (text keys); the same keys are the MenuButton filters.
MENU_ROWS: tuple[tuple[str, ...], ...] = (
    ("tg_menu_report",),
    ("tg_menu_policies", "tg_menu_claims", "tg_menu_upload"),
    ("tg_menu_points", "tg_menu_rewards", "tg_menu_vouchers"),
    ("tg_menu_checkin", "tg_menu_invite"),
    ("tg_menu_settings", "tg_menu_help"),
    ("tg_menu_agent", "tg_menu_complaint"),
)


def main_menu(t: Translator) -> ReplyKeyboardMarkup:
    return ReplyKeyboardMarkup(
        keyboard=[[KeyboardButton(text=t(key)) for key in row] for row in MENU_ROWS],
        resize_keyboard=True,
        input_field_placeholder=t("tg_menu_placeholder"),
    )


def share_contact(t: Translator) -> ReplyKeyboardMarkup:
    return ReplyKeyboardMarkup(
        keyboard=[[KeyboardButton(text=t("tg_share_contact_button"), request_contact=True)]],
        resize_keyboard=True,
        one_time_keyboard=True,
    )


def _one_per_row(buttons: Iterable[InlineKeyboardButton]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[button] for button in buttons])


def policies(items: Iterable[tuple[int, str]]) -> InlineKeyboardMarkup:
    """``items``: (policy id, button text)."""
    return _one_per_row(
        InlineKeyboardButton(text=text, callback_data=PolicyCb(action=PolicyAction.SHOW,
                                                               id=pid).pack())
        for pid, text in items
    )


def _back(t: Translator, data: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=t("tg_button_back"), callback_data=data)


def policy_detail(t: Translator, policy_id: int, *, renewable: bool) -> InlineKeyboardMarkup:
    rows = []
    if renewable:
        rows.append(InlineKeyboardButton(
            text=t("tg_renewal_button"),
            callback_data=PolicyCb(action=PolicyAction.RENEWAL, id=policy_id).pack()))
    rows.append(_back(t, PolicyCb(action=PolicyAction.LIST, id=0).pack()))
    return _one_per_row(rows)


def claims(items: Iterable[tuple[int, str]]) -> InlineKeyboardMarkup:
    return _one_per_row(
        InlineKeyboardButton(text=text, callback_data=ClaimCb(action=ClaimAction.SHOW,
                                                              id=cid).pack())
        for cid, text in items
    )


def claim_detail(t: Translator, claim_id: int, *, open_: bool) -> InlineKeyboardMarkup:
    rows = []
    if open_:
        rows.append(InlineKeyboardButton(
            text=t("tg_claim_upload_button"),
            callback_data=ClaimCb(action=ClaimAction.UPLOAD, id=claim_id).pack()))
    rows.append(_back(t, ClaimCb(action=ClaimAction.LIST, id=0).pack()))
    return _one_per_row(rows)


def upload_claims(items: Iterable[tuple[int, str]]) -> InlineKeyboardMarkup:
    return _one_per_row(
        InlineKeyboardButton(text=text, callback_data=UploadCb(action=UploadAction.CLAIM,
                                                               claim=cid).pack())
        for cid, text in items
    )


def upload_kinds(t: Translator, claim_id: int,
                 items: Iterable[tuple[str, str]]) -> InlineKeyboardMarkup:
    """``items``: (document kind, button text), two a row; then back to choosing the claim."""
    builder = InlineKeyboardBuilder()
    for kind, text in items:
        builder.button(text=text, callback_data=UploadCb(action=UploadAction.KIND,
                                                         claim=claim_id, kind=kind))
    builder.adjust(2)
    builder.row(_back(t, UploadCb(action=UploadAction.CLAIMS).pack()))
    return builder.as_markup()


def upload_receiving(t: Translator, claim_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[
        InlineKeyboardButton(text=t("tg_upload_other_kind_button"),
                             callback_data=UploadCb(action=UploadAction.KINDS,
                                                    claim=claim_id).pack()),
        InlineKeyboardButton(text=t("tg_upload_done_button"),
                             callback_data=UploadCb(action=UploadAction.DONE,
                                                    claim=claim_id).pack()),
    ]])


def rewards(items: Iterable[tuple[str, bool, str]]) -> InlineKeyboardMarkup:
    """``items``: (reward code, as a free tier benefit, button text)."""
    return _one_per_row(
        InlineKeyboardButton(text=text, callback_data=RewardCb(action=RewardAction.ASK,
                                                               code=code, free=free).pack())
        for code, free, text in items
    )


def confirm_reward(t: Translator, code: str, free: bool) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[
        InlineKeyboardButton(text=t("tg_button_confirm"),
                             callback_data=RewardCb(action=RewardAction.REDEEM, code=code,
                                                    free=free).pack()),
        InlineKeyboardButton(text=t("tg_button_cancel"),
                             callback_data=RewardCb(action=RewardAction.CANCEL).pack()),
    ]])


def vouchers(items: Iterable[tuple[int, str]]) -> InlineKeyboardMarkup:
    return _one_per_row(
        InlineKeyboardButton(text=text, callback_data=VoucherCb(action=VoucherAction.ASK,
                                                                id=vid).pack())
        for vid, text in items
    )


def confirm_voucher_cancel(t: Translator, voucher_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[
        InlineKeyboardButton(text=t("tg_button_confirm"),
                             callback_data=VoucherCb(action=VoucherAction.CANCEL,
                                                     id=voucher_id).pack()),
        InlineKeyboardButton(text=t("tg_button_cancel"),
                             callback_data=VoucherCb(action=VoucherAction.KEEP,
                                                     id=voucher_id).pack()),
    ]])


def settings(t: Translator, toggles: Iterable[tuple[str, str]], channel_text: str
             ) -> InlineKeyboardMarkup:
    """``toggles``: (category, button text)."""
    rows = [[InlineKeyboardButton(text=t("tg_settings_language_button"),
                                  callback_data=SettingsCb(action=SettingsAction.LANGUAGE).pack()),
             InlineKeyboardButton(text=t("tg_settings_city_button"),
                                  callback_data=SettingsCb(action=SettingsAction.CITY).pack())]]
    rows += [[InlineKeyboardButton(text=text, callback_data=SettingsCb(
        action=SettingsAction.TOGGLE, value=category).pack())] for category, text in toggles]
    rows.append([InlineKeyboardButton(text=channel_text, callback_data=SettingsCb(
        action=SettingsAction.CHANNEL).pack())])
    rows.append([InlineKeyboardButton(text=t("tg_settings_unlink_button"),
                                      callback_data=SettingsCb(
                                          action=SettingsAction.UNLINK).pack())])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def languages(t: Translator) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[
        InlineKeyboardButton(text=t("tg_language_name_zh"),
                             callback_data=LanguageCb(code="zh-CN").pack()),
        InlineKeyboardButton(text=t("tg_language_name_en"),
                             callback_data=LanguageCb(code="en").pack()),
    ]])


def confirm_unlink(t: Translator) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[
        InlineKeyboardButton(text=t("tg_button_confirm"),
                             callback_data=UnlinkCb(confirm=True).pack()),
        InlineKeyboardButton(text=t("tg_button_cancel"),
                             callback_data=UnlinkCb(confirm=False).pack()),
    ]])
