"""``engage operator add``: the token is printed once, only its hash is stored, and the
token then works on the API with the role it was given."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from bot.cli import main


def test_operator_add_prints_the_token_once_and_stores_its_hash(
    cli_database: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["operator", "add", "李坐席", "--role", "agent", "--phone", "139 0000 1111"])
    out = capsys.readouterr().out
    assert code == 0 and "role agent" in out
    token = out.strip().splitlines()[-1]
    assert len(token) >= 40
    with sqlite3.connect(cli_database) as conn:
        [(name, role, token_hash, contact)] = conn.execute(
            "SELECT name, role, token_hash, contact_id FROM operator").fetchall()
        [(phone,)] = conn.execute("SELECT phone FROM customer WHERE id = ?",
                                  (contact,)).fetchall()
    assert (name, role, phone) == ("李坐席", "agent", "+8613900001111")
    assert token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in cli_database.read_bytes().decode("utf-8", "ignore")


def test_operator_add_refuses_bad_role_duplicate_name_and_bad_phone(
    cli_database: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["operator", "add", "X", "--role", "root"])
    assert main(["operator", "add", "X", "--role", "viewer"]) == 0
    assert main(["operator", "add", "X", "--role", "viewer"]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["operator", "add", "Y", "--role", "viewer", "--phone", "12"]) == 2
    assert "phone" in capsys.readouterr().err
