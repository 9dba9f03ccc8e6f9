"""Who is insured on a day, and whom customer care reaches: one definition for every care rule,
the campaign audience and the dashboard.

**Insured on a day**: the customer has a policy covering that day (``start_date <= day <=
end_date``) whatever its status label — ``active``, ``expired`` not yet corrected, or
``renewed`` early and still running until its successor starts — except ``cancelled``
(退保): a cancellation ends the cover.

**Care reaches** a customer (birthday and festival greetings, weather notices) who is insured
that day or whose last cover ended at most ``care.lapsed_days`` (365) days before: a lapsed
customer is still someone to win back. A customer with only cancelled policies, or none, gets
no care messages.

Both are SQL conditions over a customer alias with ``?`` placeholders and their values in
order (dates as ``date``; the callers' gateways convert them for SQLite) — or, for SQL built
with named parameters (the campaign audience, the dashboard), ``Condition.named`` — so a
selection, the audience's WHERE clause and a dashboard count all say the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from storage.sql import Params

DEFAULT_LAPSED_DAYS = 365


@dataclass(frozen=True, slots=True)
class Condition:
    """A SQL boolean with ``?`` placeholders, and the values for them in order."""

    sql: str
    values: tuple[Any, ...]

    def bound(self, *, postgres: bool) -> tuple[Any, ...]:
        """The values as the driver takes them: dates as ISO text on SQLite, where Tortoise
        stores them so."""
        if postgres:
            return self.values
        return tuple(v.isoformat() if isinstance(v, date) else v for v in self.values)

    def named(self, params: Params) -> str:
        """The condition for SQL with named parameters (``storage.sql``): each value kept
        in ``params`` under its own name, the text with those names in its ``?`` places."""
        pieces = self.sql.split("?")
        if len(pieces) != len(self.values) + 1:
            raise ValueError(f"{len(self.values)} values for {len(pieces) - 1} placeholders")
        return pieces[0] + "".join(params.add(value) + piece
                                   for value, piece in zip(self.values, pieces[1:], strict=True))


def policy_covers(policy: str, first: date, last: date | None = None) -> Condition:
    """Policy ``policy`` (an alias of the ``policy`` table) covers a day from ``first`` to
    ``last`` (default: ``first``): whatever its status label, except cancelled."""
    return Condition(f"{policy}.status <> 'cancelled' AND {policy}.start_date <= ? "
                     f"AND {policy}.end_date >= ?", (last or first, first))


def _covered(customer: str, first: date, last: date) -> Condition:
    """The customer has a policy covering a day from ``first`` to ``last``."""
    covers = policy_covers("cov", first, last)
    return Condition(f"EXISTS (SELECT 1 FROM policy cov WHERE cov.customer_id = {customer}.id "
                     f"AND {covers.sql})", covers.values)


def insured_on(day: date, customer: str = "c") -> Condition:
    """The customer (``customer`` is the alias of the ``customer`` table) is insured on
    ``day``."""
    return _covered(customer, day, day)


def care_reaches(day: date, lapsed_days: int = DEFAULT_LAPSED_DAYS,
                 customer: str = "c") -> Condition:
    """Customer care reaches the customer on ``day``: insured then, or lapsed at most
    ``lapsed_days`` days before."""
    return _covered(customer, day - timedelta(days=lapsed_days), day)
