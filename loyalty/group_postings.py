"""A group of standalone postings in a handful of set-based statements, whatever its size.

The posting queue (``loyalty.group_commit``) hands a group of credits and debits to
``post_group`` inside one transaction. Made one at a time, a posting costs its own statements
(one to three on PostgreSQL, each a round trip; about six on SQLite, each a hop to the
database thread), one after another on the group's connection. Here the group costs the same
few statements however many postings it holds:

1. lock the group's accounts, in id order (``SELECT … FOR UPDATE``), and read in the same
   statement which of its idempotency keys are used already and the live lots of the
   debited accounts, first-expiring-first, as far as the group's debits on each can reach
   (on PostgreSQL also the ids its entries and lots will have, from their sequences);
   accounts that credits open are created first, lots read again if an account changed
   while the statement waited for its lock (``_LOCK_AND_READ``);
2. write every entry, every credit's lot, every account's new balance, every lot the debits
   consume and every use: one statement on PostgreSQL; on SQLite, which has no
   data-modifying ``WITH``, one per table (entries and lots then take their ids from
   ``RETURNING``).

The decisions are made in between, in Python, on the rows read under the locks, exactly as if
the postings were made one after another in the group's order (by account, then as
submitted): each credit raises its account's running balance and adds its lot; each debit
is refused with ``InsufficientPoints`` when the running balance does not cover it (a refused
posting writes nothing, the others go on), else it takes its points from the lots live at
that point, the earliest expiry first, including lots the group's earlier credits made.
An unknown customer's credit is refused with ``UnknownCustomer``. A posting whose key is used
already is left to its caller (``Alone``: the replay path, after the group). Anything else
(a key written meanwhile by another process, lots that do not cover a balance) raises, and
the queue then rolls the group back and makes each posting alone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from tortoise import timezone as orm_clock
from tortoise.backends.base.client import BaseDBAsyncClient

from loyalty.entries import EntrySpec, LedgerCorrupted, Posted
from loyalty.errors import InsufficientPoints, InvalidRequest, LoyaltyError, UnknownCustomer
from loyalty.group_commit import Alone
from loyalty.periods import utc
from storage.sql import (
    as_date,
    as_json,
    bound_rows,
    bound_rows_values,
    execute,
    fetch,
    fetchval,
    for_update,
    in_bound_rows,
    in_list,
    insert_ignoring,
    is_postgres,
    json_rows,
    json_values,
    row_version,
    typed,
)


@dataclass(frozen=True, slots=True)
class GroupPosting:
    """One standalone posting: a credit (``expires_on`` is its lot's last day) or a debit
    (``expires_on`` None) of ``points`` > 0 to a customer's account. ``opening_tier`` is the
    tier of an account a credit opens."""

    customer_id: int
    points: int
    spec: EntrySpec
    now: datetime
    expires_on: date | None = None
    opening_tier: str = ""

    @property
    def is_credit(self) -> bool:
        return self.expires_on is not None


Outcome = Posted | LoyaltyError | Alone


@dataclass(slots=True)
class _Accepted:
    """A posting the group makes: its account, the balance after it, its entry's id and (a
    credit) its lot's id once known."""

    at: int  # its place in the group
    posting: GroupPosting
    account_id: int
    balance_after: int
    entry_id: int = 0
    lot_id: int = 0

    @property
    def amount(self) -> int:
        return self.posting.points if self.posting.is_credit else -self.posting.points


@dataclass(slots=True)
class _Lot:
    """A live lot as the group's debits see it; ``new`` for a lot a credit of the group made."""

    expires_on: date
    id: int
    remaining: int
    new: bool = False
    taken: int = 0


@dataclass(slots=True)
class _State:
    """What the group reads with its locks: its accounts (customer id → (account id,
    balance)), used keys, live lots per account, and (on PostgreSQL) ids for its entries and
    lots."""

    accounts: dict[int, tuple[int, int]]
    used: set[str]
    lots: dict[int, list[_Lot]]
    entry_ids: list[int]
    lot_ids: list[int]


