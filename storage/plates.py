"""Where a car is registered, from its licence plate: ``storage/plates.csv`` maps the province
character (沪, 粤) to its province and, where the table covers it, the issuing-office letter
(粤B) to the prefecture-level city. A customer without a region gets the region of their
plate (``region_set_by`` ``plate``) until anyone names one.
"""

from __future__ import annotations

import csv
import re
from functools import cache
from pathlib import Path
from typing import Final

PLATES_FILE: Final = Path(__file__).with_name("plates.csv")
_NOISE = re.compile(r"[\s·•・.\-]")


@cache
def plate_prefixes() -> dict[str, str]:
    """Prefix (one character, or the character and a letter) → region code."""
    with PLATES_FILE.open(encoding="utf-8", newline="") as f:
        lines = (line for line in f if not line.startswith("#"))
        return {row["prefix"]: row["region"] for row in csv.DictReader(lines)}


def plate_region(plate: str) -> str | None:
    """The code of the region ``plate`` was issued in: the city where the letter is known,
    else the province; None for a plate without a known province character."""
    text = _NOISE.sub("", plate).upper()
    prefixes = plate_prefixes()
    if len(text) >= 2 and (city := prefixes.get(text[:2])) is not None:
        return city
    return prefixes.get(text[:1])
