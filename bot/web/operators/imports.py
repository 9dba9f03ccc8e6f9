"""CSV upload from the console or the API, through the very same ``storage.importer`` as
``engage import``: the same validation and the same ``line N: column: problem`` reports."""

from __future__ import annotations

import asyncio
import io
import re
import tempfile
from datetime import datetime
from pathlib import Path

from bot.web.operators import audit
from bot.web.operators.access import Actor
from bot.web.operators.errors import Refusal
from bot.web.operators.rows import ImportJson
from storage.importer import KINDS, ImportFileError, import_csv

MAX_PROBLEMS = 200
_LINE = re.compile(r"^line (\d+): ")


class ImportRefused(Refusal):
    code = "import_refused"
    status = 422


def _spool(data: bytes) -> Path:
    with tempfile.NamedTemporaryFile("wb", suffix=".csv", delete=False) as fh:
        fh.write(data)
    return Path(fh.name)


async def run_import(actor: Actor, kind: str, data: bytes, *, filename: str,
                     default_region: str, now: datetime) -> ImportJson:
    if kind not in KINDS:
        raise ImportRefused(f"unknown import kind {kind!r}; expected one of {', '.join(KINDS)}")
    path = await asyncio.to_thread(_spool, data)
    out = io.StringIO()
    try:
        report = await import_csv(kind, path, default_region=default_region, out=out, now=now)
    except ImportFileError as exc:
        # named by the upload, not by the server's temporary copy
        raise ImportRefused(str(exc).replace(str(path), filename or "upload")) from None
    finally:
        await asyncio.to_thread(path.unlink, True)
    problems: list[str] = []
    notes: list[str] = []
    for line in out.getvalue().splitlines():
        if _LINE.match(line):
            problems.append(line)
        elif line.strip() and line != report.summary():
            notes.append(line)
    result: ImportJson = {
        "kind": kind, "file": filename, "created": report.created, "updated": report.updated,
        "unchanged": report.unchanged, "rejected": report.rejected,
        "problems": problems[:MAX_PROBLEMS], "problems_truncated": len(problems) > MAX_PROBLEMS,
        "notes": notes, "summary": report.summary(),
    }
    await audit.record(actor, "import", "import", kind,
                       after={k: v for k, v in result.items() if k != "problems"}, now=now)
    return result
