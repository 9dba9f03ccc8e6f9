"""Set-based selections read in keyset pages, so memory stays bounded whatever the table size.

A rule describes *what* it selects as one ``FROM … WHERE …`` clause with its named values (a
``storage.sql.Fragment``); the same clause is read page by page (``AND key > :after ORDER BY
key LIMIT n``, an index range scan on the key) and can be counted with one ``COUNT(*)`` —
which is what the benchmark compares the plan against. Statements go through ``storage.sql``,
which converts the values for the backend; dates come back through ``storage.sql.as_date``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from storage.sql import Fragment, Params, Row, current, fetch


@dataclass(frozen=True, slots=True)
class Selection:
    """``SELECT <key> AS k, <columns> <source>``, where ``source`` is ``FROM … WHERE …``.

    ``ranged``, when given, writes the source for ``low < key <= high`` itself (``within``):
    exactly the rows of ``source`` in that range, with the bounds where the database can use
    them — in a correlated lookup too, which a filter on the key alone does not reach."""

    columns: str
    source: Fragment
    key: str
    ranged: Callable[[Any, Any], Fragment] | None = None

    def _after(self, after: Any) -> tuple[str, Params]:
        params = Params(self.source.params)
        return f"{self.source.sql} AND {self.key} > {params.add(after)}", params

    async def pages(self, size: int) -> AsyncIterator[list[Row]]:
        head = f"SELECT {self.key} AS k, {self.columns}"
        tail = f"ORDER BY {self.key} LIMIT {int(size)}"
        source, params = self.source.sql, self.source.params
        while True:
            rows = await fetch(current(), f"{head} {source} {tail}", params)
            if rows:
                yield rows
            if len(rows) < size:
                return
            source, params = self._after(rows[-1]["k"])

    async def key_bounds(self) -> tuple[Any, Any] | None:
        """The smallest and largest key selected (two index probes), None when nothing is."""
        sql = f"SELECT {self.key} AS k {self.source.sql} ORDER BY {self.key}"
        first = await fetch(current(), f"{sql} LIMIT 1", self.source.params)
        if not first:
            return None
        last = await fetch(current(), f"{sql} DESC LIMIT 1", self.source.params)
        return first[0]["k"], last[0]["k"] if last else first[0]["k"]

    def within(self, low: Any, high: Any) -> Selection:
        """The rows with ``low < key <= high``."""
        if self.ranged is not None:
            return Selection(self.columns, self.ranged(low, high), self.key)
        params = Params(self.source.params)
        source = (f"{self.source.sql} AND {self.key} > {params.add(low)} "
                  f"AND {self.key} <= {params.add(high)}")
        return Selection(self.columns, Fragment(source, params), self.key)

    async def count(self) -> int:
        rows = await fetch(current(), f"SELECT COUNT(*) AS n {self.source.sql}",
                           self.source.params)
        return int(rows[0]["n"])
