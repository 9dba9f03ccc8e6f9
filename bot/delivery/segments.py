"""SMS encoding and segment count, the way carriers and Twilio bill them.

A message that fits the GSM 03.38 default alphabet (plus its extension table) is sent as
GSM-7: 160 septets in one message, 153 per part once it is split, because each part carries
a 7-septet user-data header. Anything else - one Chinese character is enough - makes the
whole message UCS-2: 70 UTF-16 code units alone, 67 per part.

Parts are counted by walking the text rather than dividing, because a part never splits an
extension character's escape pair (``€`` is ESC + 0x65) nor a UTF-16 surrogate pair (an
emoji): such a character moves whole to the next part, which can cost an extra segment.
"""

from __future__ import annotations

from typing import Literal

Encoding = Literal["GSM-7", "UCS-2"]

# GSM 03.38 default alphabet, without ESC (0x1B): a literal escape in our text is not a
# character we can send as GSM-7.
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Extension table: each costs two septets (ESC + code).
_GSM_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM7_SINGLE = 160
GSM7_PART = 153
UCS2_SINGLE = 70
UCS2_PART = 67


def sms_encoding(text: str) -> Encoding:
    """GSM-7 when every character is in the GSM default alphabet or its extension table."""
    for char in text:
        if char not in _GSM_BASIC and char not in _GSM_EXTENSION:
            return "UCS-2"
    return "GSM-7"


def _gsm7_width(char: str) -> int:
    return 2 if char in _GSM_EXTENSION else 1


def _ucs2_width(char: str) -> int:
    return 2 if ord(char) > 0xFFFF else 1


def sms_length(text: str) -> int:
    """Septets for GSM-7 text (extension characters count 2); UTF-16 code units for UCS-2."""
    width = _gsm7_width if sms_encoding(text) == "GSM-7" else _ucs2_width
    return sum(width(char) for char in text)


def count_segments(text: str) -> int:
    """How many SMS segments ``text`` is billed as; empty text is one segment."""
    if sms_encoding(text) == "GSM-7":
        width, single, part = _gsm7_width, GSM7_SINGLE, GSM7_PART
    else:
        width, single, part = _ucs2_width, UCS2_SINGLE, UCS2_PART
    widths = [width(char) for char in text]
    if sum(widths) <= single:
        return 1
    parts, used = 1, 0
    for w in widths:
        if used + w > part:  # the character (and its escape or surrogate pair) moves whole
            parts, used = parts + 1, 0
        used += w
    return parts
