"""A dispatcher in its own process, for crash, multi-process and rate tests.

    python -m tests.workers.dispatch_worker DB_URL TELEGRAM_BASE NOW_ISO [--until-empty]
        [--limited RATE] [--redis URL]

Runs one dispatch pass (or passes until nothing is due) against the given database and Bot
API server with the clock fixed at NOW_ISO (``now``: the real clock), printing the number of
messages handled. ``--limited RATE`` sends under the limits ``engage run`` builds
(``telegram.rate_per_second = RATE``, 1 s per chat, the measured wire margin), shared
through Redis with ``--redis``.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime

from tortoise import Tortoise

from bot.delivery.dispatcher import Dispatcher
from bot.delivery.limits import WireMargins, limits_for
from bot.delivery.senders import AiogramTelegram
from bot.delivery.telegram_session import build_bot
from bot.texts import Texts
from storage import db as storage_db
from tests import factories as f
from tests.fakes.telegram import DEFAULT_TOKEN


async def main(args: argparse.Namespace) -> None:
    fixed = None if args.now == "now" else datetime.fromisoformat(args.now)
    settings = f.settings_for(db_url=args.db, telegram_base=args.telegram_base,
                              delivery={"batch_size": 200 if args.limited else 50},
                              redis={"url": args.redis or ""})
    settings.telegram.rate_per_second = args.limited or settings.telegram.rate_per_second
    await Tortoise.init(config=storage_db.tortoise_config(args.db))
    margins = WireMargins()
    bot = build_bot(DEFAULT_TOKEN, args.telegram_base, trace=margins.telegram.trace())
    limits, close = limits_for(settings, margins) if args.limited else (None, None)
    dispatcher = Dispatcher(settings, Texts.load(), telegram=AiogramTelegram(bot), sms=None,
                            limits=limits, skip_locked=not args.db.startswith("sqlite"),
                            clock=(lambda: fixed) if fixed else (lambda: datetime.now(UTC)))
    handled = 0
    try:
        if args.limited:  # the pipelines of engage run, until nothing is due
            await dispatcher.run(asyncio.Event(), until_idle=True)
        while not args.limited:
            n = await dispatcher.dispatch_once()
            handled += n
            print(f"batch {n}", flush=True)
            if n == 0 or not args.until_empty:
                break
    finally:
        await bot.session.close()
        if close is not None:
            await close()  # type: ignore[misc]
        await Tortoise.close_connections()
    print(f"margin {margins.telegram():.4f}", flush=True)
    print(f"handled {handled}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("telegram_base")
    parser.add_argument("now")
    parser.add_argument("--until-empty", action="store_true")
    parser.add_argument("--limited", type=float, default=0.0)
    parser.add_argument("--redis", default="")
    asyncio.run(main(parser.parse_args()))
