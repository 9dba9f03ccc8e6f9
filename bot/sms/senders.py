"""Who sent an inbound SMS, and what its keyword will read, in one statement.

Every inbound message needs the customers on its number (the first one's language and time
zone, all of their ids) and whether the number is a held shared one (``storage.shared_phones``);
the busiest keywords need one more read each — POLICY the number's active policies, CLAIM the
newest or the named claim, POINTS the first customer's balance and tier. Through the ORM that
was two to four round trips and most of the time of an answer (``bench/sms_inbound.py``); here
it is one statement through ``storage.sql``: a row per customer on the number, oldest first,
carrying the held flag and the keyword's data (``Prefetched``) as JSON columns — subqueries
that do not depend on the row, which both backends evaluate once.

The keyword's data is read for the keyword ``parse`` found, before anyone knows whether the
number is held or shared; the reply decides what of it to show (nothing, on a held number).

Messages answered at the same time are looked up together (``Senders``): while one lookup is
in flight, the others wait and then go out as one statement (``find_senders``), whose rows are
those of ``find_sender`` for each message, tagged with the message's position.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from bot.sms.grouped import Grouped
from bot.sms.keywords import Command, Parsed
from storage.models import Channel, PolicyStatus
from storage.shared_phones import SHARED_AT, held_number
from storage.sql import (
    Row,
    as_bool,
    as_date,
    as_json,
    bound_json_rows,
    bound_json_rows_values,
    current,
    fetch,
    inside_transaction,
    is_postgres,
    json_rows,
)


@dataclass(frozen=True, slots=True)
class Sender:
    """The customers on the number: ``id`` (the first) is whose language the reply is in and
    whom the conversation is recorded under; ``ids`` are all of them."""

    id: int
    phone: str
    language: str
    timezone: str
    ids: tuple[int, ...]
    held: bool = False  # three or more share it and no operator released it

    @property
    def shared(self) -> bool:
        return len(self.ids) > 1


@dataclass(frozen=True, slots=True)
class NamedClaim:
    """The claim a CLAIM message named, if it is one of the number's customers'."""

    id: int
    status: str
    customer_id: int
    unfiled: bool  # the number's customers have MMS documents on no claim yet


@dataclass(frozen=True, slots=True)
class Prefetched:
    """What the message's keyword reads, fetched with the sender (empty for other keywords)."""

    policies: tuple[tuple[str, date], ...] = ()  # POLICY: active, (plate, end), soonest first
    latest_claim: tuple[str, str] | None = None  # CLAIM alone: the newest (number, status)
    named_claim: NamedClaim | None = None  # CLAIM <number>
    balance: int = 0  # POINTS: the first customer's
    tier: str | None = None  # POINTS: the first customer's tier code (None: no account)


_OF_NUMBER = "SELECT id FROM customer WHERE phone = :phone"


def _policies(postgres: bool) -> str:
    """Active policies ending on or after ``:from_day`` (the earliest "today" of any time
    zone); the caller keeps those from the sender's today on."""
    rows = json_rows("x.plate", "x.end_date", postgres=postgres, order_by="x.end_date, x.id")
    return (f"(SELECT {rows} FROM (SELECT p.plate, p.end_date, p.id FROM policy p "
            f"WHERE p.customer_id IN ({_OF_NUMBER}) AND p.status = :active "
            "AND p.end_date >= :from_day ORDER BY p.end_date, p.id) x)")


def _latest_claim(postgres: bool) -> str:
    rows = json_rows("x.number", "x.status", postgres=postgres)
    return (f"(SELECT {rows} FROM (SELECT k.number, k.status FROM claim k "
            f"WHERE k.customer_id IN ({_OF_NUMBER}) "
            "ORDER BY k.reported_at DESC, k.id DESC LIMIT 1) x)")


def _named_claim(postgres: bool) -> str:
    """Only the number's customers' own claim: someone else's reads exactly as a wrong one."""
    rows = json_rows("x.id", "x.status", "x.customer_id", "x.unfiled", postgres=postgres)
    return (f"(SELECT {rows} FROM (SELECT k.id, k.status, k.customer_id, "
            "EXISTS (SELECT 1 FROM document d "
            f"WHERE d.customer_id IN ({_OF_NUMBER}) AND d.claim_id IS NULL "
            "AND d.channel = :sms) AS unfiled "
            f"FROM claim k WHERE k.number = :number AND k.customer_id IN ({_OF_NUMBER}) "
            "LIMIT 1) x)")


