"""Customers: upsert by phone (E.164), with a referral code for each new customer.

A customer's referrer, once recorded (by the bot's ``ref_`` link or an earlier import), is
never replaced: a referral bonus would move or be paid twice. A row naming another referrer
is still imported, without that cell, and reported as a warning.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import date
from typing import Any, NamedTuple

from tortoise.backends.base.client import BaseDBAsyncClient

from storage.models import Customer, Language, Region
from storage.phones import mask_phone
from storage.sql import Statements
from storage.suppressions import apply_number_opt_outs

from . import cells
from .rows import Columns, Context, Outcome, Parsed, Problem, RowError, given_or

REFERRAL_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # no 0/O, 1/I/L
REFERRAL_LENGTH = 8
DEFAULT_TIMEZONE = "Asia/Shanghai"
_EARLIEST_BIRTHDAY = date(1900, 1, 1)
_LANGUAGES = cells.enum_options(Language, zh=Language.ZH_CN, zh_cn=Language.ZH_CN)

# The columns an import sets, in the order of the tuples below.
_FIELDS = ("name", "birthday", "birthday_md", "lunar_birthday", "language", "timezone",
           "region_id", "referred_by_id", "email")
# What an update sets: the referrer only by a separate statement, and only where none is
# recorded, so a link the bot made since this batch read the row stays.
_UPDATED = tuple(name for name in _FIELDS if name != "referred_by_id")


# Random bytes below 248 = 8 × 31 map evenly onto the alphabet; the rest are dropped.
_BYTE_TO_CHAR = bytes(ord(REFERRAL_ALPHABET[b % len(REFERRAL_ALPHABET)]) for b in range(256))
_UNEVEN_BYTES = bytes(range(256 // len(REFERRAL_ALPHABET) * len(REFERRAL_ALPHABET), 256))


def new_referral_codes(count: int) -> list[str]:
    """``count`` codes of eight characters that cannot be misread (31⁸ ≈ 8.5·10¹¹ codes),
    from ``secrets``; checking them against the codes in use is the caller's job."""
    codes: list[str] = []
    while len(codes) < count:
        need = count - len(codes)
        text = secrets.token_bytes(need * REFERRAL_LENGTH * 9 // 8 + 8).translate(
            _BYTE_TO_CHAR, _UNEVEN_BYTES).decode("ascii")
        codes.extend(text[i:i + REFERRAL_LENGTH]
                     for i in range(0, len(text) - REFERRAL_LENGTH + 1, REFERRAL_LENGTH))
    return codes[:count]


def month_day(birthday: date | None) -> int | None:
    return None if birthday is None else birthday.month * 100 + birthday.day


class CustomerRecord(NamedTuple):
    """One valid row; ``None`` means the cell was blank (or the column absent)."""

    phone: str
    name: str
    birthday: date | None
    lunar_birthday: bool | None
    language: Language | None
    timezone: str | None
    region_id: int | None
    referred_by: str | None
    email: str | None


