"""Phone numbers: normalise to E.164 with phonenumbers, and mask for logs and lists."""

from __future__ import annotations

import re

import phonenumbers


class InvalidPhone(ValueError):
    """The text is not a valid phone number for the given default region."""


def normalise_phone(raw: str, default_region: str = "CN") -> str:
    """``138 0013 8000`` / ``+86 138-0013-8000`` / ``008613800138000`` → ``+8613800138000``."""
    text = raw.strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        raise InvalidPhone(f"not a phone number: {mask_phone(text)}") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone(f"not a valid phone number: {mask_phone(text)}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def mask_phone(phone: str) -> str:
    """Keep the country code and the last four digits: ``+86*******8000``."""
    digits = phone.lstrip("+")
    if len(digits) <= 4:
        return "*" * len(phone)
    country = ""
    if phone.startswith("+"):
        try:
            code = phonenumbers.parse(phone).country_code
            country = f"+{code}"
            digits = digits[len(str(code)):]
        except phonenumbers.NumberParseException:
            country = "+"
    return country + "*" * (len(digits) - 4) + digits[-4:]


# Seven or more digits, possibly grouped by spaces, dots or dashes, with an optional "+" in
# front, and not part of a longer word: phone numbers in any format, ID numbers too.
_DIGIT_RUN = re.compile(r"(?<![\w+])\+?\d(?:[ .\-]?\d){6,}(?![\w])")


def mask_phones_in(text: str) -> str:
    """Every phone-like run of digits in ``text`` masked as ``mask_phone`` does:
    ``q=+86 138-0013-8008`` → ``q=+86*******8008``, ``8613800138008`` → ``*********8008``."""
    return _DIGIT_RUN.sub(lambda m: mask_phone(re.sub(r"[ .\-]", "", m.group(0))), text)
