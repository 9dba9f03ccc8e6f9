"""The points ledger: accounts, immutable entries, lots consumed first-expiring-first.

Contract (architecture invariant 4):

* ``account.balance`` = sum of the account's entries = sum of its lots' remainders, ≥ 0.
* Every posting carries an idempotency key (unique). The same key with the same request
  returns the original entry (``Posted.replayed``) and changes nothing; the same key with a
  different request raises ``IdempotencyConflict``.
* A debit that would take the balance below zero raises ``InsufficientPoints`` and changes
  nothing. Nothing is updated or deleted: a correction is a reversal entry linked to the
  original (``reverses_id``).

Concurrency: every posting first locks the account row — by the ``UPDATE`` of its balance
(``balance = balance - :points … AND balance >= :points`` for debits) or ``SELECT … FOR
UPDATE`` — which holds on PostgreSQL until commit, so lots are only read and changed by the
transaction holding it. On SQLite Tortoise runs one transaction at a time on its single
connection (its transaction context holds the connection lock), which serialises writers in
the process;
the conditional ``UPDATE`` keeps the balance check correct on both. We deliberately add no
lock of our own: a second lock taken around Tortoise's could deadlock with a caller already
inside a transaction.

The hot path is plain SQL (one statement for a credit on PostgreSQL, a few elsewhere)
because it is the part the benchmark measures; standalone postings go further and are made
a group at a time, in a few set-based statements (``loyalty.group_postings``).
``created_at``/``updated_at`` there are row bookkeeping stamped from the ORM's clock, as its
``auto_now`` fields are; every business time (``occurred_at``, lot dates) comes from the
caller's ``now``. Functions named
``post_*`` run inside the caller's transaction (pass the connection from
``in_transaction()``); the others open their own, except that standalone
``credit``/``debit`` calls share one with the postings made at the same time
(``posting_queue``, ``loyalty.group_commit``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, TypedDict
from weakref import WeakKeyDictionary

from tortoise import timezone as orm_clock
from tortoise.backends.base.client import BaseDBAsyncClient, TransactionalDBClient
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from loyalty.config import LoyaltySettings
from loyalty.entries import EntrySpec as EntrySpec
from loyalty.entries import LedgerCorrupted as LedgerCorrupted
from loyalty.entries import Posted as Posted
from loyalty.entries import fingerprint as fingerprint
from loyalty.errors import (
    IdempotencyConflict,
    InsufficientPoints,
    InvalidRequest,
    NotEligible,
    UnknownCustomer,
)
from loyalty.group_commit import GroupCommit, Job
from loyalty.group_postings import GroupPosting, post_group
from loyalty.periods import PROGRAMME_TZ, local_day, lot_expiry, utc
from storage.loyalty_models import EARNING_KINDS, EntryKind, LedgerEntry, LoyaltyAccount, PointLot
from storage.sql import (
    Params,
    as_date,
    current,
    execute,
    fetch,
    fetchrow,
    fetchval,
    for_update,
    is_postgres,
)

log = logging.getLogger(__name__)

_FIFO_BATCH = 20


@dataclass(frozen=True, slots=True)
class Account:
    """An account row read under its lock."""

    id: int
    customer_id: int
    balance: int
    tier: str


class Replay(Exception):
    """Raised inside a transaction when the key is already used, to roll it back."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def expiry_key(lot_id: int) -> str:
    return f"expiry:lot:{lot_id}"


def reversal_key(entry_id: int) -> str:
    return f"reversal:{entry_id}"


def expiry_spec(lot_id: int) -> EntrySpec:
    """The one expiry entry a lot ever gets, whoever posts it."""
    return EntrySpec(EntryKind.EXPIRY, expiry_key(lot_id),
                     fingerprint({"op": "expire", "lot": lot_id}))


# --- SQL (named parameters through storage.sql) ---------------------------------------------

_WHERE = {"id": "id = :ref", "customer_id": "customer_id = :ref"}


@dataclass(frozen=True, slots=True)
class AccountRef:
    """An account named by its id or by its customer's id (saves a lookup on the hot path)."""

    column: str
    value: int

    @classmethod
    def of_customer(cls, customer_id: int) -> AccountRef:
        return cls("customer_id", customer_id)

    @classmethod
    def of_account(cls, account_id: int) -> AccountRef:
        return cls("id", account_id)


