from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from tortoise import Tortoise, connections
from tortoise.exceptions import IntegrityError
from tortoise.migrations.api import migrate

from storage import db as storage_db
from storage.models import Category, Customer, Message, Policy, Product


async def _customer(phone: str = "+8613800138000", code: str = "R1") -> Customer:
    return await Customer.create(name="张三", phone=phone, referral_code=code)


async def test_phone_is_unique(db: str) -> None:
    await _customer()
    with pytest.raises(IntegrityError):
        await _customer(code="R2")


async def test_policy_number_is_unique(db: str) -> None:
    owner = await _customer()
    fields = dict(customer=owner, product=Product.COMMERCIAL, plate="沪A12345",
                  start_date=date(2026, 1, 1), end_date=date(2026, 12, 31), premium_cents=350000)
    await Policy.create(number="P-1", **fields)
    with pytest.raises(IntegrityError):
        await Policy.create(number="P-1", **fields)


async def test_outbox_dedup_key_is_unique(db: str) -> None:
    owner = await _customer()
    now = datetime(2026, 11, 21, 1, 0, tzinfo=UTC)
    row = dict(kind="birthday", category=Category.CARE, customer=owner,
               template_key="birthday", not_before=now)
    await Message.create(dedup_key="birthday:1:2026", **row)
    with pytest.raises(IntegrityError):
        await Message.create(dedup_key="birthday:1:2026", **row)
    assert await Message.filter(dedup_key="birthday:1:2026").count() == 1


async def test_timestamps_round_trip_as_aware_utc(db: str) -> None:
    owner = await _customer()
    when = datetime(2026, 11, 21, 23, 59, 30, tzinfo=UTC)
    msg = await Message.create(dedup_key="k", kind="t", category=Category.SERVICE,
                               customer=owner, template_key="t", not_before=when)
    loaded = await Message.get(id=msg.id)
    assert loaded.not_before == when
    assert loaded.not_before.utcoffset() is not None


async def test_migration_0007_keeps_ledger_indexes_and_records_settled_payments_basis(
        tmp_path: Path) -> None:
    """0007's AlterField rebuilds loyalty_entry on SQLite; its indexes must come back, and
    entries of payments settled before it get the payment's amount as their basis."""
    config = storage_db.tortoise_config(f"sqlite://{tmp_path / 'old.sqlite3'}")
    await migrate(config=config, target="models.0006_customer_indexes")
    conn = connections.get("default")
    stamp = "2026-03-01 00:00:00+00:00"
    await conn.execute_script(
        "INSERT INTO customer (id, name, phone, referral_code, language, timezone, "
        "lunar_birthday, email, created_at, updated_at) VALUES "
        f"(1, 'a', '+8613800000001', 'R1', 'zh-CN', 'Asia/Shanghai', 0, '', '{stamp}', "
        f"'{stamp}');"
        "INSERT INTO policy (id, number, customer_id, product, plate, vehicle, start_date, "
        "coverage, end_date, premium_cents, status, created_at, updated_at) VALUES (1, 'P-1', "
        f"1, 'commercial', 'A', '', '2026-01-01', '{{}}', '2026-12-31', 100, 'active', "
        f"'{stamp}', '{stamp}');"
        "INSERT INTO payment (id, external_id, policy_id, customer_id, kind, amount_cents, "
        f"paid_at, created_at) VALUES (1, 'E1', 1, 1, 'premium', 100000, '{stamp}', '{stamp}'),"
        f"(2, 'E2', 1, 1, 'refund', 20000, '{stamp}', '{stamp}');"
        "INSERT INTO loyalty_account (id, customer_id, balance, tier, created_at, updated_at) "
        f"VALUES (1, 1, 800, 'standard', '{stamp}', '{stamp}');"
        "INSERT INTO loyalty_entry (id, account_id, kind, amount, balance_after, "
        "idempotency_key, fingerprint, shortfall, payment_id, policy_id, reason, operator, "
        f"occurred_at, created_at) VALUES (1, 1, 'earn_premium', 1000, 1000, 'payment:1', "
        f"'f', 0, 1, 1, '', '', '{stamp}', '{stamp}'), (2, 1, 'premium_reversal', -200, 800, "
        f"'payment:2', 'f', 0, 2, 1, '', '', '{stamp}', '{stamp}'), (3, 1, 'checkin', 0, 800, "
        f"'checkin:1', 'f', 0, NULL, NULL, '', '', '{stamp}', '{stamp}')")
    await Tortoise.close_connections()

    await migrate(config=config)
    conn = connections.get("default")
    _, rows = await conn.execute_query("SELECT id, basis_cents FROM loyalty_entry ORDER BY id")
    assert [tuple(row) for row in rows] == [(1, 100_000), (2, -20_000), (3, None)]
    _, rows = await conn.execute_query(
        "SELECT sql FROM sqlite_master WHERE tbl_name = 'loyalty_entry' AND type = 'index' "
        "AND sql IS NOT NULL ORDER BY sql")
    assert [row[0].split(" ON ")[1] for row in rows] == [
        '"loyalty_entry" ("account_id", "occurred_at")',
        '"loyalty_entry" ("occurred_at", "kind")',
        '"loyalty_entry" ("payment_id", "id")',
    ]
    await Tortoise.close_connections()


async def test_outbox_indexes_provider_and_campaign_ids_only_where_set(
        db: str, is_postgres: bool) -> None:
    """Migration 0009: a plan day's rows have neither id and add nothing to these indexes,
    and a status callback's or a campaign's lookup of one value still uses its index."""
    conn = connections.get("default")
    if is_postgres:
        rows = await conn.execute_query_dict(
            "SELECT indexdef AS sql FROM pg_indexes WHERE tablename = 'message' "
            "AND indexdef LIKE '%IS NOT NULL%' ORDER BY indexdef")
        await conn.execute_script("SET enable_seqscan = off")  # the table is tiny
        explain = "EXPLAIN "
    else:
        rows = await conn.execute_query_dict(
            "SELECT sql FROM sqlite_master WHERE tbl_name = 'message' AND type = 'index' "
            "AND sql LIKE '%IS NOT NULL%' ORDER BY sql")
        explain = "EXPLAIN QUERY PLAN "
    assert [row["sql"].split("WHERE ")[1].strip("()") for row in rows] == [
        '"campaign_id" IS NOT NULL' if not is_postgres else "campaign_id IS NOT NULL",
        '"provider_id" IS NOT NULL' if not is_postgres else "provider_id IS NOT NULL",
    ]
    for column, index in (("provider_id", "idx_message_provide_85bc05"),
                          ("campaign_id", "idx_message_campaig_6c5272")):
        mark = "$1" if is_postgres else "?"
        plan = await conn.execute_query_dict(
            f"{explain}SELECT id FROM message WHERE {column} = {mark}",
            ["SM1" if column == "provider_id" else 7])
        assert index in " ".join(str(value) for row in plan for value in row.values())
