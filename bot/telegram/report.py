"""/report and the 我要报案 button: report an accident, step by step, safety first.

The steps (``bot.accident.drafts.Step``): is anyone hurt or is the car blocking traffic (yes →
120, 122 and the hotline first), which car, when, where (a shared location or an address),
what happened, another vehicle's plate, photos (the upload pipeline: declared size, content
type, de-duplication, albums with one running count), the contact phone, then a summary to
confirm. Every step has "back" and "cancel".

The report's state is its ``ReportDraft`` row, read on every answer: a restart, or another
process, continues where the customer was. The conversation state (``ReportFlow.active``) only
routes typed text, locations and files here; ``restore`` sets it again at start-up for every
open draft, so memory storage loses nothing either.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiogram import Bot, Dispatcher, F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, StateFilter, or_f
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message

from bot.accident import drafts
from bot.accident.drafts import ACCIDENT_TYPES, LOOKBACK_DAYS, ReportRefused, Step
from bot.documents import UploadLimits, UploadRejected, check_declared_size, store_document
from bot.settings import Settings
from bot.telegram import keyboards
from bot.telegram import report_keyboards as kb
from bot.telegram.accounts import Policyholder
from bot.telegram.callbacks import ReportAction, ReportCb
from bot.telegram.claim_documents import stored_name
from bot.telegram.context import LINKED
from bot.telegram.filters import Magic, MenuButton
from bot.telegram.i18n import Translator, labels
from bot.telegram.uploads import download_file, incoming, rejection_text
from bot.texts import Texts
from storage.accident_models import DraftStatus, ReportDraft
from storage.models import Channel, Document
from storage.phones import InvalidPhone, mask_phone, normalise_phone

log = logging.getLogger(__name__)

_KEPT_ALBUMS = 5
_MAX_TEXT = 500
_PLATE = re.compile(r"^[\w·-]{5,12}$")
_TYPED_TIME = re.compile(
    r"^(?:(?:(?P<y>\d{4})[-/.])?(?P<m>\d{1,2})[-/.](?P<d>\d{1,2})\s+)?(?P<H>\d{1,2})[:：](?P<M>\d{2})$")

ACTIONS: dict[Step, frozenset[ReportAction]] = {
    Step.SAFETY: frozenset({ReportAction.SAFE, ReportAction.DANGER}),
    Step.EMERGENCY: frozenset({ReportAction.GO}),
    Step.CAR: frozenset({ReportAction.CAR}),
    Step.WHEN: frozenset({ReportAction.NOW, ReportAction.PICK}),
    Step.WHEN_DAY: frozenset({ReportAction.DAY}),
    Step.WHEN_HOUR: frozenset({ReportAction.HOUR}),
    Step.WHERE: frozenset(),
    Step.WHAT: frozenset({ReportAction.TYPE}),
    Step.OTHER_PARTY: frozenset({ReportAction.NO_PARTY}),
    Step.PHOTOS: frozenset({ReportAction.PHOTOS_DONE}),
    Step.PHONE: frozenset({ReportAction.PHONE_OK}),
    Step.CONFIRM: frozenset({ReportAction.SUBMIT}),
}
"""The buttons each step answers (back and cancel everywhere); others are stale."""


class ReportFlow(StatesGroup):
    active = State()


@dataclass(frozen=True, slots=True)
class Turn:
    """One answer of one customer: what every step's prompt and handler needs."""

    bot: Bot
    chat_id: int
    t: Translator
    customer: Policyholder
    settings: Settings
    now: datetime
    state: FSMContext

    async def say(self, text: str, **extra: Any) -> Message:
        return await self.bot.send_message(self.chat_id, text, **extra)

    def local(self, moment: datetime) -> str:
        return self.t.moment(moment, self.customer.timezone)


def _turn(bot: Bot, chat_id: int, t: Translator, customer: Policyholder, settings: Settings,
          clock: Callable[[], datetime], state: FSMContext) -> Turn:
    return Turn(bot, chat_id, t, customer, settings, clock(), state)