class EntryRow(TypedDict):
    """The id, account and balance after a posting's entry, as a statement returns them."""

    id: int
    account_id: int
    balance_after: int


def _entry_values(spec: EntrySpec, amount: int, balance_after: int | None, now: datetime,
                  shortfall: int = 0) -> dict[str, Any]:
    """The named values of a ``loyalty_entry`` row (``_ENTRY_VALUES``); ``balance_after`` None
    when the statement takes it from the account it updated."""
    values = {"kind": spec.kind.value, "amount": amount, "key": spec.key,
              "fingerprint": spec.fingerprint, "reverses_id": spec.reverses_id,
              "shortfall": shortfall, "payment_id": spec.payment_id,
              "policy_id": spec.policy_id, "reason": spec.reason, "operator": spec.operator,
              "occurred_at": utc(now), "stamp": orm_clock.now(),
              "basis_cents": spec.basis_cents}
    if balance_after is not None:
        values["balance_after"] = balance_after
    return values


_ENTRY_COLUMNS = ("kind, amount, idempotency_key, fingerprint, reverses_id, shortfall, "
                  "payment_id, policy_id, reason, operator, occurred_at, created_at, basis_cents")
_ENTRY_VALUES = (":kind, :amount, :key, :fingerprint, :reverses_id, :shortfall, :payment_id, "
                 ":policy_id, :reason, :operator, :occurred_at, :stamp, :basis_cents")
# PostgreSQL cannot infer a parameter's type inside a data-modifying WITH: the same, typed
_ENTRY_VALUES_TYPED = (":kind::varchar, :amount::bigint, :key::varchar, :fingerprint::varchar, "
                       ":reverses_id::bigint, :shortfall::bigint, :payment_id::int, "
                       ":policy_id::int, :reason::text, :operator::varchar, "
                       ":occurred_at::timestamptz, :stamp::timestamptz, :basis_cents::bigint")


async def _create_account(
    conn: BaseDBAsyncClient, customer_id: int, settings: LoyaltySettings
) -> None:
    try:
        await execute(
            conn,
            "INSERT INTO loyalty_account (customer_id, balance, tier, created_at, updated_at) "
            "VALUES (:customer, 0, :tier, :stamp, :stamp) ON CONFLICT (customer_id) DO NOTHING",
            {"customer": customer_id, "tier": settings.tiers[0].code, "stamp": orm_clock.now()},
        )
    except IntegrityError:
        raise UnknownCustomer(f"no customer {customer_id}") from None


async def lock_account(
    conn: BaseDBAsyncClient, ref: AccountRef, settings: LoyaltySettings, *, create: bool = True
) -> Account:
    """Lock the account row for the rest of the transaction (creating it if needed)."""
    sql = (f"SELECT id, customer_id, balance, tier FROM loyalty_account "
           f"WHERE {_WHERE[ref.column]}{for_update(postgres=is_postgres(conn))}")
    row = await fetchrow(conn, sql, {"ref": ref.value})
    if row is None and create and ref.column == "customer_id":
        await _create_account(conn, ref.value, settings)
        row = await fetchrow(conn, sql, {"ref": ref.value})
    if row is None:
        raise UnknownCustomer(f"no loyalty account for {ref.column} {ref.value}")
    return Account(int(row["id"]), int(row["customer_id"]), int(row["balance"]), str(row["tier"]))


async def _add_to_balance(
    conn: BaseDBAsyncClient, ref: AccountRef, points: int, settings: LoyaltySettings
) -> tuple[int, int]:
    sql = (f"UPDATE loyalty_account SET balance = balance + :points, updated_at = :stamp "
           f"WHERE {_WHERE[ref.column]} RETURNING id, balance")
    values = {"points": points, "stamp": orm_clock.now(), "ref": ref.value}
    row = await fetchrow(conn, sql, values)
    if row is None and ref.column == "customer_id":
        await _create_account(conn, ref.value, settings)
        row = await fetchrow(conn, sql, values)
    if row is None:
        raise UnknownCustomer(f"no loyalty account for {ref.column} {ref.value}")
    return int(row["id"]), int(row["balance"])