def _account(postgres: bool) -> str:
    rows = json_rows("a.balance", "a.tier", postgres=postgres)
    return f"(SELECT {rows} FROM loyalty_account a WHERE a.customer_id = c.id)"


def _statement(extra: str) -> str:
    return (f"SELECT c.id, c.language, c.timezone, {held_number(':phone')} AS held, "
            f"{extra} AS extra FROM customer c WHERE c.phone = :phone ORDER BY c.id")


_POLICY, _LATEST, _NAMED, _POINTS, _NONE = range(5)
_STATEMENTS = {
    (shape, postgres): _statement(extra(postgres) if extra else "NULL")
    for postgres in (False, True)
    for shape, extra in ((_POLICY, _policies), (_LATEST, _latest_claim),
                         (_NAMED, _named_claim), (_POINTS, _account), (_NONE, None))
}


def _shape(parsed: Parsed) -> int:
    if parsed.command is Command.POLICY:
        return _POLICY
    if parsed.command is Command.CLAIM:
        return _NAMED if parsed.argument else _LATEST
    if parsed.command is Command.POINTS:
        return _POINTS
    return _NONE


def _values(shape: int, phone: str, parsed: Parsed, now: datetime) -> dict[str, object]:
    values: dict[str, object] = {"phone": phone}
    if shape == _POLICY:
        values.update(active=PolicyStatus.ACTIVE.value,
                      from_day=now.astimezone(UTC).date() - timedelta(days=1))
    elif shape == _NAMED:
        values.update(number=parsed.argument, sms=Channel.SMS.value)
    return values


async def find_sender(phone: str, parsed: Parsed, *,
                      now: datetime) -> tuple[Sender, Prefetched] | None:
    """The customers on ``phone`` (None: nobody's number) and what ``parsed``'s keyword reads
    (``Prefetched``; POLICY's list already cut to the first customer's today)."""
    shape = _shape(parsed)
    rows = await fetch(current(), _STATEMENTS[shape, is_postgres()],
                       _values(shape, phone, parsed, now))
    return _found(rows, shape, phone, now)


def _found(rows: Sequence[Row], shape: int, phone: str,
           now: datetime) -> tuple[Sender, Prefetched] | None:
    """``find_sender``'s answer from its rows (the customers on the number, oldest first)."""
    if not rows:
        return None
    first = rows[0]
    ids = tuple(int(row["id"]) for row in rows)
    timezone = str(first["timezone"])
    sender = Sender(ids[0], phone, str(first["language"]), timezone, ids,
                    held=len(ids) >= SHARED_AT and as_bool(first["held"]))
    found = as_json(first["extra"], [])
    if shape == _POLICY:
        today = now.astimezone(ZoneInfo(timezone)).date()
        ends = ((str(plate), as_date(end)) for plate, end in found)
        return sender, Prefetched(policies=tuple(p for p in ends if p[1] >= today))
    if shape == _LATEST:
        return sender, Prefetched(latest_claim=(str(found[0][0]), str(found[0][1]))
                                  if found else None)
    if shape == _NAMED:
        return sender, Prefetched(named_claim=NamedClaim(
            int(found[0][0]), str(found[0][1]), int(found[0][2]), as_bool(found[0][3]))
            if found else None)
    if shape == _POINTS and found:
        return sender, Prefetched(balance=int(found[0][0] or 0), tier=found[0][1])
    return sender, Prefetched()


# -- many messages' senders in one statement -------------------------------------------------

_MESSAGES = (("phone", "text"), ("shape", "integer"), ("number", "text"),
             ("from_day", "date"))
_OF_MESSAGE = "SELECT id FROM customer WHERE phone = m.phone"


