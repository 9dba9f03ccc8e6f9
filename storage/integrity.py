"""References the database does not enforce: how they are kept, and the check that shows it.

The outbox's ``message.customer_id`` has no foreign key (migration 0024): checking it row by
row was a third of a festival day's set-based queueing on PostgreSQL. What the key did is done
here instead:

* ``delete_customers`` is the only code that deletes customer rows. Each customer's messages
  go first, in the same transaction, so no message outlives its customer; the tables that keep
  their foreign key to customer keep their ON DELETE actions (and a RESTRICT, e.g. a
  complaint, refuses the whole deletion, messages included). Erasure (``storage.privacy``)
  keeps the customer row and clears its messages' parameters in its own transaction.
* ``orphans`` counts, for every reference in ``UNENFORCED``, the rows whose target row is gone,
  with the ids of a few: ``engage db check`` prints it and fails when there are any.

A producer that read a customer before a concurrent ``delete_customers`` committed could still
queue a message for them afterwards (nothing locks the customer row any more); no code
deletes customers while the service runs, and the check would show such a row.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from tortoise.transactions import in_transaction

from storage.sql import current, execute, fetch, in_list, is_postgres


@dataclass(frozen=True, slots=True)
class Reference:
    """``table.column`` holds an id of ``target`` without a foreign key saying so."""

    table: str
    column: str
    target: str

    def __str__(self) -> str:
        return f"{self.table}.{self.column} -> {self.target}.id"


UNENFORCED: Final = (Reference("message", "customer_id", "customer"),)


@dataclass(frozen=True, slots=True)
class Orphans:
    """The rows of ``reference.table`` whose ``reference.target`` row is gone."""

    reference: Reference
    count: int
    sample: tuple[int, ...]
    """the ids of the first few"""


async def orphans(*, sample: int = 5) -> list[Orphans]:
    """For every reference in ``UNENFORCED``, how many rows point at a row that is gone."""
    conn = current()
    found = []
    for ref in UNENFORCED:
        where = (f"FROM {ref.table} r WHERE NOT EXISTS "
                 f"(SELECT 1 FROM {ref.target} t WHERE t.id = r.{ref.column})")
        rows = await fetch(conn, f"SELECT COUNT(*) AS n {where}")
        count = int(rows[0]["n"])
        ids = [] if count == 0 else await fetch(
            conn, f"SELECT r.id AS id {where} ORDER BY r.id LIMIT {int(sample)}")
        found.append(Orphans(ref, count, tuple(int(row["id"]) for row in ids)))
    return found


async def delete_customers(ids: Iterable[int]) -> int:
    """Delete these customers, and their messages first, in one transaction; returns how many
    customers were deleted (an id that is not there is left out)."""
    wanted = sorted(set(ids))
    if not wanted:
        return 0
    async with in_transaction() as conn:
        postgres = is_postgres(conn)
        values = {"ids": wanted}
        among = in_list("id", ":ids", postgres=postgres, sql_type="int")
        # counted first: SQLite's count of a DELETE takes in the rows its keys cascade to
        present = len(await fetch(conn, f"SELECT id FROM customer WHERE {among}", values))
        await execute(conn, "DELETE FROM message WHERE "
                      f"{in_list('customer_id', ':ids', postgres=postgres, sql_type='int')}",
                      values)
        await execute(conn, f"DELETE FROM customer WHERE {among}", values)
    return present
