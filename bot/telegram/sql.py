"""Plain SQL for what every update does: is it new, who sent it, and marking it done.

Building a query through the ORM costs several times the query itself (about 0.3–0.9 ms of
CPU each, measured by ``bench/telegram_updates.py``), and these run on every update, so they
are written out once; everything else uses the ORM. Statements use ``?`` placeholders and are
numbered (``$1``) for PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient


def _connection() -> BaseDBAsyncClient:
    conn: BaseDBAsyncClient = connections.get("default")
    return conn


@lru_cache(maxsize=64)
def _numbered(sql: str) -> str:
    parts = sql.split("?")
    return parts[0] + "".join(f"${n}{part}" for n, part in enumerate(parts[1:], start=1))


def is_postgres() -> bool:
    return _connection().capabilities.dialect == "postgres"


def _dialect(conn: BaseDBAsyncClient, sql: str) -> str:
    return _numbered(sql) if conn.capabilities.dialect == "postgres" else sql


async def fetch(sql: str, values: Sequence[Any] = ()) -> list[dict[str, Any]]:
    conn = _connection()
    return await conn.execute_query_dict(_dialect(conn, sql), list(values))


async def execute(sql: str, values: Sequence[Any] = ()) -> None:
    conn = _connection()
    await conn.execute_query(_dialect(conn, sql), list(values))
