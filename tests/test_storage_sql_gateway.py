"""The SQL gateway beyond ``bind``: fragments that reuse names, the dialect helpers, values
both ways, row counts and the outbox's INSERT … SELECT builder — on both backends."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from tortoise.exceptions import IntegrityError, OperationalError, TransactionManagementError
from tortoise.transactions import in_transaction

from storage.models import Message
from storage.outbox import insert_select
from storage.sql import (
    Fragment,
    Params,
    as_date,
    as_json,
    as_moment,
    bind,
    current,
    driver_value,
    execute,
    fetch,
    fetchrow,
    fetchval,
    for_update,
    insert_ignoring,
    is_postgres,
    json_rows,
    plan_each_execution,
    typed,
)
from tests import factories as f

NOW = datetime(2026, 11, 21, 4, 0, tzinfo=UTC)


def test_fragments_with_the_same_names_bind_each_value_to_its_own_place() -> None:
    older = Fragment("c.birthday < :day", {"day": date(2000, 1, 1)})
    newer = Fragment("c.created_at >= :day", {"day": NOW})
    params = Params(day="kept")
    sql = f"SELECT 1 WHERE c.x = :day AND {params.take(newer)} AND {params.take(older)}"
    text, values = bind(sql, params, postgres=True)
    assert text == "SELECT 1 WHERE c.x = $1 AND c.created_at >= $2 AND c.birthday < $3"
    assert values == ["kept", NOW, date(2000, 1, 1)]


def test_a_fragment_must_name_exactly_its_values() -> None:
    with pytest.raises(KeyError):
        Fragment("a = :a AND b = :b", {"a": 1})
    with pytest.raises(KeyError):
        Fragment("a = :a", {"a": 1, "b": 2})
    assert Fragment("c.id").params == {}


def test_values_are_converted_for_sqlite_as_the_orm_stores_them() -> None:
    assert driver_value(date(2026, 1, 2), postgres=False) == "2026-01-02"
    assert driver_value(NOW, postgres=False) == "2026-11-21 04:00:00+00:00"
    assert driver_value(Decimal("1.50"), postgres=False) == "1.50"
    assert driver_value({"名": 1}, postgres=False) == '{"名": 1}'
    assert driver_value([1, 2], postgres=False) == "[1, 2]"
    assert driver_value(True, postgres=False) is True
    # PostgreSQL takes dates, datetimes, decimals and arrays as they are; JSON as text
    assert driver_value(date(2026, 1, 2), postgres=True) == date(2026, 1, 2)
    assert driver_value([1, 2], postgres=True) == [1, 2]
    assert driver_value({"a": 1}, postgres=True) == '{"a": 1}'


def test_reading_back_accepts_either_backends_form() -> None:
    assert as_date("2026-01-02") == as_date(date(2026, 1, 2)) == date(2026, 1, 2)
    assert as_moment("2026-11-21 04:00:00+00:00") == as_moment(NOW) == NOW
    assert as_json('[1, "a"]') == [1, "a"] == as_json([1, "a"])
    assert as_json(None, []) == []


def test_dialect_fragments() -> None:
    assert for_update(postgres=False) == ""
    assert for_update(postgres=True, skip_locked=True) == " FOR UPDATE SKIP LOCKED"
    assert typed(":t", "timestamptz", postgres=True) == ":t::timestamptz"
    assert typed(":t", "timestamptz", postgres=False) == ":t"
    assert insert_ignoring("t", ("a",), "SELECT 1", conflict="a", postgres=False) == (
        "INSERT OR IGNORE INTO t (a) SELECT 1")
    assert insert_ignoring("t", ("a",), "SELECT 1", conflict="a", postgres=True) == (
        "INSERT INTO t (a) SELECT 1 ON CONFLICT (a) DO NOTHING")


async def test_fetchrow_fetchval_and_row_counts_on_each_backend(db: str) -> None:
    first = await f.customer(name="甲")
    second = await f.customer(name="乙")
    conn = current()
    assert await fetchval(conn, "SELECT name FROM customer WHERE id = :id",
                          {"id": second.id}) == "乙"
    assert await fetchrow(conn, "SELECT id FROM customer WHERE id = :id", {"id": -1}) is None
    assert await fetchval(conn, "SELECT id FROM customer WHERE id = :id", {"id": -1}) is None
    changed = await execute(conn, "UPDATE customer SET name = :name WHERE id IN (:a, :b)",
                            {"name": "丙", "a": first.id, "b": second.id})
    assert changed == 2
    # an INSERT's count too (Tortoise's asyncpg client would report the OID column)
    params = Params()
    rows = ", ".join(f"({params.add(n)}, {params.add(NOW)})" for n in (1, 2, 3))
    assert await execute(conn, "INSERT INTO telegram_processed_update (update_id, processed_at) "
                               f"VALUES {rows} ON CONFLICT (update_id) DO NOTHING", params) == 3


async def test_a_violated_key_is_an_integrity_error_on_both_backends(db: str) -> None:
    await f.customer(name="甲", phone="+8613900000001")
    with pytest.raises(IntegrityError):
        await execute(current(), "INSERT INTO loyalty_account (customer_id, balance, tier, "
                                 "created_at, updated_at) VALUES (:c, 0, 'silver', :t, :t)",
                      {"c": 999_999, "t": NOW})


async def test_reads_raise_the_orms_errors_on_both_backends(db: str) -> None:
    """``fetch`` (also ``… RETURNING``) raises what the ORM raises: a violated key is an
    IntegrityError, a bad statement an OperationalError, and the connection serves on."""
    customer = await f.customer(name="甲", phone="+8613900000001")
    with pytest.raises(IntegrityError):
        await fetch(current(), "INSERT INTO loyalty_account (customer_id, balance, tier, "
                               "created_at, updated_at) VALUES (:c, 0, 'silver', :t, :t) "
                               "RETURNING id", {"c": 999_999, "t": NOW})
    with pytest.raises(OperationalError):
        await fetch(current(), "SELECT no_such_column FROM customer WHERE id = :id",
                    {"id": customer.id})
    assert await fetch(current(), "SELECT name FROM customer WHERE id = :id",
                       {"id": customer.id}) == [{"name": "甲"}]


async def test_json_rows_keep_the_order_given(db: str) -> None:
    customer = await f.customer(name="甲")
    for day in (3, 1, 2):
        await f.policy(customer, number=f"P{day}", end=date(2026, 12, day))
    postgres = is_postgres()
    aggregate = json_rows("x.number", "x.end_date", postgres=postgres, order_by="x.end_date")
    value = await fetchval(current(), f"SELECT {aggregate} FROM (SELECT number, end_date "
                                      "FROM policy WHERE customer_id = :c ORDER BY end_date) x",
                           {"c": customer.id})
    assert [(n, as_date(d)) for n, d in as_json(value)] == [
        ("P1", date(2026, 12, 1)), ("P2", date(2026, 12, 2)), ("P3", date(2026, 12, 3))]


async def test_outbox_insert_select_takes_columns_by_name_in_any_order(db: str) -> None:
    customers = [await f.customer(name=n) for n in ("甲", "乙")]
    postgres = is_postgres()

    def text(value: str) -> Fragment:
        return Fragment(typed(":value", "text", postgres=postgres), {"value": value})

    columns = {  # deliberately not in the table's order, names repeated across fragments
        "template_key": text("festival"),
        "not_before": Fragment(typed(":value", "timestamptz", postgres=postgres),
                               {"value": NOW}),
        "params": Fragment("json_object('n', c.name)" if not postgres
                           else "jsonb_build_object('n', c.name)"),
        "customer_id": Fragment("c.id"),
        "channel_policy": text("sms_only"),
        "category": text("care"),
        "kind": text("check"),
        "dedup_key": Fragment(f"{typed(':value', 'text', postgres=postgres)} || c.id",
                              {"value": "check:"}),
    }
    source = Fragment("FROM customer c WHERE c.id >= :value", {"value": customers[0].id})
    sql, params = insert_select(columns, source, created_at=NOW, postgres=postgres)
    assert await execute(current(), sql, params) == 2
    assert await execute(current(), sql, params) == 0  # keys already queued are left alone
    rows = await Message.filter(kind="check").order_by("customer_id")
    assert [(m.dedup_key, m.template_key, m.channel_policy, m.params, m.not_before,
             m.stale_after, m.campaign_id) for m in rows] == [
        (f"check:{c.id}", "festival", "sms_only", {"n": c.name}, NOW, None, None)
        for c in customers]
    with pytest.raises(ValueError, match="dedup_key"):
        insert_select({k: v for k, v in columns.items() if k != "dedup_key"}, source,
                      created_at=NOW, postgres=postgres)
    with pytest.raises(ValueError, match="colour"):
        insert_select({**columns, "colour": text("red")}, source, created_at=NOW,
                      postgres=postgres)


async def test_selected_rows_by_name_read_back(db: str) -> None:
    customer = await f.customer(name="甲")
    rows = await fetch(current(), "SELECT id, name FROM customer WHERE id = :id",
                       {"id": customer.id})
    assert rows == [{"id": customer.id, "name": "甲"}]


async def test_a_pooled_connection_comes_back_with_its_open_transaction_rolled_back(
        db: str) -> None:
    """The pool skips asyncpg's session reset query (``storage.db``: nothing of ours leaves
    session state on a pooled connection), yet a transaction left open still ends on release."""
    if not is_postgres():
        pytest.skip("PostgreSQL's connection pool")
    customer = await f.customer(name="甲")
    conn = current()
    async with conn.acquire_connection() as raw:
        pid = await raw.fetchval("SELECT pg_backend_pid()")
        await raw.execute("BEGIN")
        await raw.execute("UPDATE customer SET name = 'left open' WHERE id = $1", customer.id)
    async with conn.acquire_connection() as raw:  # the pool hands out the last one back first
        assert await raw.fetchval("SELECT pg_backend_pid()") == pid
        assert not raw.is_in_transaction()
        assert await raw.fetchval("SELECT name FROM customer WHERE id = $1", customer.id) == "甲"


async def test_a_pooled_query_costs_one_round_trip_and_an_open_transaction_is_still_ended(
        db: str, is_postgres: bool) -> None:
    """Releasing a pooled PostgreSQL connection sends no reset statement of its own (asyncpg's
    default doubles the round trips of every query outside a transaction), but a transaction
    left open on it is still rolled back before the next user gets it."""
    if not is_postgres:
        pytest.skip("a PostgreSQL pool")
    client = current()
    assert await fetchval(client, "SELECT 1") == 1  # the pool opens on first use
    pool = client._pool  # type: ignore[attr-defined]
    async with pool.acquire() as conn:
        before = conn._con._protocol.queries_count
    assert await fetchval(client, "SELECT 2") == 2
    async with pool.acquire() as conn:
        assert conn._con._protocol.queries_count == before + 1
        await conn.execute("BEGIN")
        await conn.execute("CREATE TEMP TABLE left_open (id int)")
    async with pool.acquire() as conn:
        assert not conn.is_in_transaction()
        assert await conn.fetchval("SELECT to_regclass('pg_temp.left_open')") is None


async def test_plan_each_execution_holds_for_its_transaction_only(db: str) -> None:
    """PostgreSQL plans each statement of the transaction with its values (a prepared
    statement's generic plan is never used), and only until the transaction ends."""
    async with in_transaction() as conn:
        await plan_each_execution(conn)
        if is_postgres(conn):
            assert await fetchval(conn, "SHOW plan_cache_mode") == "force_custom_plan"
    if is_postgres():
        async with in_transaction() as conn:  # a pooled connection, maybe the same one
            assert await fetchval(conn, "SHOW plan_cache_mode") == "auto"
        with pytest.raises(TransactionManagementError):
            await plan_each_execution(current())
    else:
        await plan_each_execution(current())  # nothing to set on SQLite