async def _take_from_balance(
    conn: BaseDBAsyncClient, ref: AccountRef, points: int
) -> tuple[int, int] | None:
    row = await fetchrow(
        conn, f"UPDATE loyalty_account SET balance = balance - :points, updated_at = :stamp "
              f"WHERE {_WHERE[ref.column]} AND balance >= :points RETURNING id, balance",
        {"points": points, "stamp": orm_clock.now(), "ref": ref.value})
    return None if row is None else (int(row["id"]), int(row["balance"]))


async def _insert_entry(
    conn: BaseDBAsyncClient,
    account_id: int,
    spec: EntrySpec,
    amount: int,
    balance_after: int,
    now: datetime,
    shortfall: int = 0,
) -> int:
    row = await fetchrow(
        conn,
        f"INSERT INTO loyalty_entry (account_id, balance_after, {_ENTRY_COLUMNS}) "
        f"VALUES (:account, :balance_after, {_ENTRY_VALUES}) "
        "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
        {"account": account_id, **_entry_values(spec, amount, balance_after, now, shortfall)},
    )
    if row is None:
        raise Replay(spec.key)
    return int(row["id"])


async def _key_exists(conn: BaseDBAsyncClient, key: str) -> bool:
    return await fetchrow(conn, "SELECT id FROM loyalty_entry WHERE idempotency_key = :key",
                          {"key": key}) is not None


async def _insert_lot(
    conn: BaseDBAsyncClient, account_id: int, entry_id: int, points: int, now: datetime,
    expires_on: date,
) -> int:
    return int(await fetchval(
        conn,
        "INSERT INTO loyalty_lot (account_id, entry_id, original, remaining, earned_at, "
        "expires_on) VALUES (:account, :entry, :points, :points, :earned_at, :expires_on) "
        "RETURNING id",
        {"account": account_id, "entry": entry_id, "points": points, "earned_at": utc(now),
         "expires_on": expires_on},
    ))


async def _lot_remaining(conn: BaseDBAsyncClient, lot_id: int) -> int:
    return int(await fetchval(conn, "SELECT remaining FROM loyalty_lot WHERE id = :lot",
                              {"lot": lot_id}))


def _key_conflict(exc: IntegrityError, key: str) -> Replay:
    """A unique violation on the idempotency key becomes ``Replay``; anything else stands."""
    if "idempotency_key" not in str(exc):
        raise exc
    return Replay(key)


# --- the two bookkeeping steps, each one function with both backends' forms ------------------
# On PostgreSQL a credit is one statement (account update, entry, lot) and a debit's
# bookkeeping another (first-expiring-first lot consumption, entry, lot uses): a posting costs
# two or three round trips instead of six or more. The debit's lot statement runs after the
# statement that locked the account, so its snapshot sees every committed change to the lots.
# SQLite has RETURNING but no data-modifying WITH, so it runs the same steps one statement at a
# time, in process (a statement there costs microseconds, not a round trip).

_CREDIT_IN_ONE = f"""
WITH a AS (
    UPDATE loyalty_account SET balance = balance + :amount::bigint,
                               updated_at = :stamp::timestamptz
    WHERE {{where}}::int RETURNING id, balance
), e AS (
    INSERT INTO loyalty_entry (account_id, balance_after, {_ENTRY_COLUMNS})
    SELECT a.id, a.balance, {_ENTRY_VALUES_TYPED} FROM a
    RETURNING id, account_id, balance_after
), l AS (
    INSERT INTO loyalty_lot (account_id, entry_id, original, remaining, earned_at, expires_on)
    SELECT e.account_id, e.id, :amount::bigint, :amount::bigint, :occurred_at::timestamptz,
           :expires_on::date FROM e
)
SELECT id, account_id, balance_after FROM e
"""


async def _credit_rows(
    conn: BaseDBAsyncClient, ref: AccountRef, points: int, spec: EntrySpec, *, now: datetime,
    expires_on: date, settings: LoyaltySettings,
) -> EntryRow:
    """Raise the balance, write the entry and its lot; the account is created on first use."""
    if not is_postgres(conn):
        account_id, balance = await _add_to_balance(conn, ref, points, settings)
        entry_id = await _insert_entry(conn, account_id, spec, points, balance, now)
        await _insert_lot(conn, account_id, entry_id, points, now, expires_on)
        return EntryRow(id=entry_id, account_id=account_id, balance_after=balance)
    sql = _CREDIT_IN_ONE.replace("{where}", _WHERE[ref.column])
    values = {"ref": ref.value, "expires_on": expires_on,
              **_entry_values(spec, points, None, now)}
    for _ in range(2):
        try:
            row = await fetchrow(conn, sql, values)
        except IntegrityError as exc:
            raise _key_conflict(exc, spec.key) from None
        if row is not None:
            return EntryRow(id=int(row["id"]), account_id=int(row["account_id"]),
                            balance_after=int(row["balance_after"]))
        if ref.column != "customer_id":
            break
        await _create_account(conn, ref.value, settings)
    raise UnknownCustomer(f"no loyalty account for {ref.column} {ref.value}")