# -- prompts, one per step ---------------------------------------------------------------------


async def _ask_safety(turn: Turn, draft: ReportDraft) -> None:
    await turn.say(turn.t("tg_report_safety"), reply_markup=kb.safety(turn.t))


async def _ask_emergency(turn: Turn, draft: ReportDraft) -> None:
    await turn.say(turn.t("tg_report_emergency", hotline=turn.settings.company.hotline),
                   reply_markup=kb.emergency(turn.t))


async def _ask_car(turn: Turn, draft: ReportDraft) -> None:
    cars = await drafts.cars(turn.customer.id, drafts.local_day(turn.now, turn.customer.timezone))
    if not cars:
        await drafts.close(draft, DraftStatus.CANCELLED, now=turn.now)
        await turn.state.set_state(None)
        await turn.say(turn.t("tg_report_refused_no_policy",
                              hotline=turn.settings.company.hotline),
                       reply_markup=keyboards.main_menu(turn.t))
        return
    await turn.say(turn.t("tg_report_car"), reply_markup=kb.cars(turn.t, (
        (car.policy_id, f"{car.plate} {car.vehicle}".strip()) for car in cars)))


async def _ask_when(turn: Turn, draft: ReportDraft) -> None:
    await turn.say(turn.t("tg_report_when", days=LOOKBACK_DAYS), reply_markup=kb.when(turn.t))


async def _ask_day(turn: Turn, draft: ReportDraft) -> None:
    today = drafts.local_day(turn.now, turn.customer.timezone)
    days = [today - timedelta(days=n) for n in range(LOOKBACK_DAYS + 1)]
    items = [(day.isoformat(), turn.t("tg_report_today") if day == today else f"{day:%m-%d}")
             for day in days]
    await turn.say(turn.t("tg_report_day"), reply_markup=kb.days(turn.t, items))


async def _ask_hour(turn: Turn, draft: ReportDraft) -> None:
    day = datetime.fromisoformat(str(draft.data["day"])).date()
    local_now = turn.now.astimezone(drafts.local_zone(turn.customer.timezone))
    last = local_now.hour if day == local_now.date() else 23
    await turn.say(turn.t("tg_report_hour", day=turn.t.day(day)),
                   reply_markup=kb.hours(turn.t, range(last + 1)))


async def _ask_where(turn: Turn, draft: ReportDraft) -> None:
    await turn.say(turn.t("tg_report_where"), reply_markup=kb.exits(turn.t, Step.WHERE))
    await turn.say(turn.t("tg_report_where_button_hint"), reply_markup=kb.share_location(turn.t))


async def _ask_what(turn: Turn, draft: ReportDraft) -> None:
    await turn.say(turn.t("tg_report_what"), reply_markup=kb.accident_types(turn.t,
                                                                            ACCIDENT_TYPES))


async def _ask_other_party(turn: Turn, draft: ReportDraft) -> None:
    await turn.say(turn.t("tg_report_other_party"), reply_markup=kb.other_party(turn.t))


