"""The outbox's lean ``sendMessage`` (``BotSession.send_text``) is indistinguishable from
aiogram's ``bot.send_message`` on the wire and in every failure: the same request reaches the
Bot API, and each fault raises the same exception with the same message."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import SendMessage
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.delivery.senders import AiogramTelegram
from bot.delivery.telegram_session import BotSession, build_bot, lean_sends
from bot.telegram.flood import ShortFloodWaits, replying
from bot.telegram.replies import answer, reply
from tests.fakes.telegram import FakeTelegram

TOKEN = "123456:TEST-TOKEN"
TEXT = "您的理赔案件 C1 进度更新：已赔付。<b>not markup</b> & 100% \n second line"

FAULTS: dict[str, Callable[[FakeTelegram], None]] = {
    "ok": lambda tg: None,
    "401": lambda tg: tg.fail_next("sendMessage", 401),
    "400 chat not found": lambda tg: tg.chat_not_found(42),
    "403 blocked": lambda tg: tg.block_chat(42),
    "413": lambda tg: tg.fail_next("sendMessage", 413),
    "429": lambda tg: tg.rate_limit_next(retry_after=7),
    "500": lambda tg: tg.fail_next("sendMessage", 500),
    "html 502": lambda tg: tg.proxy_error(status=502, times=1),
    "html 200": lambda tg: tg.proxy_error(status=200, times=1),
}


async def _message_id(sent: Awaitable[Message]) -> int:
    return (await sent).message_id


async def _outcome(send: Callable[[], object]) -> tuple[str, str]:
    try:
        result = await send()  # type: ignore[misc]
    except Exception as exc:  # the point is to compare whatever comes out
        return type(exc).__name__, str(exc)
    return "ok", str(result)


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_lean_send_matches_aiogram(fake_telegram: FakeTelegram, fault: str) -> None:
    bot = build_bot(TOKEN, fake_telegram.base_url)
    session = lean_sends(bot)
    assert isinstance(session, BotSession)
    try:
        FAULTS[fault](fake_telegram)
        ours = await _outcome(lambda: session.send_text(bot, 42, TEXT))
        fake_telegram.unblock_chat(42)
        fake_telegram._missing.discard("42")
        FAULTS[fault](fake_telegram)
        theirs = await _outcome(lambda: _message_id(bot.send_message(42, TEXT)))
    finally:
        await bot.session.close()
    if fault == "ok":
        assert ours[0] == theirs[0] == "ok"
        assert int(theirs[1]) == int(ours[1]) + 1  # the fake numbers messages in order
    else:
        assert ours == theirs
        assert ours[0] != "ok"
    first, second = fake_telegram.requests_for("sendMessage")
    assert first.params == second.params
    assert str(first.params["chat_id"]) == "42" and first.params["text"] == TEXT


async def test_lean_path_only_without_default_properties(fake_telegram: FakeTelegram) -> None:
    plain = build_bot(TOKEN, fake_telegram.base_url)
    styled = Bot(TOKEN, session=BotSession(api=plain.session.api),
                 default=DefaultBotProperties(parse_mode="HTML"))
    try:
        assert lean_sends(plain) is plain.session
        assert lean_sends(styled) is None  # aiogram adds parse_mode to every request
        await AiogramTelegram(styled).send_text(42, "<b>hi</b>")
        assert fake_telegram.requests_for("sendMessage")[-1].params.get("parse_mode") == "HTML"
    finally:
        await plain.session.close()
        await styled.session.close()


def _keyboard() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[
        [InlineKeyboardButton(text="沪A12345 商业险", callback_data="policy:show:7")],
        [InlineKeyboardButton(text="Renew", callback_data="policy:renewal:7"),
         InlineKeyboardButton(text="Site", url="https://example.com/a?b=c&d=e")]])


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_reply_with_a_keyboard_matches_send_message(fake_telegram: FakeTelegram,
                                                          fault: str) -> None:
    """A handler's reply on the lean path: the same form reaches the Bot API, every fault
    raises what ``bot.send_message`` raises."""
    bot = build_bot(TOKEN, fake_telegram.base_url)
    try:
        FAULTS[fault](fake_telegram)
        ours = await _outcome(lambda: reply(bot, 42, TEXT, _keyboard()))
        fake_telegram.unblock_chat(42)
        fake_telegram._missing.discard("42")
        FAULTS[fault](fake_telegram)
        theirs = await _outcome(lambda: bot.send_message(42, TEXT, reply_markup=_keyboard()))
    finally:
        await bot.session.close()
    if fault == "ok":
        assert ours == ("ok", "None") and theirs[0] == "ok"
    else:
        assert ours == theirs
    first, second = fake_telegram.requests_for("sendMessage")
    assert first.params == second.params
    assert first.params["reply_markup"] == _keyboard().model_dump(exclude_none=True)


async def test_reply_waits_out_a_short_flood_wait_as_every_reply_does(
        fake_telegram: FakeTelegram) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    bot = build_bot(TOKEN, fake_telegram.base_url)
    bot.session.middleware(ShortFloodWaits(sleep=sleep))
    try:
        fake_telegram.rate_limit_next(retry_after=3)
        with replying():
            await reply(bot, 42, TEXT)
        fake_telegram.rate_limit_next(retry_after=3)
        with pytest.raises(TelegramRetryAfter):  # outside an update (the outbox): no wait
            await reply(bot, 42, TEXT)
    finally:
        await bot.session.close()
    assert slept == [3]
    assert len(fake_telegram.requests_for("sendMessage")) == 3


async def test_answer_keeps_aiogram_for_a_topic_message(fake_telegram: FakeTelegram) -> None:
    bot = build_bot(TOKEN, fake_telegram.base_url)
    message = Message.model_validate(
        {"message_id": 1, "date": 0, "chat": {"id": 42, "type": "private"},
         "message_thread_id": 9, "is_topic_message": True, "text": "/points"},
        context={"bot": bot})
    try:
        await answer(message, bot, TEXT)
    finally:
        await bot.session.close()
    assert fake_telegram.requests_for("sendMessage")[0].params["message_thread_id"] == 9


async def test_request_middlewares_see_each_replys_own_send_message(
        fake_telegram: FakeTelegram) -> None:
    """The method object a middleware is shown carries this reply's chat, text and keyboard,
    with aiogram's defaults for the rest, and one reply's object is never another's."""
    seen: list[SendMessage] = []

    async def record(make_request: Any, bot: Bot, method: Any) -> Any:
        seen.append(method)
        return await make_request(bot, method)

    bot = build_bot(TOKEN, fake_telegram.base_url)
    bot.session.middleware(record)
    try:
        await reply(bot, 42, TEXT, _keyboard())
        await reply(bot, 43, "second")
    finally:
        await bot.session.close()
    first, second = seen
    assert isinstance(first, SendMessage) and first is not second
    assert (first.chat_id, first.text, first.reply_markup) == (42, TEXT, _keyboard())
    assert (second.chat_id, second.text, second.reply_markup) == (43, "second", None)
    assert second.parse_mode == SendMessage(chat_id=1, text="x").parse_mode
    assert [r.params["chat_id"] for r in fake_telegram.requests_for("sendMessage")] in (
        [42, 43], ["42", "43"])