_DEBIT_IN_ONE = f"""
WITH fifo AS (
    SELECT id, remaining, SUM(remaining) OVER (
        ORDER BY (id = ANY(:prefer::bigint[])) DESC, expires_on, id) - remaining AS before
    FROM loyalty_lot
    WHERE account_id = :account::int AND remaining > 0
      AND (NOT :only::boolean OR id = ANY(:prefer::bigint[]))
), take AS (
    SELECT id, LEAST(remaining, :taken::bigint - before) AS amount FROM fifo
    WHERE before < :taken::bigint
), used AS (
    UPDATE loyalty_lot SET remaining = loyalty_lot.remaining - take.amount
    FROM take WHERE loyalty_lot.id = take.id
), e AS (
    INSERT INTO loyalty_entry (account_id, balance_after, {_ENTRY_COLUMNS})
    VALUES (:account::int, :balance_after::bigint, {_ENTRY_VALUES_TYPED})
    RETURNING id
), uses AS (
    INSERT INTO loyalty_lot_use (entry_id, lot_id, amount)
    SELECT e.id, take.id, take.amount FROM e, take
)
SELECT e.id, (SELECT COALESCE(SUM(amount), 0) FROM take) AS taken FROM e
"""


async def _record_debit(
    conn: BaseDBAsyncClient,
    account_id: int,
    spec: EntrySpec,
    taken: int,
    balance: int,
    *,
    now: datetime,
    shortfall: int = 0,
    prefer: Sequence[int] = (),
    only: bool = False,
) -> int:
    """With the account locked and its balance already lowered by ``taken``: write the entry
    and take ``taken`` points from the lots (``prefer`` first). Returns the entry id."""
    if not is_postgres(conn):
        entry_id = await _insert_entry(conn, account_id, spec, -taken, balance, now,
                                       shortfall=shortfall)
        if taken:
            await _consume(conn, account_id, entry_id, taken, prefer=prefer, only=only)
        return entry_id
    try:
        row = await fetchrow(conn, _DEBIT_IN_ONE, {
            "account": account_id, "taken": taken, "prefer": list(prefer), "only": only,
            **_entry_values(spec, -taken, balance, now, shortfall)})
    except IntegrityError as exc:
        raise _key_conflict(exc, spec.key) from None
    assert row is not None  # the entry is inserted unconditionally
    if int(row["taken"]) != taken:
        raise LedgerCorrupted(f"account {account_id}: lots short by "
                              f"{taken - int(row['taken'])} points")
    return int(row["id"])


async def _consume(
    conn: BaseDBAsyncClient,
    account_id: int,
    entry_id: int,
    points: int,
    *,
    prefer: Sequence[int] = (),
    only: bool = False,
) -> None:
    """SQLite's form of ``_DEBIT_IN_ONE``: take ``points`` from the account's lots,
    ``prefer`` first, then first-expiring-first."""
    left = points
    uses: list[tuple[int, int]] = []

    async def take(lot_id: int, remaining: int) -> None:
        nonlocal left
        amount = min(left, remaining)
        if amount <= 0:
            return
        await execute(conn, "UPDATE loyalty_lot SET remaining = remaining - :amount "
                            "WHERE id = :lot", {"amount": amount, "lot": lot_id})
        uses.append((lot_id, amount))
        left -= amount

    for lot_id in prefer:
        remaining = await fetchval(
            conn, "SELECT remaining FROM loyalty_lot WHERE id = :lot AND account_id = :account",
            {"lot": lot_id, "account": account_id})
        if remaining is not None:
            await take(lot_id, int(remaining))
    while left > 0 and not only:
        rows = await fetch(
            conn,
            "SELECT id, remaining FROM loyalty_lot WHERE account_id = :account "
            f"AND remaining > 0 ORDER BY expires_on, id LIMIT {_FIFO_BATCH}",
            {"account": account_id},
        )
        if not rows:
            break
        for row in rows:
            await take(int(row["id"]), int(row["remaining"]))
            if left == 0:
                break
    if left:
        raise LedgerCorrupted(f"account {account_id}: lots short by {left} points")
    params = Params(entry=entry_id)
    rows_sql = ", ".join(f"(:entry, {params.add(lot_id)}, {params.add(amount)})"
                         for lot_id, amount in uses)
    await execute(conn, f"INSERT INTO loyalty_lot_use (entry_id, lot_id, amount) "
                        f"VALUES {rows_sql}", params)


