"""Shared fixtures: a fresh, migrated database per test on SQLite, and on PostgreSQL too when
``ENGAGE_TEST_POSTGRES_URL`` is set (every ``db`` test then runs once per backend).

Migrations run once per session into a template (a file on SQLite, a template database on
PostgreSQL); each test gets a copy, so it starts empty and fast.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from tortoise import Tortoise
from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.migrations.api import migrate

from storage import db as storage_db
from tests.fakes.fixtures import fake_telegram, fake_twilio, fake_weather  # noqa: F401

PG_URL = os.environ.get("ENGAGE_TEST_POSTGRES_URL", "")
BACKENDS = ["sqlite", "postgres"] if PG_URL else ["sqlite"]


def _pg_admin_dsn() -> str:
    return PG_URL.replace("postgres://", "postgresql://", 1)


def _pg_url_for(database: str) -> str:
    base, _, _ = PG_URL.rpartition("/")
    return f"{base}/{database}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import asyncio

    path = tmp_path_factory.mktemp("template") / "engage.sqlite3"

    async def build() -> None:
        await migrate(config=storage_db.tortoise_config(f"sqlite://{path}"))
        await Tortoise.close_connections()

    asyncio.run(build())
    return path


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    import asyncio

    if not PG_URL:
        pytest.skip("ENGAGE_TEST_POSTGRES_URL not set")
    name = f"engage_tpl_{uuid.uuid4().hex[:8]}"

    async def build() -> None:
        conn = await asyncpg.connect(_pg_admin_dsn())
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        await migrate(config=storage_db.tortoise_config(_pg_url_for(name)))
        await Tortoise.close_connections()

    async def drop() -> None:
        conn = await asyncpg.connect(_pg_admin_dsn())
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(build())
    yield name
    asyncio.run(drop())


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh, migrated, empty database (not yet connected)."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        target = tmp_path / "engage.sqlite3"
        shutil.copyfile(template, target)
        yield f"sqlite://{target}"
        return
    template_name: str = request.getfixturevalue("pg_template")
    name = f"engage_t_{uuid.uuid4().hex[:10]}"
    import asyncio

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(_pg_admin_dsn())
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}" TEMPLATE "{template_name}"'))
    yield _pg_url_for(name)
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[str]:
    """Tortoise connected to a fresh database; yields its URL."""
    # Tortoise caches rendered INSERT/DELETE SQL by connection name ("default"), so SQL built
    # for SQLite would be reused for PostgreSQL in the same process. One process, one backend
    # in production; here both run, so start each test with an empty cache.
    EXECUTOR_CACHE.clear()
    await Tortoise.init(config=storage_db.tortoise_config(db_url))
    try:
        yield db_url
    finally:
        await Tortoise.close_connections()


@pytest.fixture
def is_postgres(db_url: str) -> bool:
    return not db_url.startswith("sqlite://")


@pytest.fixture
def engage_url(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh, migrated database on each backend that ``engage`` commands run in ``tmp_path``
    use (no config file there unless the test writes one)."""
    EXECUTOR_CACHE.clear()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ENGAGE_CONFIG", raising=False)
    monkeypatch.setenv("ENGAGE_DATABASE__URL", db_url)
    return db_url


@pytest.fixture
def cli_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A SQLite file that ``engage`` commands run in ``tmp_path`` use (no config file)."""
    path = tmp_path / "engage.sqlite3"
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ENGAGE_CONFIG", raising=False)
    monkeypatch.setenv("ENGAGE_DATABASE__URL", f"sqlite://{path}")
    return path
