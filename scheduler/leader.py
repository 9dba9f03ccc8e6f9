"""Which process runs the scheduler: exactly one per database.

On PostgreSQL the leader is the process holding a session-level advisory lock
(``pg_try_advisory_lock``) on a dedicated connection kept open for the process lifetime;
PostgreSQL releases it when that session ends, however the process dies. Standbys try again
every ``schedule.leader_retry_seconds``; a leader checks its connection at the same interval
and steps down if it is gone (another process may hold the lock by then). The lock is an
efficiency, not the correctness guarantee: in the seconds around a takeover two processes may
both plan, and the outbox dedup keys make that harmless.

On SQLite there is one process by design, and it is always the leader.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol

import asyncpg

log = logging.getLogger(__name__)

# "engage.scheduler" folded into a signed 64-bit constant; any fixed number would do, as long
# as nothing else in the database uses it.
LOCK_KEY: Final = 0x656E_6761_6765_5343
_CONNECTION_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


class Leadership(Protocol):
    @property
    def is_leader(self) -> bool: ...

    async def try_acquire(self) -> bool:
        """Check or take leadership; returns whether this process leads now."""
        ...

    async def release(self) -> None: ...


class SingleProcess:
    """SQLite: the only process is the leader."""

    @property
    def is_leader(self) -> bool:
        return True

    async def try_acquire(self) -> bool:
        return True

    async def release(self) -> None:
        return None


def asyncpg_dsn(url: str) -> str:
    """A Tortoise database URL as a libpq DSN for asyncpg (scheme fixed, options dropped)."""
    _, _, rest = url.partition("://")
    return "postgresql://" + rest.split("?", 1)[0]


Connect = Callable[[str], Awaitable[Any]]


async def _connect(dsn: str) -> Any:
    return await asyncpg.connect(dsn, timeout=10)


class AdvisoryLock:
    """Leadership by a PostgreSQL session advisory lock on a connection of its own."""

    def __init__(self, dsn: str, *, key: int = LOCK_KEY, connect: Connect = _connect) -> None:
        self._dsn = dsn
        self._key = key
        self._connect = connect
        self._conn: Any = None
        self._held = False

    @property
    def is_leader(self) -> bool:
        return self._held

    async def try_acquire(self) -> bool:
        try:
            if self._held:
                await self._conn.fetchval("SELECT 1")
                return True
            if self._conn is None or self._conn.is_closed():
                self._conn = await self._connect(self._dsn)
            self._held = bool(await self._conn.fetchval(
                "SELECT pg_try_advisory_lock($1)", self._key))
        except _CONNECTION_ERRORS as exc:
            if self._held:
                log.warning("lost the scheduler lock connection (%s): stepping down",
                            type(exc).__name__)
            else:
                log.warning("cannot reach the database for the scheduler lock: %s",
                            type(exc).__name__)
            self._held = False
            await self._discard()
        return self._held

    async def release(self) -> None:
        if self._conn is not None and self._held:
            try:
                await self._conn.fetchval("SELECT pg_advisory_unlock($1)", self._key)
            except _CONNECTION_ERRORS:
                pass  # closing the session below releases it anyway
        self._held = False
        await self._discard()

    async def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await conn.close(timeout=5)
            except _CONNECTION_ERRORS:
                conn.terminate()
