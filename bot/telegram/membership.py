"""``my_chat_member`` in private chats: the user blocked the bot (kicked) or came back
(member). The dispatcher stops choosing Telegram for a blocked account until then."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from aiogram import F, Router
from aiogram.enums import ChatMemberStatus, ChatType
from aiogram.types import ChatMemberUpdated

from bot.telegram import accounts
from bot.telegram.filters import Magic

log = logging.getLogger(__name__)


async def blocked(event: ChatMemberUpdated, clock: Callable[[], datetime]) -> None:
    await accounts.set_blocked(event.from_user.id, blocked=True, now=clock())
    log.info("telegram user %d blocked the bot", event.from_user.id)


async def unblocked(event: ChatMemberUpdated, clock: Callable[[], datetime]) -> None:
    await accounts.set_blocked(event.from_user.id, blocked=False, now=clock())
    log.info("telegram user %d unblocked the bot", event.from_user.id)


def get_router() -> Router:
    router = Router(name=__name__)
    router.my_chat_member.filter(Magic(F.chat.type == ChatType.PRIVATE))
    router.my_chat_member.register(blocked,
                                   Magic(F.new_chat_member.status == ChatMemberStatus.KICKED))
    router.my_chat_member.register(unblocked,
                                   Magic(F.new_chat_member.status == ChatMemberStatus.MEMBER))
    return router
