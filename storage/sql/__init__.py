"""The gateway for SQL that is not plain ORM: the only code that knows the dialects.

* ``gateway`` — ``fetch``/``fetchrow``/``fetchval``/``execute`` with named parameters
  (``:customer_id``), ``Params`` and ``Fragment`` for statements built from pieces, value
  conversion both ways, row counts, ``is_postgres``, ``plan_each_execution``.
* ``dialect`` — the pieces the backends spell differently (JSON aggregates, insert-or-ignore,
  row locks, typed placeholders), each a named function.
* ``batch`` — ``Statements``: per-batch bulk reads and writes for imports and the dispatcher.

Callers import from ``storage.sql``; see docs/architecture.md for the rule for adding a query.
"""

from storage.sql.batch import Statements, sqlite_page_cache
from storage.sql.dialect import (
    bound_json_rows,
    bound_rows,
    for_update,
    in_bound_rows,
    in_list,
    insert_ignoring,
    json_object,
    json_param,
    json_rows,
    json_values,
    row_version,
    typed,
)
from storage.sql.gateway import (
    Fragment,
    Params,
    Row,
    as_bool,
    as_date,
    as_decimal,
    as_json,
    as_moment,
    bind,
    bound_json_rows_values,
    bound_rows_values,
    current,
    driver_value,
    execute,
    fetch,
    fetchrow,
    fetchval,
    inside_transaction,
    is_postgres,
    plan_each_execution,
    rows_changed,
)

__all__ = [
    "Fragment", "Params", "Row", "Statements", "as_bool", "as_date", "as_decimal", "as_json",
    "as_moment", "bind", "bound_json_rows", "bound_json_rows_values", "bound_rows",
    "bound_rows_values", "current", "driver_value",
    "execute", "fetch", "fetchrow", "fetchval",
    "for_update", "in_bound_rows", "in_list", "insert_ignoring", "inside_transaction",
    "is_postgres",
    "json_object", "json_param", "json_rows", "json_values", "plan_each_execution",
    "row_version", "rows_changed",
    "sqlite_page_cache", "typed",
]
