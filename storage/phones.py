"""Phone numbers: normalise to E.164 with phonenumbers, and mask for logs and lists."""

from __future__ import annotations

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