async def post_group(conn: BaseDBAsyncClient, postings: Sequence[GroupPosting]
                     ) -> list[Outcome]:
    """Make ``postings`` in the caller's transaction: for each, its ``Posted``, the refusal
    it met or ``Alone`` (nothing written for either)."""
    postgres = is_postgres(conn)
    stamp = orm_clock.now()
    state = await _lock_and_read(conn, postings, stamp)
    outcomes, accepted = _decide(postings, state.accounts, state.used)
    if accepted and postgres:
        entry_ids, lot_ids = iter(state.entry_ids), iter(state.lot_ids)
        for made in accepted:
            made.entry_id = next(entry_ids)
            made.lot_id = next(lot_ids) if made.posting.is_credit else 0
        uses = _consume(accepted, state.lots)
        await _write_in_one(conn, accepted, uses, state.lots, stamp)
    elif accepted:
        await _write_entries_and_lots(conn, accepted, stamp)
        uses = _consume(accepted, state.lots)
        await _write_balances_and_uses(conn, accepted, uses, state.lots, stamp)
    for made in accepted:
        outcomes[made.at] = Posted(made.entry_id, made.account_id, made.posting.spec.kind,
                                   made.amount, made.balance_after)
    return outcomes


def _decide(postings: Sequence[GroupPosting], accounts: dict[int, tuple[int, int]],
            used: set[str]) -> tuple[list[Outcome], list[_Accepted]]:
    """Each posting's fate, in order, from the locked balances: refusals and ``Alone`` in
    ``outcomes`` (the rest filled in once written), the postings to make in ``accepted``."""
    balances = {customer: balance for customer, (_, balance) in accounts.items()}
    outcomes: list[Outcome] = [Alone()] * len(postings)
    accepted: list[_Accepted] = []
    for at, posting in enumerate(postings):
        account = accounts.get(posting.customer_id)
        if posting.spec.key in used:
            continue
        if posting.points <= 0:
            what = "credit" if posting.is_credit else "debit"
            outcomes[at] = InvalidRequest(f"a {what} must be a positive number of points")
            continue
        if account is None:
            outcomes[at] = (UnknownCustomer(f"no customer {posting.customer_id}")
                            if posting.is_credit else InsufficientPoints(posting.points, 0))
            continue
        balance = balances[posting.customer_id]
        if not posting.is_credit and balance < posting.points:
            outcomes[at] = InsufficientPoints(posting.points, balance)
            continue
        balance += posting.points if posting.is_credit else -posting.points
        balances[posting.customer_id] = balance
        accepted.append(_Accepted(at, posting, account[0], balance))
    return outcomes, accepted


async def _lock_and_read(conn: BaseDBAsyncClient, postings: Sequence[GroupPosting],
                         stamp: datetime) -> _State:
    """Lock the group's accounts in id order (opening those its credits need first) and read,
    in the same statement, all the rest the group needs (``_LOCK_AND_READ``)."""
    postgres = is_postgres(conn)
    needs: dict[int, int] = defaultdict(int)
    for posting in postings:
        if not posting.is_credit:
            needs[posting.customer_id] += max(posting.points, 0)
    reach = bound_rows_values("n", ("customer", "points"), needs.items(), postgres=postgres)
    params: dict[str, Any] = {
        "customers": sorted({posting.customer_id for posting in postings}),
        **bound_rows_values("k", ("key",), ((posting.spec.key,) for posting in postings),
                            postgres=postgres),
        **(reach if needs else {})}
    if postgres:
        params["entries"] = len(postings)
        params["credits"] = sum(posting.is_credit for posting in postings)
    sql = _lock_and_read_sql(postgres=postgres, lots=bool(needs))
    row = (await fetch(conn, sql, params))[0]
    found = {int(customer) for _, customer, _, _ in as_json(row["accounts"], [])}
    opening = {p.customer_id: p.opening_tier for p in postings
               if p.is_credit and p.customer_id not in found}
    if opening:  # the first postings of these customers: again, with their accounts
        await _open_accounts(conn, opening, stamp)
        row = (await fetch(conn, sql, params))[0]
    accounts = {int(customer): (int(account), int(balance))
                for account, customer, balance, _ in as_json(row["accounts"], [])}
    stale = [int(account) for account, _, _, fresh in as_json(row["accounts"], [])
             if not fresh]
    if needs and stale:  # locked after a change its snapshot missed: read the lots again
        row = {**row, "lots": await fetchval(conn, f"SELECT {_lots_reached(postgres)}", reach)}
    lots: dict[int, list[_Lot]] = defaultdict(list)
    for lot_id, account_id, remaining, expires_on in as_json(row.get("lots"), []):
        lots[int(account_id)].append(_Lot(as_date(expires_on), int(lot_id), int(remaining)))
    return _State(accounts, {str(key) for key in as_json(row["used"], [])}, lots,
                  [int(i) for i in row.get("entry_ids") or []],
                  [int(i) for i in row.get("lot_ids") or []])