# --- postings inside a transaction ----------------------------------------------------------


async def post_credit(
    conn: BaseDBAsyncClient,
    ref: AccountRef,
    points: int,
    spec: EntrySpec,
    *,
    now: datetime,
    settings: LoyaltySettings,
    expires_on: date | None = None,
) -> Posted:
    """Credit ``points`` as a new lot expiring at the end of the configured month."""
    if points <= 0:
        raise InvalidRequest("a credit must be a positive number of points")
    if expires_on is None:
        expires_on = lot_expiry(local_day(now, PROGRAMME_TZ), settings.lot_expiry_months)
    row = await _credit_rows(conn, ref, points, spec, now=now, expires_on=expires_on,
                             settings=settings)
    return Posted(row["id"], row["account_id"], spec.kind, points, row["balance_after"])


async def post_debit(
    conn: BaseDBAsyncClient,
    ref: AccountRef,
    points: int,
    spec: EntrySpec,
    *,
    now: datetime,
    prefer_lots: Sequence[int] = (),
    only_preferred: bool = False,
) -> Posted:
    """Debit ``points`` or raise ``InsufficientPoints`` (a replayed key raises ``Replay``)."""
    if points <= 0:
        raise InvalidRequest("a debit must be a positive number of points")
    taken = await _take_from_balance(conn, ref, points)
    if taken is None:
        if await _key_exists(conn, spec.key):
            raise Replay(spec.key)
        balance = await fetchval(conn, f"SELECT balance FROM loyalty_account WHERE "
                                       f"{_WHERE[ref.column]}", {"ref": ref.value})
        raise InsufficientPoints(points, int(balance or 0))
    account_id, balance = taken
    entry_id = await _record_debit(conn, account_id, spec, points, balance, now=now,
                                   prefer=prefer_lots, only=only_preferred)
    return Posted(entry_id, account_id, spec.kind, -points, balance)


async def post_capped_debit(
    conn: BaseDBAsyncClient,
    ref: AccountRef,
    points: int,
    spec: EntrySpec,
    *,
    now: datetime,
    settings: LoyaltySettings,
    prefer_lots: Sequence[int] = (),
) -> Posted:
    """Take back up to ``points``, never below zero; what could not be taken is recorded as
    the entry's ``shortfall`` (the entry exists even when nothing could be taken)."""
    if points <= 0:
        raise InvalidRequest("a reversal must be a positive number of points")
    account = await lock_account(conn, ref, settings)
    taken = min(points, account.balance)
    balance = account.balance
    if taken:
        result = await _take_from_balance(conn, AccountRef.of_account(account.id), taken)
        if result is None:  # impossible while we hold the row lock
            raise LedgerCorrupted(f"account {account.id}: balance moved under its lock")
        balance = result[1]
    entry_id = await _record_debit(conn, account.id, spec, taken, balance, now=now,
                                   shortfall=points - taken, prefer=prefer_lots)
    return Posted(entry_id, account.id, spec.kind, -taken, balance, shortfall=points - taken)


async def post_no_points(
    conn: BaseDBAsyncClient, ref: AccountRef, spec: EntrySpec, *, now: datetime,
    settings: LoyaltySettings,
) -> Posted:
    """An entry of no points: the record that a request was settled although nothing was due
    (a payment correction that comes to zero), so it is not settled again."""
    account = await lock_account(conn, ref, settings)
    entry_id = await _insert_entry(conn, account.id, spec, 0, account.balance, now)
    return Posted(entry_id, account.id, spec.kind, 0, account.balance)


