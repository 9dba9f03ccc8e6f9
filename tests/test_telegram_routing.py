"""The handler index (``bot.telegram.routing``) never changes which handler takes an update.

The oracle is aiogram's own rule: the first handler, in registration order, whose filters all
pass. For every update of a corpus (every command, every menu label in both languages, free
text, files, contacts, locations, every kind of button, malformed button data) and every
conversation state the bot uses, the handler the index leads to must be the one that walking
every handler would reach, and no handler the index left out may pass its filters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from aiogram import Bot, Router
from aiogram.dispatcher.event.handler import HandlerObject
from aiogram.types import (
    CallbackQuery,
    Chat,
    Contact,
    Document,
    Location,
    Message,
    PhotoSize,
    TelegramObject,
    User,
)

from bot.settings import Settings
from bot.telegram import get_routers
from bot.telegram.routing import INDEXED, Indexed, flatten_into
from bot.telegram.runtime import build_dispatcher
from bot.texts import Texts

TEXTS = Texts.load()
USER = User(id=7, is_bot=False, first_name="客户", language_code="zh-hans")
CHAT = Chat(id=7, type="private")
MALFORMED = ["xyz", "rwd:redeem", "clm:show:not-a-number", "pol:show:", "vch:cancel:abc",
             "upl:kind:x:y:z:w", "lang", "set:nope", "unl:maybe", "", ":", "rnw", "pol:"]


def _message(**fields: Any) -> Message:
    return Message(message_id=1, date=datetime(2026, 12, 5, tzinfo=UTC), chat=CHAT,
                   from_user=USER, **fields)


def _keys(indexed: Indexed) -> set[str]:
    return set().union(*(gate for _, gate in indexed._gates if gate is not None))


def _corpus(dp: Router) -> list[TelegramObject]:
    message = dp.observers["message"]
    assert isinstance(message, Indexed)
    keys = _keys(message)
    commands = sorted(k[1:] for k in keys if k.startswith("/"))
    labels = sorted(k[1:] for k in keys if k.startswith("="))
    texts = [*(f"/{c}" for c in commands), *(f"/{c.upper()}" for c in commands),
             *(f"/{c} 12 34" for c in commands), *(f"{c}" for c in commands),
             *labels, *(f"{label} " for label in labels), "/start ref_B000000001",
             "/unknown", "/", "hello", "请问案件RDAA3100000005现在到哪一步了？", "沪A12345",
             "123456", "P000000001", "上海", "倒车时刮碰立柱", "   "]
    events: list[TelegramObject] = [_message(text=text) for text in texts]
    events += [
        _message(photo=[PhotoSize(file_id="p", file_unique_id="p", width=9, height=9)]),
        _message(photo=[PhotoSize(file_id="p", file_unique_id="p", width=9, height=9)],
                 caption="/upload"),
        _message(document=Document(file_id="d", file_unique_id="d"), caption="保单照片"),
        _message(contact=Contact(phone_number="+8613900000001", first_name="客户",
                                 user_id=USER.id)),
        _message(location=Location(latitude=31.2, longitude=121.5)),
    ]
    callback = dp.observers["callback_query"]
    assert isinstance(callback, Indexed)
    prefixes = sorted(k[1:] for k in _keys(callback) if k.startswith("#"))
    data = [*MALFORMED, *(f"{p}:show:1" for p in prefixes), *(f"{p}:1" for p in prefixes),
            *(f"{p}:list:0" for p in prefixes), *(f"{p}:redeem:3" for p in prefixes)]
    events += [CallbackQuery(id="q", from_user=USER, chat_instance="c", data=d,
                             message=_message(text="…")) for d in data]
    return events


async def _first(handlers: list[HandlerObject], event: TelegramObject,
                 kwargs: dict[str, Any]) -> HandlerObject | None:
    for handler in handlers:
        passed, _ = await handler.check(event, **kwargs, handler=handler)
        if passed:
            return handler
    return None


def _states(dp: Router) -> list[str | None]:
    found: set[str] = set()
    for event in INDEXED:
        indexed = dp.observers[event]
        assert isinstance(indexed, Indexed)
        found |= {key[2:] for key in _keys(indexed) if key.startswith("@=")}
    assert found, "the bot's conversations have states; the index should know them"
    return [None, *sorted(found), "SomeOtherFlow:step"]


async def test_the_index_leads_every_update_to_the_handler_aiogram_would_choose() -> None:
    dp = build_dispatcher(Settings(), TEXTS, clock=lambda: datetime.now(UTC))
    bot = Bot("123456:TEST-TOKEN")
    corpus = _corpus(dp)
    taken = set()
    try:
        for state in _states(dp):
            for event in corpus:
                name = "message" if isinstance(event, Message) else "callback_query"
                indexed = dp.observers[name]
                assert isinstance(indexed, Indexed)
                kwargs = {"bot": bot, "texts": TEXTS, "raw_state": state,
                          "event_from_user": USER, "event_chat": CHAT}
                chosen = indexed.candidates(event, state)
                expected = await _first(indexed.handlers, event, kwargs)
                assert await _first(chosen, event, kwargs) is expected, (state, event)
                for handler in indexed.handlers:
                    if handler not in chosen:
                        passed, _ = await handler.check(event, **kwargs, handler=handler)
                        assert not passed, (handler.callback, state, event)
                if expected is not None:
                    taken.add(expected.callback)
    finally:
        await bot.session.close()
    # The corpus reaches most handlers (else the comparison above proves little).
    everything = {h.callback for e in INDEXED for h in dp.observers[e].handlers}
    assert len(taken) >= 0.6 * len(everything), sorted(h.__name__ for h in everything - taken)


def test_the_dispatcher_holds_every_feature_handler_in_router_order() -> None:
    """Flattening keeps aiogram's order: each router's handlers, then its children's."""
    dp = build_dispatcher(Settings(), TEXTS, clock=lambda: datetime.now(UTC))

    def walk(router: Router, event: str) -> list[Any]:
        own = [h.callback for h in router.observers[event].handlers]
        return own + [c for child in router.sub_routers for c in walk(child, event)]

    for event in [*INDEXED, "my_chat_member", "error"]:
        expected = [c for router in get_routers() for c in walk(router, event)]
        assert [h.callback for h in dp.observers[event].handlers] == expected
    assert not dp.sub_routers


def test_a_router_with_middlewares_of_its_own_is_refused() -> None:
    """Its middlewares would run for handlers of other routers once flattened."""
    target, feature = Router(name="target"), Router(name="feature")

    async def middleware(handler: Any, event: Any, data: Any) -> Any:
        return await handler(event, data)

    feature.message.middleware(middleware)
    with pytest.raises(ValueError, match="feature"):
        flatten_into(target, [feature], TEXTS)
