"""Hand-written statements with named parameters: the one place that knows the dialects.

A statement names its values (``WHERE customer_id = :customer_id``); ``bind`` turns the names
into the driver's placeholders (``$n`` on PostgreSQL, ``?`` on SQLite) in the order they appear
in the text, so SQL built from fragments cannot bind a value to the wrong place, whatever order
the fragments were written in. The translation of a statement is computed once and cached:
on the hot paths (every Telegram update, every ledger posting) binding costs a dict lookup per
value.

Values go to the driver as the ORM itself hands them over — aware datetimes in UTC (as the
text Tortoise stores on SQLite), dates (ISO text on SQLite), ``Decimal`` (text on SQLite),
booleans, JSON (``dict``/``list``, as text) — so rows written here read back through the ORM
like any other. Reads come back as the driver gives them; ``as_date``, ``as_moment``,
``as_json``, ``as_bool`` and ``as_decimal`` turn a column into the Python value on either
backend. ``execute`` returns how many rows a statement changed (on PostgreSQL from the command
tag: Tortoise's client reports an INSERT's OID instead).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient, TransactionalDBClient
from tortoise.exceptions import IntegrityError, OperationalError, TransactionManagementError

Row = dict[str, Any]
"""A row as the driver hands it over, keyed by column name; callers turn it into a typed
value (a dataclass or TypedDict) right away."""


def current() -> BaseDBAsyncClient:
    """The current connection: the transaction's inside ``in_transaction()``, else the
    default one."""
    conn: BaseDBAsyncClient = connections.get("default")
    return conn


def inside_transaction() -> bool:
    """Whether the current task runs inside ``in_transaction()`` (whose one connection its
    statements share, one at a time)."""
    return isinstance(current(), TransactionalDBClient)


def is_postgres(conn: BaseDBAsyncClient | None = None) -> bool:
    """Whether ``conn`` (default: the current connection) talks to PostgreSQL; SQLite is the
    only other backend."""
    return (conn or current()).capabilities.dialect == "postgres"


# --- values, both ways --------------------------------------------------------------------------


def driver_value(value: Any, *, postgres: bool) -> Any:
    """``value`` as the driver takes it: on SQLite dates as ISO text and aware datetimes as
    the UTC text Tortoise's ORM compares with (``2026-01-01 04:00:00+00:00``), ``Decimal`` as
    text; JSON (a dict or list) as text on both."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value} bound to a statement: pass it aware")
        return value if postgres else value.astimezone(UTC).isoformat(" ")
    if isinstance(value, date):
        return value if postgres else value.isoformat()
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Decimal) and not postgres:
        return str(value)
    if isinstance(value, list) and not postgres:  # PostgreSQL takes a list as an array
        return json.dumps(value, ensure_ascii=False)
    return value


def as_date(value: Any) -> date:
    """A date read by a raw statement: SQLite hands back ISO text (JSON too), PostgreSQL a
    ``date``."""
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def as_moment(value: Any) -> datetime:
    """A timestamp read by a raw statement: ISO text (SQLite, or inside JSON) or a
    ``datetime``."""
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def as_json(value: Any, default: Any = None) -> Any:
    """A JSON column or aggregate: text on SQLite (and for ``::text`` aggregates), already
    decoded by some drivers; ``default`` for NULL."""
    if value is None:
        return default
    return json.loads(value) if isinstance(value, str | bytes) else value


def as_bool(value: Any) -> bool:
    """A boolean column: 0/1 on SQLite, ``bool`` on PostgreSQL."""
    return bool(value)


def as_decimal(value: Any) -> Decimal:
    """A decimal column: text (or a float for an expression) on SQLite, ``Decimal`` on
    PostgreSQL."""
    return value if isinstance(value, Decimal) else Decimal(str(value))


# --- named parameters ---------------------------------------------------------------------------

# a quoted literal or identifier or a -- comment (left alone), or a :name not in a ::cast
_NAMED = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|(?<![:\w]):([A-Za-z_]\w*)")


