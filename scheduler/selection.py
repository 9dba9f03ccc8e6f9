"""Set-based selections read in keyset pages, so memory stays bounded whatever the table size.

A rule describes *what* it selects as one ``FROM … WHERE …`` clause; the same clause is read
page by page (``AND key > ? ORDER BY key LIMIT n``, an index range scan on the key) and can be
counted with one ``COUNT(*)`` — which is what the benchmark compares the plan against.

SQL is written once with ``?`` placeholders; PostgreSQL gets them numbered (``$1``). Dates are
passed as ISO strings to SQLite (where Tortoise stores them as text) and as ``date`` objects to
PostgreSQL, and come back as ``date`` either way through ``storage.sql.as_date``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient

_PLACEHOLDER = re.compile(r"\?")


def connection() -> BaseDBAsyncClient:
    """The current connection (the transaction's, inside ``in_transaction``)."""
    conn: BaseDBAsyncClient = connections.get("default")
    return conn


def is_postgres(conn: BaseDBAsyncClient | None = None) -> bool:
    return (conn or connection()).capabilities.dialect == "postgres"


def _numbered(sql: str) -> str:
    counter = iter(range(1, 10_000))
    return _PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql)


def _param(value: Any, postgres: bool) -> Any:
    if isinstance(value, date) and not postgres:
        return value.isoformat()
    return value


def placeholders(count: int) -> str:
    """``?, ?, ?`` for an ``IN (…)`` list (callers never pass an empty list)."""
    if count <= 0:
        raise ValueError("an IN list needs at least one value")
    return ", ".join("?" * count)


def json_rows(*values: str) -> str:
    """SQL aggregate: ``[[v1, v2, …], …]``, one inner array per row, as JSON text.

    For gathering a group's rows into one column of a selection (a scalar subquery). There is
    no string aggregate both dialects share: SQLite has ``group_concat`` (``string_agg`` only
    from 3.44), PostgreSQL ``string_agg``; JSON also spares choosing a separator that data can
    never contain. Order within the array is unspecified.
    """
    listed = ", ".join(values)
    if is_postgres():
        return f"json_agg(json_build_array({listed}))::text"
    return f"json_group_array(json_array({listed}))"


async def fetch(sql: str, values: Sequence[Any] = ()) -> list[dict[str, Any]]:
    conn = connection()
    postgres = is_postgres(conn)
    text = _numbered(sql) if postgres else sql
    return await conn.execute_query_dict(text, [_param(v, postgres) for v in values])


async def execute(sql: str, values: Sequence[Any] = ()) -> int:
    """Run one INSERT/UPDATE/DELETE; how many rows it changed, right on both backends
    (Tortoise's asyncpg client reads an INSERT's OID as its row count)."""
    conn = connection()
    postgres = is_postgres(conn)
    params = [_param(v, postgres) for v in values]
    if postgres:
        async with conn.acquire_connection() as raw:
            status: str = await raw.execute(_numbered(sql), *params)
        return int(status.rsplit(" ", 1)[-1])
    count, _ = await conn.execute_query(sql, params)
    return int(count)


@dataclass(frozen=True, slots=True)
class Selection:
    """``SELECT <key> AS k, <columns> <source>``, where ``source`` is ``FROM … WHERE …``."""

    columns: str
    source: str
    values: tuple[Any, ...]
    key: str

    async def pages(self, size: int) -> AsyncIterator[list[dict[str, Any]]]:
        after: Any = None
        while True:
            if after is None:
                sql = f"SELECT {self.key} AS k, {self.columns} {self.source} " \
                      f"ORDER BY {self.key} LIMIT {int(size)}"
                values: tuple[Any, ...] = self.values
            else:
                sql = f"SELECT {self.key} AS k, {self.columns} {self.source} " \
                      f"AND {self.key} > ? ORDER BY {self.key} LIMIT {int(size)}"
                values = (*self.values, after)
            rows = await fetch(sql, values)
            if rows:
                yield rows
            if len(rows) < size:
                return
            after = rows[-1]["k"]

    async def key_bounds(self) -> tuple[Any, Any] | None:
        """The smallest and largest key selected (two index probes), None when nothing is."""
        sql = f"SELECT {self.key} AS k {self.source} ORDER BY {self.key}"
        first = await fetch(f"{sql} LIMIT 1", self.values)
        if not first:
            return None
        last = await fetch(f"{sql} DESC LIMIT 1", self.values)
        return first[0]["k"], last[0]["k"] if last else first[0]["k"]

    def within(self, low: Any, high: Any) -> Selection:
        """The rows with ``low < key <= high``."""
        return Selection(self.columns, f"{self.source} AND {self.key} > ? AND {self.key} <= ?",
                         (*self.values, low, high), self.key)

    async def count(self) -> int:
        rows = await fetch(f"SELECT COUNT(*) AS n {self.source}", self.values)
        return int(rows[0]["n"])
