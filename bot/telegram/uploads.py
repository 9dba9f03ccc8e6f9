"""/upload: choose the claim, say which document it is, send photos, PDFs or albums, "Done".

Every file goes through ``bot.documents``: the size Telegram declares is checked before
anything is downloaded (``file_size`` > the limit never reaches getFile), then the bytes are
validated by content and stored under a generated name, de-duplicated by sha256.

An album (media group) arrives as one update per file. Updates of one user are handled one
after another (the dispatcher's event isolation), so the album gets one acknowledgement that
is edited with the running count instead of a reply per photo. A file sent outside the flow
is kept in the conversation state and the user is asked which claim it belongs to.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, StateFilter, or_f
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message

from bot.documents import UploadLimits, UploadRejected, check_declared_size, store_document
from bot.settings import Settings
from bot.telegram import keyboards
from bot.telegram.accounts import Policyholder
from bot.telegram.callbacks import ClaimAction, ClaimCb, UploadAction, UploadCb
from bot.telegram.claim_documents import (
    OTHER,
    open_claim,
    open_claims,
    required,
    still_needed,
    stored_name,
)
from bot.telegram.claims import document_name, status_text
from bot.telegram.context import LINKED
from bot.telegram.filters import Magic, MenuButton
from bot.telegram.i18n import Translator
from storage.models import Channel, Claim

log = logging.getLogger(__name__)

_REJECTION_TEXTS = {
    "too_large": "tg_upload_too_large",
    "unsupported_type": "tg_upload_unsupported",
    "image_too_large": "tg_upload_image_too_large",
    "corrupt": "tg_upload_corrupt",
    "empty": "tg_upload_empty",
}
_KEPT_ALBUMS = 5  # album acknowledgements remembered per conversation


class UploadFlow(StatesGroup):
    claim = State()
    kind = State()
    files = State()


@dataclass(frozen=True, slots=True)
class Incoming:
    """One file of a message, as far as we need it (kept in the FSM data while pending)."""

    file_id: str
    size: int | None
    name: str
    message_id: int
    group: str | None


def incoming(message: Message) -> Incoming | None:
    if message.photo:
        photo = message.photo[-1]  # the largest size
        return Incoming(photo.file_id, photo.file_size, "photo", message.message_id,
                        message.media_group_id)
    if message.document:
        doc = message.document
        return Incoming(doc.file_id, doc.file_size, doc.file_name or "document",
                        message.message_id, message.media_group_id)
    return None


async def download_file(bot: Bot, file_id: str) -> bytes:
    buffer = io.BytesIO()
    try:
        await bot.download(file_id, destination=buffer)
    except TelegramBadRequest as exc:
        if "too big" in exc.message.lower():  # getFile refuses files over 20 MB
            raise UploadRejected("too_large", "refused by getFile") from None
        raise
    return buffer.getvalue()


def rejection_text(t: Translator, rejected: UploadRejected, limits: UploadLimits) -> str:
    key = _REJECTION_TEXTS.get(rejected.reason, "tg_upload_unsupported")
    if key == "tg_upload_too_large":
        return t(key, max_mb=limits.max_bytes // (1024 * 1024))
    return t(key)


async def _kinds_menu(bot: Bot, chat_id: int, t: Translator, state: FSMContext,
                      claim: Claim) -> None:
    if (await state.get_data()).get("claim_id") != claim.id:  # the count is per claim
        await state.update_data(claim_id=claim.id, claim_number=claim.number, received=0)
    await state.set_state(UploadFlow.kind)
    wanted = required(claim.required_documents)
    needed = await still_needed(claim.id, wanted)
    kinds = needed + [k for k in wanted if k not in needed] + [OTHER]
    await bot.send_message(chat_id, t("tg_upload_choose_kind", claim=claim.number),
                           reply_markup=keyboards.upload_kinds(
                               t, claim.id, [(k, document_name(t, k)) for k in kinds]))


async def _claims_menu(bot: Bot, chat_id: int, t: Translator, state: FSMContext,
                       customer: Policyholder, settings: Settings, prompt: str) -> bool:
    claims = await open_claims(customer.id)
    if not claims:
        await bot.send_message(chat_id, t("tg_upload_no_open_claims",
                                          hotline=settings.company.hotline))
        return False
    await state.set_state(UploadFlow.claim)
    await bot.send_message(chat_id, t(prompt), reply_markup=keyboards.upload_claims(
        (c.id, t("tg_claim_button", number=c.number, status=status_text(t, c.status)))
        for c in claims))
    return True


async def start_upload(message: Message, bot: Bot, state: FSMContext, customer: Policyholder,
                       t: Translator, settings: Settings) -> None:
    await state.update_data(pending=[])
    await _claims_menu(bot, message.chat.id, t, state, customer, settings,
                       "tg_upload_choose_claim")


async def _chosen_claim(query: CallbackQuery, bot: Bot, customer: Policyholder, t: Translator,
                        claim_id: int) -> Claim | None:
    await query.answer()
    claim = await open_claim(customer.id, claim_id)
    if claim is None:
        log.warning("upload to claim %d by customer %d (telegram user %d): not theirs or "
                    "closed", claim_id, customer.id, query.from_user.id)
        await bot.send_message(query.from_user.id, t("tg_not_found"))
    return claim


async def upload_from_claim(query: CallbackQuery, callback_data: ClaimCb, bot: Bot,
                            state: FSMContext, customer: Policyholder, t: Translator) -> None:
    claim = await _chosen_claim(query, bot, customer, t, callback_data.id)
    if claim is not None:
        await _kinds_menu(bot, query.from_user.id, t, state, claim)


async def claim_chosen(query: CallbackQuery, callback_data: UploadCb, bot: Bot,
                       state: FSMContext, customer: Policyholder, t: Translator) -> None:
    claim = await _chosen_claim(query, bot, customer, t, callback_data.claim)
    if claim is not None:
        await _kinds_menu(bot, query.from_user.id, t, state, claim)


async def kind_chosen(query: CallbackQuery, callback_data: UploadCb, bot: Bot,
                      state: FSMContext, customer: Policyholder, t: Translator,
                      uploads: UploadLimits, clock: Callable[[], datetime]) -> None:
    claim = await _chosen_claim(query, bot, customer, t, callback_data.claim)
    if claim is None:
        return
    kind = callback_data.kind if callback_data.kind in required(claim.required_documents) \
        else OTHER
    data = await state.get_data()
    if data.get("claim_id") != claim.id:
        data = {**data, "received": 0}
    data = {**data, "claim_id": claim.id, "claim_number": claim.number, "kind": kind}
    await state.set_data(data)
    await state.set_state(UploadFlow.files)
    await bot.send_message(query.from_user.id, t("tg_upload_send_files", claim=claim.number,
                                                 document=document_name(t, kind)),
                           reply_markup=keyboards.upload_receiving(t, claim.id))
    pending = [Incoming(**item) for item in data.get("pending", [])]
    if pending:
        await state.update_data(pending=[])
        stored = 0
        for item in pending:
            stored += await _take(bot, query.from_user.id, t, state, customer, item, uploads,
                                  clock)
        if stored:
            received = (await state.get_data()).get("received", 0)
            await bot.send_message(query.from_user.id,
                                   t("tg_upload_received", count=received, claim=claim.number),
                                   reply_markup=keyboards.upload_receiving(t, claim.id))


async def kinds_again(query: CallbackQuery, callback_data: UploadCb, bot: Bot,
                      state: FSMContext, customer: Policyholder, t: Translator) -> None:
    claim = await _chosen_claim(query, bot, customer, t, callback_data.claim)
    if claim is not None:
        await _kinds_menu(bot, query.from_user.id, t, state, claim)


async def back_to_claims(query: CallbackQuery, bot: Bot, state: FSMContext,
                         customer: Policyholder, t: Translator, settings: Settings) -> None:
    """From the document-type menu back to choosing the claim (files kept meanwhile stay)."""
    await query.answer()
    await _claims_menu(bot, query.from_user.id, t, state, customer, settings,
                       "tg_upload_choose_claim")


async def done(query: CallbackQuery, bot: Bot, state: FSMContext, t: Translator) -> None:
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.edit_reply_markup(reply_markup=None)
    data = await state.get_data()
    received, number = int(data.get("received", 0)), str(data.get("claim_number", ""))
    await state.set_state(None)
    await state.set_data({})
    if received:
        await bot.send_message(query.from_user.id,
                               t("tg_upload_done", count=received, claim=number))
    else:
        await bot.send_message(query.from_user.id, t("tg_upload_done_nothing"))


async def _take(bot: Bot, chat_id: int, t: Translator, state: FSMContext, customer: Policyholder,
                item: Incoming, uploads: UploadLimits, clock: Callable[[], datetime]) -> int:
    """Validate and keep one file for the flow's claim; answers refusals and duplicates
    itself. Returns 1 if a new document was stored (the caller acknowledges it)."""
    data = await state.get_data()
    claim = await open_claim(customer.id, int(data.get("claim_id", 0)))
    if claim is None:  # closed in the meantime
        await bot.send_message(chat_id, t("tg_not_found"), reply_to_message_id=item.message_id)
        return 0
    try:
        check_declared_size(item.size, uploads)
        content = await download_file(bot, item.file_id)
        _, new = await store_document(
            customer_id=customer.id, claim_id=claim.id, channel=Channel.TELEGRAM, data=content,
            original_name=stored_name(str(data.get("kind", OTHER)), item.name),
            limits=uploads, now=clock())
    except UploadRejected as rejected:
        log.info("upload refused for claim %d: %s", claim.id, rejected)
        await bot.send_message(chat_id, rejection_text(t, rejected, uploads),
                               reply_to_message_id=item.message_id)
        return 0
    if not new:
        await bot.send_message(chat_id, t("tg_upload_duplicate", claim=claim.number),
                               reply_to_message_id=item.message_id)
        return 0
    await state.update_data(received=int(data.get("received", 0)) + 1)
    return 1


async def receive_file(message: Message, bot: Bot, state: FSMContext, customer: Policyholder,
                       t: Translator, uploads: UploadLimits,
                       clock: Callable[[], datetime]) -> None:
    item = incoming(message)
    assert item is not None  # the photo/document filter
    if not await _take(bot, message.chat.id, t, state, customer, item, uploads, clock):
        return
    data = await state.get_data()
    claim_id, number = int(data["claim_id"]), str(data["claim_number"])
    received = int(data.get("received", 0))
    markup = keyboards.upload_receiving(t, claim_id)
    if item.group is None:
        await message.answer(t("tg_upload_received", count=received, claim=number),
                             reply_markup=markup)
        return
    albums: dict[str, list[int]] = dict(data.get("albums", {}))
    ack = albums.get(item.group)
    if ack is None:
        sent = await message.answer(t("tg_upload_album_received", album=1, count=received,
                                      claim=number), reply_markup=markup)
        albums[item.group] = [sent.message_id, 1]
    else:
        ack[1] += 1
        await bot.edit_message_text(t("tg_upload_album_received", album=ack[1], count=received,
                                      claim=number), chat_id=message.chat.id,
                                    message_id=ack[0], reply_markup=markup)
    await state.update_data(albums=dict(list(albums.items())[-_KEPT_ALBUMS:]))


async def file_outside_flow(message: Message, bot: Bot, state: FSMContext,
                            customer: Policyholder, t: Translator, settings: Settings) -> None:
    """A file with no upload in progress: keep it and ask which claim it is for (once per
    album)."""
    item = incoming(message)
    assert item is not None
    data = await state.get_data()
    pending: list[dict[str, Any]] = [*data.get("pending", []), asdict(item)]
    asked: list[str] = list(data.get("asked_groups", []))
    if item.group is not None and item.group in asked:
        await state.update_data(pending=pending)
        return
    if item.group is not None:
        asked = [*asked, item.group][-_KEPT_ALBUMS:]
    await state.update_data(pending=pending, asked_groups=asked)
    if not await _claims_menu(bot, message.chat.id, t, state, customer, settings,
                              "tg_upload_which_claim"):
        await state.update_data(pending=[])


async def not_a_file(message: Message, t: Translator) -> None:
    await message.answer(t("tg_upload_send_a_file"))


def get_router() -> Router:
    router = Router(name=__name__)
    is_file = Magic(F.photo | F.document)
    router.message.register(start_upload, or_f(Command("upload"), MenuButton("tg_menu_upload")),
                            flags=LINKED)
    router.message.register(receive_file, StateFilter(UploadFlow.files), is_file, flags=LINKED)
    router.message.register(file_outside_flow, is_file, flags=LINKED)
    router.message.register(not_a_file, StateFilter(UploadFlow.files), Magic(F.text),
                            Magic(~F.text.startswith("/")), flags=LINKED)
    router.callback_query.register(upload_from_claim,
                                   ClaimCb.filter(F.action == ClaimAction.UPLOAD), flags=LINKED)
    router.callback_query.register(claim_chosen, UploadCb.filter(F.action == UploadAction.CLAIM),
                                   flags=LINKED)
    router.callback_query.register(kind_chosen, UploadCb.filter(F.action == UploadAction.KIND),
                                   flags=LINKED)
    router.callback_query.register(kinds_again, UploadCb.filter(F.action == UploadAction.KINDS),
                                   flags=LINKED)
    router.callback_query.register(done, UploadCb.filter(F.action == UploadAction.DONE),
                                   flags=LINKED)
    router.callback_query.register(back_to_claims,
                                   UploadCb.filter(F.action == UploadAction.CLAIMS), flags=LINKED)
    return router
