"""How updates get in: exactly-once feeding by ``update_id``, long polling that confirms a
batch only after it is handled, and the webhook endpoint that answers only after handling.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from contextlib import suppress
from datetime import datetime, timedelta

from aiogram import Bot, Dispatcher
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramNetworkError,
    TelegramRetryAfter,
)
from aiogram.methods import (
    GetUpdates,
)
from aiogram.types import Update
from aiohttp import web
from pydantic import ValidationError

from bot.delivery.senders import pin_aiogram_responses
from bot.telegram.accounts import Conversation, seen_and_conversation
from bot.telegram.flood import replying
from bot.web.bodies import UnreadableBody, read_json
from bot.web.late import SECRET_HEADER as SECRET_HEADER  # where the tests know it from
from bot.web.late import secret_matches
from storage.models import ProcessedUpdate
from storage.sql import Params, current, execute, fetch

log = logging.getLogger(__name__)

KEEP_PROCESSED = timedelta(days=3)  # Telegram keeps an unconfirmed update for 24 hours


_SEEN = "SELECT 1 FROM telegram_processed_update WHERE update_id = :update_id"
_MARKS_PER_INSERT = 400  # 800 parameters: inside every SQLite build's limit


class _Marks:
    """Group commit of processed ids. Each caller waits until its own id is written, but the
    ids of updates that finish while a write is in flight go into the next single INSERT —
    one commit for many updates instead of one each (on SQLite every commit holds the only
    connection for an fsync)."""

    def __init__(self) -> None:
        self._rows: list[tuple[int, datetime]] = []
        self._written: asyncio.Future[None] | None = None
        self._writer: asyncio.Task[None] | None = None

    async def mark(self, update_id: int, at: datetime) -> None:
        if self._written is None:
            self._written = asyncio.get_running_loop().create_future()
        written = self._written
        self._rows.append((update_id, at))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all())
        await written

    async def _write_all(self) -> None:
        while self._rows:
            rows, self._rows = self._rows, []
            written, self._written = self._written, None
            assert written is not None
            try:
                for start in range(0, len(rows), _MARKS_PER_INSERT):
                    chunk = rows[start:start + _MARKS_PER_INSERT]
                    params = Params()
                    marks = ", ".join(f"({params.add(update_id)}, {params.add(at)})"
                                      for update_id, at in chunk)
                    await execute(current(),
                                  "INSERT INTO telegram_processed_update (update_id, "
                                  f"processed_at) VALUES {marks} ON CONFLICT (update_id) "
                                  "DO NOTHING", params)
            except asyncio.CancelledError:
                written.cancel()
                raise
            except Exception as exc:  # handed to every waiter: their updates stay unmarked
                written.set_exception(exc)
            else:
                written.set_result(None)


class UpdateFeed:
    """Feeds each ``update_id`` to the dispatcher once, however often Telegram delivers it.

    Marking is at the END: an update is recorded as processed after the dispatcher has
    handled it (the error router included), never before. Telegram's contract is
    at-least-once, and the update is only acknowledged (webhook 200, polling offset) after
    this returns, so:

    * a crash while handling leaves the update unmarked and unacknowledged — Telegram
      delivers it again and it is handled then (marking at the start would have recorded it
      as done and dropped the redelivery: silently lost);
    * the window left — effects done, crash before the mark — repeats the update. The
      effects that matter are idempotent on their own (check-in once per local day,
      redemption keyed by the confirmation message, one open renewal call-back per policy,
      documents de-duplicated by sha256, linking by phone), so at worst a reply repeats.

    A delivery that arrives while the same id is still being handled in this process (a
    webhook retry after a slow answer) is dropped at once; one handled earlier is dropped
    by the ``telegram_processed_update`` row. Returns whether the update was handled now.
    """

    def __init__(self, dispatcher: Dispatcher, bot: Bot, clock: Callable[[], datetime]) -> None:
        self.dispatcher = dispatcher
        self.bot = bot
        self.clock = clock
        self._in_flight: set[int] = set()
        self._marks = _Marks()
        pin_aiogram_responses()

    async def feed(self, update: Update) -> bool:
        update_id = update.update_id
        if update_id in self._in_flight:
            return False
        self._in_flight.add(update_id)
        try:
            sender = _user_of(update)
            known: Conversation | None = None
            if sender:
                seen, known = await seen_and_conversation(update_id, sender)
            else:
                seen = bool(await fetch(current(), _SEEN, {"update_id": update_id}))
            if seen:
                log.info("update %d was already processed: skipped", update_id)
                return False
            with replying():
                await self.dispatcher.feed_update(self.bot, update, conversation=known)
            await self._marks.mark(update_id, self.clock())
            return True
        finally:
            self._in_flight.discard(update_id)

    async def feed_batch(self, updates: Iterable[Update]) -> None:
        """One polling batch: different users in parallel, each user's updates in order.
        Raises the first failure after every update has had its turn."""
        per_user: dict[int, list[Update]] = {}
        for update in updates:
            per_user.setdefault(_user_of(update), []).append(update)

        async def in_order(batch: list[Update]) -> None:
            for update in batch:
                await self.feed(update)

        results = await asyncio.gather(*(in_order(b) for b in per_user.values()),
                                       return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result


def _user_of(update: Update) -> int:
    with suppress(Exception):  # an update type aiogram does not know: no user to order by
        sender = getattr(update.event, "from_user", None)
        if sender is not None:
            return int(sender.id)
    return 0


async def prune_processed(now: datetime) -> int:
    """Forget ids older than Telegram could redeliver (keeps the table small)."""
    return await ProcessedUpdate.filter(processed_at__lt=now - KEEP_PROCESSED).delete()


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def _no_beat(**detail: str) -> None:
    return None


async def poll(feed: UpdateFeed, stop: asyncio.Event, beat: Callable[..., None] = _no_beat, *,
               allowed_updates: list[str], poll_seconds: int = 25,
               backoff: float = 5.0) -> None:
    """Long polling until ``stop``: a batch is confirmed (the next getUpdates ``offset``)
    only after every update in it was handled, so a crash loses nothing — the unconfirmed
    batch comes again and ``UpdateFeed`` skips what was done. A failed getUpdates (an error,
    a proxy's HTML page, an unreadable answer) or batch is retried from where it was after
    ``backoff`` seconds; ``beat`` is called after every answered getUpdates."""
    offset: int | None = None
    while not stop.is_set():
        request = GetUpdates(offset=offset, timeout=poll_seconds, allowed_updates=allowed_updates)
        fetch = asyncio.ensure_future(feed.bot(request, request_timeout=poll_seconds + 10))
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({fetch, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not fetch.done():
            fetch.cancel()  # stopping: nothing of this request was handled or confirmed
            with suppress(asyncio.CancelledError):
                await fetch
            return
        try:
            updates = fetch.result()
        except (TelegramAPIError, TelegramNetworkError, ClientDecodeError) as exc:
            log.warning("getUpdates failed (%s: %s); retrying in %.0f s", type(exc).__name__,
                        exc, backoff)
            await _wait(stop, backoff)
            continue
        beat()
        if not updates:
            continue
        try:
            await feed.feed_batch(updates)
        except TelegramRetryAfter as exc:  # a reply met a long flood wait: wait, then again
            log.warning("updates %d..%d: Telegram flood control for %d s; handling them "
                        "again after it", updates[0].update_id, updates[-1].update_id,
                        exc.retry_after)
            await _wait(stop, exc.retry_after)
            continue
        except Exception:  # the batch stays unconfirmed and is retried
            log.exception("updates %d..%d not all handled; retrying in %.0f s",
                          updates[0].update_id, updates[-1].update_id, backoff)
            await _wait(stop, backoff)
            continue
        offset = updates[-1].update_id + 1


WebHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def webhook_handler(secret: str, feed: Callable[[], UpdateFeed]) -> WebHandler:
    """``POST /telegram/webhook``: 401 unless ``X-Telegram-Bot-Api-Secret-Token`` is the
    configured secret (settings refuse webhook mode without one); 400 for a body that is not
    an update; otherwise the update is handled first and answered 200 after — never in the
    background, so Telegram redelivers anything a crash interrupted. An error that escapes
    the error router answers 500, which Telegram also retries."""
    expected = secret.encode()

    async def handle(request: web.Request) -> web.StreamResponse:
        if not secret_matches(request, expected):
            log.warning("telegram webhook: missing or wrong secret token")
            return web.Response(status=401, text="Unauthorized")
        current = feed()
        try:
            update = Update.model_validate(await read_json(request),
                                           context={"bot": current.bot})
        except (UnreadableBody, ValidationError):
            return web.Response(status=400, text="not a Telegram update")
        try:
            await current.feed(update)
        except TelegramRetryAfter as exc:  # a reply met a long flood wait: Telegram retries
            log.warning("update %d: Telegram flood control for %d s; left for redelivery",
                        update.update_id, exc.retry_after)
            return web.Response(status=503, headers={"Retry-After": str(exc.retry_after)})
        return web.json_response({})

    return handle
