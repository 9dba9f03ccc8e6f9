"""SMS conversations: one inbound message in, the reply text out — exactly once per MessageSid.

Idempotency and concurrency
---------------------------
``sms_inbound.message_sid`` is unique, and the row carries the reply. Whoever inserts the
row owns the message; everyone else returns the reply stored in it. Two shapes, both correct
on SQLite and PostgreSQL without any waiting loop:

* **Queries** (HELP, POLICY, CLAIM, POINTS) change nothing, so the reply is computed first
  and inserted *with* the row in one INSERT (together with the rows of other queries answered
  at the same moment: ``bot.sms.records``). The row and its reply appear atomically; a
  loser's INSERT skips the taken key and reads the reply. A query that came as an MMS has
  one effect, the media deletes it records (below), and takes the second shape.
* **Effects** (STOP, START, CHECKIN, filing documents, and free text, the hand-off keyword,
  投诉, survey digits and unknown senders, which the conversations desk records:
  ``bot.sms.desk``) run in one transaction that starts by inserting the row — claiming the
  MessageSid — then applies the effect and writes the reply, and commits all of it together.
  A concurrent duplicate's INSERT cannot succeed or fail before that commit: PostgreSQL makes
  an INSERT on a unique key wait for the uncommitted row's transaction (error if it commits,
  success if it rolls back); SQLite has one writer (in one process Tortoise's connection lock
  serialises transactions; across processes the second writer waits in the busy handler). So
  a loser never sees a row without its reply, and a winner that fails leaves no row, letting
  the retry do the work.

A retry arriving after the first finished takes the same paths and gets the stored reply.
In code: a query is ``query(row, keyword, reply)``; an effect is the body of
``async with claimed(row, keyword) as claim:`` setting ``claim.reply``; a delivery that loses
the MessageSid raises ``_Duplicate``, answered once, in ``answer``, with the stored reply.

Keywords
--------
``SmsConversations._handlers`` maps each ``Command`` to what answers it (one ``Turn`` in, the
reply out); adding a keyword is a word list in ``bot.sms.keywords`` and one entry there.

A number several customers share
--------------------------------
A family may share a phone; the reply is then for all of them, as SMS to the number already
is: STOP and START are remembered for the number (``storage.suppressions``: they also hold for
whoever gets it later) and apply to every customer on it, POLICY lists all their cars, CLAIM
finds the newest claim (or the named one) among theirs, and MMS documents go to the named or
newest open claim of any of them (unattached ones are kept under the first customer and follow
the claim later named). Points, check-in and redeeming are one person's: the reply says so. A
number three or more customers share that no operator has released (``storage.shared_phones``)
is often a salesperson's: only HELP, STOP and START are answered there; anything else gets a
kind refusal, and MMS media are not downloaded (only deleted).
MMS first checks for a stored reply, because the media are deleted from Twilio after the
first delivery.

MMS timing
----------
The reply depends on the files (attached, unattached, or why refused), so media are fetched
before answering: concurrently, each bounded by ``sms.media_timeout_seconds`` (default 5 s)
and by the upload size limit, which keeps the answer far inside Twilio's 15 s (Twilio's media
URLs answer in well under a second in practice). Downloads happen outside the transaction;
validation and storing inside it, with the same ``store_document`` as Telegram uploads.
Deleting the media from Twilio (``twilio.delete_media``) is not part of the answer: the same
transaction records each media URL as still to delete, and after the commit a background task
the service tracks and ``drain()`` awaits (at shutdown, and in tests) deletes it. What that
task could not delete — Twilio failed, or the process stopped first — the sweep in
``bot.sms.media_deletes`` retries later.

That holds for every inbound MMS, not only the ones we keep: media from a number no customer
has, or sent with an opt-out Twilio applied, are never downloaded, but they are recorded with
the message and deleted the same way — they may well be someone's ID card. Only URLs of our
own Twilio account are recorded (``MediaDeletes.deletable``); others are never sent our
credentials.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from bot.delivery.recipients import record_sms_opt_out
from bot.desk.threads import Desk
from bot.documents import UploadLimits, UploadRejected, store_document
from bot.settings import Settings
from bot.sms import city as sms_city
from bot.sms import records, renewal_replies
from bot.sms.desk import SmsDesk
from bot.sms.keywords import Command, Parsed, parse
from bot.sms.media import MediaRef, MediaUnavailable, MmsMedia
from bot.sms.media_deletes import MediaDeletes, mask_sid
from bot.sms.redeem import SmsRedemptions
from bot.sms.replies import Replies
from bot.sms.report import report_by_sms
from bot.sms.senders import Prefetched, Sender, Senders
from bot.texts import Texts
from loyalty.earning import check_in
from loyalty.ledger import get_balance
from loyalty.tiers import tier_of
from storage.models import (
    OPEN_CLAIM_STATUSES,
    Category,
    Channel,
    Claim,
    Consent,
    Customer,
    Document,
)
from storage.phones import InvalidPhone, PhoneNormaliser, mask_phone, normalise_phone
from storage.suppressions import remember_number_choice

log = logging.getLogger(__name__)

KEYWORD_SOURCE = "sms:keyword"
TWILIO_OPT_OUT_SOURCE = "sms:twilio-opt-out"
MAX_MEDIA = 10  # Twilio's own limit per message
# What a number a salesperson may hold for many customers is still answered: nobody's data.
_ON_HELD_NUMBERS = frozenset({Command.HELP, Command.STOP, Command.START})
# One person's own: not answered on a number several customers share.
_PERSONAL = frozenset({Command.CHECKIN, Command.POINTS, Command.REDEEM, Command.CONFIRM,
                       Command.VOUCHERS})


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """What we use of a (signature-checked) Twilio inbound webhook."""

    message_sid: str
    from_: str
    body: str = ""
    opt_out_type: str = ""
    media: tuple[MediaRef, ...] = ()


@dataclass(frozen=True, slots=True)
class _Fetched:
    ref: MediaRef
    data: bytes | None
    refused: str | None  # UploadRejected.reason or "download_failed"


class _Duplicate(Exception):
    """Another delivery of this MessageSid owns it: ``answer`` replies with the stored reply."""


class Claimed:
    """A MessageSid this delivery owns, inside the transaction that inserted its row: the
    effect runs in the ``async with`` body and sets ``reply``, which is stored with the row."""

    __slots__ = ("reply",)

    def __init__(self) -> None:
        self.reply = ""


@dataclass(frozen=True, slots=True)
class Turn:
    """One inbound message from a known sender, as the keyword handlers see it."""

    row: dict[str, Any]  # the sms_inbound row to insert
    sender: Sender
    parsed: Parsed
    now: datetime
    delete_urls: tuple[str, ...]
    replies: Replies  # bound to the sender's number (its market's wording)
    prefetched: Prefetched  # what the keyword reads, found with the sender

    @property
    def language(self) -> str:
        return self.sender.language


Handler = Callable[[Turn], Awaitable[str]]
"""What answers one keyword: the reply, through ``SmsConversations.query`` (no effect) or
inside ``SmsConversations.claimed`` (an effect)."""


async def record_sms_opt_in(
    customer_id: int, categories: Sequence[str], *, source: str, now: datetime,
    reference: str = "",
) -> None:
    """The counterpart of ``record_sms_opt_out``: newer rows, ``granted`` True."""
    await Consent.bulk_create([
        Consent(customer_id=customer_id, channel=Channel.SMS.value, category=Category(c),
                granted=True, source=source, reference=reference[:64], created_at=now)
        for c in categories
    ])


@lru_cache(maxsize=4096)
def _e164(raw: str, region: str) -> str:
    """The sender's number in E.164 (``normalise_phone``), or as given when it is not valid
    (a short code, an alphanumeric sender): parsing costs more than the rest of a query's
    Python, and the same numbers write again and again."""
    try:
        return normalise_phone(raw, region)
    except InvalidPhone:
        return raw.strip()


class SenderNumbers:
    """``_e164`` with ``PhoneNormaliser``'s shortcut for the region's mobile numbers — nearly
    every sender, and too many different ones for the cache to hold. The shortcut is taken
    only for a region spelled as phonenumbers spells it (``CN``, not ``cn``), where it agrees
    with ``normalise_phone`` exactly; anything else is ``_e164``'s."""

    def __init__(self, region: str) -> None:
        self._region = region
        self._shortcut = PhoneNormaliser(region) if region == region.upper() else None

    def __call__(self, raw: str) -> str:
        if self._shortcut is not None:
            fast = self._shortcut.shortcut(raw)
            if fast is not None:
                return fast
        return _e164(raw, self._region)


