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
(``balance = balance - ? … AND balance >= ?`` for debits) or ``SELECT … FOR UPDATE`` — which
holds on PostgreSQL until commit, so lots are only read and changed by the transaction
holding it. On SQLite Tortoise runs one transaction at a time on its single connection (its
transaction context holds the connection lock), which serialises writers in the process;
the conditional ``UPDATE`` keeps the balance check correct on both. We deliberately add no
lock of our own: a second lock taken around Tortoise's could deadlock with a caller already
inside a transaction.

The hot path is plain SQL (one statement for a credit on PostgreSQL, a few elsewhere)
because it is the part the benchmark measures. ``created_at``/``updated_at`` there are row
bookkeeping stamped from the ORM's clock, as its ``auto_now`` fields are; every business
time (``occurred_at``, lot dates) comes from the caller's ``now``. Functions named
``post_*`` run inside the caller's transaction (pass the connection from
``in_transaction()``); the others open their own.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from tortoise import timezone as orm_clock
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.connection import connections
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from loyalty.config import LoyaltySettings
from loyalty.errors import (
    IdempotencyConflict,
    InsufficientPoints,
    InvalidRequest,
    NotEligible,
    UnknownCustomer,
)
from loyalty.periods import PROGRAMME_TZ, local_day, lot_expiry, utc
from storage.loyalty_models import EARNING_KINDS, EntryKind, LedgerEntry, LoyaltyAccount, PointLot

log = logging.getLogger(__name__)

_FIFO_BATCH = 20


@dataclass(frozen=True, slots=True)
class Posted:
    """The outcome of a posting: the entry (new, or the original on a replay)."""

    entry_id: int
    account_id: int
    kind: EntryKind
    amount: int
    balance_after: int
    shortfall: int = 0
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class Account:
    """An account row read under its lock."""

    id: int
    customer_id: int
    balance: int
    tier: str


@dataclass(frozen=True, slots=True)
class EntrySpec:
    """What to write for one entry, apart from the amounts the posting decides."""

    kind: EntryKind
    key: str
    fingerprint: str
    reason: str = ""
    operator: str = ""
    reverses_id: int | None = None
    payment_id: int | None = None
    policy_id: int | None = None
    basis_cents: int | None = None  # the payment amount the entry settles (refund negative)


