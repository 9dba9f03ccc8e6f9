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

Both are SQL conditions over a customer alias: ``storage.sql.Fragment``s with their own named
values, put into a statement with ``Params.take`` — so a selection, the audience's WHERE clause
and a dashboard count all say the same thing, and each value binds to its own placeholder
whatever the statement puts around it.
"""

from __future__ import annotations

from datetime import date, timedelta

from storage.sql import Fragment

DEFAULT_LAPSED_DAYS = 365


def policy_covers(policy: str, first: date, last: date | None = None) -> Fragment:
    """Policy ``policy`` (an alias of the ``policy`` table) covers a day from ``first`` to
    ``last`` (default: ``first``): whatever its status label, except cancelled."""
    return Fragment(f"{policy}.status <> 'cancelled' AND {policy}.start_date <= :last "
                    f"AND {policy}.end_date >= :first", {"first": first, "last": last or first})


def _covered(customer: str, first: date, last: date,
             ids: tuple[int, int] | None = None) -> Fragment:
    """The customer has a policy covering a day from ``first`` to ``last``; with ``ids``
    (``low, high``), only customers with ``low < id <= high`` are looked up."""
    covers = policy_covers("cov", first, last)
    if ids is None:
        return Fragment(f"EXISTS (SELECT 1 FROM policy cov WHERE cov.customer_id = "
                        f"{customer}.id AND {covers.sql})", covers.params)
    low, high = ids
    return Fragment(f"EXISTS (SELECT 1 FROM policy cov WHERE cov.customer_id = {customer}.id "
                    f"AND {covers.sql} AND cov.customer_id > :low AND cov.customer_id <= :high)"
                    f" AND {customer}.id > :low AND {customer}.id <= :high",
                    {**covers.params, "low": low, "high": high})


def insured_on(day: date, customer: str = "c") -> Fragment:
    """The customer (``customer`` is the alias of the ``customer`` table) is insured on
    ``day``."""
    return _covered(customer, day, day)


def care_reaches(day: date, lapsed_days: int = DEFAULT_LAPSED_DAYS,
                 customer: str = "c", *, ids: tuple[int, int] | None = None) -> Fragment:
    """Customer care reaches the customer on ``day``: insured then, or lapsed at most
    ``lapsed_days`` days before.

    ``ids`` (``low, high``) narrows it to the customers with ``low < id <= high``, the bounds
    written on both sides of the policy lookup: PostgreSQL does not carry a range of the
    customer's id over to the policies' ``customer_id``, and without it every statement over
    one range of customers (set-based queueing of a festival day, 50,000 ids at a time)
    hashed every policy in the book — at 1,000,000 customers, 20 times about a second."""
    return _covered(customer, day - timedelta(days=lapsed_days), day, ids)