class CustomerImport:
    required: tuple[str, ...] = ("phone", "name")
    optional: tuple[str, ...] = ("birthday", "lunar_birthday", "language", "timezone",
                                 "region", "referred_by", "email")

    def __init__(self, columns: Columns, context: Context) -> None:
        self._pick = columns.picker("phone", "name", "birthday", "lunar_birthday", "language",
                                    "timezone", "region", "referred_by", "email")
        self._context = context
        self._phones = cells.Phones(context.default_region)
        self._zones = cells.TimeZones()
        self._regions: dict[str, int] = {}
        self._today = context.now.astimezone(context.local_tz).date()

    async def prepare(self, conn: BaseDBAsyncClient) -> None:
        rows = await Region.all().using_db(conn).values_list("code", "id")
        self._regions = {str(code).casefold(): int(pk) for code, pk in rows}

    def key(self, record: CustomerRecord) -> str:
        return record.phone

    def parse(self, values: list[str]) -> CustomerRecord:
        (phone_text, name, birthday_text, lunar_text, language_text, zone_text, region_text,
         referrer_text, email_text) = self._pick(values)
        phone = self._phones(cells.required(phone_text, "phone"), "phone")
        cells.bounded(cells.required(name, "name"), "name", 100)
        birthday = self._birthday(birthday_text) if birthday_text else None
        lunar = cells.boolean(lunar_text, "lunar_birthday") if lunar_text else None
        language = cells.choice(language_text, "language", _LANGUAGES) if language_text else None
        zone = self._zones(zone_text, "timezone") if zone_text else None
        region_id = self._region(region_text) if region_text else None
        referrer = self._phones(referrer_text, "referred_by") if referrer_text else None
        if referrer is not None and referrer == phone:
            raise RowError("referred_by", "a customer cannot refer themselves")
        email = cells.email(email_text, "email") if email_text else None
        return CustomerRecord(phone, name, birthday, lunar, language, zone, region_id, referrer,
                              email)

    def _birthday(self, text: str) -> date:
        value = cells.iso_date(text, "birthday")
        if not _EARLIEST_BIRTHDAY <= value <= self._today:
            raise RowError("birthday", f"not a plausible birthday: {text}")
        return value

    def _region(self, text: str) -> int:
        region_id = self._regions.get(text.casefold())
        if region_id is None:
            raise RowError("region", f"unknown region code {text!r}")
        return region_id

    async def write(self, conn: BaseDBAsyncClient,
                    batch: Sequence[Parsed[CustomerRecord]]) -> Outcome:
        outcome = Outcome()
        in_batch = {item.record.phone for item in batch}
        referrers = {item.record.referred_by for item in batch if item.record.referred_by}
        statements = Statements(conn)
        stamp = statements.stored(self._context.now)
        existing: dict[str, tuple[Any, ...]] = {
            row[1]: row for row in await statements.select_in(
                Customer, "phone", in_batch | referrers, ("id", "phone", *_FIELDS))
        }
        inserts: list[list[Any]] = []
        updates: list[list[Any]] = []
        links: list[list[Any]] = []  # a first referrer for an existing customer
        late_links: list[list[Any]] = []  # the referrer came earlier in this very batch
        kept: list[tuple[int, int]] = []  # line, the referrer recorded
        accepted: set[str] = set()
        for item in batch:
            record = item.record
            referrer_id: int | None = None
            late = False
            if record.referred_by is not None:
                referrer = existing.get(record.referred_by)
                if referrer is not None:
                    referrer_id = referrer[0]
                elif record.referred_by in accepted:
                    late = True
                else:
                    outcome.problems.append(Problem(
                        item.line, "referred_by",
                        f"no customer with phone {mask_phone(record.referred_by)} "
                        "(imported already or earlier in the file)"))
                    continue
            accepted.add(record.phone)
            current = existing.get(record.phone)
            recorded: int | None = None if current is None else current[9]
            if recorded is not None and (late or referrer_id not in (None, recorded)):
                kept.append((item.line, recorded))
                referrer_id, late = None, False
            if late:
                late_links.append([record.referred_by, record.phone])
            if current is None:
                inserts.append([
                    record.name, record.birthday, month_day(record.birthday),
                    bool(record.lunar_birthday), str(record.language or Language.ZH_CN),
                    record.timezone or DEFAULT_TIMEZONE, record.region_id, referrer_id,
                    record.email or "", record.phone,
                ])
                outcome.created += 1
                continue
            old = current[2:]
            birthday = given_or(record.birthday, old[1])
            new = (
                record.name, birthday, month_day(birthday),
                given_or(record.lunar_birthday, old[3]), given_or(record.language, old[4]),
                given_or(record.timezone, old[5]), given_or(record.region_id, old[6]),
                given_or(referrer_id, old[7]), given_or(record.email, old[8]),
            )
            if new == old and not late:
                outcome.unchanged += 1
                continue
            if new[7] != old[7]:
                links.append([new[7], stamp, current[0]])
            updates.append([stamp, *new[:4], str(new[4]), new[5], new[6], new[8], current[0]])
            outcome.updated += 1

        if inserts:
            # A code already in use (odds ≈ customers / 8.5·10¹¹ per code) fails the INSERT on
            # the unique index; the batch is then written again with fresh codes.
            codes = new_referral_codes(len(inserts))
            await statements.insert(
                Customer,
                ("created_at", "updated_at", *_FIELDS, "phone", "referral_code"),
                [[stamp, stamp, *row, code] for row, code in zip(inserts, codes, strict=True)],
            )
            # An SMS STOP from one of these numbers before they were customers holds now.
            await apply_number_opt_outs([row[-1] for row in inserts], conn=conn)
        await statements.update(Customer, ("updated_at", *_UPDATED), updates)
        await statements.update(Customer, ("referred_by_id", "updated_at"), links,
                                unless_set="referred_by_id")
        if late_links:
            ids = dict(await statements.select_in(
                Customer, "phone", {link[0] for link in late_links}, ("phone", "id")))
            await statements.update(
                Customer, ("referred_by_id", "updated_at"),
                [[ids[referrer], stamp, phone] for referrer, phone in late_links], where="phone",
                unless_set="referred_by_id")
        if kept:
            phones = dict(await statements.select_in(
                Customer, "id", {referrer for _, referrer in kept}, ("id", "phone")))
            outcome.warnings.extend(
                Problem(line, "referred_by", f"already referred by {mask_phone(phones[referrer])}"
                                             " (kept, the rest of the row was imported)")
                for line, referrer in kept)
        return outcome
