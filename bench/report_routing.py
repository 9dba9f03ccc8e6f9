"""What the accident-report router costs every other update: the real dispatcher with every
router against the same dispatcher without the report router, in the same run.

    python -m bench.report_routing [--db sqlite|postgres] [--updates 3000] [--rounds 3]

The report router sits early in the chain (before claims and uploads), so every message of a
linked customer passes its filters. A throw-away database holds 500 linked customers with a
policy and a claim each; the fake Bot API runs in its own process. The update mix is
/policies, /points, free text naming the sender's claim number, and free text nobody takes
(the fallback), fed through ``UpdateFeed`` at 16 concurrent users, alternating the two
dispatchers round by round (which goes first alternates). Printed: updates/s of each, and
the ratio with/without (1.00: no cost).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from typing import Any
from unittest import mock

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import Update

from bench.common import load_average, migrated_database
from bot.settings import Settings
from bot.telegram import get_routers, runtime
from bot.telegram.updates import UpdateFeed
from bot.texts import Texts
from storage.models import Claim, ClaimStatus, Customer, Policy, Product, TelegramAccount
from tests.fakes.telegram import DEFAULT_TOKEN

CUSTOMERS = 500
NOW = datetime(2026, 11, 21, 4, tzinfo=UTC)


async def _fill() -> None:
    for n in range(CUSTOMERS):
        owner = await Customer.create(name=f"客户{n}", phone=f"+86138{n:08d}",
                                      referral_code=f"R{n:07d}")
        policy = await Policy.create(number=f"P{n:07d}", customer=owner,
                                     product=Product.COMMERCIAL, plate=f"沪A{n:05d}",
                                     start_date=date(2026, 1, 1), end_date=date(2026, 12, 31),
                                     premium_cents=350_000)
        await Claim.create(number=f"RDAA{n:08d}", policy=policy, customer=owner,
                           status=ClaimStatus.SURVEYED, reported_at=NOW)
        await TelegramAccount.create(telegram_user_id=900_000 + n, chat_id=900_000 + n,
                                     customer=owner, linked_at=NOW)


_ids = itertools.count(1)


def _update(bot: Bot, n: int) -> Update:
    user = 900_000 + n % CUSTOMERS
    text = ("/policies", "/points", f"RDAA{user - 900_000:08d} 怎么样了", "你好")[n % 4]
    message: dict[str, Any] = {
        "message_id": n, "date": int(NOW.timestamp()), "text": text,
        "chat": {"id": user, "type": "private", "first_name": "x"},
        "from": {"id": user, "is_bot": False, "first_name": "x", "language_code": "zh-hans"}}
    if text.startswith("/"):
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text)}]
    return Update.model_validate({"update_id": next(_ids), "message": message},
                                 context={"bot": bot})


async def _round(feed: UpdateFeed, bot: Bot, updates: int, concurrency: int) -> float:
    queue = iter(range(updates))

    async def worker() -> None:
        for n in queue:
            await feed.feed(_update(bot, n))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return updates / (time.perf_counter() - started)


async def run(args: argparse.Namespace, base_url: str) -> None:
    async with migrated_database(args.db) as url:
        await _fill()
        settings = Settings(database={"url": url})  # type: ignore[arg-type]
        texts = Texts.load()
        bot = Bot(DEFAULT_TOKEN,
                  session=AiohttpSession(api=TelegramAPIServer.from_base(base_url)))
        without = [r for r in get_routers() if r.name != "bot.telegram.report"]
        dispatchers = {"with report": runtime.build_dispatcher(settings, texts,
                                                               clock=lambda: NOW)}
        with mock.patch.object(runtime, "get_routers", return_value=without):
            dispatchers["without"] = runtime.build_dispatcher(settings, texts,
                                                              clock=lambda: NOW)
        feeds = {name: UpdateFeed(dp, bot, lambda: NOW) for name, dp in dispatchers.items()}
        rates: dict[str, list[float]] = {name: [] for name in feeds}
        print(f"load average before: {load_average()}")
        for feed in feeds.values():  # warm-up
            await _round(feed, bot, 200, args.concurrency)
        for n in range(args.rounds):  # which goes first alternates, against order effects
            for name in (list(feeds) if n % 2 == 0 else list(feeds)[::-1]):
                rates[name].append(await _round(feeds[name], bot, args.updates,
                                                args.concurrency))
        await bot.session.close()
        print(f"load average after: {load_average()}")
        for name, values in rates.items():
            print(f"   {name:12} {sum(values) / len(values):7.0f} updates/s   rounds: "
                  + ", ".join(f"{v:.0f}" for v in values))
        ratios = [w / o for w, o in zip(rates["with report"], rates["without"], strict=True)]
        print(f"   ratio with/without: {sum(ratios) / len(ratios):.2f} (per round "
              + ", ".join(f"{r:.2f}" for r in ratios) + ")")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.report_routing")
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--updates", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    fake = subprocess.Popen([sys.executable, "-m", "bench.fake_telegram_server"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert fake.stdin is not None and fake.stdout is not None
    try:
        asyncio.run(run(args, fake.stdout.readline().strip()))
    finally:
        fake.stdin.close()
        fake.wait(timeout=10)


if __name__ == "__main__":
    main()
