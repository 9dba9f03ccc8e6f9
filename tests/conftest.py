"""Shared fixtures: a fresh, migrated database per test on SQLite, and on PostgreSQL too when
``ENGAGE_TEST_POSTGRES_URL`` is set (every ``db`` test then runs once per backend).

Migrations run into a template (a file on SQLite, a template database on PostgreSQL) named by
a hash of the migration files and kept between runs, so only the first run after a migration
changes pays for building it; each test gets a copy, so it starts empty and fast.
"""

from __future__ import annotations

import os
import shutil
import tempfile
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


def _migrations_hash() -> str:
    """Names the migrated template: the migration files and the Tortoise version. A template
    built from the same migrations is reused by later runs (and by parallel ones)."""
    import hashlib

    import tortoise

    digest = hashlib.sha256(tortoise.__version__.encode())
    folder = Path(storage_db.__file__).parent / "migrations"
    for path in sorted(folder.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


TEMPLATE_DIR = Path(tempfile.gettempdir()) / "engage-test-templates"


@pytest.fixture(scope="session")
def sqlite_template() -> Path:
    """The migrated SQLite file for this set of migrations, built once and kept in the temp
    dir; built under a temporary name and renamed, so a concurrent run never sees half."""
    import asyncio

    TEMPLATE_DIR.mkdir(exist_ok=True)
    path = TEMPLATE_DIR / f"engage-{_migrations_hash()}.sqlite3"
    if path.exists():
        return path
    building = TEMPLATE_DIR / f"building-{uuid.uuid4().hex}.sqlite3"

    async def build() -> None:
        await migrate(config=storage_db.tortoise_config(f"sqlite://{building}"))
        await Tortoise.close_connections()

    asyncio.run(build())
    for leftover in (Path(f"{building}-wal"), Path(f"{building}-shm")):
        leftover.unlink(missing_ok=True)
    os.replace(building, path)
    return path


async def _pg_admin(sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(_pg_admin_dsn())
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_template() -> str:
    """The migrated template database for this set of migrations, built once and kept (named
    by the migrations' hash); built under a temporary name and renamed when complete."""
    import asyncio

    if not PG_URL:
        pytest.skip("ENGAGE_TEST_POSTGRES_URL not set")
    name = f"engage_tpl_{_migrations_hash()}"

    async def ensure() -> None:
        if await _pg_admin("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return
        building = f"engage_build_{uuid.uuid4().hex[:10]}"
        await _pg_admin(f'CREATE DATABASE "{building}"')
        try:
            await migrate(config=storage_db.tortoise_config(_pg_url_for(building)))
            await Tortoise.close_connections()
            await _pg_admin(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
        except asyncpg.DuplicateDatabaseError:
            pass  # a parallel run finished the same template first
        finally:
            await _pg_admin(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')

    asyncio.run(ensure())
    return name


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

    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template_name}"'))
    yield _pg_url_for(name)
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


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
