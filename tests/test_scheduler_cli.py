"""``engage plan --date … [--dry-run]``: counts per kind; a dry run writes nothing."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from datetime import date, timedelta
from pathlib import Path

import pytest

from bot.cli import main
from storage import db as storage_db
from tests import factories

DAY = date(2026, 11, 21)


@pytest.fixture
def sqlite_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    for name in list(os.environ):
        if name.startswith("ENGAGE_") and name != "ENGAGE_TEST_POSTGRES_URL":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    url = f"sqlite://{tmp_path}/engage.sqlite3"
    monkeypatch.setenv("ENGAGE_DATABASE__URL", url)

    async def populate() -> None:
        await storage_db.upgrade(url)
        try:
            await factories.policyholder(birthday=date(1990, 11, 21), birthday_md=1121)
            owner = await factories.customer()
            await factories.policy(owner, end=DAY + timedelta(days=30))
            await factories.policy(owner, end=DAY - timedelta(days=3))
        finally:
            await storage_db.close()

    asyncio.run(populate())
    return url


def _row_counts(url: str) -> dict[str, int]:
    with sqlite3.connect(url.removeprefix("sqlite://")) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        return {t: conn.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables}


def _total(out: str) -> str:
    [line] = [line for line in out.splitlines() if line.split()[:1] == ["total"]]
    return " ".join(line.split()[1:])


def test_dry_run_prints_what_would_be_queued_and_writes_nothing(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _row_counts(sqlite_url)
    assert main(["plan", "--date", DAY.isoformat(), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "plan for 2026-11-21 (dry run: nothing written)" in out
    lines = {line.split()[0]: line.split()[1] for line in out.splitlines()[1:7]}
    assert lines == {"birthday": "1", "festival": "0", "renewal": "1", "renewal_holiday": "0",
                     "lapse_rescue": "1", "total": "3"}
    assert "would queue: renewal:" in out and "T-30" in out
    assert _row_counts(sqlite_url) == before
    assert before["message"] == 0


def test_plan_queues_and_a_second_run_queues_nothing_new(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", "--date", DAY.isoformat()]) == 0
    assert _total(capsys.readouterr().out) == "3 queued"
    assert _row_counts(sqlite_url)["message"] == 3
    assert main(["plan", "--date", DAY.isoformat()]) == 0
    assert _total(capsys.readouterr().out) == "0 queued"
    assert _row_counts(sqlite_url)["message"] == 3


def test_plan_needs_a_valid_date(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["plan", "--date", "21/11/2026"])
    assert info.value.code == 2
    assert "not a date (YYYY-MM-DD)" in capsys.readouterr().err


def test_holiday_overrides_in_the_config_move_the_holiday_reminder(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The package ends 2027's National Day on 5 October; the State Council's schedule (in the
    config) runs it to the 7th, so a policy ending on the 7th gets the holiday reminder."""
    async def add_policy() -> None:
        await storage_db.upgrade(sqlite_url)
        try:
            owner = await factories.customer()
            await factories.policy(owner, end=date(2027, 10, 7))
        finally:
            await storage_db.close()

    asyncio.run(add_policy())

    def holiday_reminders() -> str:
        assert main(["plan", "--date", "2027-09-24", "--dry-run"]) == 0
        lines = dict(line.split()[:2] for line in capsys.readouterr().out.splitlines()[1:7])
        return lines["renewal_holiday"]

    assert holiday_reminders() == "0"
    (tmp_path / "config.toml").write_text(
        '[holidays]\ndays_off = ["2027-10-06", "2027-10-07"]\n', encoding="utf-8")
    assert holiday_reminders() == "1"
