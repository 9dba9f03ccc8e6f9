"""From one cell's text to a typed value, or a ``RowError`` naming the column and the problem.

Cells arrive already stripped of surrounding whitespace. No message repeats a full phone
number.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from storage.phones import InvalidPhone, PhoneNormaliser

from .rows import RowError

E = TypeVar("E", bound=Enum)

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# 1234.5, 1,234.50, ¥99: digits with optional thousands grouping and decimals
_AMOUNT = re.compile(r"[¥￥]?(?P<number>-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?)")
_MAX_CENTS = 2**63 - 1
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

_TRUE = frozenset({"true", "1", "yes", "y", "是"})
_FALSE = frozenset({"false", "0", "no", "n", "否"})


def required(text: str, column: str) -> str:
    if not text:
        raise RowError(column, "required")
    return text


def bounded(text: str, column: str, max_length: int) -> str:
    if len(text) > max_length:
        raise RowError(column, f"longer than {max_length} characters")
    return text


def iso_date(text: str, column: str) -> date:
    """``YYYY-MM-DD`` and nothing else (``date.fromisoformat`` alone also takes ``20260301``)."""
    if _DATE.fullmatch(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    raise RowError(column, f"not a date (YYYY-MM-DD): {text!r}")


def moment(text: str, column: str, local_tz: tzinfo) -> datetime:
    """An ISO 8601 date or date-time, as aware UTC; naive (and date-only) means ``local_tz``."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise RowError(
            column, f"not an ISO 8601 date or date-time (2026-03-01 or 2026-03-01T14:30): {text!r}"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=local_tz)
    return value.astimezone(UTC)


def cents(text: str, column: str, *, positive: bool = False) -> int:
    """Yuan with at most two decimal places (``1,234.50``, ``¥99``) as integer cents (fen)."""
    match = _AMOUNT.fullmatch(text)
    if match is None:
        raise RowError(column, f"not an amount in yuan: {text!r}")
    try:
        amount = Decimal(match["number"].replace(",", ""))
    except InvalidOperation:  # pragma: no cover - the pattern admits only plain decimals
        raise RowError(column, f"not an amount in yuan: {text!r}") from None
    value = amount * 100
    if value != value.to_integral_value():
        raise RowError(column, f"more than two decimal places: {text!r}")
    if value < 0:
        raise RowError(column, f"must not be negative: {text!r}")
    if positive and value == 0:
        raise RowError(column, "must be greater than zero")
    if value > _MAX_CENTS:
        raise RowError(column, f"too large: {text!r}")
    return int(value)


def boolean(text: str, column: str) -> bool:
    folded = text.casefold()
    if folded in _TRUE:
        return True
    if folded in _FALSE:
        return False
    raise RowError(column, f"expected true/false, 1/0, yes/no or 是/否: {text!r}")


def choice(text: str, column: str, options: Mapping[str, E]) -> E:
    """Look ``text`` up case-insensitively in ``options`` (keys are case-folded)."""
    value = options.get(text.casefold())
    if value is None:
        allowed = "|".join(dict.fromkeys(str(option.value) for option in options.values()))
        raise RowError(column, f"expected one of {allowed}: {text!r}")
    return value


def enum_options(enum: type[E], **aliases: E) -> dict[str, E]:
    """Every member by its value (case-folded), plus extra spellings."""
    options = {str(member.value).casefold(): member for member in enum}
    options.update({alias.casefold(): member for alias, member in aliases.items()})
    return options


def email(text: str, column: str) -> str:
    bounded(text, column, 254)
    if not _EMAIL.fullmatch(text):
        raise RowError(column, "not an email address")
    return text


class TimeZones:
    """IANA time-zone names, each checked once per import."""

    def __init__(self) -> None:
        self._known: dict[str, str] = {}

    def __call__(self, text: str, column: str) -> str:
        canonical = self._known.get(text)
        if canonical is None:
            try:
                canonical = ZoneInfo(text).key
            except (ZoneInfoNotFoundError, ValueError):
                raise RowError(column, f"not an IANA time zone (like Asia/Shanghai): {text!r}") \
                    from None
            self._known[text] = canonical
        return canonical


class Phones:
    """``storage.phones.normalise_phone`` (through ``PhoneNormaliser``: a shortcut for the
    default region's mobile numbers), its errors as the column's ``RowError``."""

    def __init__(self, default_region: str) -> None:
        self.default_region = default_region
        self._normalise = PhoneNormaliser(default_region)

    def __call__(self, text: str, column: str) -> str:
        try:
            return self._normalise(text)
        except InvalidPhone as exc:
            raise RowError(column, str(exc)) from None
