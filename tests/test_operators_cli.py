"""``engage operator add``: the token is printed once, only its hash is stored, and the
token then works on the API with the role it was given."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from bot.cli import main
from storage.models import Customer
from storage.operator_models import Operator
from tests.factories import on_database


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


def test_operator_on_a_phone_customers_share_takes_the_record_with_their_name(
    engage_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    customers = tmp_path / "c.csv"
    customers.write_text("customer_no,phone,name\nC1,13900001111,王强\nC2,13900001111,李坐席\n",
                         encoding="utf-8")
    assert main(["import", "customers", str(customers), "-q"]) == 0
    assert main(["operator", "add", "李坐席", "--role", "agent", "--phone", "13900001111"]) == 0
    capsys.readouterr()

    async def contact() -> tuple[str, int]:
        operator = await Operator.get(name="李坐席").prefetch_related("contact")
        assert operator.contact is not None
        return operator.contact.customer_no or "", await Customer.all().count()

    assert on_database(engage_url, contact) == ("C2", 2)
