"""Lists in pages: keyset (cursor) pagination for the API and the console alike.

A list has a fixed, total order — its sort keys end with the primary key — and a page is the
``limit`` rows after the last row of the previous page in that order. The cursor is that last
row's sort values, opaque to the client (URL-safe base64 of JSON). Unlike an offset, a cursor
page stays right while rows are added (a new claim does not shift the next page by one) and
costs one index range scan however deep the page. Every page also carries the total count
of the filtered list, so a reader sees "50 of 308"; a list that may be very long counts only
up to a cap (``count_cap``): beyond it the page says "of 10000+" instead of counting every row.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from tortoise.expressions import Q
from tortoise.fields import DateField, DatetimeField
from tortoise.models import Model
from tortoise.queryset import QuerySet

from bot.web.operators.errors import Refusal

MAX_LIMIT = 200
DEFAULT_LIMIT = 50

M = TypeVar("M", bound=Model)
T = TypeVar("T")


class InvalidCursor(Refusal):
    code = "invalid_cursor"
    status = 422


class PageQuery(BaseModel):
    """``limit`` and ``cursor``, shared by every list."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT,
                       description=f"rows per page, at most {MAX_LIMIT}")
    cursor: str = Field(default="", max_length=300,
                        description="where the page starts: from the previous page's next link")


class PageOf(BaseModel, Generic[T]):
    """One page of a list, in the list's stable order."""

    model_config = ConfigDict(extra="forbid")

    items: list[T]
    total: int = Field(description="rows in the whole filtered list (at most the list's cap: "
                                   "see total_capped)")
    total_capped: bool = Field(default=False,
                               description="present and true when the list has more rows than "
                                           "total (counting stopped at the cap)")
    next: str | None = Field(description="the next page (a relative URL), null on the last")


@dataclass(frozen=True, slots=True)
class Page(Generic[M]):
    rows: list[M]
    total: int
    cursor: str | None  # of the next page
    capped: bool = False  # more rows than ``total``: counting stopped at the cap


def _encode(values: Sequence[Any]) -> str:
    plain = [v.isoformat() if isinstance(v, date) else v for v in values]
    raw = json.dumps(plain, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str, model: type[Model], keys: Sequence[str]) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise InvalidCursor("this cursor is not one this list gave out") from exc
    if not isinstance(values, list) or len(values) != len(keys):
        raise InvalidCursor("this cursor is not one this list gave out")
    out: list[Any] = []
    for key, value in zip(keys, values, strict=True):
        field = model._meta.fields_map[key]
        try:
            if isinstance(field, DatetimeField):
                value = datetime.fromisoformat(str(value))
                if value.tzinfo is None:
                    raise ValueError("naive")
            elif isinstance(field, DateField):
                value = date.fromisoformat(str(value))
            elif not isinstance(value, int | str) or isinstance(value, bool):
                raise ValueError("type")
        except ValueError as exc:
            raise InvalidCursor("this cursor is not one this list gave out") from exc
        out.append(value)
    return out


def _after(order: Sequence[str], values: Sequence[Any]) -> Q:
    """Rows after ``values`` in ``order`` (``-name`` descending): for keys k1, k2 that is
    ``k1 beyond v1 OR (k1 = v1 AND k2 beyond v2)``."""
    condition: Q | None = None
    for position, key in enumerate(order):
        name = key.lstrip("-")
        step = Q(**{f"{name}__{'lt' if key.startswith('-') else 'gt'}": values[position]})
        for earlier, value in zip(order[:position], values[:position], strict=True):
            step &= Q(**{earlier.lstrip("-"): value})
        condition = step if condition is None else condition | step
    assert condition is not None  # order is never empty
    return condition


async def page(query: QuerySet[M], order: Sequence[str], *, limit: int,
               cursor: str = "", count_cap: int | None = None) -> Page[M]:
    """The page of ``query`` after ``cursor`` in ``order`` (its last key must be unique).
    With ``count_cap``, the count reads at most ``count_cap + 1`` rows: a longer list counts
    as ``count_cap`` (``capped``)."""
    model = query.model
    keys = [key.lstrip("-") for key in order]
    if count_cap is None:
        total, capped = await query.count(), False
    else:
        found = len(await query.limit(count_cap + 1).values_list(keys[-1], flat=True))
        total, capped = min(found, count_cap), found > count_cap
    ordered = query.order_by(*order)
    if cursor:
        ordered = ordered.filter(_after(order, _decode(cursor, model, keys)))
    rows = list(await ordered.limit(limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    following = _encode([getattr(rows[-1], key) for key in keys]) if more and rows else None
    return Page(rows, total, following, capped)