@lru_cache(maxsize=2048)
def _translated(sql: str, postgres: bool) -> tuple[str, tuple[str, ...], frozenset[str]]:
    """``sql`` in the driver's placeholders, the names in binding order, and the set of names
    used."""
    order: list[str] = []
    slots: dict[str, str] = {}

    def place(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return match.group(0)
        if postgres and name in slots:
            return slots[name]
        order.append(name)
        slots[name] = f"${len(order)}" if postgres else "?"
        return slots[name]

    return _NAMED.sub(place, sql), tuple(order), frozenset(slots)


def bind(sql: str, params: Mapping[str, Any], *,
         postgres: bool) -> tuple[str, list[Any]]:
    """``sql`` with ``:name`` placeholders → the driver's text (``$n`` on PostgreSQL, ``?`` on
    SQLite) and its values in placeholder order. A name may appear several times; a name
    without a value, or a value no placeholder uses, is a ``KeyError`` (a typo fails loudly
    instead of binding something else)."""
    text, order, used = _translated(sql, postgres)
    if len(used) != len(params) or not used.issuperset(params):
        if missing := sorted(used.difference(params)):
            raise KeyError(f"no value for :{missing[0]}")
        unused = sorted(set(params) - used)
        raise KeyError(f"values without a placeholder: {', '.join(unused)}")
    return text, [driver_value(params[name], postgres=postgres) for name in order]


def bound_rows_values(name: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], *,
                      postgres: bool) -> dict[str, Any]:
    """The values of ``dialect.bound_rows(name, …)``: ``rows`` (each one value per column, in
    ``columns`` order) as one list per column on PostgreSQL (``:name_column``), as one JSON
    array of rows on SQLite (``:name``), each value converted as ``driver_value`` does."""
    if postgres:
        by_column: list[list[Any]] = [[] for _ in columns]
        for row in rows:
            for values, value in zip(by_column, row, strict=True):
                values.append(value)
        return {f"{name}_{column}": values for column, values in zip(columns, by_column,
                                                                      strict=True)}
    return {name: json.dumps([[driver_value(value, postgres=False) for value in row]
                              for row in rows], ensure_ascii=False)}


def bound_json_rows_values(name: str, columns: Sequence[str],
                           rows: Iterable[Sequence[Any]]) -> dict[str, Any]:
    """The value of ``dialect.bound_json_rows(name, …)``: ``rows`` as one JSON array of rows
    (``:name``) on both backends, each value as SQLite takes it (``driver_value``), which the
    casts on PostgreSQL read back."""
    return bound_rows_values(name, columns, rows, postgres=False)


class Params(dict[str, Any]):
    """Values for named placeholders, for SQL built from fragments: ``add(value)`` keeps the
    value under a fresh name and returns its placeholder to put in the text."""

    def add(self, value: Any) -> str:
        name = f"v{len(self)}"
        while name in self:
            name += "_"
        self[name] = value
        return f":{name}"

    def add_all(self, values: Iterable[Any]) -> str:
        """``:v1, :v2, …`` for an ``IN (…)`` list (an empty list is a caller's mistake)."""
        marks = ", ".join(self.add(value) for value in values)
        if not marks:
            raise ValueError("an IN list needs at least one value")
        return marks

    def take(self, fragment: Fragment) -> str:
        """``fragment``'s text with each of its values kept here under a fresh name, so
        fragments that happen to use the same names can share one statement."""
        renamed = {name: self.add(value)[1:] for name, value in fragment.params.items()}

        def rename(match: re.Match[str]) -> str:
            name = match.group(1)
            return match.group(0) if name is None else f":{renamed[name]}"

        return _NAMED.sub(rename, fragment.sql)