# The statement that locks the group's accounts (``locked``) and reads, in its snapshot, the
# used keys, the live lots of the debited accounts, earliest expiry first, as far as their
# debits can reach (a debit takes the earliest, so never a lot beyond them), and on
# PostgreSQL ids for the entries and lots. The lots read are those the locks protect unless
# an account changed between the statement's snapshot and its lock (PostgreSQL then locks the
# newer version): ``fresh`` tells, comparing the row's version as locked and as seen, and the
# lots are read again for a stale one. Every change of an account's lots also updates the
# account row (its balance), so a fresh row vouches for its lots.
# PostgreSQL plans the statement once for groups of any size and keeps the plan as the tables
# grow (issue 21), so each table is reached by index whatever it estimated: the keys one by
# one through the unique index (a subquery per key, which no hash join over the whole table
# can replace), the accounts and lots by ``= ANY`` of the group's values (``in_bound_rows``).
_LOCK_AND_READ = (
    "WITH locked AS (SELECT id, customer_id, balance, {version} AS version "
    "FROM loyalty_account WHERE {where} ORDER BY id{lock}) "
    "SELECT (SELECT {accounts} FROM locked l LEFT JOIN loyalty_account s ON s.id = l.id "
    "AND {seen}) "
    "AS accounts, (SELECT {used} FROM {keys} WHERE (SELECT 1 FROM loyalty_entry e "
    "WHERE e.idempotency_key = k.key) IS NOT NULL) AS used{more}")
_LOTS_REACHED = (
    "(SELECT {rows} FROM (SELECT id, account_id, remaining, expires_on FROM ("
    "SELECT l.id, l.account_id, l.remaining, l.expires_on, n.points, SUM(l.remaining) "
    "OVER (PARTITION BY l.account_id ORDER BY l.expires_on, l.id) - l.remaining AS before "
    "FROM loyalty_lot l JOIN loyalty_account a ON a.id = l.account_id "
    "JOIN {need} ON a.customer_id = n.customer WHERE {needed} AND l.remaining > 0"
    ") AS t WHERE before < points) AS f)")
_NEED = (("customer", "int"), ("points", "bigint"))
_NEW_IDS = ("(SELECT array_agg(nextval(pg_get_serial_sequence('{table}', 'id'))) "
            "FROM generate_series(1, :{count}::int)) AS {column}")


def _lots_reached(postgres: bool) -> str:
    return _LOTS_REACHED.format(
        rows=json_rows("f.id", "f.account_id", "f.remaining", "f.expires_on",
                       postgres=postgres),
        need=bound_rows("n", _NEED, postgres=postgres),
        needed=in_bound_rows("a.customer_id", "n", _NEED, "customer", postgres=postgres))


