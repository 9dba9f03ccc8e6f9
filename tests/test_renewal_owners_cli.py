"""``engage operator add --branch --manager``: the renewal desk's branches and managers."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bot.cli import main


def test_operator_add_takes_a_branch_and_the_manager_flag(
        cli_database: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["operator", "add", "钱经理", "--role", "agent", "--branch", "310100",
                 "--manager"]) == 0
    assert "branch 310100 (manager)" in capsys.readouterr().out
    assert main(["operator", "add", "孙经理", "--role", "agent", "--manager"]) == 2
    assert "give --branch" in capsys.readouterr().err
    with sqlite3.connect(cli_database) as conn:
        rows = conn.execute("SELECT name, branch, manager FROM operator").fetchall()
    assert rows == [("钱经理", "310100", 1)]