class Replay(Exception):
    """Raised inside a transaction when the key is already used, to roll it back."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class LedgerCorrupted(RuntimeError):
    """The lots do not cover the balance: a broken invariant, never a user error."""


def fingerprint(request: Mapping[str, Any]) -> str:
    """A stable digest of what was asked, to tell a replay from a conflicting reuse."""
    body = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def expiry_key(lot_id: int) -> str:
    return f"expiry:lot:{lot_id}"


def reversal_key(entry_id: int) -> str:
    return f"reversal:{entry_id}"


def expiry_spec(lot_id: int) -> EntrySpec:
    """The one expiry entry a lot ever gets, whoever posts it."""
    return EntrySpec(EntryKind.EXPIRY, expiry_key(lot_id),
                     fingerprint({"op": "expire", "lot": lot_id}))


# --- SQL ------------------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _numbered(sql: str) -> str:
    parts = sql.split("?")
    out = [parts[0]]
    for n, part in enumerate(parts[1:], start=1):
        out.append(f"${n}{part}")
    return "".join(out)


def is_postgres(conn: BaseDBAsyncClient) -> bool:
    return conn.capabilities.dialect == "postgres"


async def fetch(
    conn: BaseDBAsyncClient, sql: str, values: Sequence[Any] = ()
) -> list[dict[str, Any]]:
    """Run ``sql`` (``?`` placeholders) and return its rows (also for ``… RETURNING``)."""
    query = _numbered(sql) if is_postgres(conn) else sql
    return await conn.execute_query_dict(query, list(values))


async def execute(conn: BaseDBAsyncClient, sql: str, values: Sequence[Any] = ()) -> int:
    """Run ``sql`` and return the number of rows it changed."""
    query = _numbered(sql) if is_postgres(conn) else sql
    count, _ = await conn.execute_query(query, list(values))
    return count


_WHERE = {"id": "id = ?", "customer_id": "customer_id = ?"}


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


async def _create_account(
    conn: BaseDBAsyncClient, customer_id: int, settings: LoyaltySettings
) -> None:
    stamp = orm_clock.now()
    try:
        await execute(
            conn,
            "INSERT INTO loyalty_account (customer_id, balance, tier, created_at, updated_at) "
            "VALUES (?, 0, ?, ?, ?) ON CONFLICT (customer_id) DO NOTHING",
            [customer_id, settings.tiers[0].code, stamp, stamp],
        )
    except IntegrityError:
        raise UnknownCustomer(f"no customer {customer_id}") from None


async def lock_account(
    conn: BaseDBAsyncClient, ref: AccountRef, settings: LoyaltySettings, *, create: bool = True
) -> Account:
    """Lock the account row for the rest of the transaction (creating it if needed)."""
    suffix = " FOR UPDATE" if is_postgres(conn) else ""
    sql = (f"SELECT id, customer_id, balance, tier FROM loyalty_account "
           f"WHERE {_WHERE[ref.column]}{suffix}")
    rows = await fetch(conn, sql, [ref.value])
    if not rows and create and ref.column == "customer_id":
        await _create_account(conn, ref.value, settings)
        rows = await fetch(conn, sql, [ref.value])
    if not rows:
        raise UnknownCustomer(f"no loyalty account for {ref.column} {ref.value}")
    row = rows[0]
    return Account(int(row["id"]), int(row["customer_id"]), int(row["balance"]), str(row["tier"]))


async def _add_to_balance(
    conn: BaseDBAsyncClient, ref: AccountRef, points: int, settings: LoyaltySettings
) -> tuple[int, int]:
    sql = (f"UPDATE loyalty_account SET balance = balance + ?, updated_at = ? "
           f"WHERE {_WHERE[ref.column]} RETURNING id, balance")
    values = [points, orm_clock.now(), ref.value]
    rows = await fetch(conn, sql, values)
    if not rows and ref.column == "customer_id":
        await _create_account(conn, ref.value, settings)
        rows = await fetch(conn, sql, values)
    if not rows:
        raise UnknownCustomer(f"no loyalty account for {ref.column} {ref.value}")
    return int(rows[0]["id"]), int(rows[0]["balance"])


async def _take_from_balance(
    conn: BaseDBAsyncClient, ref: AccountRef, points: int
) -> tuple[int, int] | None:
    sql = (f"UPDATE loyalty_account SET balance = balance - ?, updated_at = ? "
           f"WHERE {_WHERE[ref.column]} AND balance >= ? RETURNING id, balance")
    rows = await fetch(conn, sql, [points, orm_clock.now(), ref.value, points])
    if not rows:
        return None
    return int(rows[0]["id"]), int(rows[0]["balance"])


async def _insert_entry(
    conn: BaseDBAsyncClient,
    account_id: int,
    spec: EntrySpec,
    amount: int,
    balance_after: int,
    now: datetime,
    shortfall: int = 0,
) -> int:
    rows = await fetch(
        conn,
        "INSERT INTO loyalty_entry (account_id, kind, amount, balance_after, idempotency_key, "
        "fingerprint, reverses_id, shortfall, payment_id, policy_id, basis_cents, reason, "
        "operator, occurred_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
        [account_id, spec.kind.value, amount, balance_after, spec.key, spec.fingerprint,
         spec.reverses_id, shortfall, spec.payment_id, spec.policy_id, spec.basis_cents,
         spec.reason, spec.operator, utc(now), orm_clock.now()],
    )
    if not rows:
        raise Replay(spec.key)
    return int(rows[0]["id"])


async def _key_exists(conn: BaseDBAsyncClient, key: str) -> bool:
    rows = await fetch(conn, "SELECT id FROM loyalty_entry WHERE idempotency_key = ?", [key])
    return bool(rows)


async def _insert_lot(
    conn: BaseDBAsyncClient, account_id: int, entry_id: int, points: int, now: datetime,
    expires_on: date,
) -> int:
    rows = await fetch(
        conn,
        "INSERT INTO loyalty_lot (account_id, entry_id, original, remaining, earned_at, "
        "expires_on) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        [account_id, entry_id, points, points, utc(now), expires_on],
    )
    return int(rows[0]["id"])


async def _consume(
    conn: BaseDBAsyncClient,
    account_id: int,
    entry_id: int,
    points: int,
    *,
    prefer: Sequence[int] = (),
    only: bool = False,
) -> None:
    """Take ``points`` from the account's lots: ``prefer`` first, then first-expiring-first."""
    left = points
    uses: list[tuple[int, int]] = []

    async def take(lot_id: int, remaining: int) -> None:
        nonlocal left
        amount = min(left, remaining)
        if amount <= 0:
            return
        await execute(conn, "UPDATE loyalty_lot SET remaining = remaining - ? WHERE id = ?",
                      [amount, lot_id])
        uses.append((lot_id, amount))
        left -= amount

    for lot_id in prefer:
        rows = await fetch(
            conn, "SELECT remaining FROM loyalty_lot WHERE id = ? AND account_id = ?",
            [lot_id, account_id])
        if rows:
            await take(lot_id, int(rows[0]["remaining"]))
    while left > 0 and not only:
        rows = await fetch(
            conn,
            "SELECT id, remaining FROM loyalty_lot WHERE account_id = ? AND remaining > 0 "
            f"ORDER BY expires_on, id LIMIT {_FIFO_BATCH}",
            [account_id],
        )
        if not rows:
            break
        for row in rows:
            await take(int(row["id"]), int(row["remaining"]))
            if left == 0:
                break
    if left:
        raise LedgerCorrupted(f"account {account_id}: lots short by {left} points")
    placeholders = ", ".join("(?, ?, ?)" for _ in uses)
    await execute(
        conn,
        f"INSERT INTO loyalty_lot_use (entry_id, lot_id, amount) VALUES {placeholders}",
        [value for lot_id, amount in uses for value in (entry_id, lot_id, amount)],
    )


