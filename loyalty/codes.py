"""Voucher codes: unguessable, easy to read aloud and type, with a check character.

Ten random symbols from Crockford's base-32 alphabet (no I, L, O, U) give 50 bits from
``secrets``; an eleventh is a Luhn mod 32 check character, so a mistyped symbol or two
swapped neighbours are caught before any lookup. Codes are shown as ``XXXX-XXXX-XXX`` and
accepted in any case, with or without separators, with O/I/L read as 0/1/1.
"""

from __future__ import annotations

import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_INDEX = {ch: i for i, ch in enumerate(ALPHABET)}
_READ_AS = str.maketrans({"O": "0", "I": "1", "L": "1"})
RANDOM_LENGTH = 10
CODE_LENGTH = RANDOM_LENGTH + 1


def _luhn_sum(symbols: str, *, double_first: bool) -> int:
    n = len(ALPHABET)
    total = 0
    double = double_first
    for ch in reversed(symbols):
        addend = _INDEX[ch] * (2 if double else 1)
        total += addend // n + addend % n
        double = not double
    return total


def check_character(payload: str) -> str:
    n = len(ALPHABET)
    return ALPHABET[(n - _luhn_sum(payload, double_first=True) % n) % n]


def new_code() -> str:
    """A fresh code in its stored form (11 symbols, no separators)."""
    payload = "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_LENGTH))
    return payload + check_character(payload)


def normalise(text: str) -> str | None:
    """The stored form of what someone typed, or None if it cannot be a valid code."""
    cleaned = "".join(text.split()).replace("-", "").upper().translate(_READ_AS)
    if len(cleaned) != CODE_LENGTH or any(ch not in _INDEX for ch in cleaned):
        return None
    if _luhn_sum(cleaned, double_first=False) % len(ALPHABET) != 0:
        return None
    return cleaned


def display(code: str) -> str:
    return f"{code[:4]}-{code[4:8]}-{code[8:]}"
