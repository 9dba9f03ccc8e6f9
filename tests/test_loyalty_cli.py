"""``engage partner add``: the token is printed once and only its hash is stored."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from bot.cli import main


def test_partner_add_prints_the_token_once_and_stores_its_hash(
    cli_database: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["partner", "add", "安心洗车", "--reward-kinds", "car_wash,designated_driving"])
    out = capsys.readouterr().out
    assert code == 0
    token = out.strip().splitlines()[-1]
    assert len(token) >= 40 and "car_wash, designated_driving" in out
    with sqlite3.connect(cli_database) as conn:
        rows = conn.execute("SELECT name, token_hash, reward_kinds FROM loyalty_partner").fetchall()
    [(name, token_hash, kinds)] = rows
    assert (name, json.loads(kinds)) == ("安心洗车", ["car_wash", "designated_driving"])
    assert token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in cli_database.read_bytes().decode("utf-8", "ignore")


def test_partner_add_refuses_unknown_kinds_and_duplicate_names(
    cli_database: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["partner", "add", "X", "--reward-kinds", "car_wash,spa"]) == 2
    assert "unknown reward kinds ['spa']" in capsys.readouterr().err
    assert main(["partner", "add", "X", "--reward-kinds", "gift"]) == 0
    assert main(["partner", "add", "X", "--reward-kinds", "gift"]) == 2
    assert "exists" in capsys.readouterr().err