@lru_cache(maxsize=8)
def _lock_and_read_sql(*, postgres: bool, lots: bool) -> str:
    more = ""
    if lots:
        more += f", {_lots_reached(postgres)} AS lots"
    if postgres:
        more += ", " + _NEW_IDS.format(table="loyalty_entry", count="entries",
                                       column="entry_ids")
        more += ", " + _NEW_IDS.format(table="loyalty_lot", count="credits", column="lot_ids")
    return _LOCK_AND_READ.format(
        version=row_version("loyalty_account", postgres=postgres),
        where=in_list("customer_id", ":customers", postgres=postgres, sql_type="int"),
        seen=in_list("s.customer_id", ":customers", postgres=postgres, sql_type="int"),
        lock=for_update(postgres=postgres),
        accounts=json_rows("l.id", "l.customer_id", "l.balance",
                           f"l.version = {row_version('s', postgres=postgres)}",
                           postgres=postgres),
        used=json_values("k.key", postgres=postgres),
        keys=bound_rows("k", (("key", "varchar"),), postgres=postgres),
        more=more)


async def _open_accounts(conn: BaseDBAsyncClient, tiers: dict[int, str], stamp: datetime
                         ) -> None:
    """An empty account for each customer of ``tiers`` (customer id → tier) that exists."""
    postgres = is_postgres(conn)
    columns = (("customer", "int"), ("tier", "varchar"))
    at = typed(":stamp", "timestamptz", postgres=postgres)
    rows = (f"SELECT c.id, 0, o.tier, {at}, {at} FROM customer c "
            f"JOIN {bound_rows('o', columns, postgres=postgres)} ON c.id = o.customer")
    await execute(conn, insert_ignoring(
        "loyalty_account", ("customer_id", "balance", "tier", "created_at", "updated_at"),
        rows, conflict="customer_id", postgres=postgres),
        {"stamp": stamp, **bound_rows_values("o", ("customer", "tier"), tiers.items(),
                                             postgres=postgres)})


def _consume(accepted: Sequence[_Accepted], lots: dict[int, list[_Lot]]
             ) -> list[tuple[int, int, int]]:
    """The group's debits taking their points from the lots, in the group's order, each from
    the lots live at its turn (earlier credits' new lots included), earliest expiry first:
    the uses (entry id, lot id, points); each lot's ``taken`` is what they took from it."""
    uses: list[tuple[int, int, int]] = []
    for made in accepted:
        live = lots.setdefault(made.account_id, [])
        if made.posting.is_credit:
            assert made.posting.expires_on is not None
            live.append(_Lot(made.posting.expires_on, made.lot_id, made.posting.points,
                             new=True))
            continue
        live.sort(key=lambda lot: (lot.expires_on, lot.id))
        left = made.posting.points
        for lot in live:
            taken = min(left, lot.remaining - lot.taken)
            if taken > 0:
                lot.taken += taken
                left -= taken
                uses.append((made.entry_id, lot.id, taken))
            if left == 0:
                break
        if left:
            raise LedgerCorrupted(f"account {made.account_id}: lots short by {left} points")
    return uses


def _lowered(lots: dict[int, list[_Lot]], *, new: bool) -> list[tuple[int, int]]:
    """(lot id, points taken) of the lots the debits took from (``new``: also the group's)."""
    return sorted((lot.id, lot.taken) for live in lots.values() for lot in live
                  if lot.taken and (new or not lot.new))


def _deltas(accepted: Sequence[_Accepted]) -> list[tuple[int, int]]:
    deltas: dict[int, int] = defaultdict(int)
    for made in accepted:
        deltas[made.account_id] += made.amount
    return sorted(deltas.items())


_ENTRY = (("id", "bigint"), ("account", "int"), ("balance_after", "bigint"),
          ("kind", "varchar"), ("amount", "bigint"), ("idem_key", "varchar"),
          ("fingerprint", "varchar"), ("reason", "text"), ("operator", "varchar"),
          ("occurred_at", "timestamptz"))
_NEW_LOT = (("id", "bigint"), ("account", "int"), ("entry", "bigint"), ("points", "bigint"),
            ("remaining", "bigint"), ("earned_at", "timestamptz"), ("expires_on", "date"))
