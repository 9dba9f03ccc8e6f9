"""Batch reads and writes with raw parameterised statements: the CSV import's upserts and the
dispatcher's outcome writes.

Building a Tortoise model per row, or a query with one bound parameter per key, costs more than
the whole row budget of a large import, so the hot path uses plain statements, one per batch.
On PostgreSQL new rows go in by binary ``COPY`` (asyncpg's ``copy_records_to_table``, on the
batch's transaction) and changed rows by ``UPDATE … FROM unnest($1::type[], …)`` (a column of
values per array parameter); per row that is half the client CPU of ``unnest`` for inserts
and a fraction of ``executemany``'s round trips. On SQLite (in-process) ``executemany``.
Reads are one ``WHERE key IN (…)`` (``= ANY($1)`` on PostgreSQL) per batch.

Statements written by hand elsewhere go through ``fetch`` and ``execute`` here, with named
parameters (``:customer_id``): ``bind`` turns them into the driver's placeholders in the order
they appear in the text, so SQL built from fragments cannot bind a value to the wrong place,
whatever order the fragments were written in.
Writes pass the Python types the ORM itself hands to each driver — aware UTC datetimes,
``date``, ``bool``, ``int``, ``str``, JSON as text — and reads convert values with the model's
own fields, so rows written here read back through the ORM like any other, and rows the ORM
wrote compare equal here. Supported backends: SQLite (aiosqlite) and PostgreSQL (asyncpg).
A unique key violated by a bulk write raises Tortoise's ``IntegrityError`` on both.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from typing import Any

from pypika_tortoise.queries import Table
from pypika_tortoise.terms import Parameter
from tortoise import fields
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.models import Model

_NATIVE = (fields.IntField, fields.BigIntField, fields.SmallIntField, fields.CharField,
           fields.TextField)
# SQLite's limit of bound parameters per statement: 32,766 since 3.32, 999 before
_SQLITE_MAX_KEYS = 10_000 if sqlite3.sqlite_version_info >= (3, 32) else 999


def as_date(value: Any) -> date:
    """A date read by a raw statement: SQLite hands back ISO text (JSON too), PostgreSQL a
    ``date``."""
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def as_moment(value: Any) -> datetime:
    """A timestamp read by a raw statement: ISO text (SQLite, or inside JSON) or a
    ``datetime``."""
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def is_postgres(conn: BaseDBAsyncClient) -> bool:
    return conn.capabilities.dialect == "postgres"


# a quoted literal or identifier or a -- comment (left alone), or a :name not in a ::cast
_NAMED = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|(?<![:\w]):([A-Za-z_]\w*)")


def driver_value(value: Any, *, postgres: bool) -> Any:
    """``value`` as the driver takes it: on SQLite dates as ISO text and aware datetimes as
    the UTC text Tortoise's ORM compares with (``2026-01-01 04:00:00+00:00``)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value} bound to a statement: pass it aware")
        return value if postgres else value.astimezone(UTC).isoformat(" ")
    if isinstance(value, date) and not postgres:
        return value.isoformat()
    return value


