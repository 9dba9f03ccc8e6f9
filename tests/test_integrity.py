"""The outbox's customer without a foreign key (migration 0024): customers are deleted with
their messages in one transaction, erasure keeps the customer row, nothing else in the code
deletes customers, and ``engage db check`` finds a message whose customer is gone."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from tortoise import Tortoise, connections
from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.exceptions import IntegrityError
from tortoise.migrations.api import migrate

from bot.cli import main
from storage import db as storage_db
from storage.integrity import UNENFORCED, Orphans, delete_customers, orphans
from storage.models import Consent, Customer, Message
from storage.sql import current, execute
from tests import factories as f
from tests import test_storage_models

ROOT = Path(__file__).resolve().parents[1]


async def _message_for_nobody(customer_id: int) -> None:
    """What the key no longer refuses: a message row for a customer id that does not exist."""
    await execute(current(), "INSERT INTO message (created_at, updated_at, dedup_key, kind, "
                  "category, customer_id, channel_policy, template_key, params, not_before, "
                  "status, skip_reason, attempts, last_error, segments) VALUES (:now, :now, "
                  ":key, 'birthday', 'care', :customer, 'telegram_then_sms', 'birthday', '{}', "
                  ":now, 'pending', '', 0, '', 0)",
                  {"now": f.NOON_SHANGHAI, "key": f"orphan:{customer_id}",
                   "customer": customer_id})


async def test_deleting_customers_deletes_their_messages_in_the_same_transaction(
        db: str) -> None:
    gone, kept = await f.customer(), await f.customer()
    for owner in (gone, kept):
        await f.queued(owner)
        await f.queued(owner, kind="festival")
    await Consent.create(customer=gone, channel="sms", category="care", granted=False,
                         source="sms:keyword", created_at=f.NOON_SHANGHAI)

    assert await delete_customers([gone.id, gone.id, 999_999]) == 1

    assert not await Customer.filter(id=gone.id).exists()
    assert not await Message.filter(customer_id=gone.id).exists()
    assert not await Consent.filter(customer_id=gone.id).exists()  # still by its own key
    assert await Message.filter(customer_id=kept.id).count() == 2
    assert await orphans() == [Orphans(UNENFORCED[0], 0, ())]
    assert await delete_customers([]) == 0


async def test_a_deletion_refused_by_another_key_keeps_the_messages(db: str) -> None:
    owner = await f.policyholder()  # policy.customer_id: ON DELETE RESTRICT
    await f.queued(owner)

    with pytest.raises(IntegrityError):
        await delete_customers([owner.id])

    assert await Customer.filter(id=owner.id).exists()
    assert await Message.filter(customer_id=owner.id).count() == 1


async def test_the_check_counts_messages_whose_customer_is_gone(db: str) -> None:
    owner = await f.policyholder()
    await f.queued(owner)
    assert [found.count for found in await orphans()] == [0]

    await _message_for_nobody(424_242)
    await _message_for_nobody(434_343)

    [found] = await orphans(sample=1)
    assert (str(found.reference), found.count) == ("message.customer_id -> customer.id", 2)
    assert len(found.sample) == 1
    assert (await Message.get(id=found.sample[0])).customer_id == 424_242


def test_engage_db_check_exits_1_listing_orphans_and_0_when_there_are_none(
        engage_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "check"]) == 0
    out = capsys.readouterr().out
    assert "message.customer_id -> customer.id: 0 orphan rows" in out
    assert "no orphan rows" in out

    async def orphan() -> None:
        await _message_for_nobody(515_151)

    f.on_database(engage_url, orphan)
    assert main(["db", "check"]) == 1
    out = capsys.readouterr().out
    assert "message.customer_id -> customer.id: 1 orphan rows (ids " in out


_DELETES_CUSTOMERS = (
    re.compile(r"(?<![\w.])Customer\.[^\n]*\.delete\("),  # Customer.filter(…).delete()
    re.compile(r"(?<![\w.])customer\.delete\("),  # an instance
    re.compile(r"DELETE\s+FROM\s+\"?customer(?!\w)", re.IGNORECASE),
)


def test_no_code_but_delete_customers_deletes_customer_rows() -> None:
    """The other half of what the dropped key guaranteed: a new way of deleting customers
    would leave their messages behind, unless it goes through ``delete_customers``."""
    for example in ("await Customer.filter(id=1).delete()", "await customer.delete()",
                    'execute(conn, "DELETE FROM customer WHERE id = :id")'):
        assert any(pattern.search(example) for pattern in _DELETES_CUSTOMERS), example
    assert not any(pattern.search("await Consent.filter(customer_id=customer.id).delete()")
                   for pattern in _DELETES_CUSTOMERS)
    allowed = {ROOT / "storage" / "integrity.py"}
    found = [
        f"{path.relative_to(ROOT)}:{n}"
        for package in ("bot", "scheduler", "loyalty", "storage", "bench")
        for path in sorted((ROOT / package).rglob("*.py")) if path not in allowed
        and "migrations" not in path.parts
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if any(pattern.search(line) for pattern in _DELETES_CUSTOMERS)
    ]
    assert found == []


# -- the migration ---------------------------------------------------------------------------

empty_url = test_storage_models.empty_url
MIGRATION = importlib.import_module("storage.migrations.0024_outbox_customer_unchecked")


async def _keys_of_message() -> list[str]:
    conn = connections.get("default")
    if conn.capabilities.dialect == "sqlite":
        _, rows = await conn.execute_query('PRAGMA foreign_key_list("message")')
        return [f"{row[2]}.{row[4]}" for row in rows]
    rows = await conn.execute_query_dict(
        "SELECT confrelid::regclass::text AS target FROM pg_constraint "
        "WHERE conrelid = 'message'::regclass AND contype = 'f'")
    return [f"{row['target']}.id" for row in rows]


async def _indexes_and_triggers_of_message() -> list[str]:
    conn = connections.get("default")
    if conn.capabilities.dialect == "sqlite":
        _, rows = await conn.execute_query(
            "SELECT sql FROM sqlite_master WHERE type IN ('index', 'trigger') "
            "AND tbl_name = 'message' AND sql IS NOT NULL ORDER BY name")
        return [row[0] for row in rows]
    rows = await conn.execute_query_dict(
        "SELECT indexdef AS d FROM pg_indexes WHERE tablename = 'message' UNION ALL "
        "SELECT tgname::text FROM pg_trigger WHERE tgrelid = 'message'::regclass "
        "AND NOT tgisinternal ORDER BY 1")
    return [row["d"] for row in rows]


async def test_migration_0024_drops_the_key_keeping_rows_indexes_and_ids(
        empty_url: str) -> None:
    EXECUTOR_CACHE.clear()
    config = storage_db.tortoise_config(empty_url)
    await migrate(config=config, target="models.0023_renewal_kpi_rollup")
    await Tortoise.close_connections()
    await Tortoise.init(config=config)  # the models of 0023 are today's, but for the key
    try:
        owner = await f.customer()
        for n in range(3):
            await f.queued(owner, key=f"k{n}")
        await Message.filter(dedup_key="k2").delete()  # the highest id: not to be used again
        indexes = await _indexes_and_triggers_of_message()
        assert len(indexes) >= 7 and await _keys_of_message() == ["customer.id"]
    finally:
        await Tortoise.close_connections()

    await migrate(config=config)
    await Tortoise.init(config=config)
    try:
        assert await _keys_of_message() == []
        assert await _indexes_and_triggers_of_message() == indexes  # 0009's, 0023's too
        assert sorted(await Message.all().values_list("dedup_key", "customer_id")) == [
            ("k0", owner.id), ("k1", owner.id)]
        assert (await f.queued(owner, key="k3")).id == 4
        await _message_for_nobody(616_161)
        assert [found.count for found in await orphans()] == [1]
    finally:
        await Tortoise.close_connections()


async def test_going_back_adds_the_key_again_unless_a_message_lost_its_customer(
        db: str) -> None:
    owner = await f.customer()
    await f.queued(owner)
    editor = SimpleNamespace(client=connections.get("default"),
                             _generate_fk_name=lambda *names: "fk_message_customer_0024")
    await _message_for_nobody(717_171)
    with pytest.raises(Exception, match=r"(?i)foreign key|without their customer"):
        await MIGRATION._change(editor, checked=True)
    assert await _keys_of_message() == []

    await Message.filter(customer_id=717_171).delete()
    await MIGRATION._change(editor, checked=True)
    assert await _keys_of_message() == ["customer.id"]
    assert await Message.filter(customer_id=owner.id).count() == 1
    with pytest.raises(IntegrityError):
        await _message_for_nobody(717_171)
    await MIGRATION._change(editor, checked=False)
    assert await _keys_of_message() == []