# --- PostgreSQL: fewer round trips -----------------------------------------------------------
# A credit is one statement (account update, entry, lot) and a debit's bookkeeping another
# (first-expiring-first lot consumption, entry, lot uses), so a posting costs two or three
# round trips instead of six or more. The debit's lot statement runs after the statement that
# locked the account, so its snapshot sees every committed change to the lots. SQLite runs
# the same steps one statement at a time (it has no data-modifying WITH).

_ENTRY_COLUMNS = ("account_id, kind, amount, balance_after, idempotency_key, fingerprint, "
                  "reverses_id, shortfall, payment_id, policy_id, reason, operator, "
                  "occurred_at, created_at, basis_cents")

_PG_CREDIT = f"""
WITH a AS (
    UPDATE loyalty_account SET balance = balance + $1::bigint, updated_at = $2::timestamptz
    WHERE {{where}} = $3::int RETURNING id, balance
), e AS (
    INSERT INTO loyalty_entry ({_ENTRY_COLUMNS})
    SELECT a.id, $4::varchar, $1::bigint, a.balance, $5::varchar, $6::varchar, $7::bigint, 0,
           $8::int, $9::int, $10::text, $11::varchar, $12::timestamptz, $2::timestamptz,
           $14::bigint FROM a
    RETURNING id, account_id, balance_after
), l AS (
    INSERT INTO loyalty_lot (account_id, entry_id, original, remaining, earned_at, expires_on)
    SELECT e.account_id, e.id, $1::bigint, $1::bigint, $12::timestamptz, $13::date FROM e
)
SELECT id, account_id, balance_after FROM e
"""