def bind(sql: str, params: Mapping[str, Any], *,
         postgres: bool) -> tuple[str, list[Any]]:
    """``sql`` with ``:name`` placeholders → the driver's text (``$n`` on PostgreSQL, ``?`` on
    SQLite) and its values in placeholder order. A name may appear several times; a name
    without a value, or a value no placeholder uses, is a ``KeyError`` (a typo fails loudly
    instead of binding something else)."""
    values: list[Any] = []
    slots: dict[str, str] = {}

    def place(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return match.group(0)
        if name not in params:
            raise KeyError(f"no value for :{name}")
        if postgres and name in slots:
            return slots[name]
        values.append(driver_value(params[name], postgres=postgres))
        slots[name] = f"${len(values)}" if postgres else "?"
        return slots[name]

    text = _NAMED.sub(place, sql)
    if unused := set(params) - set(slots):
        raise KeyError(f"values without a placeholder: {', '.join(sorted(unused))}")
    return text, values


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


async def fetch(conn: BaseDBAsyncClient, sql: str,
                params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The rows of one statement with named parameters (also ``… RETURNING``)."""
    text, values = bind(sql, params or {}, postgres=is_postgres(conn))
    rows: list[dict[str, Any]] = await conn.execute_query_dict(text, values)
    return rows


async def execute(conn: BaseDBAsyncClient, sql: str,
                  params: Mapping[str, Any] | None = None) -> int:
    """Run one INSERT/UPDATE/DELETE with named parameters; how many rows it changed.

    On PostgreSQL the count is read from the command tag on the transaction's own asyncpg
    connection (Tortoise's client takes an INSERT's OID column for it)."""
    postgres = is_postgres(conn)
    text, values = bind(sql, params or {}, postgres=postgres)
    if postgres:
        async with conn.acquire_connection() as raw:
            status: str = await raw.execute(text, *values)
        return int(status.rsplit(" ", 1)[-1])
    count, _ = await conn.execute_query(text, values)
    return int(count)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _unnest(model: type[Model], columns: Sequence[str]) -> str:
    """``unnest($1::TYPE[], $2::TYPE[], …)`` with each column's PostgreSQL type."""
    arrays = ", ".join(
        f"${position}::{model._meta.fields_map[column].get_for_dialect('postgres', 'SQL_TYPE')}[]"
        for position, column in enumerate(columns, start=1))
    return f"unnest({arrays})"


def _transpose(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    if any(len(row) != width for row in rows):
        raise ValueError(f"every row must have {width} values")
    return [list(column) for column in zip(*rows, strict=True)]


class Statements:
    """Statements for one connection (the batch's transaction)."""

    def __init__(self, conn: BaseDBAsyncClient) -> None:
        self._conn = conn
        self._postgres = conn.capabilities.dialect == "postgres"

    def stored(self, moment: datetime) -> Any:
        """``moment`` as the driver stores it, for a value that many rows share.

        On SQLite that is what the adapter Tortoise registers makes of it (an ISO string):
        adapting it once per batch instead of once per row and column saves ≈1.2 µs each,
        spent holding the GIL in the database thread. Elsewhere the datetime itself.
        """
        return moment if self._postgres else sqlite3.adapt(moment, sqlite3.PrepareProtocol)

    async def select_in(self, model: type[Model], key: str, keys: Collection[str | int],
                        columns: Sequence[str],
                        raw: Collection[str] = ()) -> list[tuple[Any, ...]]:
        """``SELECT columns FROM model's table WHERE key IN keys``, as the ORM would read them
        — except the ``raw`` columns, as the driver hands them over: for values only written
        back as they are (converting a timestamp costs more than the rest of a row)."""
        if not keys:
            return []
        table = model._meta.db_table
        converters: list[Callable[[Any], Any] | None] = []
        for column in columns:
            field = model._meta.fields_map[column]
            native = isinstance(field, _NATIVE) or column in raw
            converters.append(None if native else field.to_python_value)
        head = f"SELECT {', '.join(map(_quote, columns))} FROM {_quote(table)} WHERE {_quote(key)}"
        rows: list[Any] = []
        if self._postgres:
            _, found = await self._conn.execute_query(f"{head} = ANY($1)", [list(keys)])
            rows.extend(found)
        else:
            ordered = list(keys)
            for start in range(0, len(ordered), _SQLITE_MAX_KEYS):
                chunk = ordered[start:start + _SQLITE_MAX_KEYS]
                marks = ",".join("?" * len(chunk))
                _, found = await self._conn.execute_query(f"{head} IN ({marks})", chunk)
                rows.extend(found)
        needed = [(at, convert) for at, convert in enumerate(converters) if convert is not None]
        if not needed:
            return [tuple(row) for row in rows]
        converted: list[tuple[Any, ...]] = []
        for row in rows:  # only the few columns that need it: most are native
            values = list(row)
            for at, convert in needed:
                if values[at] is not None:
                    values[at] = convert(values[at])
            converted.append(tuple(values))
        return converted

    async def insert(self, model: type[Model], columns: Sequence[str],
                     rows: Sequence[list[Any]]) -> None:
        if not rows:
            return
        if self._postgres:
            await self._copy(model._meta.db_table, columns, rows)
            return
        sql = (
            self._conn.query_class.into(Table(model._meta.db_table))
            .columns(*columns)
            .insert(*[Parameter(idx=i + 1) for i in range(len(columns))])
            .get_sql()
        )
        await self._conn.execute_many(sql, list(rows))

    async def _copy(self, table: str, columns: Sequence[str], rows: Sequence[list[Any]]) -> None:
        """Binary ``COPY … FROM STDIN`` on the transaction's own asyncpg connection."""
        from asyncpg.exceptions import UniqueViolationError  # PostgreSQL only: asyncpg present

        async with self._conn.acquire_connection() as connection:
            try:
                await connection.copy_records_to_table(table, records=rows,
                                                       columns=list(columns))
            except UniqueViolationError as exc:
                raise IntegrityError(exc) from exc

    async def update(self, model: type[Model], columns: Sequence[str],
                     rows: Sequence[list[Any]], *, where: str = "id",
                     unless_set: str | None = None) -> None:
        """``UPDATE … SET columns… WHERE where = (the row's last value)`` for each row; with
        ``unless_set``, only rows where that column is still NULL (a value someone else
        recorded since the batch read it is kept)."""
        if not rows:
            return
        if self._postgres:
            every = (*columns, where)
            sets = ", ".join(f"{_quote(c)} = u.{_quote(c)}" for c in columns)
            guard = f" AND t.{_quote(unless_set)} IS NULL" if unless_set else ""
            sql = (f"UPDATE {_quote(model._meta.db_table)} AS t SET {sets} "
                   f"FROM {_unnest(model, every)} AS u({', '.join(map(_quote, every))}) "
                   f"WHERE t.{_quote(where)} = u.{_quote(where)}{guard}")
            await self._conn.execute_query(sql, _transpose(rows, len(every)))
            return
        target = Table(model._meta.db_table)
        query = self._conn.query_class.update(target)
        for position, column in enumerate(columns, start=1):
            query = query.set(column, Parameter(idx=position))
        condition = target.field(where) == Parameter(idx=len(columns) + 1)
        if unless_set:
            condition &= target.field(unless_set).isnull()
        sql = query.where(condition).get_sql()
        await self._conn.execute_many(sql, list(rows))


@asynccontextmanager
async def sqlite_page_cache(conn: BaseDBAsyncClient, mebibytes: int) -> AsyncIterator[None]:
    """On SQLite, give the connection a page cache of at least ``mebibytes`` while inside.

    Inserting random keys (phones, referral codes) touches index pages all over the file; with
    SQLite's default 2 MiB cache each batch reads most of them again from the OS. Measured on a
    million customers: 9.6 GB read at 2 MiB, 1.2 GB at 64 MiB, a quarter less CPU. The setting
    belongs to the connection, not the file, and is put back on the way out. PostgreSQL: no-op.
    """
    if conn.capabilities.dialect != "sqlite":
        yield
        return
    _, rows = await conn.execute_query("PRAGMA cache_size")
    before = int(rows[0][0])
    # negative = KiB, positive = pages (4 KiB by default); compare in KiB
    current_kib = -before if before < 0 else before * 4
    wanted_kib = mebibytes * 1024
    if current_kib >= wanted_kib:
        yield
        return
    await conn.execute_script(f"PRAGMA cache_size = -{wanted_kib}")
    try:
        yield
    finally:
        await conn.execute_script(f"PRAGMA cache_size = {before}")
