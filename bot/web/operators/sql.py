"""Raw SQL for the operator side: ``?`` placeholders on both backends, row counts that are
right on both (Tortoise's asyncpg client reads an INSERT's OID as its row count)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from loyalty.ledger import fetch, is_postgres

__all__ = ["execute", "fetch", "is_postgres", "numbered"]


def numbered(sql: str) -> str:
    parts = sql.split("?")
    return parts[0] + "".join(f"${n}{part}" for n, part in enumerate(parts[1:], start=1))


async def execute(conn: BaseDBAsyncClient, sql: str, values: Sequence[Any] = ()) -> int:
    """Run one INSERT/UPDATE/DELETE and return how many rows it changed."""
    if is_postgres(conn):
        async with conn.acquire_connection() as raw:
            status: str = await raw.execute(numbered(sql), *values)
        return int(status.rsplit(" ", 1)[-1])
    count, _ = await conn.execute_query(sql, list(values))
    return count