_PG_DEBIT_RECORD = f"""
WITH fifo AS (
    SELECT id, remaining, SUM(remaining) OVER (
        ORDER BY (id = ANY($3::bigint[])) DESC, expires_on, id) - remaining AS before
    FROM loyalty_lot
    WHERE account_id = $1::int AND remaining > 0 AND (NOT $4::boolean OR id = ANY($3::bigint[]))
), take AS (
    SELECT id, LEAST(remaining, $2::bigint - before) AS amount FROM fifo WHERE before < $2::bigint
), used AS (
    UPDATE loyalty_lot SET remaining = loyalty_lot.remaining - take.amount
    FROM take WHERE loyalty_lot.id = take.id
), e AS (
    INSERT INTO loyalty_entry ({_ENTRY_COLUMNS})
    VALUES ($1::int, $5::varchar, $6::bigint, $7::bigint, $8::varchar, $9::varchar, $10::bigint,
            $11::bigint, $12::int, $13::int, $14::text, $15::varchar, $16::timestamptz,
            $17::timestamptz, $18::bigint)
    RETURNING id
), uses AS (
    INSERT INTO loyalty_lot_use (entry_id, lot_id, amount)
    SELECT e.id, take.id, take.amount FROM e, take
)
SELECT e.id, (SELECT COALESCE(SUM(amount), 0) FROM take) AS taken FROM e
"""


def _key_conflict(exc: IntegrityError, key: str) -> Replay:
    """A unique violation on the idempotency key becomes ``Replay``; anything else stands."""
    if "idempotency_key" not in str(exc):
        raise exc
    return Replay(key)


