"""Phone numbers: normalise to E.164 with phonenumbers, and mask for logs and lists."""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import PhoneMetadata


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


class PhoneNormaliser:
    """``normalise_phone`` for one default region, with a shortcut for the common case.

    ``normalise_phone`` costs ≈30 µs: more than the whole per-row budget of a large import,
    and a tenth of an inbound SMS's CPU. The shortcut handles what nearly every number holds —
    a mobile number of the default region, in ASCII digits with optional ``+cc``/``00cc``,
    spaces and hyphens — by matching the same phonenumbers metadata that ``is_valid_number``
    uses (general and mobile patterns and lengths). Anything it is not sure of (a national or
    international prefix that parsing would strip, other punctuation, other countries,
    landlines, invalid numbers) goes to ``normalise_phone``, so the result and the errors are
    the same either way; the test suite compares both over every five-digit mobile prefix.
    """

    def __init__(self, default_region: str) -> None:
        self.default_region = default_region
        metadata = PhoneMetadata.metadata_for_region(default_region.upper())
        general = None if metadata is None else metadata.general_desc
        mobile = None if metadata is None else metadata.mobile
        self._shortcut = metadata is not None and general is not None and mobile is not None
        if metadata is None or general is None or mobile is None:
            return
        self._cc = str(metadata.country_code)
        self._plus = "+" + self._cc
        # +cc or 00cc (optional), then ASCII digits only
        self._shape = re.compile(rf"(\+{self._cc}|00{self._cc})?([0-9]+)")
        self._general = re.compile(general.national_number_pattern or "(?!)")
        self._mobile = re.compile(mobile.national_number_pattern or "(?!)")
        self._lengths = frozenset(mobile.possible_length or general.possible_length or ())
        self._national_prefix = re.compile(metadata.national_prefix_for_parsing or "(?!)")
        self._international_prefix = re.compile(metadata.international_prefix or "(?!)")

    def __call__(self, text: str) -> str:
        """``normalise_phone(text, default_region)``; ``InvalidPhone`` as it raises it."""
        fast = self.shortcut(text)
        if fast is not None:
            return fast
        return normalise_phone(text, self.default_region)

    def shortcut(self, text: str) -> str | None:
        """What ``normalise_phone`` returns for ``text`` when it is a mobile number of the
        default region in one of the plain shapes; None when the shortcut is not sure."""
        if not self._shortcut:
            return None
        shape = self._shape.fullmatch(text.replace(" ", "").replace("-", ""))
        if shape is None:
            return None
        prefixed, national = shape.groups()
        if len(national) not in self._lengths or self._national_prefix.match(national):
            return None
        if not prefixed and (national.startswith(self._cc)
                             or self._international_prefix.match(national)):
            return None  # parsing might read a country code or an international prefix here
        if self._mobile.fullmatch(national) and self._general.fullmatch(national):
            return self._plus + national
        return None


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
