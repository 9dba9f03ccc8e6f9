"""Dispatch throughput through the real dispatcher to a fake Bot API server on loopback.

    python -m bench.dispatch [--db sqlite|postgres] [--messages 100000] [--limited 20000]

(a) with the Telegram limit at 1,000 msg/s (``--limit``): achieved rate and the busiest
    1-second window;
(b) with no limit: messages/s for this process and its peak RSS, with the ratio against a bare
    aiogram ``send_message`` loop at the same concurrency, measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import sys
import time
from datetime import UTC, datetime

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import InlineKeyboardMarkup

from bench.common import migrated_database, peak_rss_mb
from bot.delivery.dispatcher import Dispatcher, Limits
from bot.delivery.ratelimit import local_rate_limiter
from bot.delivery.senders import AiogramTelegram, SendResult
from bot.delivery.telegram_session import build_bot
from bot.settings import Settings
from bot.texts import Texts
from bot.web.heap import freeze_startup_heap
from storage.models import Category, Customer, Message, MessageStatus, TelegramAccount

TOKEN = "123456:TEST-TOKEN"
CONCURRENCY = 64
NOON = datetime(2026, 11, 21, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai: no quiet hours


class Timed:
    """Wraps the real sender, noting when each send was granted (client side)."""

    def __init__(self, inner: AiogramTelegram) -> None:
        self.inner = inner
        self.times: list[float] = []
        self.goal = 0
        self.reached = asyncio.Event()

    async def send_text(self, chat_id: int, text: str,
                        markup: InlineKeyboardMarkup | None = None) -> SendResult:
        self.times.append(time.monotonic())
        if len(self.times) >= self.goal:
            self.reached.set()
        return await self.inner.send_text(chat_id, text, markup)


def busiest_window(times: list[float]) -> int:
    ordered = sorted(times)
    return max((bisect.bisect_left(ordered, t + 1.0) - i for i, t in enumerate(ordered)),
               default=0)


async def populate(n: int) -> None:
    chunk = 5000
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        await Customer.bulk_create([
            Customer(id=i + 1, name=f"客户{i}", phone=f"+86139{i:08d}", referral_code=f"B{i:09d}")
            for i in range(start, stop)
        ])
        await TelegramAccount.bulk_create([
            TelegramAccount(telegram_user_id=1_000_000 + i, chat_id=1_000_000 + i,
                            customer_id=i + 1, linked_at=NOON)
            for i in range(start, stop)
        ])
        await Message.bulk_create([
            Message(dedup_key=f"bench:{i}", kind="claim_update", category=Category.SERVICE,
                    customer_id=i + 1, template_key="claim_update",
                    params={"claim": f"C{i}", "status": "已赔付", "note": ""},
                    not_before=NOON)
            for i in range(start, stop)
        ])


async def drain(dispatcher: Dispatcher, sender: Timed, count: int) -> float:
    """Run the dispatcher's own loops until ``count`` messages have been sent."""
    sender.goal = len(sender.times) + count
    sender.reached = asyncio.Event()
    started = time.monotonic()
    await dispatcher.run(sender.reached, until_idle=True)
    return time.monotonic() - started


async def bare_loop(base: str, count: int) -> float:
    bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(base)))
    queue = iter(range(count))

    async def worker() -> None:
        for i in queue:
            await bot.send_message(1_000_000 + i, f"您的理赔案件C{i}进度更新：已赔付。")

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    elapsed = time.monotonic() - started
    await bot.session.close()
    return count / elapsed


async def run(args: argparse.Namespace) -> None:
    fake = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.fake_telegram_server",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )
    assert fake.stdout is not None and fake.stdin is not None
    base = (await fake.stdout.readline()).decode().strip()
    try:
        async with migrated_database(args.db) as url:
            await _measure(args, url, base)
    finally:
        fake.stdin.close()
        await asyncio.wait_for(fake.wait(), timeout=10)


async def _measure(args: argparse.Namespace, url: str, base: str) -> None:
    total = args.messages
    t0 = time.monotonic()
    await populate(total)
    print(f"queued {total:,} messages on {args.db} in {time.monotonic() - t0:.1f} s")
    # As `engage run` does once it listens: the heap built so far (aiogram's and pydantic's
    # models, tortoise's metadata) is exempt from full collections, which otherwise stall the
    # loop for 100-200 ms at a time - long enough to leave rate-limit slots unused.
    frozen = freeze_startup_heap()
    settings = Settings(database={"url": url},
                        delivery={"batch_size": args.batch, "lease_seconds": 600})
    bot = build_bot(TOKEN, base)  # the process's Bot, as `engage run` builds it
    sender = Timed(AiogramTelegram(bot))
    now = [NOON]

    def clock() -> datetime:
        return now[0]

    texts = Texts.load()
    limited = Dispatcher(settings, texts, telegram=sender, sms=None, clock=clock,
                         skip_locked=args.db == "postgres",
                         limits=Limits(telegram=local_rate_limiter(args.limit),
                                       telegram_concurrency=CONCURRENCY))
    elapsed = await drain(limited, sender, args.limited)
    sent = len(sender.times)
    rate = sent / (sender.times[-1] - sender.times[0]) if sent > 1 else 0.0
    window = busiest_window(sender.times)
    limit = args.limit
    print(f"(a) limit {limit:,.0f}/s: {sent:,} sent in {elapsed:.1f} s, achieved "
          f"{rate:,.0f} msg/s = {100 * rate / limit:.1f} % of the limit; busiest 1-s window "
          f"{window:,} ({'over' if window > limit else 'never over'} the limit)")

    rss_before = peak_rss_mb()
    sender.times.clear()
    free = Dispatcher(settings, texts, telegram=sender, sms=None, clock=clock,
                      skip_locked=args.db == "postgres",
                      limits=Limits(telegram_concurrency=CONCURRENCY))
    remaining = total - args.limited
    elapsed = await drain(free, sender, remaining)
    ours = len(sender.times) / elapsed
    await bot.session.close()
    bare = await bare_loop(base, min(remaining, 20_000))
    sent_ok = await Message.filter(status=MessageStatus.SENT).count()
    print(f"(b) no limit: {len(sender.times):,} sent in {elapsed:.1f} s = {ours:,.0f} msg/s "
          f"per process; bare aiogram loop {bare:,.0f} msg/s; ratio {ours / bare:.2f}")
    print(f"    peak RSS {peak_rss_mb():.0f} MB (before the unlimited run "
          f"{rss_before:.0f} MB); {sent_ok:,} of {total:,} messages recorded as sent; "
          f"{frozen:,} start-up objects frozen as `engage run` does")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--limited", type=int, default=20_000,
                        help="how many of them go through the 1,000 msg/s limiter")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--limit", type=float, default=1000.0,
                        help="the rate limit of run (a), messages per second")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