async def _pg_credit(
    conn: BaseDBAsyncClient, ref: AccountRef, points: int, spec: EntrySpec, *, now: datetime,
    expires_on: date, settings: LoyaltySettings,
) -> tuple[int, int, int]:
    sql = _PG_CREDIT.replace("{where}", ref.column)
    values = [points, orm_clock.now(), ref.value, spec.kind.value, spec.key, spec.fingerprint,
              spec.reverses_id, spec.payment_id, spec.policy_id, spec.reason, spec.operator,
              utc(now), expires_on, spec.basis_cents]
    for _ in range(2):
        try:
            rows = await conn.execute_query_dict(sql, values)
        except IntegrityError as exc:
            raise _key_conflict(exc, spec.key) from None
        if rows:
            row = rows[0]
            return int(row["id"]), int(row["account_id"]), int(row["balance_after"])
        if ref.column != "customer_id":
            break
        await _create_account(conn, ref.value, settings)
    raise UnknownCustomer(f"no loyalty account for {ref.column} {ref.value}")


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
        rows = await conn.execute_query_dict(_PG_DEBIT_RECORD, [
            account_id, taken, list(prefer), only, spec.kind.value, -taken, balance, spec.key,
            spec.fingerprint, spec.reverses_id, shortfall, spec.payment_id, spec.policy_id,
            spec.reason, spec.operator, utc(now), orm_clock.now(), spec.basis_cents])
    except IntegrityError as exc:
        raise _key_conflict(exc, spec.key) from None
    if int(rows[0]["taken"]) != taken:
        raise LedgerCorrupted(f"account {account_id}: lots short by "
                              f"{taken - int(rows[0]['taken'])} points")
    return int(rows[0]["id"])


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
    if is_postgres(conn):
        entry_id, account_id, balance = await _pg_credit(
            conn, ref, points, spec, now=now, expires_on=expires_on, settings=settings)
        return Posted(entry_id, account_id, spec.kind, points, balance)
    account_id, balance = await _add_to_balance(conn, ref, points, settings)
    entry_id = await _insert_entry(conn, account_id, spec, points, balance, now)
    await _insert_lot(conn, account_id, entry_id, points, now, expires_on)
    return Posted(entry_id, account_id, spec.kind, points, balance)


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
        rows = await fetch(conn, f"SELECT balance FROM loyalty_account WHERE "
                                 f"{_WHERE[ref.column]}", [ref.value])
        raise InsufficientPoints(points, int(rows[0]["balance"]) if rows else 0)
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
        "JOIN loyalty_lot l ON l.id = u.lot_id WHERE u.entry_id = ? ORDER BY u.id",
        [original.id],
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
        expires_on = use["expires_on"]
        if isinstance(expires_on, str):
            expires_on = date.fromisoformat(expires_on)
        if await _key_exists(conn, expiry_key(lot_id)):
            lot_id = await _insert_lot(conn, account_id, entry_id, amount, now, expires_on)
        else:
            await execute(conn, "UPDATE loyalty_lot SET remaining = remaining + ? WHERE id = ?",
                          [amount, lot_id])
        if expires_on < today:
            past.append(lot_id)
    for lot_id in dict.fromkeys(past):
        rows = await fetch(conn, "SELECT remaining FROM loyalty_lot WHERE id = ?", [lot_id])
        await post_debit(conn, AccountRef.of_account(account_id), int(rows[0]["remaining"]),
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


async def credit(
    customer_id: int,
    points: int,
    *,
    kind: EntryKind,
    key: str,
    now: datetime,
    settings: LoyaltySettings,
    reason: str = "",
    operator: str = "",
) -> Posted:
    """Credit points to a customer (creating the account on first use)."""
    request = {"op": "credit", "customer": customer_id, "kind": kind.value, "points": points,
               "reason": reason, "operator": operator}
    spec = EntrySpec(kind, key, fingerprint(request), reason=reason, operator=operator)
    ref = AccountRef.of_customer(customer_id)
    try:
        current = connections.get("default")
        if is_postgres(current):
            # One statement is one transaction (or part of the caller's, if there is one).
            return await post_credit(current, ref, points, spec, now=now, settings=settings)
        async with in_transaction() as conn:
            return await post_credit(conn, ref, points, spec, now=now, settings=settings)
    except Replay:
        return await replayed(key, spec.fingerprint)


async def debit(
    customer_id: int,
    points: int,
    *,
    kind: EntryKind,
    key: str,
    now: datetime,
    reason: str = "",
    operator: str = "",
) -> Posted:
    """Debit points first-expiring-first, or raise ``InsufficientPoints``."""
    request = {"op": "debit", "customer": customer_id, "kind": kind.value, "points": points,
               "reason": reason, "operator": operator}
    spec = EntrySpec(kind, key, fingerprint(request), reason=reason, operator=operator)
    try:
        async with in_transaction() as conn:
            return await post_debit(conn, AccountRef.of_customer(customer_id), points, spec,
                                    now=now)
    except Replay:
        return await replayed(key, spec.fingerprint)


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


async def expiring_points(customer_id: int, *, today: date, days: int) -> list[tuple[date, int]]:
    """Points that expire within ``days`` days of ``today``, per expiry date, soonest first."""
    horizon = date.fromordinal(today.toordinal() + days)
    rows = await PointLot.filter(
        account__customer_id=customer_id, remaining__gt=0, expires_on__gte=today,
        expires_on__lte=horizon,
    ).order_by("expires_on").values_list("expires_on", "remaining")
    totals: dict[date, int] = {}
    for expires_on, remaining in rows:
        totals[expires_on] = totals.get(expires_on, 0) + int(remaining)
    return sorted(totals.items())


async def points_expiring_within(customer_id: int, *, today: date, days: int) -> int:
    return sum(points for _, points in await expiring_points(customer_id, today=today, days=days))


async def recent_entries(customer_id: int, *, limit: int = 10) -> list[LedgerEntry]:
    return await LedgerEntry.filter(account__customer_id=customer_id).order_by(
        "-occurred_at", "-id").limit(limit)


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
