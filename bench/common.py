"""Shared benchmark helpers: peak RSS, timing, throw-away databases, one child process per run.

Benchmarks are scripts, not tests; each prints its figures and a ratio against a baseline
measured in the same run. Typical use::

    async with migrated_database("postgres", PG_ADMIN) as url:   # or "sqlite"
        with stopwatch() as elapsed:
            ...
        print(rate(n, elapsed()))

    result = run_child("bench.import_customers", ["--child", "sqlite", ...])  # its own RSS
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import asyncpg
from tortoise import Tortoise
from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.migrations.api import migrate

from storage import db as storage_db

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
RESULT_PREFIX = "BENCH-RESULT "


def peak_rss_mb() -> float:
    """This process's peak resident set size so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def stopwatch() -> Iterator[Callable[[], float]]:
    """``with stopwatch() as elapsed:`` — ``elapsed()`` is the seconds so far (frozen at exit)."""
    start = time.perf_counter()
    end: float | None = None

    def elapsed() -> float:
        return (end if end is not None else time.perf_counter()) - start

    try:
        yield elapsed
    finally:
        end = time.perf_counter()


def process_cpu_seconds() -> float:
    """CPU time of this process, all threads (SQLite works in a thread of its own)."""
    return time.process_time()


def cpu_seconds_of(pids: Iterable[int]) -> dict[int, float]:
    """CPU time (user + system) of other local processes, e.g. PostgreSQL backends; processes
    that are gone or unreadable are left out."""
    tick = os.sysconf("SC_CLK_TCK")
    seconds: dict[int, float] = {}
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state is fields[0]
        seconds[pid] = (int(fields[11]) + int(fields[12])) / tick
    return seconds


async def postgres_backend_pids(connection: str = "default") -> list[int]:
    """The server processes of every connection to the current database (all pool members)."""
    from tortoise import connections

    _, rows = await connections.get(connection).execute_query(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
    return [int(row["pid"]) for row in rows]


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def load_average() -> str:
    """The 1-minute load average and CPU count, to print next to figures from a shared box."""
    try:
        one = Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "load n/a"
    return f"load {one} on {os.cpu_count()} CPUs"


async def postgres_unreachable(admin_dsn: str = PG_ADMIN) -> str | None:
    """``None`` if the server answers, else one line saying why not."""
    try:
        conn = await asyncio.wait_for(asyncpg.connect(admin_dsn), timeout=5)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


@asynccontextmanager
async def temp_postgres_database(admin_dsn: str = PG_ADMIN) -> AsyncIterator[str]:
    """A new, empty database on the server (``postgres://`` URL); dropped afterwards."""
    name = f"engage_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = admin_dsn.replace("postgresql://", "postgres://", 1).rpartition("/")[0]
    try:
        yield f"{base}/{name}"
    finally:
        admin = await asyncpg.connect(admin_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@asynccontextmanager
async def temp_sqlite_database() -> AsyncIterator[str]:
    """A ``sqlite://`` URL of a file in a new temporary directory; deleted afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="engage-bench-"))
    try:
        yield f"sqlite://{directory / 'engage.sqlite3'}"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@asynccontextmanager
async def migrated_database(backend: str, admin_dsn: str = PG_ADMIN, *,
                            pool_max: int = 10, sqlite_options: str = "",
                            fill: Callable[[str], Awaitable[None]] | None = None,
                            ) -> AsyncIterator[str]:
    """A throw-away database with every migration applied and Tortoise connected to it.

    ``backend`` is ``sqlite`` or ``postgres``; ``sqlite_options`` is appended to a SQLite URL
    (``?synchronous=NORMAL``). ``fill``, given the URL, loads data after the migrations and
    before Tortoise connects. Yields the URL; closes the connections and drops the database
    (or deletes the file) afterwards.
    """
    # Tortoise caches rendered SQL per connection name: start each database afresh.
    EXECUTOR_CACHE.clear()
    maker = temp_postgres_database(admin_dsn) if backend == "postgres" else \
        temp_sqlite_database()
    async with maker as url:
        if backend != "postgres":
            url += sqlite_options
        config = storage_db.tortoise_config(url, pool_max=pool_max)
        await migrate(config=config)
        await Tortoise.close_connections()
        try:
            if fill is not None:
                await fill(url)
            await Tortoise.init(config=config)
            yield url
        finally:
            await Tortoise.close_connections()


def emit_result(result: dict[str, Any]) -> None:
    """Print a child's result as one line that ``run_child`` picks out of its output."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def run_child(module: str, argv: Sequence[str]) -> dict[str, Any]:
    """Run ``python -m module argv…`` in a fresh process (so its peak RSS is its own), pass
    its other output through, and return what it gave ``emit_result``."""
    proc = subprocess.run([sys.executable, "-m", module, *argv], stdout=subprocess.PIPE,
                          text=True, check=False)
    result: dict[str, Any] | None = None
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line.removeprefix(RESULT_PREFIX))
        else:
            print(line)
    if proc.returncode != 0 or result is None:
        raise RuntimeError(f"{module} {' '.join(argv)} failed (exit {proc.returncode})")
    return result