async def _ask_photos(turn: Turn, draft: ReportDraft) -> None:
    count = len(draft.data.get("documents", []))
    await turn.say(turn.t("tg_report_photos", count=count,
                          max_mb=turn.settings.uploads.max_bytes // (1024 * 1024)),
                   reply_markup=kb.photos(turn.t, count))


async def _ask_phone(turn: Turn, draft: ReportDraft) -> None:
    phone = str(draft.data.get("phone") or turn.customer.phone)
    await turn.say(turn.t("tg_report_phone", phone=phone), reply_markup=kb.phone(turn.t))


async def _ask_confirm(turn: Turn, draft: ReportDraft) -> None:
    await turn.say(summary(turn.t, draft.data, turn.customer),
                   reply_markup=kb.confirm(turn.t))


PROMPTS: dict[Step, Callable[[Turn, ReportDraft], Awaitable[None]]] = {
    Step.SAFETY: _ask_safety, Step.EMERGENCY: _ask_emergency, Step.CAR: _ask_car,
    Step.WHEN: _ask_when, Step.WHEN_DAY: _ask_day, Step.WHEN_HOUR: _ask_hour,
    Step.WHERE: _ask_where, Step.WHAT: _ask_what, Step.OTHER_PARTY: _ask_other_party,
    Step.PHOTOS: _ask_photos, Step.PHONE: _ask_phone, Step.CONFIRM: _ask_confirm,
}


async def _go(turn: Turn, draft: ReportDraft, step: Step, **answers: Any) -> None:
    await drafts.advance(draft, step, now=turn.now, **answers)
    await turn.state.set_state(ReportFlow.active)
    await PROMPTS[step](turn, draft)


# -- texts of the answers ----------------------------------------------------------------------


def place_text(t: Translator, where: dict[str, Any]) -> str:
    if where.get("address"):
        return str(where["address"])
    if where.get("latitude") is not None:
        return t("tg_report_place_location", latitude=f"{float(where['latitude']):.5f}",
                 longitude=f"{float(where['longitude']):.5f}")
    return "—"


def what_text(t: Translator, data: dict[str, Any]) -> str:
    kind = t(f"tg_report_type_{data.get('type') or 'other'}")
    details = str(data.get("description") or "")
    return t("tg_report_what_detail", kind=kind, details=details) if details else kind


def summary(t: Translator, data: dict[str, Any], customer: Policyholder) -> str:
    return t("tg_report_summary",
             danger=t("tg_report_danger_yes" if data.get("danger") else "tg_report_danger_no"),
             plate=str(data.get("plate", "")),
             time=t.moment(datetime.fromisoformat(str(data["occurred_at"])), customer.timezone),
             place=place_text(t, data.get("where") or {}),
             what=what_text(t, data),
             other=str(data.get("other_plate") or t("tg_report_no_other")),
             photos=len(data.get("documents", [])),
             phone=str(data.get("phone") or customer.phone))


def description(t: Translator, data: dict[str, Any]) -> str:
    """The claim's description, as operators and the customer read it."""
    return t("tg_report_description", what=what_text(t, data),
             place=place_text(t, data.get("where") or {}),
             other=str(data.get("other_plate") or t("tg_report_no_other")))


def refusal(t: Translator, refused: ReportRefused, settings: Settings) -> str:
    detail = refused.detail
    if refused.reason == "not_in_force":
        start, end = detail.get("start"), detail.get("end")
        period = f"{t.day(start)} – {t.day(end)}" if start and end else "—"
        key = "tg_report_refused_cancelled" if detail.get("cancelled") \
            else "tg_report_refused_not_in_force"
        return t(key, plate=str(detail.get("plate", "")), period=period)
    if refused.reason == "daily_limit":
        return t("tg_report_refused_daily_limit", limit=int(detail.get("limit", 0)),
                 hotline=settings.company.hotline)
    if refused.reason == "too_early":
        return t("tg_report_refused_too_early", days=LOOKBACK_DAYS,
                 hotline=settings.company.hotline)
    if refused.reason == "in_future":
        return t("tg_report_refused_in_future")
    return t("tg_report_gone")


# -- entry, resume, back, cancel ---------------------------------------------------------------


async def start_report(message: Message, bot: Bot, state: FSMContext, customer: Policyholder,
                       t: Translator, settings: Settings,
                       clock: Callable[[], datetime]) -> None:
    turn = _turn(bot, message.chat.id, t, customer, settings, clock, state)
    try:
        draft, new = await drafts.start(customer.id, message.from_user.id if message.from_user
                                        else message.chat.id, message.chat.id,
                                        timezone=customer.timezone,
                                        max_per_day=settings.report.max_per_day, now=turn.now)
    except ReportRefused as refused:
        await turn.say(refusal(t, refused, settings))
        return
    await state.set_data({})  # whatever flow was in progress (an upload) ends here
    await state.set_state(ReportFlow.active)
    if not new:
        await turn.say(t("tg_report_resumed"))
    await PROMPTS[Step(draft.step)](turn, draft)


async def _current(turn: Turn) -> ReportDraft | None:
    """The open draft; none (expired, finished elsewhere) → the state is cleared and the
    customer told."""
    draft = await drafts.open_draft(turn.customer.id)
    if draft is None:
        await turn.state.set_state(None)
        await turn.say(turn.t("tg_report_gone"), reply_markup=keyboards.main_menu(turn.t))
    return draft


async def _cancel(turn: Turn, draft: ReportDraft) -> None:
    await drafts.close(draft, DraftStatus.CANCELLED, now=turn.now)
    await turn.state.set_state(None)
    await turn.say(turn.t("tg_report_cancelled", hotline=turn.settings.company.hotline),
                   reply_markup=keyboards.main_menu(turn.t))


# -- buttons -----------------------------------------------------------------------------------


async def pressed(query: CallbackQuery, callback_data: ReportCb, bot: Bot, state: FSMContext,
                  customer: Policyholder, t: Translator, settings: Settings,
                  clock: Callable[[], datetime]) -> None:
    turn = _turn(bot, query.from_user.id, t, customer, settings, clock, state)
    draft = await drafts.open_draft(customer.id)
    if draft is None or _stale(callback_data, Step(draft.step)):
        await query.answer(t("tg_button_expired"), show_alert=True)
        return
    await query.answer()
    if isinstance(query.message, Message):  # the buttons answered are spent
        with suppress(TelegramBadRequest):  # too old to edit, or edited already
            await bot.edit_message_reply_markup(chat_id=turn.chat_id,
                                                message_id=query.message.message_id,
                                                reply_markup=None)
    await ANSWERS[callback_data.action](turn, draft, callback_data.value)


def _stale(data: ReportCb, step: Step) -> bool:
    """A button of another step than the draft's (an old message, a double tap); cancel
    works from anywhere."""
    if data.action is ReportAction.CANCEL:
        return False
    if data.action is ReportAction.BACK:
        return data.value != step.value
    return data.action not in ACTIONS[step]


async def _back(turn: Turn, draft: ReportDraft, value: str) -> None:
    step = Step(draft.step)
    if step == Step.SAFETY:
        await _cancel(turn, draft)
        return
    await _go(turn, draft, drafts.BACK[step])


async def _cancel_pressed(turn: Turn, draft: ReportDraft, value: str) -> None:
    await _cancel(turn, draft)


async def _safe(turn: Turn, draft: ReportDraft, value: str) -> None:
    await _go(turn, draft, Step.CAR, danger=False)


async def _danger(turn: Turn, draft: ReportDraft, value: str) -> None:
    log.info("accident report %d: injury or blocked traffic, emergency numbers shown", draft.id)
    await _go(turn, draft, Step.EMERGENCY, danger=True)


async def _on_after_emergency(turn: Turn, draft: ReportDraft, value: str) -> None:
    await _go(turn, draft, Step.CAR)


async def _car(turn: Turn, draft: ReportDraft, value: str) -> None:
    policy = await drafts.own_policy(turn.customer.id, int(value)) if value.isdigit() else None
    if policy is None:
        log.warning("accident report %d: policy %s is not customer %d's", draft.id, value,
                    turn.customer.id)
        await turn.say(turn.t("tg_not_found"))
        await PROMPTS[Step.CAR](turn, draft)
        return
    await _go(turn, draft, Step.WHEN, plate=policy.plate)


async def _when_chosen(turn: Turn, draft: ReportDraft, moment: datetime) -> None:
    """The accident time: in the last 30 days and covered by a policy of the chosen car."""
    try:
        drafts.check_moment(moment, now=turn.now)
        await drafts.policy_on(turn.customer.id, str(draft.data["plate"]),
                               drafts.local_day(moment, turn.customer.timezone))
    except ReportRefused as refused:
        await turn.say(refusal(turn.t, refused, turn.settings))
        await _go(turn, draft, Step.WHEN)
        return
    await _go(turn, draft, Step.WHERE, occurred_at=moment.astimezone(UTC).isoformat())


async def _now(turn: Turn, draft: ReportDraft, value: str) -> None:
    await _when_chosen(turn, draft, turn.now)


async def _pick(turn: Turn, draft: ReportDraft, value: str) -> None:
    await _go(turn, draft, Step.WHEN_DAY)


async def _day(turn: Turn, draft: ReportDraft, value: str) -> None:
    try:
        day = datetime.fromisoformat(value).date()
    except ValueError:
        await PROMPTS[Step.WHEN_DAY](turn, draft)
        return
    today = drafts.local_day(turn.now, turn.customer.timezone)
    if not timedelta(0) <= today - day <= timedelta(days=LOOKBACK_DAYS):
        await turn.say(refusal(turn.t, ReportRefused("too_early"), turn.settings))
        await PROMPTS[Step.WHEN_DAY](turn, draft)
        return
    await _go(turn, draft, Step.WHEN_HOUR, day=day.isoformat())


async def _hour(turn: Turn, draft: ReportDraft, value: str) -> None:
    day = datetime.fromisoformat(str(draft.data["day"])).date()
    hour = int(value) if value.isdigit() and int(value) < 24 else 0
    moment = datetime(day.year, day.month, day.day, hour,
                      tzinfo=drafts.local_zone(turn.customer.timezone))
    await _when_chosen(turn, draft, moment)


async def _type(turn: Turn, draft: ReportDraft, value: str) -> None:
    kind = value if value in ACCIDENT_TYPES else "other"
    await _go(turn, draft, Step.OTHER_PARTY, type=kind)


async def _no_party(turn: Turn, draft: ReportDraft, value: str) -> None:
    await _go(turn, draft, Step.PHOTOS, other_plate="")


async def _photos_done(turn: Turn, draft: ReportDraft, value: str) -> None:
    await _go(turn, draft, Step.PHONE)


async def _phone_ok(turn: Turn, draft: ReportDraft, value: str) -> None:
    await _go(turn, draft, Step.CONFIRM, phone=str(draft.data.get("phone") or turn.customer.phone))


async def _submit(turn: Turn, draft: ReportDraft, value: str) -> None:
    try:
        done = await drafts.submit(draft, description=description(turn.t, draft.data),
                                   max_per_day=turn.settings.report.max_per_day, now=turn.now)
    except ReportRefused as refused:
        await turn.say(refusal(turn.t, refused, turn.settings))
        if refused.reason in ("not_in_force", "too_early", "in_future"):
            await _go(turn, draft, Step.WHEN)
        elif refused.reason != "gone":
            await _cancel(turn, draft)
        else:
            await turn.state.set_state(None)
        return
    await turn.state.set_state(None)
    log.info("accident report %d confirmed as claim %s (%d documents)", draft.id,
             done.reference, done.documents)
    await turn.say(turn.t("tg_report_done", reference=done.reference,
                          phone=str(draft.data.get("phone") or turn.customer.phone),
                          hotline=turn.settings.company.hotline),
                   reply_markup=keyboards.main_menu(turn.t))


ANSWERS: dict[ReportAction, Callable[[Turn, ReportDraft, str], Awaitable[None]]] = {
    ReportAction.BACK: _back, ReportAction.CANCEL: _cancel_pressed, ReportAction.SAFE: _safe,
    ReportAction.DANGER: _danger, ReportAction.GO: _on_after_emergency, ReportAction.CAR: _car,
    ReportAction.NOW: _now, ReportAction.PICK: _pick, ReportAction.DAY: _day,
    ReportAction.HOUR: _hour, ReportAction.TYPE: _type, ReportAction.NO_PARTY: _no_party,
    ReportAction.PHOTOS_DONE: _photos_done, ReportAction.PHONE_OK: _phone_ok,
    ReportAction.SUBMIT: _submit,
}


# -- typed answers, locations, files -----------------------------------------------------------


def _typed_time(text: str, turn: Turn) -> datetime | None:
    match = _TYPED_TIME.match(text.strip())
    if match is None:
        return None
    zone = drafts.local_zone(turn.customer.timezone)
    today = turn.now.astimezone(zone).date()
    try:
        return datetime(int(match["y"] or today.year), int(match["m"] or today.month),
                        int(match["d"] or today.day), int(match["H"]), int(match["M"]),
                        tzinfo=zone)
    except ValueError:
        return None


async def _typed_when(turn: Turn, draft: ReportDraft, text: str) -> None:
    moment = _typed_time(text, turn)
    if moment is None:
        await turn.say(turn.t("tg_report_time_unreadable"))
        await PROMPTS[Step(draft.step)](turn, draft)
        return
    await _when_chosen(turn, draft, moment)


async def _typed_where(turn: Turn, draft: ReportDraft, text: str) -> None:
    await turn.say(turn.t("tg_report_place_noted"), reply_markup=keyboards.main_menu(turn.t))
    await _go(turn, draft, Step.WHAT, where={"address": text[:200]})


async def _typed_what(turn: Turn, draft: ReportDraft, text: str) -> None:
    await _go(turn, draft, Step.OTHER_PARTY, type="other", description=text[:_MAX_TEXT])


async def _typed_plate(turn: Turn, draft: ReportDraft, text: str) -> None:
    plate = re.sub(r"\s+", "", text).upper()
    if not _PLATE.match(plate):
        await turn.say(turn.t("tg_report_plate_unreadable"))
        await PROMPTS[Step.OTHER_PARTY](turn, draft)
        return
    await _go(turn, draft, Step.PHOTOS, other_plate=plate)


async def _typed_phone(turn: Turn, draft: ReportDraft, text: str) -> None:
    try:
        phone = normalise_phone(text, turn.settings.company.default_phone_region)
    except InvalidPhone:
        await turn.say(turn.t("tg_report_phone_invalid"))
        await PROMPTS[Step.PHONE](turn, draft)
        return
    log.info("accident report %d: contact phone %s", draft.id, mask_phone(phone))
    await _go(turn, draft, Step.CONFIRM, phone=phone)


async def _typed_elsewhere(turn: Turn, draft: ReportDraft, text: str) -> None:
    key = "tg_report_send_photos" if draft.step == Step.PHOTOS else "tg_report_use_buttons"
    await turn.say(turn.t(key))
    await PROMPTS[Step(draft.step)](turn, draft)


TYPED: dict[Step, Callable[[Turn, ReportDraft, str], Awaitable[None]]] = {
    Step.WHEN: _typed_when, Step.WHEN_DAY: _typed_when, Step.WHEN_HOUR: _typed_when,
    Step.WHERE: _typed_where, Step.WHAT: _typed_what, Step.OTHER_PARTY: _typed_plate,
    Step.PHONE: _typed_phone,
}


def _menu_label(texts: Texts, text: str) -> bool:
    return any(text in labels(texts, key) for row in keyboards.MENU_ROWS for key in row)


async def typed(message: Message, bot: Bot, state: FSMContext, customer: Policyholder,
                t: Translator, settings: Settings, texts: Texts,
                clock: Callable[[], datetime]) -> None:
    text = (message.text or "").strip()
    if not text or _menu_label(texts, text):
        raise SkipHandler  # a main-menu button leaves the report as it is, for later
    turn = _turn(bot, message.chat.id, t, customer, settings, clock, state)
    draft = await _current(turn)
    if draft is not None:
        await TYPED.get(Step(draft.step), _typed_elsewhere)(turn, draft, text)


async def location(message: Message, bot: Bot, state: FSMContext, customer: Policyholder,
                   t: Translator, settings: Settings, clock: Callable[[], datetime]) -> None:
    turn = _turn(bot, message.chat.id, t, customer, settings, clock, state)
    draft = await _current(turn)
    if draft is None:
        return
    if draft.step != Step.WHERE:
        await _typed_elsewhere(turn, draft, "")
        return
    point = message.location or (message.venue.location if message.venue else None)
    assert point is not None  # the location/venue filter
    address = message.venue.address if message.venue else ""
    await turn.say(t("tg_report_place_noted"), reply_markup=keyboards.main_menu(t))
    await _go(turn, draft, Step.WHAT, where={"latitude": point.latitude,
                                             "longitude": point.longitude,
                                             "address": address})


async def photo(message: Message, bot: Bot, state: FSMContext, customer: Policyholder,
                t: Translator, settings: Settings, uploads: UploadLimits,
                clock: Callable[[], datetime]) -> None:
    turn = _turn(bot, message.chat.id, t, customer, settings, clock, state)
    draft = await _current(turn)
    if draft is None:
        return
    if draft.step != Step.PHOTOS:
        await turn.say(t("tg_report_photos_later"), reply_to_message_id=message.message_id)
        return
    item = incoming(message)
    assert item is not None  # the photo/document filter
    document = await _keep(turn, draft, message, uploads)
    if document is None:
        return
    documents = [*draft.data.get("documents", []), document.id]
    count = len(documents)
    markup = kb.photos(t, count)
    albums: dict[str, list[int]] = dict(draft.data.get("albums", {}))
    if item.group is None:
        await message.answer(t("tg_report_photo_received", count=count), reply_markup=markup)
    elif (ack := albums.get(item.group)) is None:
        sent = await message.answer(t("tg_report_album_received", album=1, count=count),
                                    reply_markup=markup)
        albums[item.group] = [sent.message_id, 1]
    else:
        ack[1] += 1
        await bot.edit_message_text(t("tg_report_album_received", album=ack[1], count=count),
                                    chat_id=message.chat.id, message_id=ack[0],
                                    reply_markup=markup)
    await drafts.advance(draft, Step.PHOTOS, now=turn.now, documents=documents,
                         albums=dict(list(albums.items())[-_KEPT_ALBUMS:]))


async def _keep(turn: Turn, draft: ReportDraft, message: Message,
                uploads: UploadLimits) -> Document | None:
    """One file through the upload pipeline, kept for the report (no claim yet); refusals and
    duplicates are answered here."""
    item = incoming(message)
    assert item is not None
    try:
        check_declared_size(item.size, uploads)
        content = await download_file(turn.bot, item.file_id)
        document, _ = await store_document(
            customer_id=turn.customer.id, claim_id=None, channel=Channel.TELEGRAM, data=content,
            original_name=stored_name("photos", item.name), limits=uploads, now=turn.now)
    except UploadRejected as rejected:
        log.info("accident report %d: file refused: %s", draft.id, rejected)
        await turn.say(rejection_text(turn.t, rejected, uploads),
                       reply_to_message_id=item.message_id)
        return None
    if document.id in draft.data.get("documents", []):
        await turn.say(turn.t("tg_report_photo_duplicate"), reply_to_message_id=item.message_id)
        return None
    return document


# -- wiring ------------------------------------------------------------------------------------


async def restore(dispatcher: Dispatcher, bot: Bot) -> int:
    """Route every open report's next answer here again after a restart (memory storage
    forgets; the draft rows remember). Returns how many were restored."""
    restored = 0
    for draft in await ReportDraft.filter(status=DraftStatus.OPEN).only(
            "id", "chat_id", "telegram_user_id"):
        context = dispatcher.fsm.get_context(bot, chat_id=draft.chat_id,
                                             user_id=draft.telegram_user_id)
        await context.set_state(ReportFlow.active)
        restored += 1
    return restored


def get_router() -> Router:
    """The entry and the buttons; the answers in a child router whose one state check is all
    that every other message pays (it sits before most features)."""
    router = Router(name=__name__)
    router.message.register(start_report, or_f(Command("report"), MenuButton("tg_menu_report")),
                            flags=LINKED)
    router.callback_query.register(pressed, ReportCb.filter(), flags=LINKED)
    answers = Router(name=f"{__name__}.answers")
    answers.message.filter(StateFilter(ReportFlow.active))
    answers.message.register(location, Magic(F.location | F.venue), flags=LINKED)
    answers.message.register(photo, Magic(F.photo | F.document), flags=LINKED)
    answers.message.register(typed, Magic(F.text), Magic(~F.text.startswith("/")), flags=LINKED)
    router.include_router(answers)
    return router
