"""A dispatcher in its own process, for crash and multi-process tests.

    python -m tests.workers.dispatch_worker DB_URL TELEGRAM_BASE NOW_ISO [--until-empty]

Runs one dispatch pass (or passes until nothing is due) against the given database and Bot
API server with the clock fixed at NOW_ISO, printing the number of messages handled.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from tortoise import Tortoise

from bot.delivery.dispatcher import Dispatcher
from bot.delivery.senders import AiogramTelegram
from bot.texts import Texts
from storage import db as storage_db
from tests import factories as f
from tests.fakes.telegram import DEFAULT_TOKEN


async def main(db_url: str, telegram_base: str, now_iso: str, until_empty: bool) -> None:
    now = datetime.fromisoformat(now_iso)
    settings = f.settings_for(db_url=db_url, telegram_base=telegram_base,
                              delivery={"batch_size": 50})
    await Tortoise.init(config=storage_db.tortoise_config(db_url))
    bot = Bot(DEFAULT_TOKEN,
              session=AiohttpSession(api=TelegramAPIServer.from_base(telegram_base)))
    dispatcher = Dispatcher(settings, Texts.load(), telegram=AiogramTelegram(bot), sms=None,
                            clock=lambda: now, skip_locked=not db_url.startswith("sqlite"))
    handled = 0
    try:
        while True:
            n = await dispatcher.dispatch_once()
            handled += n
            print(f"batch {n}", flush=True)
            if n == 0 or not until_empty:
                break
    finally:
        await bot.session.close()
        await Tortoise.close_connections()
    print(f"handled {handled}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], "--until-empty" in sys.argv))