class Fragment:
    """A piece of SQL with its own named values (a condition, an expression), to be put into
    a statement with ``Params.take``."""

    __slots__ = ("params", "sql")

    def __init__(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        _, _, used = _translated(sql, False)
        values = dict(params or {})
        if used != set(values):
            raise KeyError(f"fragment names {sorted(used)} but has values for {sorted(values)}")
        self.sql = sql
        self.params = values

    def __repr__(self) -> str:
        return f"Fragment({self.sql!r}, {self.params!r})"


# --- running statements -------------------------------------------------------------------------


def rows_changed(status: str) -> int:
    """The row count of an asyncpg command tag (``UPDATE 3``, ``INSERT 0 5``)."""
    return int(status.rsplit(" ", 1)[-1])


async def fetch(conn: BaseDBAsyncClient, sql: str,
                params: Mapping[str, Any] | None = None) -> list[Row]:
    """The rows of one statement with named parameters (also ``… RETURNING``).

    On PostgreSQL the statement runs on asyncpg's own connection: Tortoise's
    ``execute_query_dict`` adds two exception-translating wrappers and a debug log call
    around the same ``fetch``, a tenth of the cost of a Telegram update's reads."""
    postgres = is_postgres(conn)
    text, values = bind(sql, params or {}, postgres=postgres)
    if postgres:
        async with conn.acquire_connection() as raw:
            try:
                records = await raw.fetch(text, *values)
            except Exception as exc:
                _raise_translated(exc)
                raise
        return [dict(record) for record in records]
    rows: list[Row] = await conn.execute_query_dict(text, values)
    return rows


async def fetchrow(conn: BaseDBAsyncClient, sql: str,
                   params: Mapping[str, Any] | None = None) -> Row | None:
    """The first row of one statement, or None."""
    rows = await fetch(conn, sql, params)
    return rows[0] if rows else None


async def fetchval(conn: BaseDBAsyncClient, sql: str,
                   params: Mapping[str, Any] | None = None) -> Any:
    """The first column of the first row (None when there is no row)."""
    row = await fetchrow(conn, sql, params)
    return next(iter(row.values())) if row else None


async def execute(conn: BaseDBAsyncClient, sql: str,
                  params: Mapping[str, Any] | None = None) -> int:
    """Run one INSERT/UPDATE/DELETE with named parameters; how many rows it changed.

    On PostgreSQL the count is read from the command tag on the transaction's own asyncpg
    connection (Tortoise's client takes an INSERT's OID column for it)."""
    postgres = is_postgres(conn)
    text, values = bind(sql, params or {}, postgres=postgres)
    if postgres:
        return await _execute_counted(conn, text, values)
    count, _ = await conn.execute_query(text, values)
    return int(count)


async def _execute_counted(conn: BaseDBAsyncClient, text: str, values: list[Any]) -> int:
    async with conn.acquire_connection() as raw:
        try:
            status: str = await raw.execute(text, *values)
        except Exception as exc:
            _raise_translated(exc)
            raise
    return rows_changed(status)


async def plan_each_execution(conn: BaseDBAsyncClient) -> None:
    """For the rest of ``conn``'s transaction, PostgreSQL plans every statement with its
    values, never with the generic plan of a prepared statement (``plan_cache_mode``); nothing
    on SQLite.

    asyncpg prepares each statement text once per connection, and after five executions
    PostgreSQL may switch to a plan made without the values. For a statement run over
    successive key ranges that plan cannot tell a range from the whole table (a festival
    day's greetings: a bitmap over every policy's end date for each range of 50,000
    customers, and the JSON parameter parsed again for every row — a fifth more per range)."""
    if not is_postgres(conn):
        return
    if not isinstance(conn, TransactionalDBClient):
        raise TransactionManagementError("plan_each_execution needs a transaction")
    async with conn.acquire_connection() as raw:
        await raw.execute("SET LOCAL plan_cache_mode = force_custom_plan")


@lru_cache(maxsize=1)
def _asyncpg_errors() -> tuple[tuple[type[Exception], type[Exception]], ...]:
    import asyncpg  # PostgreSQL only: asyncpg present

    return ((asyncpg.SyntaxOrAccessError, OperationalError),
            (asyncpg.exceptions.DataError, OperationalError),
            (asyncpg.IntegrityConstraintViolationError, IntegrityError),
            (asyncpg.InvalidTransactionStateError, TransactionManagementError))


def _raise_translated(exc: Exception) -> None:
    """Raises an asyncpg error as Tortoise's client turns it (a unique or foreign key
    violation is an ``IntegrityError`` on both backends); returns for any other exception."""
    for raised, translated in _asyncpg_errors():
        if isinstance(exc, raised):
            raise translated(exc) from exc