async def post_restoring_credit(
    conn: BaseDBAsyncClient,
    original: LedgerEntry,
    spec: EntrySpec,
    *,
    now: datetime,
    settings: LoyaltySettings,
) -> Posted:
    """Give back what debit ``original`` took, to the very lots it took them from.

    Points are not revived by a late refund: a lot already closed by the expiry job gets a
    new lot with the same (past) date instead, and any lot past its last day is expired at
    once, in this transaction (``+n`` refund, ``−n`` expiry), whatever order the daily jobs
    run in.
    """
    uses = await fetch(
        conn,
        "SELECT u.lot_id, u.amount, l.expires_on FROM loyalty_lot_use u "
        "JOIN loyalty_lot l ON l.id = u.lot_id WHERE u.entry_id = :entry ORDER BY u.id",
        {"entry": original.id},
    )
    total = sum(int(u["amount"]) for u in uses)
    if total <= 0:
        raise NotEligible("not_reversible", f"entry {original.id} took no points")
    account_id, balance = await _add_to_balance(
        conn, AccountRef.of_account(original.account_id), total, settings)
    entry_id = await _insert_entry(conn, account_id, spec, total, balance, now)
    today = local_day(now, PROGRAMME_TZ)
    past: list[int] = []
    for use in uses:
        lot_id, amount = int(use["lot_id"]), int(use["amount"])
        expires_on = as_date(use["expires_on"])
        if await _key_exists(conn, expiry_key(lot_id)):
            lot_id = await _insert_lot(conn, account_id, entry_id, amount, now, expires_on)
        else:
            await execute(conn, "UPDATE loyalty_lot SET remaining = remaining + :amount "
                                "WHERE id = :lot", {"amount": amount, "lot": lot_id})
        if expires_on < today:
            past.append(lot_id)
    for lot_id in dict.fromkeys(past):
        await post_debit(conn, AccountRef.of_account(account_id),
                         await _lot_remaining(conn, lot_id),
                         expiry_spec(lot_id), now=now, prefer_lots=[lot_id],
                         only_preferred=True)
    return Posted(entry_id, account_id, spec.kind, total, balance)


# --- replays --------------------------------------------------------------------------------


async def replayed(key: str, fingerprint_: str) -> Posted:
    """The original entry for ``key``, or ``IdempotencyConflict`` if it was another request."""
    entry = await LedgerEntry.get_or_none(idempotency_key=key)
    if entry is None:  # the conflicting transaction rolled back after all
        raise IdempotencyConflict(f"key {key!r} is in use by an unfinished posting")
    if entry.fingerprint != fingerprint_:
        raise IdempotencyConflict(f"key {key!r} was used for a different request")
    return Posted(entry.id, entry.account_id, EntryKind(entry.kind),
                  entry.amount, entry.balance_after, entry.shortfall, replayed=True)


async def find_replay(key: str, fingerprint_: str) -> Posted | None:
    """``replayed`` when the key exists, else None: a cheap check before any locking."""
    if not await LedgerEntry.exists(idempotency_key=key):
        return None
    return await replayed(key, fingerprint_)


# --- public postings ------------------------------------------------------------------------


Posting = Callable[[BaseDBAsyncClient, AccountRef, EntrySpec], Awaitable[Posted]]


_queues: WeakKeyDictionary[asyncio.AbstractEventLoop, GroupCommit[GroupPosting, Posted]] = (
    WeakKeyDictionary())

def posting_queue() -> GroupCommit[GroupPosting, Posted]:
    """This process's (this event loop's) queue of standalone postings, made on first use:
    concurrent postings commit in groups, each group in a few set-based statements
    (``loyalty.group_postings``) instead of a transaction and its statements per posting.

    One group at a time, on both backends: SQLite has one connection, and on PostgreSQL two
    or three groups in flight (smaller groups, more statements in all) measured slower on
    this 2-core machine, whose server CPU is the limit (32 clients: 2,055/s with one group,
    1,753 with two, 1,347 with three; 1,848 / 1,367 / 1,052 in a second round)."""
    loop = asyncio.get_running_loop()
    queue = _queues.get(loop)
    if queue is None:
        queue = _queues[loop] = GroupCommit(
            post_group, groups=1)
    return queue