_DELTA = (("account", "int"), ("delta", "bigint"))
_TAKEN = (("lot", "bigint"), ("amount", "bigint"))
_USE = (("entry", "bigint"), ("lot", "bigint"), ("amount", "bigint"))

_INSERT_ENTRIES = (
    "INSERT INTO loyalty_entry ({id}account_id, balance_after, kind, amount, idempotency_key, "
    "fingerprint, reason, operator, occurred_at, created_at, shortfall) "
    "SELECT {p_id}p.account, p.balance_after, p.kind, p.amount, p.idem_key, p.fingerprint, "
    "p.reason, p.operator, p.occurred_at, {stamp}, 0 FROM {rows} ORDER BY p.ord")
_INSERT_LOTS = (
    "INSERT INTO loyalty_lot ({id}account_id, entry_id, original, remaining, earned_at, "
    "expires_on) SELECT {c_id}c.account, c.entry, c.points, c.remaining, c.earned_at, "
    "c.expires_on FROM {rows} ORDER BY c.ord")
_UPDATE_BALANCES = (
    "UPDATE loyalty_account SET balance = balance + d.delta, updated_at = {stamp} "
    "FROM {rows} WHERE loyalty_account.id = d.account AND {only}")
_LOWER_LOTS = ("UPDATE loyalty_lot SET remaining = loyalty_lot.remaining - t.amount "
               "FROM {rows} WHERE loyalty_lot.id = t.lot AND {only}")
_INSERT_USES = ("INSERT INTO loyalty_lot_use (entry_id, lot_id, amount) "
                "SELECT u.entry, u.lot, u.amount FROM {rows} ORDER BY u.ord")


@lru_cache(maxsize=2)
def _update_balances(*, postgres: bool) -> str:
    """The balances' UPDATE, each account reached by index (``in_bound_rows``)."""
    return _UPDATE_BALANCES.format(
        stamp=typed(":stamp", "timestamptz", postgres=postgres),
        rows=bound_rows("d", _DELTA, postgres=postgres),
        only=in_bound_rows("loyalty_account.id", "d", _DELTA, "account", postgres=postgres))


@lru_cache(maxsize=2)
def _lower_lots(*, postgres: bool) -> str:
    """The UPDATE of the lots the debits took from, each reached by index."""
    return _LOWER_LOTS.format(
        rows=bound_rows("t", _TAKEN, postgres=postgres),
        only=in_bound_rows("loyalty_lot.id", "t", _TAKEN, "lot", postgres=postgres))


def _entry_rows(accepted: Sequence[_Accepted]) -> Iterable[tuple[Any, ...]]:
    for made in accepted:
        p = made.posting
        yield (made.entry_id, made.account_id, made.balance_after, p.spec.kind.value,
               made.amount, p.spec.key, p.spec.fingerprint, p.spec.reason, p.spec.operator,
               utc(p.now))


def _lot_rows(accepted: Sequence[_Accepted], lots: dict[int, list[_Lot]]
              ) -> Iterable[tuple[Any, ...]]:
    """The credits' new lots, each with what is left of it after the group's debits (none
    when its id is not known yet)."""
    taken = {lot.id: lot.taken for live in lots.values() for lot in live if lot.new}
    for made in accepted:
        p = made.posting
        if p.is_credit:
            yield (made.lot_id, made.account_id, made.entry_id, p.points,
                   p.points - taken.get(made.lot_id, 0), utc(p.now), p.expires_on)


def _names(columns: Sequence[tuple[str, str]], *, skip_id: bool = False) -> list[str]:
    return [name for name, _ in columns if not (skip_id and name == "id")]


