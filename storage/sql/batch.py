"""Batch reads and writes with raw parameterised statements: the CSV import's upserts and the
dispatcher's outcome writes.

Building a Tortoise model per row, or a query with one bound parameter per key, costs more than
the whole row budget of a large import, so the hot path uses plain statements, one per batch.
On PostgreSQL new rows go in by binary ``COPY`` (asyncpg's ``copy_records_to_table``, on the
batch's transaction) and changed rows by ``UPDATE … FROM unnest($1::type[], …)`` (a column of
values per array parameter); per row that is half the client CPU of ``unnest`` for inserts
and a fraction of ``executemany``'s round trips. On SQLite (in-process) ``executemany``.
Reads are one ``WHERE key IN (…)`` (``= ANY($1)`` on PostgreSQL) per batch.

Writes pass the Python types the ORM itself hands to each driver and reads convert values
with the model's own fields, so rows written here read back through the ORM like any other.
A unique key violated by a bulk write raises Tortoise's ``IntegrityError`` on both.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from pypika_tortoise.queries import Table
from pypika_tortoise.terms import Parameter
from tortoise import fields
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.models import Model

from storage.sql.gateway import _execute_counted, is_postgres

_NATIVE = (fields.IntField, fields.BigIntField, fields.SmallIntField, fields.CharField,
           fields.TextField)
# SQLite's limit of bound parameters per statement: 32,766 since 3.32, 999 before
_SQLITE_MAX_KEYS = 10_000 if sqlite3.sqlite_version_info >= (3, 32) else 999


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
        self._postgres = is_postgres(conn)

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


    async def insert_new(self, table: str, columns: Sequence[str], types: Sequence[str],
                         rows: Sequence[Sequence[Any]], *, conflict: str, stamped: Sequence[str],
                         stamp: datetime, literals: Mapping[str, str]) -> int:
        """Insert ``rows`` (values of ``columns``, of PostgreSQL types ``types``), each with
        ``stamp`` in the ``stamped`` columns and the SQL ``literals`` (column → literal) as
        they are; rows whose ``conflict`` key exists or repeats are left out. Returns how
        many were inserted.

        One ``INSERT … SELECT … FROM unnest(…)`` on PostgreSQL; ``executemany`` of
        ``INSERT OR IGNORE`` on SQLite, counted by the connection's change counter."""
        head = f"INTO {table} ({', '.join((*stamped, *literals, *columns))})"
        fixed = ", ".join(literals.values())
        if self._postgres:
            stamps = ", ".join("$1" for _ in stamped)
            arrays = ", ".join(f"${i}::{t}[]" for i, t in enumerate(types, start=2))
            sql = (f"INSERT {head} SELECT {stamps}, {fixed}, u.* FROM unnest({arrays}) AS u "
                   f"ON CONFLICT ({conflict}) DO NOTHING")
            return await _execute_counted(self._conn, sql,
                                          [stamp, *_transpose(rows, len(columns))])
        stamps = ", ".join("?" for _ in stamped)
        marks = ", ".join("?" for _ in columns)
        sql = f"INSERT OR IGNORE {head} VALUES ({stamps}, {fixed}, {marks})"
        shared = (stamp,) * len(stamped)
        async with self._conn.acquire_connection() as raw:
            before = raw.total_changes
            await raw.executemany(sql, [(*shared, *row) for row in rows])
            return int(raw.total_changes - before)


@asynccontextmanager
async def sqlite_page_cache(conn: BaseDBAsyncClient, mebibytes: int) -> AsyncIterator[None]:
    """On SQLite, give the connection a page cache of at least ``mebibytes`` while inside.

    Inserting random keys (phones, referral codes) touches index pages all over the file; with
    SQLite's default 2 MiB cache each batch reads most of them again from the OS. Measured on a
    million customers: 9.6 GB read at 2 MiB, 1.2 GB at 64 MiB, a quarter less CPU. The setting
    belongs to the connection, not the file, and is put back on the way out. PostgreSQL: no-op.
    """
    if is_postgres(conn):
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
