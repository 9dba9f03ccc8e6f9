"""The SQL pieces the two backends spell differently, named once: a statement built above
storage/ asks for ``json_rows(…)`` or ``insert_ignoring(…)`` instead of writing the branch.
"""

from __future__ import annotations

from collections.abc import Sequence


def json_rows(*values: str, postgres: bool, order_by: str = "") -> str:
    """SQL aggregate: ``[[v1, v2, …], …]``, one inner array per row, as JSON text.

    For gathering a group's rows into one column of a selection (a scalar subquery). There is
    no string aggregate both dialects share: SQLite has ``group_concat`` (``string_agg`` only
    from 3.44), PostgreSQL ``string_agg``; JSON also spares choosing a separator that data can
    never contain. ``order_by`` orders the array on PostgreSQL; SQLite keeps the order of the
    rows it aggregates (order them in a subquery), so give both when order matters.
    """
    listed = ", ".join(values)
    if postgres:
        order = f" ORDER BY {order_by}" if order_by else ""
        return f"json_agg(json_build_array({listed}){order})::text"
    return f"json_group_array(json_array({listed}))"


def json_values(value: str, *, postgres: bool, order_by: str = "") -> str:
    """SQL aggregate: ``[v, …]`` as JSON text (see ``json_rows`` for the order)."""
    if postgres:
        order = f" ORDER BY {order_by}" if order_by else ""
        return f"json_agg({value}{order})::text"
    return f"json_group_array({value})"


def json_object(*pairs: tuple[str, str], postgres: bool) -> str:
    """SQL building a JSON object from ``(key literal, SQL expression)`` pairs, as the type
    a JSON column takes (``jsonb`` on PostgreSQL, JSON text on SQLite)."""
    build = "jsonb_build_object" if postgres else "json_object"
    return f"{build}({', '.join(f'{key}, {value}' for key, value in pairs)})"


def json_param(placeholder: str, *, postgres: bool) -> str:
    """A bound JSON text used as a JSON value inside ``json_object``."""
    return f"{placeholder}::text::jsonb" if postgres else f"json({placeholder})"


def typed(placeholder: str, sql_type: str, *, postgres: bool) -> str:
    """``placeholder`` with an explicit type on PostgreSQL, which cannot infer the type of a
    value in a SELECT list (``:now::timestamptz``); SQLite needs none."""
    return f"{placeholder}::{sql_type}" if postgres else placeholder


def insert_ignoring(table: str, columns: Sequence[str], rows: str, *, conflict: str,
                    postgres: bool) -> str:
    """``INSERT INTO table (columns) <rows>`` where a row whose ``conflict`` key is already
    there (or repeated within the statement) is left out: ``ON CONFLICT (…) DO NOTHING`` on
    PostgreSQL, ``INSERT OR IGNORE`` on SQLite (whose parser cannot tell an ``ON CONFLICT``
    after ``INSERT … SELECT … FROM … WHERE`` from a join's ``ON``)."""
    head = f"INTO {table} ({', '.join(columns)}) {rows}"
    if postgres:
        return f"INSERT {head} ON CONFLICT ({conflict}) DO NOTHING"
    return f"INSERT OR IGNORE {head}"


def for_update(*, postgres: bool, skip_locked: bool = False) -> str:
    """The row-lock suffix of a SELECT: `` FOR UPDATE [SKIP LOCKED]`` on PostgreSQL; nothing
    on SQLite, where one writer at a time holds the whole database."""
    if not postgres:
        return ""
    return " FOR UPDATE SKIP LOCKED" if skip_locked else " FOR UPDATE"


def row_version(alias: str, *, postgres: bool) -> str:
    """An expression that changes whenever row ``alias`` is written: PostgreSQL's ``xmin``
    (as text), to tell the version a statement locked (``FOR UPDATE`` locks the newest one)
    from the version its snapshot sees. Constant on SQLite, where a transaction's reads do
    not change under it."""
    return f"{alias}.xmin::text" if postgres else "0"


def in_list(column: str, placeholder: str, *, postgres: bool, sql_type: str) -> str:
    """``column`` is one of a list bound as one value: ``= ANY(:keys::type[])`` on
    PostgreSQL. SQLite has no arrays: ``IN (SELECT value FROM json_each(:keys))`` with the
    list bound as JSON text."""
    if postgres:
        return f"{column} = ANY({placeholder}::{sql_type}[])"
    return f"{column} IN (SELECT value FROM json_each({placeholder}))"


def bound_rows(name: str, columns: Sequence[tuple[str, str]], *, postgres: bool) -> str:
    """A FROM item ``name`` whose rows are bound as values (``bound_rows_values``): the
    ``columns`` (each ``(column, PostgreSQL type)``) and ``ord``, the row's position from 1.

    For set-based statements over a batch (a group of ledger postings): every row of the batch
    in one statement, whatever its size. On PostgreSQL ``unnest`` of one typed array per
    column (``:name_column``) ``WITH ORDINALITY``; SQLite has no arrays: ``json_each`` of one
    JSON array of rows (``:name``), each value read with ``json_extract``.
    """
    names = [column for column, _ in columns]
    if postgres:
        arrays = ", ".join(f":{name}_{column}::{sql_type}[]" for column, sql_type in columns)
        return f"unnest({arrays}) WITH ORDINALITY AS {name}({', '.join(names)}, ord)"
    values = ", ".join(f"json_extract(value, '$[{at}]') AS {column}"
                       for at, column in enumerate(names))
    return f"(SELECT key + 1 AS ord, {values} FROM json_each(:{name})) AS {name}"


def in_bound_rows(expression: str, name: str, columns: Sequence[tuple[str, str]], column: str,
                  *, postgres: bool) -> str:
    """``expression`` is one of the values of ``column`` of ``bound_rows(name, columns)``,
    read from the same bound values (``expression = ANY(:name_column::type[])`` on PostgreSQL).

    A join with a batch's rows says the same; the condition is for PostgreSQL's planner. It
    plans a prepared statement once for every execution, taking a bound batch for 10 rows
    whatever it holds, and a join of 10 rows with a table it then found small is a hash join
    over the whole table (a scan that grows with the table for as long as the plan is kept),
    while an ``= ANY(array)`` condition on an indexed column is an index scan once the table
    has more than a few pages (scanning, every row would be compared with every value).
    """
    types = dict(columns)
    if postgres:
        return f"{expression} = ANY(:{name}_{column}::{types[column]}[])"
    at = [c for c, _ in columns].index(column)
    return f"{expression} IN (SELECT json_extract(value, '$[{at}]') FROM json_each(:{name}))"


def bound_json_rows(name: str, columns: Sequence[tuple[str, str]], *, postgres: bool) -> str:
    """``bound_rows``, with the rows bound as one JSON array of rows on both backends
    (``bound_json_rows_values``): on PostgreSQL ``json_array_elements`` of it, each value cast
    to the column's type.

    For a prepared statement run again and again with batches of a few rows: the planner
    cannot see how many rows the JSON holds (``unnest`` of an array it can), so the plan does
    not depend on the values and PostgreSQL settles on one generic plan instead of planning
    every execution — for a statement with several subqueries planning costs more than
    running it.
    """
    if not postgres:
        return bound_rows(name, columns, postgres=False)
    values = ", ".join(f"(value->>{at})::{sql_type} AS {column}"
                       for at, (column, sql_type) in enumerate(columns))
    return (f"(SELECT ord, {values} FROM json_array_elements(:{name}::json) "
            f"WITH ORDINALITY AS {name}_rows(value, ord)) AS {name}")
