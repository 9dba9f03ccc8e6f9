"""CSV import of the insurer's exports: customers, policies, claims and payments.

The file is streamed: records are validated one by one in Python and written in batches, each
batch in its own transaction (one SELECT of the natural keys it holds, one bulk INSERT of the
new rows, one bulk UPDATE of the changed ones — see ``storage.sql``). Memory is
bounded by the batch size, whatever the size of the file. Importing the same file again
changes nothing (upsert by natural key).

A bad row is skipped and reported as ``line N: column: problem`` (N is the physical line the
record starts on; the header is line 1); the good rows still land. A row imported without one
of its cells (a ``referred_by`` naming another referrer than the one recorded) is reported the
same way and counted as a warning, not rejected. A file that cannot be
imported at all (missing, not UTF-8, no header, a required column missing) raises
``ImportFileError`` before anything is written; a CSV structure error found part-way (a cell
over ``csv.field_size_limit()``) raises it after the batches before it were written.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from tortoise import connections
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from storage.importing.claims import ClaimImport
from storage.importing.customers import CustomerImport
from storage.importing.payments import PaymentImport
from storage.importing.policies import PolicyImport
from storage.importing.progress import Progress
from storage.importing.rows import Context, Kind, Outcome, Parsed, Problem, RowError
from storage.importing.source import CsvSource, ImportFileError, check_utf8, open_csv
from storage.sql import is_postgres, sqlite_page_cache

__all__ = ["KINDS", "SQLITE_CACHE_MIB", "ImportFileError", "ImportReport", "import_csv"]

log = logging.getLogger(__name__)

ImportKind = CustomerImport | PolicyImport | ClaimImport | PaymentImport
KINDS: dict[str, type[ImportKind]] = {
    "customers": CustomerImport,
    "policies": PolicyImport,
    "claims": ClaimImport,
    "payments": PaymentImport,
}
SHANGHAI = ZoneInfo("Asia/Shanghai")
# A batch that hit a unique key — a referral code drawn twice, or a row another writer added
# meanwhile — is rolled back, read and written again.
_ATTEMPTS = 3
_CHECK_EVERY = 100  # rows between checks of the batch's bytes and turns of the event loop
# A batch ends at batch_size rows or at this much of the file, whichever comes first, so very
# long cells (claim descriptions) cannot make a batch hold a lot of memory.
_BATCH_BYTES = 16 * 2**20
SQLITE_CACHE_MIB = 64  # page cache of the SQLite connection while an import runs


@dataclass(slots=True)
class ImportReport:
    kind: str
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    warnings: int = 0  # accepted rows reported for a cell not applied
    kept: int = 0  # accepted rows where a language, time zone or region the customer chose stayed

    @property
    def accepted(self) -> int:
        return self.created + self.updated + self.unchanged

    def summary(self) -> str:
        warned = (f", {self.warnings:,} warning{'s' if self.warnings != 1 else ''}"
                  if self.warnings else "")
        kept = (f"; the customer's own choices kept in {self.kept:,} "
                f"row{'s' if self.kept != 1 else ''}" if self.kept else "")
        return (f"{self.kind}: {self.accepted:,} accepted ({self.created:,} created, "
                f"{self.updated:,} updated, {self.unchanged:,} unchanged), "
                f"{self.rejected:,} rejected{warned}{kept}")


@dataclass(slots=True)
class _Batch:
    start: int  # file position where its rows begin
    parsed: list[Parsed[Any]] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)
    rows: int = 0


class _Run:
    """One import: reads and validates records, writes them batch by batch, reports.

    With ``overlap``, writing a batch overlaps with validating the next one, for a database
    server that works in its own process meanwhile; writes stay strictly in file order either
    way, so a batch sees everything the batches before it wrote. (Not for SQLite: aiosqlite's
    thread needs the GIL back after every row, so overlapping only adds contention —
    measured on a million customers: 24 % slower, 17 % more CPU.)
    """

    def __init__(self, kind: Kind[Any], source: CsvSource, report: ImportReport, out: TextIO,
                 progress: Progress | None, connection: str, *, overlap: bool) -> None:
        self.kind = kind
        self.source = source
        self.report = report
        self.out = out
        self.progress = progress
        self.connection = connection
        self.overlap = overlap
        self.rows = 0
        self._writing: asyncio.Task[None] | None = None

    async def run(self, batch_size: int) -> None:
        try:
            await self._read(batch_size)
        finally:
            await self._drain()
        if self.progress is not None:
            self.progress.finish(self.rows, self.source.size)

    async def _read(self, batch_size: int) -> None:
        kind, source, width = self.kind, self.source, self.source.width
        batch = _Batch(start=source.position())
        for line, values in source.records():
            batch.rows += 1
            if len(values) != width:
                batch.problems.append(
                    Problem(line, "row", f"{len(values)} cells, the header has {width}"))
            else:
                try:
                    record = kind.parse(values)
                except RowError as exc:
                    batch.problems.append(Problem(line, exc.column, exc.problem))
                else:
                    keys = kind.keys(record)
                    if not batch.keys.isdisjoint(keys):
                        # The same key twice: write what came before first, so the later row
                        # is applied on top of the earlier one, exactly as if read one by one.
                        await self._submit(batch)
                        batch = _Batch(start=source.position())
                    batch.keys.update(keys)
                    batch.parsed.append(Parsed(line, record))
            if batch.rows % _CHECK_EVERY == 0 or batch.rows >= batch_size:
                if batch.rows >= batch_size or source.position() - batch.start >= _BATCH_BYTES:
                    await self._submit(batch)
                    batch = _Batch(start=source.position())
                else:
                    # Let other tasks run (inside ``engage run`` an import shares the loop with
                    # webhooks), and the batch being written take its next step.
                    await asyncio.sleep(0)
        await self._submit(batch)

    async def _submit(self, batch: _Batch) -> None:
        await self._drain()
        if self.overlap:
            self._writing = asyncio.create_task(self._write_and_report(batch))
        else:
            await self._write_and_report(batch)

    async def _drain(self) -> None:
        if self._writing is not None:
            task, self._writing = self._writing, None
            await task

    async def _write_and_report(self, batch: _Batch) -> None:
        outcome = await self._write(batch.parsed) if batch.parsed else Outcome()
        problems = batch.problems + outcome.problems
        lines = sorted(problems + outcome.warnings, key=lambda p: p.line)
        if lines and self.progress is not None:
            self.progress.clear()
        for line in lines:
            print(line, file=self.out)
        report = self.report
        report.created += outcome.created
        report.updated += outcome.updated
        report.unchanged += outcome.unchanged
        report.kept += outcome.kept
        report.rejected += len(problems)
        report.warnings += len(outcome.warnings)
        self.rows += batch.rows
        if self.progress is not None:
            self.progress.update(self.rows, self.source.position())

    async def _write(self, parsed: list[Parsed[Any]]) -> Outcome:
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                async with in_transaction(self.connection) as conn:
                    return await self.kind.write(conn, parsed)
            except IntegrityError:
                if attempt == _ATTEMPTS:
                    raise
                log.info("%s batch from line %d hit a unique key, writing it again",
                         self.report.kind, parsed[0].line)
        raise AssertionError("unreachable")  # pragma: no cover


def _job(factory: type[ImportKind], source: CsvSource, context: Context,
         path: Path) -> ImportKind:
    """The kind's importer for the file's columns; a file-level problem it finds in them (a
    policies file naming no customer column) is an ``ImportFileError`` naming the file."""
    try:
        return factory(source.columns, context)
    except ImportFileError as exc:
        raise ImportFileError(f"{path}: {exc}") from None


async def check_file(kind: str, path: Path, *, default_region: str = "CN") -> None:
    """Everything about ``path`` that can be checked without a database: readable, UTF-8,
    a header row with every required column of ``kind`` and none twice, and the columns the
    kind needs together. Raises ``ImportFileError`` (one line); ``engage import`` calls it
    before connecting."""
    factory = KINDS.get(kind)
    if factory is None:
        raise ValueError(f"unknown import kind {kind!r}; expected one of {', '.join(KINDS)}")
    await asyncio.to_thread(check_utf8, path)
    context = Context(default_region=default_region, now=datetime.now(UTC), local_tz=SHANGHAI)
    with open_csv(path, required=factory.required, optional=factory.optional) as source:
        _job(factory, source, context, path)


async def import_csv(
    kind: str,
    path: Path,
    *,
    default_region: str = "CN",
    out: TextIO | None = None,
    progress: bool = False,
    progress_stream: TextIO | None = None,
    batch_size: int = 20_000,
    now: datetime | None = None,
    local_tz: tzinfo = SHANGHAI,
    connection: str = "default",
    checked: bool = False,
) -> ImportReport:
    """Import ``path`` as ``kind``; problems and the summary line go to ``out`` (stdout).

    Tortoise must be initialised. ``now`` (aware; default: the current time) stamps the
    rows and events this import writes; naive date-times in the file are in ``local_tz``.
    ``batch_size`` rows go in one transaction: on SQLite, inserting random keys (phones,
    referral codes) into big indexes rewrites most index pages per commit, so larger batches
    write far less (measured over a million customers: 4.5 GB written at 10,000 rows a batch,
    2.4 GB at 20,000, 1.2 GB at 50,000; 300,000 customers at 2,000: 1.9 GB).
    Raises ``ImportFileError`` if the file cannot be imported at all (missing, not UTF-8,
    no header, missing required columns); nothing is written then. ``checked``: the caller
    ran ``check_file`` just before (the whole-file encoding check is not read twice).
    """
    factory = KINDS.get(kind)
    if factory is None:
        raise ValueError(f"unknown import kind {kind!r}; expected one of {', '.join(KINDS)}")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    stamp = (now or datetime.now(UTC)).astimezone(UTC)
    context = Context(default_region=default_region, now=stamp, local_tz=local_tz)
    out = out or sys.stdout
    report = ImportReport(kind)
    if not checked:
        await asyncio.to_thread(check_utf8, path)
    with open_csv(path, required=factory.required, optional=factory.optional) as source:
        if source.ignored:
            print(f"note: ignoring unknown column(s) {', '.join(source.ignored)}", file=out)
        job = _job(factory, source, context, path)
        client = connections.get(connection)
        await job.prepare(client)
        bar = Progress(progress_stream or sys.stderr, kind, source.size) if progress else None
        run = _Run(job, source, report, out, bar, connection,
                   overlap=is_postgres(client))
        async with sqlite_page_cache(client, SQLITE_CACHE_MIB):
            await run.run(batch_size)
    print(report.summary(), file=out)
    log.debug("%s", report.summary())
    return report
