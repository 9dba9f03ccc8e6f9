"""Who is who: when a row about a phone number is about a customer already on it.

A phone number is a contact point several customers may share (a family, a salesperson's own
number on customers' policies); the core system's customer number, when a file carries it, is
the key. Without it, a row whose phone a customer already has is that customer only when it
names the same person: the same name (birthday corrections allowed), or another name with the
same birthday (a name corrected in the core system). Anything else is another person, and two
people are never merged.
"""

from __future__ import annotations

from datetime import date
from enum import Enum


class Match(Enum):
    SAME = "same"  # same name
    RENAMED = "renamed"  # another name, the same birthday: updated, with a warning
    OTHER = "other"  # another person


def comparable_name(name: str) -> str:
    """``张 三`` and ``张三``, ``Li Si`` and ``li  si`` are one name."""
    return "".join(name.split()).casefold()


def match(name: str, birthday: date | None, other_name: str, other_birthday: date | None) -> Match:
    """Whether a row naming ``name`` (born ``birthday``) is about the customer ``other_name``."""
    if comparable_name(name) == comparable_name(other_name):
        return Match.SAME
    if birthday is not None and birthday == other_birthday:
        return Match.RENAMED
    return Match.OTHER


def mask_name(name: str) -> str:
    """Keep the first character only: ``张三`` → ``张*``, ``John Smith`` → ``J*** *****``."""
    name = name.strip()
    if not name:
        return ""
    return name[0] + "".join(" " if ch.isspace() else "*" for ch in name[1:])