def _many_statement(postgres: bool) -> str:
    """``find_sender``'s statement for a batch of messages (``bound_json_rows`` ``m``: phone,
    shape, claim number, earliest day): a row per customer on each message's number, with the
    message's position (``ord``), and the extra column of the message's shape — a ``CASE``,
    so each message evaluates only its own subquery, correlated with its row of ``m``
    instead of bound. Its one value is the batch (the status and channel it compares with
    are constants, written in): on PostgreSQL one generic plan serves every batch."""
    policies = json_rows("x.plate", "x.end_date", postgres=postgres, order_by="x.end_date, x.id")
    latest = json_rows("x.number", "x.status", postgres=postgres)
    named = json_rows("x.id", "x.status", "x.customer_id", "x.unfiled", postgres=postgres)
    account = json_rows("a.balance", "a.tier", postgres=postgres)
    extra = (
        f"CASE m.shape WHEN {_POLICY} THEN (SELECT {policies} FROM (SELECT p.plate, "
        f"p.end_date, p.id FROM policy p WHERE p.customer_id IN ({_OF_MESSAGE}) "
        f"AND p.status = '{PolicyStatus.ACTIVE.value}' AND p.end_date >= m.from_day "
        "ORDER BY p.end_date, p.id) x) "
        f"WHEN {_LATEST} THEN (SELECT {latest} FROM (SELECT k.number, k.status FROM claim k "
        f"WHERE k.customer_id IN ({_OF_MESSAGE}) "
        "ORDER BY k.reported_at DESC, k.id DESC LIMIT 1) x) "
        f"WHEN {_NAMED} THEN (SELECT {named} FROM (SELECT k.id, k.status, k.customer_id, "
        "EXISTS (SELECT 1 FROM document d "
        f"WHERE d.customer_id IN ({_OF_MESSAGE}) AND d.claim_id IS NULL "
        f"AND d.channel = '{Channel.SMS.value}') AS unfiled "
        f"FROM claim k WHERE k.number = m.number AND k.customer_id IN ({_OF_MESSAGE}) "
        "LIMIT 1) x) "
        f"WHEN {_POINTS} THEN (SELECT {account} FROM loyalty_account a "
        "WHERE a.customer_id = c.id) END")
    return (f"SELECT m.ord, c.id, c.language, c.timezone, {held_number('m.phone')} AS held, "
            f"{extra} AS extra FROM {bound_json_rows('m', _MESSAGES, postgres=postgres)} "
            "JOIN customer c ON c.phone = m.phone ORDER BY m.ord, c.id")


_MANY = {postgres: _many_statement(postgres) for postgres in (False, True)}


@dataclass(frozen=True, slots=True)
class Lookup:
    """One message's sender to find: ``find_sender``'s arguments."""

    phone: str
    parsed: Parsed
    now: datetime


async def find_senders(lookups: Sequence[Lookup]) -> list[tuple[Sender, Prefetched] | None]:
    """``find_sender`` of each lookup, in one statement (outside a transaction, as for one)."""
    shapes = [_shape(lookup.parsed) for lookup in lookups]
    values = bound_json_rows_values("m", [name for name, _ in _MESSAGES], [
        (lookup.phone, shape, lookup.parsed.argument if shape == _NAMED else "",
         lookup.now.astimezone(UTC).date() - timedelta(days=1))
        for lookup, shape in zip(lookups, shapes, strict=True)
    ])
    rows = await fetch(current(), _MANY[is_postgres()], values)
    by_message: list[list[Row]] = [[] for _ in lookups]
    for row in rows:
        by_message[int(row["ord"]) - 1].append(row)
    return [_found(found, shape, lookup.phone, lookup.now)
            for found, shape, lookup in zip(by_message, shapes, lookups, strict=True)]


class Senders:
    """``find_sender`` for messages answered at the same time, read together: a lookup made
    while a read is in flight waits for it, and all that waited go out in the next single
    statement (``find_senders``) — one round trip for many messages, as ``records.Answered``
    writes their rows (both are ``bot.sms.grouped.Grouped``). A lookup with no read in flight
    goes out at once, alone, as ``find_sender``'s own statement; inside a transaction it is
    never grouped. A grouped statement that fails is retried lookup by lookup, so one failure
    is only its own."""

    MAX_GROUP = 64

    def __init__(self) -> None:
        self._grouped: Grouped[Lookup, tuple[Sender, Prefetched] | None] = Grouped(
            _find_many, _find_one, max_group=self.MAX_GROUP)

    async def find(self, phone: str, parsed: Parsed, *,
                   now: datetime) -> tuple[Sender, Prefetched] | None:
        if inside_transaction():
            return await find_sender(phone, parsed, now=now)
        return await self._grouped(Lookup(phone, parsed, now))


async def _find_one(lookup: Lookup) -> tuple[Sender, Prefetched] | None:
    return await find_sender(lookup.phone, lookup.parsed, now=lookup.now)


async def _find_many(lookups: Sequence[Lookup]) -> list[tuple[Sender, Prefetched] | None]:
    if len(lookups) == 1:  # alone: the single lookup's own statement
        return [await _find_one(lookups[0])]
    return await find_senders(lookups)