class SmsConversations:
    def __init__(self, settings: Settings, texts: Texts, media: MmsMedia | None, *,
                 clock: Callable[[], datetime], deletes: MediaDeletes | None = None) -> None:
        """``deletes``: how media are removed from Twilio once stored; None keeps them there."""
        self._settings = settings
        self._replies = Replies(texts, settings.sms)
        self._media = media
        self._deletes = deletes
        self._clock = clock
        self._numbers = SenderNumbers(settings.company.default_phone_region)
        self._limits = UploadLimits(max_bytes=settings.uploads.max_bytes,
                                    max_pixels=settings.uploads.max_pixels,
                                    directory=settings.uploads.directory)
        self._background: set[asyncio.Task[None]] = set()
        self._answered = records.Answered()
        self._senders = Senders()
        # Every keyword and what answers it; the menu answers whatever is not a keyword.
        self._handlers: dict[Command, Handler] = {
            Command.STOP: self._opt_turn,
            Command.START: self._opt_turn,
            Command.HELP: self._help,
            Command.POLICY: self._policy,
            Command.CLAIM: self._claim,
            Command.POINTS: self._points,
            Command.CHECKIN: self._checkin,
            Command.CITY: self._city,
            Command.REPORT: self._report,
            Command.MENU: self._converse,  # the conversations desk (bot.sms.desk) from here
            Command.AGENT: self._converse,
            Command.COMPLAINT: self._complaint,
            Command.SCORE: self._score,
            **SmsRedemptions(self, settings.loyalty).handlers(),  # bot.sms.redeem
            Command.RENEW: self._renewal_answer,
            Command.RENEWED: self._renewal_answer,
        }
        self._desk = SmsDesk(Desk(settings), self._replies, settings)

    @property
    def replies(self) -> Replies:
        return self._replies

    @property
    def media_deletes(self) -> MediaDeletes | None:
        return self._deletes

    async def drain(self) -> None:
        """Wait for the media deletions started so far, and a sweep pass in flight."""
        while pending := [task for task in self._background if not task.done()]:
            await asyncio.gather(*pending)
        if self._deletes is not None:
            await self._deletes.drain()

    # -- entry point -------------------------------------------------------------------

    async def answer(self, message: InboundMessage) -> str:
        """The reply to ``message`` (possibly empty); the same one for every delivery of it."""
        try:
            return await self._answer(message)
        except _Duplicate:
            return await self._stored_reply(message.message_sid)

    async def _answer(self, message: InboundMessage) -> str:
        now = self._clock()
        phone = self._numbers(message.from_)
        row: dict[str, Any] = {
            "message_sid": message.message_sid, "from_phone": phone[:20], "customer_id": None,
            "body": message.body, "num_media": len(message.media), "created_at": now,
        }
        delete_urls = self._to_delete(message)
        parsed = parse(message.body, message.opt_out_type)
        found = await self._senders.find(phone, parsed, now=now)
        if found is None:
            log.info("inbound SMS %s from unknown number %s", message.message_sid,
                     mask_phone(phone))
            if parsed.command in (Command.STOP, Command.START):
                # Kept for the number: it holds once a customer has it.
                return await self._opt(row, phone, Replies.language_for(phone), parsed,
                                       delete_urls)
            async with self.claimed(row, "unknown", delete_urls) as claim:  # its own thread
                claim.reply = await self._desk.unknown(phone, message.body, now=now)
            return claim.reply
        sender, prefetched = found
        row["customer_id"] = sender.id
        turn = Turn(row, sender, parsed, now, delete_urls, self._replies.to_number(phone),
                    prefetched)
        if sender.held and (message.media or parsed.command not in _ON_HELD_NUMBERS):
            return await self.query(row, "shared", turn.replies.shared_held(turn.language),
                                    delete_urls)
        # An MMS text is a caption (it may name the claim); but an opt-out Twilio has already
        # applied must reach our consent records whatever came with it.
        if message.media and not parsed.from_twilio:
            return await self._documents(turn, message.media)
        if parsed.command in _PERSONAL and sender.shared:
            return await self.query(row, parsed.command.value,
                                    turn.replies.shared_personal(turn.language), delete_urls)
        return await self._handlers[parsed.command](turn)

    def _to_delete(self, message: InboundMessage) -> tuple[str, ...]:
        """The media URLs of ``message`` to delete from Twilio once it is answered: all of
        our account's, whoever sent them and whether or not we keep the files."""
        if self._deletes is None or not message.media:
            return ()
        urls = tuple(ref.url for ref in message.media if self._deletes.deletable(ref.url))
        if len(urls) < len(message.media):
            log.warning("MMS %s: %d media URL(s) outside our Twilio account, left alone",
                        mask_sid(message.message_sid), len(message.media) - len(urls))
        return urls

    # -- the two idempotent shapes -------------------------------------------------------
    # A delivery that finds the MessageSid taken raises ``_Duplicate``; ``answer`` replies
    # with the stored reply.

    async def query(self, row: dict[str, Any], keyword: str, reply: str,
                    delete_urls: Sequence[str] = ()) -> str:
        """A reply with no effect: the row and the reply are one INSERT — unless media are to
        be deleted, which is an effect."""
        if delete_urls:
            async with self.claimed(row, keyword, delete_urls) as claim:
                claim.reply = reply
            return claim.reply
        if not await self._answered.store({**row, "keyword": keyword, "reply": reply}):
            raise _Duplicate
        return reply

    @asynccontextmanager
    async def claimed(self, row: dict[str, Any], keyword: str,
                      delete_urls: Sequence[str] = ()) -> AsyncIterator[Claimed]:
        """Claim the MessageSid for an effect: the body applies it and sets ``reply``, which is
        stored with the row, and ``delete_urls`` are recorded as media to delete — all in one
        transaction; after the commit the deletions start.

        Only the delivery that applied it records and deletes; a duplicate never enters the
        body (``_Duplicate``), and a body that raises leaves no row, so a retry does the work.
        """
        sid = row["message_sid"]
        deletes = self._deletes if delete_urls else None
        claim = Claimed()
        async with in_transaction():
            try:
                await records.insert({**row, "keyword": keyword, "reply": ""})
            except IntegrityError:
                raise _Duplicate from None
            yield claim
            await records.set_reply(sid, claim.reply)
            if deletes is not None:
                await deletes.record(sid, delete_urls, row["created_at"])
        if deletes is not None:
            for url in delete_urls:
                self._spawn(deletes.delete_now(sid, url))

    async def _stored_reply(self, message_sid: str) -> str:
        stored = await records.reply_of(message_sid)
        if stored is None:
            # The unique key fired, yet no row is visible: not a duplicate after all.
            raise RuntimeError(f"inbound SMS {message_sid}: conflict without a stored row")
        log.info("inbound SMS %s delivered again: answered with the stored reply", message_sid)
        return stored

    # -- keywords ----------------------------------------------------------------------

    async def _reply(self, turn: Turn, reply: str) -> str:
        return await self.query(turn.row, turn.parsed.command.value, reply, turn.delete_urls)

    async def _help(self, turn: Turn) -> str:
        # Twilio's Advanced Opt-Out answered HELP itself
        return await self._reply(turn, "" if turn.parsed.from_twilio
                                 else turn.replies.help(turn.language))

    async def _converse(self, turn: Turn) -> str:
        """Free text (answered with the menu, a hand-off or silence) and the hand-off keyword,
        recorded in the customer's conversation."""
        async with self.claimed(turn.row, turn.parsed.command.value, turn.delete_urls) as claim:
            claim.reply = await self._desk.converse(
                turn.sender.id, turn.sender.phone, turn.language, turn.row["body"],
                agent=turn.parsed.command is Command.AGENT, now=turn.now)
        return claim.reply

    async def _complaint(self, turn: Turn) -> str:
        async with self.claimed(turn.row, Command.COMPLAINT.value, turn.delete_urls) as claim:
            claim.reply = await self._desk.complaint(turn.sender.id, turn.sender.phone,
                                                     turn.language, turn.row["body"],
                                                     now=turn.now)
        return claim.reply

    async def _score(self, turn: Turn) -> str:
        async with self.claimed(turn.row, Command.SCORE.value, turn.delete_urls) as claim:
            claim.reply = await self._desk.score(turn.sender.ids, turn.sender.phone,
                                                 turn.language, turn.row["body"],
                                                 int(turn.parsed.argument), now=turn.now)
        return claim.reply

    async def _policy(self, turn: Turn) -> str:
        return await self._reply(turn, turn.replies.policies(turn.language,
                                                             turn.prefetched.policies))

    async def _checkin(self, turn: Turn) -> str:
        sender = turn.sender
        async with self.claimed(turn.row, Command.CHECKIN.value, turn.delete_urls) as claim:
            result = await check_in(sender.id, now=turn.now, settings=self._settings.loyalty)
            balance = await get_balance(sender.id)
            claim.reply = turn.replies.checked_in(
                turn.language, awarded=result.awarded, points=result.points,
                bonus=result.bonus, streak=result.streak, balance=balance)
        return claim.reply

    async def _city(self, turn: Turn) -> str:
        change = await sms_city.change(turn.sender.ids, turn.parsed.argument, turn.language,
                                       turn.replies, turn.now)
        if change.act is None:  # a question or an unknown city: nothing changes
            return await self._reply(turn, change.reply)
        async with self.claimed(turn.row, Command.CITY.value, turn.delete_urls) as claim:
            claim.reply = await change.act()
        return claim.reply

    async def _renewal_answer(self, turn: Turn) -> str:
        """XB/续保 or 已续 to a renewal reminder (``bot.sms.renewal_replies``)."""
        async with self.claimed(turn.row, turn.parsed.command.value, turn.delete_urls) as claim:
            claim.reply = await renewal_replies.reply(
                self._settings, turn.replies, turn.parsed.command,
                customer_ids=turn.sender.ids, language=turn.language, now=turn.now)
        return claim.reply

    async def _opt_turn(self, turn: Turn) -> str:
        return await self._opt(turn.row, turn.sender.phone, turn.language, turn.parsed,
                               turn.delete_urls)

    async def _report(self, turn: Turn) -> str:
        sender = turn.sender
        async with self.claimed(turn.row, Command.REPORT.value, turn.delete_urls) as claim:
            claim.reply = await report_by_sms(sender.id, sender.phone, turn.language,
                                              sender.timezone, turn.replies, now=turn.now)
        return claim.reply

    async def _opt(self, row: dict[str, Any], phone: str, language: str, parsed: Parsed,
                   delete_urls: Sequence[str]) -> str:
        """STOP or START, said by whoever holds ``phone``: remembered for the number (with the
        MessageSid), and the consent of every customer on it now — or later, once the number
        becomes a customer's."""
        categories = list(self._settings.sms.opt_out_categories)
        stop = parsed.command is Command.STOP
        source = TWILIO_OPT_OUT_SOURCE if parsed.from_twilio else KEYWORD_SOURCE
        now: datetime = row["created_at"]
        replies = self._replies.to_number(phone)

        async with self.claimed(row, parsed.command.value, delete_urls) as claim:
            await remember_number_choice(phone, categories, suppressed=stop,
                                         channel=Channel.SMS.value, source=source,
                                         reference=row["message_sid"], now=now)
            record = record_sms_opt_out if stop else record_sms_opt_in
            for customer in await Customer.filter(phone=phone).only("id"):
                await record(customer.id, categories, source=source, now=now,
                             reference=row["message_sid"])
            if parsed.from_twilio:  # Twilio's Advanced Opt-Out answered, and blocks ours
                claim.reply = ""
            elif stop:
                claim.reply = replies.opted_out(language, categories)
            else:
                claim.reply = replies.opted_in(language, categories)
        return claim.reply

    async def _points(self, turn: Turn) -> str:
        """The balance and tier on the account (``Prefetched``), as /points shows them."""
        tier = tier_of(turn.prefetched.tier, self._settings.loyalty)
        return await self._reply(turn, turn.replies.points(
            turn.language, turn.prefetched.balance, {"zh-CN": tier.name_zh, "en": tier.name_en}))

    async def _claim(self, turn: Turn) -> str:
        sender, lang, replies, number = turn.sender, turn.language, turn.replies, \
            turn.parsed.argument
        if not number:
            latest = turn.prefetched.latest_claim
            return await self._reply(turn, replies.claim(lang, *latest)
                                     if latest else replies.no_claims(lang))
        named = turn.prefetched.named_claim  # only the number's customers' own
        if named is None:
            return await self._reply(turn, replies.claim_not_found(lang, number))
        # Documents we asked the claim number for are filed now — on an open claim only,
        # as Telegram uploads are.
        if named.status not in OPEN_CLAIM_STATUSES or not named.unfiled:
            return await self._reply(turn, replies.claim(lang, number, named.status))
        async with self.claimed(turn.row, Command.CLAIM.value, turn.delete_urls) as claim:
            filed = await self._file_unattached(sender.ids, named.id, named.customer_id)
            claim.reply = replies.claim(lang, number, named.status, attached=filed)
        return claim.reply

    @staticmethod
    def _unfiled(customer_ids: Sequence[int]) -> QuerySet[Document]:
        return Document.filter(customer_id__in=customer_ids, claim_id=None,
                               channel=Channel.SMS)

    async def _file_unattached(self, customer_ids: Sequence[int], claim_id: int,
                               owner: int) -> int:
        """Attach the number's unattached MMS documents (we asked for the claim number) to
        the claim, as its customer's."""
        on_claim = set(await Document.filter(claim_id=claim_id)
                       .values_list("sha256", flat=True))
        ids = []
        for doc_id, digest in await self._unfiled(customer_ids).values_list("id", "sha256"):
            if digest not in on_claim:  # the same file already there stays a single copy
                ids.append(doc_id)
                on_claim.add(digest)
        if ids:
            await Document.filter(id__in=ids).update(claim_id=claim_id, customer_id=owner)
        return len(ids)

    # -- MMS ---------------------------------------------------------------------------

    async def _documents(self, turn: Turn, media: Sequence[MediaRef]) -> str:
        row, sender, now = turn.row, turn.sender, turn.now
        sid = row["message_sid"]
        # The first delivery deleted the media from Twilio: a retry must not fetch again.
        stored = await records.reply_of(sid)
        if stored is not None:
            return stored
        fetched = await asyncio.gather(*(self._fetch(ref) for ref in media[:MAX_MEDIA]))
        lang, replies = turn.language, turn.replies
        async with self.claimed(row, "media", turn.delete_urls) as claim:
            claim_id, claim_number, owner = await self._target_claim(sender, turn.parsed)
            count = 0
            first_refusal: str | None = None
            for i, item in enumerate(fetched):
                refused = item.refused
                if item.data is not None:
                    try:
                        await store_document(
                            customer_id=owner, claim_id=claim_id, channel=Channel.SMS,
                            data=item.data, original_name=f"{sid}-{i}", limits=self._limits,
                            now=now)
                        count += 1
                    except UploadRejected as exc:
                        refused = exc.reason
                if refused is not None:
                    log.info("MMS %s item %d refused: %s", sid, i, refused)
                    first_refusal = first_refusal or refused
            reason = (replies.rejection(lang, first_refusal, max_bytes=self._limits.max_bytes)
                      if first_refusal else None)
            claim.reply = replies.documents(lang, stored=count, claim=claim_number,
                                            rejected_reason=reason)
        return claim.reply

    async def _fetch(self, ref: MediaRef) -> _Fetched:
        if self._media is None:
            return _Fetched(ref, None, "download_failed")
        try:
            data = await self._media.fetch(ref.url, max_bytes=self._limits.max_bytes)
        except UploadRejected as exc:
            return _Fetched(ref, None, exc.reason)
        except MediaUnavailable as exc:
            log.warning("MMS media not fetched: %s", exc)
            return _Fetched(ref, None, "download_failed")
        return _Fetched(ref, data, None)

    async def _target_claim(self, sender: Sender,
                            parsed: Parsed) -> tuple[int | None, str | None, int]:
        """The open claim named in the MMS text, else the newest open claim of the number's
        customers, and whose it is; none (kept as the first customer's) when the named claim
        is not theirs or not open — we ask rather than guess."""
        query = Claim.filter(customer_id__in=sender.ids, status__in=list(OPEN_CLAIM_STATUSES))
        if parsed.command is Command.CLAIM and parsed.argument:
            query = query.filter(number=parsed.argument)
        else:
            query = query.order_by("-reported_at", "-id")
        found = await query.limit(1).values_list("id", "number", "customer_id")
        if not found:
            return None, None, sender.id
        return int(found[0][0]), str(found[0][1]), int(found[0][2])

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