async def _post_for_customer(posting: GroupPosting, post: Posting) -> Posted:
    """A public posting: ``post`` in the caller's transaction when there is one, else in a
    group of the process's ``posting_queue`` (see ``loyalty.group_commit``); a replayed key
    answered with the original entry."""
    spec = posting.spec
    ref = AccountRef.of_customer(posting.customer_id)

    async def alone() -> Posted:
        """In a transaction of its own (or the caller's)."""
        try:
            async with in_transaction() as conn:
                return await post(conn, ref, spec)
        except Replay:
            return await replayed(spec.key, spec.fingerprint)

    if isinstance(current(), TransactionalDBClient):  # inside the caller's transaction
        return await alone()
    return await posting_queue().submit(
        Job(spec.key, (posting.customer_id,), posting, alone))


def _spec(op: str, customer_id: int, points: int, *, kind: EntryKind, key: str, reason: str,
          operator: str) -> EntrySpec:
    """The entry's spec of a public posting, its fingerprint taken from the request."""
    request = {"op": op, "customer": customer_id, "kind": kind.value, "points": points,
               "reason": reason, "operator": operator}
    return EntrySpec(kind, key, fingerprint(request), reason=reason, operator=operator)


async def credit(customer_id: int, points: int, *, kind: EntryKind, key: str, now: datetime,
                 settings: LoyaltySettings, reason: str = "", operator: str = "") -> Posted:
    """Credit points to a customer (creating the account on first use)."""
    spec = _spec("credit", customer_id, points, kind=kind, key=key, reason=reason,
                 operator=operator)
    expires_on = lot_expiry(local_day(now, PROGRAMME_TZ), settings.lot_expiry_months)

    async def post(conn: BaseDBAsyncClient, ref: AccountRef, spec: EntrySpec) -> Posted:
        return await post_credit(conn, ref, points, spec, now=now, settings=settings,
                                 expires_on=expires_on)

    return await _post_for_customer(
        GroupPosting(customer_id, points, spec, now, expires_on, settings.tiers[0].code),
        post)


async def debit(customer_id: int, points: int, *, kind: EntryKind, key: str, now: datetime,
                reason: str = "", operator: str = "") -> Posted:
    """Debit points first-expiring-first, or raise ``InsufficientPoints``."""
    spec = _spec("debit", customer_id, points, kind=kind, key=key, reason=reason,
                 operator=operator)

    async def post(conn: BaseDBAsyncClient, ref: AccountRef, spec: EntrySpec) -> Posted:
        return await post_debit(conn, ref, points, spec, now=now)

    return await _post_for_customer(GroupPosting(customer_id, points, spec, now), post)


_REVERSIBLE_CREDITS = frozenset(EARNING_KINDS)


async def post_reversal(
    conn: BaseDBAsyncClient,
    original: LedgerEntry,
    *,
    now: datetime,
    settings: LoyaltySettings,
    reason: str,
    operator: str,
    kind: EntryKind = EntryKind.REVERSAL,
) -> Posted:
    """Undo one entry inside the caller's transaction (key ``reversal:{id}``).

    A credit is taken back from its own lot first, then first-expiring-first, down to zero
    and never below, the rest recorded as shortfall. A debit's points go back to its lots.
    """
    request = {"op": "reverse", "entry": original.id}
    spec = EntrySpec(kind, reversal_key(original.id), fingerprint(request), reason=reason,
                     operator=operator, reverses_id=original.id)
    if original.amount > 0:
        lots: list[int] = await PointLot.filter(entry_id=original.id).values_list(
            "id", flat=True)  # type: ignore[assignment]
        return await post_capped_debit(
            conn, AccountRef.of_account(original.account_id),
            original.amount, spec, now=now, settings=settings, prefer_lots=lots)
    return await post_restoring_credit(conn, original, spec, now=now, settings=settings)


async def reverse_entry(
    entry_id: int, *, now: datetime, settings: LoyaltySettings, reason: str, operator: str
) -> Posted:
    """An operator's correction: reverse an earning or an adjustment, once.

    Redemptions are reversed by cancelling their voucher, expiries and reversals not at all
    (an operator adjustment is the tool for those).
    """
    if not reason.strip() or not operator.strip():
        raise InvalidRequest("a reversal needs a reason and the operator's identity")
    original = await LedgerEntry.get_or_none(id=entry_id)
    if original is None:
        raise InvalidRequest(f"no ledger entry {entry_id}")
    reversible = (original.kind in _REVERSIBLE_CREDITS and original.amount > 0) or (
        original.kind == EntryKind.ADJUSTMENT and original.amount < 0)
    if not reversible:
        raise NotEligible("not_reversible", f"{original.kind} entries cannot be reversed")
    fp = fingerprint({"op": "reverse", "entry": original.id})
    if (done := await find_replay(reversal_key(original.id), fp)) is not None:
        return done
    try:
        async with in_transaction() as conn:
            return await post_reversal(conn, original, now=now, settings=settings,
                                       reason=reason, operator=operator)
    except Replay:
        return await replayed(reversal_key(original.id), fp)


