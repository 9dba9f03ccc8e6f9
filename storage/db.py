"""Database lifecycle: the Tortoise configuration, start-up (with migrations) and shutdown.

Tortoise itself is imported where it is used: ``engage --help`` and a command refused for its
arguments import this module (for ``DatabaseUnavailable``) and never touch the database.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MODELS_APP = "models"
MODELS_MODULES = ["storage.models", "storage.loyalty_models", "storage.scheduler_models",
                  "storage.operator_models", "storage.accident_models",
                  "storage.privacy_models", "storage.desk_models"]
MIGRATIONS_MODULE = "storage.migrations"


class DatabaseUnavailable(Exception):
    """The database could not be reached or opened; the message says which one and why."""


def _normalise(url: str) -> str:
    if url.startswith("postgresql://"):
        return "postgres://" + url.removeprefix("postgresql://")
    return url


async def keep_session(connection: Any) -> None:
    """The pool's reset on release: nothing beyond asyncpg's own (it still rolls back a
    transaction left open and drops listeners).

    asyncpg's default sends ``SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL;`` every time a connection goes back to the pool — one more round trip after
    every query run outside a transaction, which doubled the statements of a Telegram
    update. Nothing of ours leaves session state on a pooled connection: no ``SET``, no
    ``LISTEN``, no cursor outside a transaction, and the scheduler's advisory lock lives on
    a connection of its own (``scheduler/leader.py``)."""


def tortoise_config(url: str, *, pool_max: int = 10) -> dict[str, Any]:
    url = _normalise(url)
    connection: str | dict[str, Any] = url
    if url.startswith("postgres://"):
        from tortoise.backends.base.config_generator import expand_db_url

        connection = expand_db_url(url)
        connection["credentials"]["maxsize"] = pool_max
        connection["credentials"].setdefault("minsize", 1)
        connection["credentials"]["reset"] = keep_session
    return {
        "connections": {"default": connection},
        "apps": {
            MODELS_APP: {
                "models": MODELS_MODULES,
                "migrations": MIGRATIONS_MODULE,
                "default_connection": "default",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


def describe_url(url: str) -> str:
    """The URL with any password hidden, for messages and logs."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else f"{scheme}://{user}@{host}"


def _ensure_sqlite_dir(url: str) -> None:
    if url.startswith("sqlite://"):
        path = url.removeprefix("sqlite://")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)


CHECK_TIMEOUT = 1.5
"""Seconds ``check_reachable`` gives the database to answer."""


async def check_reachable(url: str, *, within: float = CHECK_TIMEOUT) -> None:
    """Connect once and run ``SELECT 1``, within ``within`` seconds, without Tortoise or
    the models: the quick start-up check. Raises ``DatabaseUnavailable`` saying why."""
    url = _normalise(url)
    try:
        if url.startswith("postgres://"):
            await asyncio.wait_for(_check_postgres(url, within), within)
        elif url.startswith("sqlite://"):
            await asyncio.to_thread(_check_sqlite, url.removeprefix("sqlite://"))
    except TimeoutError:
        raise DatabaseUnavailable(f"cannot reach database {describe_url(url)}: no answer "
                                  f"within {within:g} s") from None
    except OSError as exc:
        raise DatabaseUnavailable(f"cannot reach database {describe_url(url)}: {exc}") from None
    except sqlite3.Error as exc:
        raise DatabaseUnavailable(f"cannot open database {describe_url(url)}: {exc}") from None
    except Exception as exc:  # asyncpg's own hierarchy: auth, missing database, refusals
        if type(exc).__module__.startswith("asyncpg"):
            raise DatabaseUnavailable(
                f"cannot open database {describe_url(url)}: {exc}") from None
        raise


async def _check_postgres(url: str, within: float) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1),
                                 timeout=within)
    try:
        await conn.fetchval("SELECT 1")
    finally:
        await conn.close()


def _check_sqlite(path: str) -> None:
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path or ":memory:", timeout=CHECK_TIMEOUT)
    try:
        conn.execute("SELECT 1")
    finally:
        conn.close()


async def upgrade(url: str, *, pool_max: int = 10) -> None:
    """Apply every pending migration (idempotent), then leave Tortoise initialised."""
    from tortoise import Tortoise
    from tortoise.migrations.api import migrate

    _ensure_sqlite_dir(url)
    config = tortoise_config(url, pool_max=pool_max)
    try:
        await migrate(config=config)
        await Tortoise.init(config=config)
        await Tortoise.get_connection("default").execute_query("SELECT 1")
    except (OSError, ConnectionError) as exc:
        await Tortoise.close_connections()
        raise DatabaseUnavailable(f"cannot reach database {describe_url(url)}: {exc}") from None
    except Exception as exc:
        # asyncpg/aiosqlite raise their own hierarchies for auth, missing databases, etc.
        name = type(exc).__name__
        if name in {"InvalidCatalogNameError", "InvalidPasswordError", "OperationalError",
                    "CannotConnectNowError", "ConnectionDoesNotExistError"}:
            await Tortoise.close_connections()
            raise DatabaseUnavailable(
                f"cannot open database {describe_url(url)}: {exc}"
            ) from None
        raise
    log.info("database ready at %s", describe_url(url))


async def close() -> None:
    from tortoise import Tortoise

    await Tortoise.close_connections()


_SQLITE_TRANSIENT = ("database is locked", "database table is locked", "disk i/o error",
                     "unable to open database")


def is_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database cannot do the work right now — down, restarting,
    out of connections, locked, a serialisation conflict — so the same work is worth trying
    again as it is, as opposed to a statement the database refused (a bug or bad data).

    Looks through Tortoise's wrapping (``OperationalError(driver error)``) to the driver's own
    exception: asyncpg's hierarchy on PostgreSQL, sqlite3's message on SQLite."""
    from tortoise.exceptions import DBConnectionError

    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 5:
        seen.append(current)
        if isinstance(current, OSError | TimeoutError | DBConnectionError):
            return True
        if type(current).__module__.startswith("asyncpg") and _asyncpg_transient(current):
            return True
        if isinstance(current, sqlite3.OperationalError) and any(
                text in str(current).lower() for text in _SQLITE_TRANSIENT):
            return True
        inner = current.args[0] if current.args else None
        current = (current.__cause__ or current.__context__
                   or (inner if isinstance(inner, BaseException) else None))
    return False


def _asyncpg_transient(exc: BaseException) -> bool:
    from asyncpg import exceptions as pg  # present whenever asyncpg raised

    # not InterfaceError: "the server expects 3 arguments, 2 were passed" is a bug
    return isinstance(exc, pg.PostgresConnectionError | pg.OperatorInterventionError
                      | pg.InsufficientResourcesError | pg.TransactionRollbackError)


# For `tortoise makemigrations -c storage.db.TORTOISE_ORM` during development only.
TORTOISE_ORM = tortoise_config(os.environ.get("ENGAGE_DATABASE__URL", "sqlite://data/dev.sqlite3"))
