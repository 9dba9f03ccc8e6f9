"""The accident report's keyboards: every step's buttons end with "back" and "cancel"."""

from __future__ import annotations

from collections.abc import Iterable

from aiogram.types import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
)
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.accident.drafts import Step
from bot.telegram.callbacks import ReportAction, ReportCb
from bot.telegram.i18n import Translator


def _button(text: str, action: ReportAction, value: str = "") -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=ReportCb(action=action,
                                                                  value=value).pack())


def _with_exits(t: Translator, rows: list[list[InlineKeyboardButton]], step: Step, *,
                back: bool = True) -> InlineKeyboardMarkup:
    """``step``: the step the keyboard is shown for; "back" carries it, so a second tap on an
    old "back" does not go back twice."""
    exits = [_button(t("tg_button_back"), ReportAction.BACK, step.value)] if back else []
    exits.append(_button(t("tg_button_cancel"), ReportAction.CANCEL))
    return InlineKeyboardMarkup(inline_keyboard=[*rows, exits])


def exits(t: Translator, step: Step) -> InlineKeyboardMarkup:
    return _with_exits(t, [], step)


def safety(t: Translator) -> InlineKeyboardMarkup:
    return _with_exits(t, [[_button(t("tg_report_danger_button"), ReportAction.DANGER)],
                           [_button(t("tg_report_safe_button"), ReportAction.SAFE)]],
                       Step.SAFETY, back=False)


def emergency(t: Translator) -> InlineKeyboardMarkup:
    return _with_exits(t, [[_button(t("tg_report_go_button"), ReportAction.GO)]], Step.EMERGENCY)


def cars(t: Translator, items: Iterable[tuple[int, str]]) -> InlineKeyboardMarkup:
    """``items``: (policy id, button text)."""
    return _with_exits(t, [[_button(text, ReportAction.CAR, str(pid))] for pid, text in items],
                       Step.CAR)


def when(t: Translator) -> InlineKeyboardMarkup:
    return _with_exits(t, [[_button(t("tg_report_now_button"), ReportAction.NOW)],
                           [_button(t("tg_report_pick_button"), ReportAction.PICK)]], Step.WHEN)


def days(t: Translator, items: Iterable[tuple[str, str]]) -> InlineKeyboardMarkup:
    """``items``: (ISO date, label), newest first, four a row."""
    builder = InlineKeyboardBuilder()
    for value, text in items:
        builder.button(text=text, callback_data=ReportCb(action=ReportAction.DAY, value=value))
    builder.adjust(4)
    return _with_exits(t, builder.export(), Step.WHEN_DAY)


def hours(t: Translator, items: Iterable[int]) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for hour in items:
        builder.button(text=f"{hour:02d}:00",
                       callback_data=ReportCb(action=ReportAction.HOUR, value=f"{hour:02d}"))
    builder.adjust(6)
    return _with_exits(t, builder.export(), Step.WHEN_HOUR)


def share_location(t: Translator) -> ReplyKeyboardMarkup:
    return ReplyKeyboardMarkup(
        keyboard=[[KeyboardButton(text=t("tg_report_location_button"), request_location=True)]],
        resize_keyboard=True, one_time_keyboard=True,
        input_field_placeholder=t("tg_report_where_placeholder"))


def accident_types(t: Translator, kinds: Iterable[str]) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for kind in kinds:
        builder.button(text=t(f"tg_report_type_{kind}"),
                       callback_data=ReportCb(action=ReportAction.TYPE, value=kind))
    builder.adjust(2)
    return _with_exits(t, builder.export(), Step.WHAT)


def other_party(t: Translator) -> InlineKeyboardMarkup:
    return _with_exits(t, [[_button(t("tg_report_no_party_button"), ReportAction.NO_PARTY)]],
                       Step.OTHER_PARTY)


def photos(t: Translator, count: int) -> InlineKeyboardMarkup:
    text = t("tg_report_photos_done_button", count=count) if count \
        else t("tg_report_photos_skip_button")
    return _with_exits(t, [[_button(text, ReportAction.PHOTOS_DONE)]], Step.PHOTOS)


def phone(t: Translator) -> InlineKeyboardMarkup:
    return _with_exits(t, [[_button(t("tg_report_phone_ok_button"), ReportAction.PHONE_OK)]],
                       Step.PHONE)


def confirm(t: Translator) -> InlineKeyboardMarkup:
    return _with_exits(t, [[_button(t("tg_report_submit_button"), ReportAction.SUBMIT)]],
                       Step.CONFIRM)