# --- reading --------------------------------------------------------------------------------


async def get_balance(customer_id: int) -> int:
    account = await LoyaltyAccount.get_or_none(customer_id=customer_id)
    return account.balance if account else 0


def expiring_by_date(account: str) -> str:
    """SQL: the points of account ``account`` (an SQL expression for its id) that expire from
    ``:first`` through ``:last``, per expiry date, soonest first — the one definition
    ``expiring_points`` runs alone and ``loyalty.overview`` embeds in the /points statement."""
    return ("SELECT l.expires_on, SUM(l.remaining) AS points FROM loyalty_lot l "
            f"WHERE l.account_id = {account} AND l.remaining > 0 AND l.expires_on >= :first "
            "AND l.expires_on <= :last GROUP BY l.expires_on ORDER BY l.expires_on")


def latest_entries(account: str) -> str:
    """SQL: the last ``:entries`` entries of account ``account``, newest first (shared the
    same way as ``expiring_by_date``)."""
    return ("SELECT e.id, e.occurred_at, e.amount, e.kind FROM loyalty_entry e "
            f"WHERE e.account_id = {account} ORDER BY e.occurred_at DESC, e.id DESC "
            "LIMIT :entries")


_ACCOUNT_OF_CUSTOMER = "(SELECT id FROM loyalty_account WHERE customer_id = :customer)"


async def expiring_points(customer_id: int, *, today: date, days: int) -> list[tuple[date, int]]:
    """Points that expire within ``days`` days of ``today``, per expiry date, soonest first."""
    rows = await fetch(current(), expiring_by_date(_ACCOUNT_OF_CUSTOMER),
                       {"customer": customer_id, "first": today,
                        "last": today + timedelta(days=days)})
    return [(as_date(row["expires_on"]), int(row["points"])) for row in rows]


async def points_expiring_within(customer_id: int, *, today: date, days: int) -> int:
    return sum(points for _, points in await expiring_points(customer_id, today=today, days=days))


async def recent_entries(customer_id: int, *, limit: int = 10) -> list[LedgerEntry]:
    """The customer's last ``limit`` entries, newest first, as the console shows them."""
    rows = await fetch(current(), latest_entries(_ACCOUNT_OF_CUSTOMER),
                       {"customer": customer_id, "entries": limit})
    ids = [int(row["id"]) for row in rows]
    found = {entry.id: entry for entry in await LedgerEntry.filter(id__in=ids)}
    return [found[entry_id] for entry_id in ids]


@dataclass(frozen=True, slots=True)
class AuditFinding:
    account_id: int
    balance: int
    entries_total: int
    lots_total: int


async def audit() -> tuple[list[AuditFinding], int]:
    """Accounts whose balance differs from their entries or lots, and how many lots are out
    of range (negative, or above what they started with). Both empty/zero when sound."""
    async with in_transaction() as conn:
        rows = await fetch(
            conn,
            "SELECT a.id, a.balance, "
            "COALESCE((SELECT SUM(e.amount) FROM loyalty_entry e WHERE e.account_id = a.id), 0)"
            " AS entries_total, "
            "COALESCE((SELECT SUM(l.remaining) FROM loyalty_lot l WHERE l.account_id = a.id), 0)"
            " AS lots_total FROM loyalty_account a",
        )
        bad_lots = await fetch(
            conn,
            "SELECT COUNT(*) AS n FROM loyalty_lot WHERE remaining < 0 OR remaining > original",
        )
    findings = [
        AuditFinding(int(r["id"]), int(r["balance"]), int(r["entries_total"]),
                     int(r["lots_total"]))
        for r in rows
        if not (int(r["balance"]) == int(r["entries_total"]) == int(r["lots_total"]) >= 0)
    ]
    return findings, int(bad_lots[0]["n"])