async def _write_in_one(conn: BaseDBAsyncClient, accepted: Sequence[_Accepted],
                        uses: Sequence[tuple[int, int, int]], lots: dict[int, list[_Lot]],
                        stamp: datetime) -> None:
    """PostgreSQL: entries and lots with the ids read before, balances, the lots taken from
    and their uses, in one statement (a new lot is written with what the debits left)."""
    def rows(name: str, columns: Sequence[tuple[str, str]]) -> str:
        return bound_rows(name, columns, postgres=True)

    stamped = ":stamp::timestamptz"
    steps = [
        _INSERT_ENTRIES.format(id="id, ", p_id="p.id, ", stamp=stamped, rows=rows("p", _ENTRY)),
        _INSERT_LOTS.format(id="id, ", c_id="c.id, ", rows=rows("c", _NEW_LOT)),
        _update_balances(postgres=True),
    ]
    values: dict[str, Any] = {
        "stamp": stamp,
        **bound_rows_values("p", _names(_ENTRY), _entry_rows(accepted), postgres=True),
        **bound_rows_values("c", _names(_NEW_LOT), _lot_rows(accepted, lots), postgres=True),
        **bound_rows_values("d", _names(_DELTA), _deltas(accepted), postgres=True)}
    if uses:
        steps.append(_lower_lots(postgres=True))
        steps.append(_INSERT_USES.format(rows=rows("u", _USE)))
        values.update(bound_rows_values("t", _names(_TAKEN), _lowered(lots, new=False),
                                        postgres=True))
        values.update(bound_rows_values("u", _names(_USE), uses, postgres=True))
    *first, last = steps
    sql = "WITH " + ", ".join(f"w{at} AS ({step})" for at, step in enumerate(first)) + " " + last
    await execute(conn, sql, values)


async def _write_entries_and_lots(conn: BaseDBAsyncClient, accepted: Sequence[_Accepted],
                                  stamp: datetime) -> None:
    """SQLite: the entries, then the credits' lots (whole), their ids from ``RETURNING``."""
    def rows(name: str, columns: Sequence[tuple[str, str]]) -> str:
        return bound_rows(name, [c for c in columns if c[0] != "id"], postgres=False)

    entries = await fetch(
        conn, _INSERT_ENTRIES.format(id="", p_id="", stamp=":stamp", rows=rows("p", _ENTRY))
        + " RETURNING id, idempotency_key",
        {"stamp": stamp, **bound_rows_values(
            "p", _names(_ENTRY, skip_id=True),
            (row[1:] for row in _entry_rows(accepted)), postgres=False)})
    by_key = {made.posting.spec.key: made for made in accepted}
    for row in entries:
        by_key[str(row["idempotency_key"])].entry_id = int(row["id"])
    credits = [made for made in accepted if made.posting.is_credit]
    if credits:
        lots = await fetch(
            conn, _INSERT_LOTS.format(id="", c_id="", rows=rows("c", _NEW_LOT))
            + " RETURNING id, entry_id",
            bound_rows_values("c", _names(_NEW_LOT, skip_id=True),
                              (row[1:] for row in _lot_rows(credits, {})), postgres=False))
        by_entry = {made.entry_id: made for made in credits}
        for row in lots:
            by_entry[int(row["entry_id"])].lot_id = int(row["id"])
    if any(not made.entry_id or (made.posting.is_credit and not made.lot_id)
           for made in accepted):
        raise LedgerCorrupted("a posting of the group was not written")


async def _write_balances_and_uses(conn: BaseDBAsyncClient, accepted: Sequence[_Accepted],
                                   uses: Sequence[tuple[int, int, int]],
                                   lots: dict[int, list[_Lot]], stamp: datetime) -> None:
    """SQLite: the balances, the lots the debits took from (the group's new ones too) and
    their uses, one statement each."""
    def rows(name: str, columns: Sequence[tuple[str, str]]) -> str:
        return bound_rows(name, columns, postgres=False)

    await execute(conn, _update_balances(postgres=False),
                  {"stamp": stamp, **bound_rows_values("d", _names(_DELTA), _deltas(accepted),
                                                       postgres=False)})
    if uses:
        await execute(conn, _lower_lots(postgres=False), bound_rows_values(
            "t", _names(_TAKEN), _lowered(lots, new=True), postgres=False))
        await execute(conn, _INSERT_USES.format(rows=rows("u", _USE)), bound_rows_values(
            "u", _names(_USE), uses, postgres=False))
