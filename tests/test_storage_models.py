import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from tortoise import Tortoise, connections
from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.exceptions import IntegrityError
from tortoise.migrations.api import migrate

from storage import db as storage_db
from storage.models import Category, Consent, Customer, Message, Policy, Product
from tests.conftest import BACKENDS, _pg_admin_dsn, _pg_url_for


async def _customer(phone: str = "+8613800138000", code: str = "R1") -> Customer:
    return await Customer.create(name="张三", phone=phone, referral_code=code)


async def test_customers_may_share_a_phone_but_not_a_customer_number(db: str) -> None:
    await _customer()
    await _customer(code="R2")
    assert await Customer.filter(phone="+8613800138000").count() == 2
    await Customer.filter(referral_code="R1").update(customer_no="C-1")
    with pytest.raises(IntegrityError):
        await Customer.filter(referral_code="R2").update(customer_no="C-1")


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


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no tables yet, on each backend (for migrating step by step)."""
    if request.param == "sqlite":
        yield f"sqlite://{tmp_path / 'old.sqlite3'}"
        return
    name = f"engage_m_{uuid.uuid4().hex[:10]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    yield _pg_url_for(name)
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _pg_admin(sql: str) -> None:
    conn = await asyncpg.connect(_pg_admin_dsn())
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def test_migration_0012_lets_customers_share_a_phone_and_keeps_every_row(
        empty_url: str) -> None:
    """On an existing database: customers, their consents, messages, policies and Telegram
    links all stay (SQLite rebuilds the customer table: no ON DELETE action may fire), the
    phone index remains, and a second customer on the same phone can be added. A language
    picked with /language before the upgrade is recorded as the customer's choice."""
    EXECUTOR_CACHE.clear()
    config = storage_db.tortoise_config(empty_url)
    await migrate(config=config, target="models.0009_message_partial_indexes")
    conn = connections.get("default")
    stamp = "'2026-01-01 00:00:00+00:00'"
    one = "(SELECT id FROM customer WHERE phone = '+8613800000001')"
    recent = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)
    for sql in (
        "INSERT INTO customer (name, phone, referral_code, language, timezone, "
        "lunar_birthday, email, birthday_md, created_at, updated_at) VALUES "
        f"('张三', '+8613800000001', 'R1', 'en', 'Asia/Shanghai', FALSE, '', 517, {stamp}, "
        f"{stamp})",
        "INSERT INTO customer (name, phone, referral_code, language, timezone, "
        "lunar_birthday, email, referred_by_id, created_at, updated_at) VALUES "
        f"('李四', '+8613800000002', 'R2', 'zh-CN', 'Asia/Shanghai', FALSE, '', {one}, "
        f"{stamp}, {stamp})",
        "INSERT INTO consent (customer_id, channel, category, granted, source, created_at) "
        f"VALUES ({one}, 'sms', 'care', FALSE, 'sms:keyword', {stamp})",
        "INSERT INTO message (dedup_key, kind, category, customer_id, channel_policy, "
        "template_key, params, not_before, status, skip_reason, attempts, last_error, "
        f"segments, created_at, updated_at) VALUES ('k1', 'birthday', 'care', {one}, "
        f"'telegram_then_sms', 'birthday', '{{}}', {stamp}, 'pending', '', 0, '', 0, {stamp}, "
        f"{stamp})",
        "INSERT INTO policy (number, customer_id, product, plate, vehicle, coverage, "
        "start_date, end_date, premium_cents, status, created_at, updated_at) VALUES ('P-1', "
        f"{one}, 'commercial', 'A', '', '{{}}', '2026-01-01', '2026-12-31', 100, 'active', "
        f"{stamp}, {stamp})",
        "INSERT INTO telegram_account (telegram_user_id, chat_id, username, language_code, "
        f"customer_id, linked_at, created_at, updated_at) VALUES (1, 1, '', 'en', {one}, "
        f"{stamp}, {stamp}, {stamp})",
        *[
            "INSERT INTO message (dedup_key, kind, category, customer_id, channel_policy, "
            "template_key, params, not_before, status, skip_reason, attempts, last_error, "
            f"segments, created_at, updated_at) VALUES ('{key}', 'festival', 'care', {one}, "
            f"'telegram_then_sms', 'festival', '{{}}', '{sent}', 'sent', '', 1, '', 1, "
            f"{stamp}, {stamp})"
            for key, sent in (("festival:new_year:2026:1", "2026-01-01 00:30:00+00:00"),
                              ("festival:x:2026:1", recent.isoformat(" ")),
                              ("festival:x+y:2026:1", recent.isoformat(" ")))
        ],
    ):
        await conn.execute_query(sql)
    await Tortoise.close_connections()

    await migrate(config=config)
    await Tortoise.init(config=config)
    try:
        first = await Customer.get(phone="+8613800000001")
        assert await Consent.filter(customer_id=first.id).count() == 1
        assert await Message.filter(customer_id=first.id).count() == 4
        # today's festival greeting takes the key by day (one, however many festivals)
        day = recent.astimezone(ZoneInfo("Asia/Shanghai")).date().isoformat()
        assert set(await Message.filter(kind="festival").values_list(
            "dedup_key", flat=True)) == {"festival:new_year:2026:1", "festival:x+y:2026:1",
                                         f"festival:{day}:{first.id}"}
        assert await Policy.filter(customer_id=first.id).count() == 1
        assert (await Customer.get(phone="+8613800000002")).referred_by_id == first.id
        assert [(c.language_set_by, c.customer_no) for c in
                await Customer.all().order_by("id")] == [("telegram", None), ("", None)]
        again = await Customer.create(name="王五", phone=first.phone, referral_code="R3")
        assert await Customer.filter(phone=first.phone).count() == 2
        await Customer.create(name="赵六", phone="+8613800000004", referral_code="R4",
                              customer_no="C-1")
        with pytest.raises(IntegrityError):
            await Customer.create(name="钱七", phone="+8613800000005", referral_code="R5",
                                  customer_no="C-1")
        with pytest.raises(IntegrityError):  # the referral code stays unique
            await Customer.create(name="孙八", phone="+8613800000006", referral_code="R3")
        conn = connections.get("default")
        if conn.capabilities.dialect == "sqlite":
            _, rows = await conn.execute_query("PRAGMA foreign_keys")
            assert rows[0][0] == 1
            _, rows = await conn.execute_query(
                "SELECT sql FROM sqlite_master WHERE tbl_name = 'customer' AND type = 'index' "
                "AND sql IS NOT NULL ORDER BY sql")
            indexed = sorted(row[0].split(" ON ")[1] for row in rows)
            assert indexed == ['"customer" ("birthday_md")', '"customer" ("customer_no")',
                               '"customer" ("phone")', '"customer" ("region_id")']
        else:
            rows = await conn.execute_query_dict(
                "SELECT indexdef FROM pg_indexes WHERE tablename = 'customer' "
                "AND indexdef LIKE '%(phone)%'")
            assert [r["indexdef"].startswith("CREATE INDEX") for r in rows] == [True]
        await Customer.filter(id=again.id).delete()  # deleting still cascades as declared
    finally:
        await Tortoise.close_connections()
