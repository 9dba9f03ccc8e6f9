"""Named parameters (``storage.sql.bind``): each value lands on its own placeholder whatever
order a statement was assembled in, and the same statement runs on both backends."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from tortoise import connections

from storage.sql import (
    Params,
    as_date,
    as_moment,
    bind,
    bound_json_rows,
    bound_json_rows_values,
    bound_rows,
    bound_rows_values,
    execute,
    fetch,
    in_bound_rows,
    is_postgres,
)
from tests import factories as f


def test_values_follow_the_placeholders_in_text_order_not_insertion_order() -> None:
    params = {"a": 1, "b": 2, "c": 3}
    text, values = bind("SELECT :c, :a WHERE x = :b AND y = :a", params, postgres=True)
    assert text == "SELECT $1, $2 WHERE x = $3 AND y = $2"
    assert values == [3, 1, 2]
    text, values = bind("SELECT :c, :a WHERE x = :b AND y = :a", params, postgres=False)
    assert text == "SELECT ?, ? WHERE x = ? AND y = ?"
    assert values == [3, 1, 2, 1]


def test_casts_quoted_text_and_identifiers_are_left_alone() -> None:
    sql = "SELECT :v::text, 'a :b c', \"col:d\", replace(:v, '{name}', c.name) -- :v"
    text, values = bind(sql, {"v": "x"}, postgres=True)
    assert text == "SELECT $1::text, 'a :b c', \"col:d\", replace($1, '{name}', c.name) -- :v"
    assert values == ["x"]


def test_a_missing_or_unused_value_is_an_error_not_a_wrong_binding() -> None:
    with pytest.raises(KeyError, match=":b"):
        bind("SELECT :a, :b", {"a": 1}, postgres=False)
    with pytest.raises(KeyError, match="extra"):
        bind("SELECT :a", {"a": 1, "extra": 2}, postgres=True)
    with pytest.raises(ValueError, match="naive"):
        bind("SELECT :t", {"t": datetime(2026, 1, 1)}, postgres=True)


def test_sqlite_gets_dates_and_utc_times_as_the_orm_stores_them() -> None:
    shanghai = timezone(timedelta(hours=8))
    moment = datetime(2026, 1, 1, 8, 30, tzinfo=shanghai)
    _, values = bind("SELECT :d, :t", {"d": date(2026, 2, 3), "t": moment}, postgres=False)
    assert values == ["2026-02-03", "2026-01-01 00:30:00+00:00"]
    _, values = bind("SELECT :d, :t", {"d": date(2026, 2, 3), "t": moment}, postgres=True)
    assert values == [date(2026, 2, 3), moment]


def test_params_names_fresh_values_beside_given_ones() -> None:
    params = Params(lo=0)
    marks = params.add_all(["SH", "BJ"])
    assert marks == ":v1, :v2" and params == {"lo": 0, "v1": "SH", "v2": "BJ"}
    with pytest.raises(ValueError):
        params.add_all([])


async def test_fetch_and_execute_bind_by_name_on_each_backend(db: str) -> None:
    first = await f.customer(name="甲")
    second = await f.customer(name="乙", language="en")
    conn = connections.get("default")
    changed = await execute(conn, "UPDATE customer SET name = :name, updated_at = :now "
                            "WHERE language = :lang AND id >= :low",
                            {"low": first.id, "lang": "en", "name": "Bee",
                             "now": datetime(2099, 1, 1, tzinfo=UTC)})
    assert changed == 1
    rows = await fetch(conn, "SELECT id, name FROM customer WHERE id IN (:a, :b) "
                       "AND updated_at >= :since ORDER BY id",
                       {"b": second.id, "a": first.id,
                        # the same instant, written in Shanghai time
                        "since": datetime(2099, 1, 1, 8, tzinfo=timezone(timedelta(hours=8)))})
    assert [(r["id"], r["name"]) for r in rows] == [(second.id, "Bee")]


async def test_bound_rows_are_a_table_of_values_in_order_on_each_backend(db: str) -> None:
    conn = connections.get("default")
    postgres = is_postgres(conn)
    columns = (("name", "text"), ("points", "bigint"), ("day", "date"),
               ("at", "timestamptz"))
    moment = datetime(2026, 3, 1, 10, tzinfo=timezone(timedelta(hours=8)))
    rows = [("甲", 5, date(2026, 3, 1), moment), ("b", None, None, None), ("c", -7, None, None)]
    found = await fetch(conn, f"SELECT r.ord, r.name, r.points, r.day, r.at FROM "
                        f"{bound_rows('r', columns, postgres=postgres)} ORDER BY r.ord",
                        bound_rows_values("r", [c for c, _ in columns], rows,
                                          postgres=postgres))
    assert [int(r["ord"]) for r in found] == [1, 2, 3]
    assert [(r["name"], r["points"]) for r in found] == [("甲", 5), ("b", None), ("c", -7)]
    assert as_date(found[0]["day"]) == date(2026, 3, 1) and found[1]["day"] is None
    assert as_moment(found[0]["at"]) == moment


@pytest.mark.parametrize("kind", ["arrays", "json"])
async def test_bound_json_rows_read_as_bound_rows_do(db: str, kind: str) -> None:
    conn = connections.get("default")
    postgres = is_postgres(conn)
    columns = (("name", "text"), ("points", "bigint"), ("day", "date"),
               ("at", "timestamptz"))
    moment = datetime(2026, 3, 1, 10, tzinfo=timezone(timedelta(hours=8)))
    rows = [("甲", 5, date(2026, 3, 1), moment), ("b", None, None, None), ("c'\"", -7, None,
                                                                          None)]
    names = [c for c, _ in columns]
    table, values = ((bound_rows("r", columns, postgres=postgres),
                      bound_rows_values("r", names, rows, postgres=postgres))
                     if kind == "arrays" else
                     (bound_json_rows("r", columns, postgres=postgres),
                      bound_json_rows_values("r", names, rows)))
    found = await fetch(conn, f"SELECT r.ord, r.name, r.points, r.day, r.at FROM {table} "
                        "ORDER BY r.ord", values)
    assert [int(r["ord"]) for r in found] == [1, 2, 3]
    assert [(r["name"], r["points"]) for r in found] == [("甲", 5), ("b", None), ("c'\"", -7)]
    assert as_date(found[0]["day"]) == date(2026, 3, 1) and found[1]["day"] is None
    assert as_moment(found[0]["at"]) == moment and found[2]["at"] is None


async def test_in_bound_rows_holds_for_exactly_the_values_of_one_bound_column(db: str) -> None:
    conn = connections.get("default")
    postgres = is_postgres(conn)
    customers = [await f.customer(name=name) for name in ("甲", "乙", "丙")]
    columns = (("points", "bigint"), ("customer", "int"))
    rows = [(7, customers[2].id), (9, customers[0].id)]
    found = await fetch(
        conn, "SELECT c.id, r.points FROM customer c JOIN "
              f"{bound_rows('r', columns, postgres=postgres)} ON r.customer = c.id WHERE "
              f"{in_bound_rows('c.id', 'r', columns, 'customer', postgres=postgres)} "
              "ORDER BY c.id",
        bound_rows_values("r", [c for c, _ in columns], rows, postgres=postgres))
    assert [(r["id"], r["points"]) for r in found] == [(customers[0].id, 9),
                                                       (customers[2].id, 7)]
