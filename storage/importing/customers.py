"""Customers: upsert by the core system's customer number (``customer_no``) when the row has
one, else by phone and person; a referral code for each new customer.

Identity (``storage.identity``). A row with a ``customer_no`` updates that customer (their
phone may change) or, when the number is new, takes over a customer on the same phone who has
no number yet and is the same person (how customers imported before numbers were used get
theirs); otherwise it is a new customer, even on a phone others have. A row without one
updates the customer on its phone who is the same person; a phone that only other people have
rejects the row (``phone: belongs to another customer (张*) — add customer_no to import
both``): two people are never merged. A changed name with the same birthday updates, with a
warning.

Choices (``storage.choices``). Language, time zone and region that the customer chose in a
channel stay; the row's other cells are imported, and the summary counts such rows.

Referrers, by ``referred_by`` (a phone with exactly one customer) or ``referred_by_no``. A
customer's referrer, once recorded (by the bot's ``ref_`` link or an earlier import), is
never replaced: a referral bonus would move or be paid twice. A row naming another referrer
is still imported, without that cell, and reported as a warning.

Every number whose customers changed is counted again (``storage.shared_phones``), and an SMS
opt-out remembered for a number (``storage.suppressions``) reaches the customers added to it
or moved to it.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, NamedTuple

from tortoise.backends.base.client import BaseDBAsyncClient

from storage.choices import ADDRESS, IMPORT, INFERRED, customer_chose
from storage.identity import Match, mask_name, match
from storage.models import Customer, Language
from storage.phones import mask_phone
from storage.regions import RegionNames, RegionNotFound
from storage.shared_phones import apply_counts, recount
from storage.sql import Statements
from storage.suppressions import apply_number_opt_outs

from . import cells
from .rows import Columns, Context, Outcome, Parsed, Problem, RowError, given_or

REFERRAL_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # no 0/O, 1/I/L
REFERRAL_LENGTH = 8
DEFAULT_TIMEZONE = "Asia/Shanghai"
_EARLIEST_BIRTHDAY = date(1900, 1, 1)
_LANGUAGES = cells.enum_options(Language, zh=Language.ZH_CN, zh_cn=Language.ZH_CN)

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
    customer_no: str | None = None
    referred_by_no: str | None = None
    region_set_by: str = IMPORT  # or ADDRESS: inferred from the address column


class Known(NamedTuple):
    """A customer as a batch reads and writes them (the columns an import sets, in order)."""

    id: int
    customer_no: str | None
    name: str
    phone: str
    birthday: date | None
    lunar_birthday: bool
    language: Any
    language_set_by: str
    language_set_at: Any  # as the driver stores it (_RAW): only ever written back
    timezone: str
    timezone_set_by: str
    timezone_set_at: Any
    region_id: int | None
    region_set_by: str
    region_set_at: Any
    email: str
    referred_by_id: int | None


_NOT_GIVEN = ("", None)  # who set a value a new customer gets by default, and when
_COLUMNS = Known._fields
_RAW = ("language_set_at", "timezone_set_at", "region_set_at")
# What an update writes (by id, last): the referrer only by a separate statement, and only
# where none is recorded, so a link the bot made since this batch read the row stays.
_UPDATED = ("updated_at", "birthday_md", *_COLUMNS[1:-1])
_INSERTED = ("created_at", "updated_at", "birthday_md", *_COLUMNS[1:], "referral_code")


class CustomerImport:
    required: tuple[str, ...] = ("phone", "name")
    optional: tuple[str, ...] = ("customer_no", "birthday", "lunar_birthday", "language",
                                 "timezone", "region", "referred_by", "referred_by_no", "email",
                                 "address")

    def __init__(self, columns: Columns, context: Context) -> None:
        self._pick = columns.picker("phone", "name", "birthday", "lunar_birthday", "language",
                                    "timezone", "region", "referred_by", "email", "customer_no",
                                    "referred_by_no", "address")
        self._context = context
        self._phones = cells.Phones(context.default_region)
        self._zones = cells.TimeZones()
        self._regions = RegionNames(())
        self._today = context.now.astimezone(context.local_tz).date()

    async def prepare(self, conn: BaseDBAsyncClient) -> None:
        self._regions = await RegionNames.load(conn)

    def keys(self, record: CustomerRecord) -> tuple[str, ...]:
        """A later row about the same customer number or phone goes in a later batch."""
        phone = f"phone:{record.phone}"
        return (phone,) if record.customer_no is None else (phone, f"no:{record.customer_no}")

    def parse(self, values: list[str]) -> CustomerRecord:
        (phone_text, name, birthday_text, lunar_text, language_text, zone_text, region_text,
         referrer_text, email_text, number, referrer_number, address) = self._pick(values)
        phone = self._phones(cells.required(phone_text, "phone"), "phone")
        cells.bounded(cells.required(name, "name"), "name", 100)
        customer_no = cells.bounded(number, "customer_no", 40) or None
        referrer_no = cells.bounded(referrer_number, "referred_by_no", 40) or None
        birthday = self._birthday(birthday_text) if birthday_text else None
        lunar = cells.boolean(lunar_text, "lunar_birthday") if lunar_text else None
        language = cells.choice(language_text, "language", _LANGUAGES) if language_text else None
        zone = self._zones(zone_text, "timezone") if zone_text else None
        region_id = self._region(region_text) if region_text else None
        inferred = region_id is None and bool(address)
        if inferred:  # the address is only read, never stored
            region_id = self._regions.in_address(cells.bounded(address, "address", 200))
        referrer = self._phones(referrer_text, "referred_by") if referrer_text else None
        if referrer_no is not None:
            if referrer_no == customer_no:
                raise RowError("referred_by_no", "a customer cannot refer themselves")
            referrer = None  # the customer number says exactly who
        elif referrer is not None and referrer == phone:
            raise RowError("referred_by", "a customer cannot refer themselves")
        email = cells.email(email_text, "email") if email_text else None
        return CustomerRecord(phone, name, birthday, lunar, language, zone, region_id, referrer,
                              email, customer_no, referrer_no, ADDRESS if inferred else IMPORT)

    def _birthday(self, text: str) -> date:
        value = cells.iso_date(text, "birthday")
        if not _EARLIEST_BIRTHDAY <= value <= self._today:
            raise RowError("birthday", f"not a plausible birthday: {text}")
        return value

    def _region(self, text: str) -> int:
        try:
            return self._regions.resolve(text)
        except RegionNotFound as exc:
            raise RowError("region", str(exc)) from None

    async def write(self, conn: BaseDBAsyncClient,
                    batch: Sequence[Parsed[CustomerRecord]]) -> Outcome:
        statements = Statements(conn)
        writer = _BatchWriter(conn, statements.stored(self._context.now))
        await writer.read(batch)
        for item in batch:
            writer.take(item)
        await writer.flush()
        moved = await writer.count_phones(conn, self._context.now)
        await recount(moved, self._context.now, conn=conn)
        return writer.outcome


class _BatchWriter:
    """One batch: the customers its rows are about, what each row does to them, the writes."""

    def __init__(self, conn: BaseDBAsyncClient, stamp: Any) -> None:
        self.conn = conn
        self.statements = Statements(conn)
        self.stamp = stamp
        self.given = (IMPORT, stamp)  # who set a value the row gives, and when
        self.outcome = Outcome()
        self.by_phone: dict[str, list[Known]] = {}
        self.by_no: dict[str, Known] = {}
        self.before: dict[str, int] = {}  # customers on each phone read, as read
        self.codes: list[str] = []  # referral codes for the customers the batch adds
        self.inserts: list[list[Any]] = []
        self.created_phones: dict[str, list[str]] = {}  # phone → codes of customers added
        self.created_nos: dict[str, str] = {}  # customer number → code of the one added
        self.updates: list[list[Any]] = []
        self.touched: set[str] = set()  # phones customers were added to or left
        self.links: list[list[Any]] = []  # a first referrer for an existing customer
        # a referrer this batch adds (by referral code) for a customer: where, which
        self.late_links: list[tuple[str, str, Any]] = []
        self.kept_referrers: list[tuple[int, int]] = []  # line, the referrer recorded

    async def read(self, batch: Sequence[Parsed[CustomerRecord]]) -> None:
        records = [item.record for item in batch]
        phones = {r.phone for r in records} | {r.referred_by for r in records if r.referred_by}
        nos = ({r.customer_no for r in records if r.customer_no}
               | {r.referred_by_no for r in records if r.referred_by_no})
        rows = await self.statements.select_in(Customer, "phone", phones, _COLUMNS, _RAW)
        seen = {row[0] for row in rows}
        rows += [row for row in await self.statements.select_in(
            Customer, "customer_no", nos, _COLUMNS, _RAW) if row[0] not in seen]
        for row in map(Known._make, rows):
            if row.phone in phones:
                self.by_phone.setdefault(row.phone, []).append(row)
            if row.customer_no is not None:
                self.by_no[row.customer_no] = row
        self.before = {phone: len(self.by_phone.get(phone, ())) for phone in phones}
        # A code already in use (odds ≈ customers / 8.5·10¹¹ per code) fails the INSERT on
        # the unique index; the batch is then written again with fresh codes.
        self.codes = new_referral_codes(len(batch))

    def take(self, item: Parsed[CustomerRecord]) -> None:
        """Apply one row to what the batch knows, or report why it cannot be."""
        record = item.record
        try:
            referrer = self._referrer(record)
            current = self._target(item)
        except RowError as exc:
            self.outcome.problems.append(Problem(item.line, exc.column, exc.problem))
            return
        if current is None:
            self._create(record, referrer)
        else:
            self._update(item, current, referrer)

    def _referrer(self, record: CustomerRecord) -> int | str | None:
        """The referrer's id; the referral code of one this batch adds; None for none."""
        if record.referred_by_no is not None:
            found = self.by_no.get(record.referred_by_no)
            if found is not None:
                return found.id
            if record.referred_by_no in self.created_nos:
                return self.created_nos[record.referred_by_no]
            raise RowError("referred_by_no", f"no customer with customer_no "
                           f"{record.referred_by_no} (imported already or earlier in the file)")
        if record.referred_by is None:
            return None
        known = self.by_phone.get(record.referred_by, [])
        added = self.created_phones.get(record.referred_by, [])
        masked = mask_phone(record.referred_by)
        if len(known) + len(added) == 0:
            raise RowError("referred_by", f"no customer with phone {masked} "
                           "(imported already or earlier in the file)")
        if len(known) + len(added) > 1:
            raise RowError("referred_by", f"{masked} belongs to {len(known) + len(added)} "
                           "customers — give the referrer's customer number in referred_by_no")
        return known[0].id if known else added[0]

    def _target(self, item: Parsed[CustomerRecord]) -> Known | None:
        """The customer this row is about; None for a new one."""
        record = item.record
        if record.customer_no is not None:
            found = self.by_no.get(record.customer_no)
            if found is not None:
                return found
        on_phone = self.by_phone.get(record.phone)
        if not on_phone:
            return None  # the common cases first, decided without more ado
        if record.customer_no is not None:
            on_phone = [known for known in on_phone if known.customer_no is None]
        if len(on_phone) == 1 and on_phone[0].name == record.name:
            return on_phone[0]
        people = [(known, match(record.name, record.birthday, known.name, known.birthday))
                  for known in on_phone]
        for kind in (Match.SAME, Match.RENAMED):
            same = [known for known, found in people if found is kind]
            if len(same) > 1 and record.customer_no is None:
                raise RowError("phone", f"matches several customers ({_names(same)}) — add "
                               "customer_no to tell them apart")
            if same:
                if kind is Match.RENAMED:
                    self.outcome.warnings.append(Problem(
                        item.line, "name", f"was {mask_name(same[0].name)} with the same phone "
                        "and birthday (updated)"))
                return same[0]
        if people and record.customer_no is None:
            others = "another customer" if len(people) == 1 else "other customers"
            raise RowError("phone", f"belongs to {others} ({_names(on_phone)}) — add "
                           "customer_no to import both")
        return None

    def _create(self, record: CustomerRecord, referrer: int | str | None) -> None:
        stamp, given, blank = self.stamp, self.given, _NOT_GIVEN
        code = self.codes[len(self.inserts)]
        if isinstance(referrer, str):
            self.late_links.append((referrer, "referral_code", code))
            referrer = None
        language, zone, region = record.language, record.timezone, record.region_id
        self.inserts.append([
            stamp, stamp, month_day(record.birthday), record.customer_no, record.name,
            record.phone, record.birthday, bool(record.lunar_birthday),
            str(language or Language.ZH_CN), *(blank if language is None else given),
            zone or DEFAULT_TIMEZONE, *(blank if zone is None else given),
            region, *(blank if region is None else (record.region_set_by, stamp)),
            record.email or "", referrer, code,
        ])
        self.created_phones.setdefault(record.phone, []).append(code)
        self.touched.add(record.phone)
        if record.customer_no is not None:
            self.created_nos[record.customer_no] = code
        self.outcome.created += 1

    def _update(self, item: Parsed[CustomerRecord], current: Known,
                referrer: int | str | None) -> None:
        record = item.record
        recorded = current.referred_by_id
        late = isinstance(referrer, str)
        if recorded is not None and (late or referrer not in (None, recorded)):
            self.kept_referrers.append((item.line, recorded))
            referrer = None
        elif isinstance(referrer, str):
            self.late_links.append((referrer, "id", current.id))
            referrer = None
        new, kept = _updated(current, record, self.stamp)
        if kept:
            self.outcome.kept += 1
        if new.referred_by_id is None and referrer is not None:
            new = new._replace(referred_by_id=referrer)
            self.links.append([referrer, self.stamp, current.id])
        if new == current and not (late and recorded is None):
            self.outcome.unchanged += 1
            return
        self._remember(current, new)
        self.updates.append([self.stamp, month_day(new.birthday), *new[1:-1], new.id])
        self.outcome.updated += 1

    def _remember(self, current: Known, new: Known) -> None:
        """What later rows of the batch see: the customer as this row leaves them."""
        if current.phone in self.by_phone:
            self.by_phone[current.phone].remove(current)
        if new.phone != current.phone:
            self.touched.update((current.phone, new.phone))
        self.by_phone.setdefault(new.phone, []).append(new)
        if new.customer_no is not None:
            self.by_no[new.customer_no] = new

    async def flush(self) -> None:
        statements = self.statements
        await self._insert()
        await statements.update(Customer, _UPDATED, self.updates)
        await statements.update(Customer, ("referred_by_id", "updated_at"), self.links,
                                unless_set="referred_by_id")
        await self._link_late()
        # An SMS STOP from a number before these customers had it holds now: for the ones
        # added to it and the ones who moved to it (``storage.suppressions``).
        await apply_number_opt_outs(self.touched, conn=self.conn)
        if self.kept_referrers:
            phones = dict(await statements.select_in(
                Customer, "id", {referrer for _, referrer in self.kept_referrers},
                ("id", "phone")))
            self.outcome.warnings.extend(
                Problem(line, "referred_by", f"already referred by {mask_phone(phones[referrer])}"
                                             " (kept, the rest of the row was imported)")
                for line, referrer in self.kept_referrers)

    async def _insert(self) -> None:
        """The one place an import adds customers (to the numbers in ``created_phones``)."""
        await self.statements.insert(Customer, _INSERTED, self.inserts)

    async def _link_late(self) -> None:
        """Referrers this batch added, now that they have an id (the referred customer by
        referral code when added here too, else by id)."""
        if not self.late_links:
            return
        ids = dict(await self.statements.select_in(
            Customer, "referral_code", {code for code, _, _ in self.late_links},
            ("referral_code", "id")))
        for where in ("referral_code", "id"):
            rows = [[ids[code], self.stamp, value] for code, by, value in self.late_links
                    if by == where]
            await self.statements.update(Customer, ("referred_by_id", "updated_at"), rows,
                                         where=where, unless_set="referred_by_id")

    async def count_phones(self, conn: BaseDBAsyncClient, now: datetime) -> set[str]:
        """Flag or unflag the numbers whose customers changed; the old numbers of moved
        customers, whose other customers the batch did not read, are returned to count."""
        counts = {phone: (self.before[phone], len(self.by_phone.get(phone, ()))
                          + len(self.created_phones.get(phone, ())))
                  for phone in self.touched if phone in self.before}
        await apply_counts(conn, {p: c for p, c in counts.items() if c[0] != c[1]}, now)
        return {phone for phone in self.touched if phone not in self.before}


def _names(customers: Sequence[Known]) -> str:
    return ", ".join(mask_name(known.name) for known in customers)


def _updated(current: Known, record: CustomerRecord, stamp: Any) -> tuple[Known, bool]:
    """The customer with the row's cells applied: blank cells keep what is there, and a
    language, time zone or region the customer chose stays. Also whether one stayed."""
    kept = False
    chosen: list[Any] = []  # value, set_by, set_at of language, time zone and region
    for given, value, set_by, set_at, source in (
            (record.language, current.language, current.language_set_by,
             current.language_set_at, IMPORT),
            (record.timezone, current.timezone, current.timezone_set_by,
             current.timezone_set_at, IMPORT),
            (record.region_id, current.region_id, current.region_set_by,
             current.region_set_at, record.region_set_by)):
        if given is None or given == value:
            chosen += (value, set_by, set_at)
        elif customer_chose(set_by):
            kept = True
            chosen += (value, set_by, set_at)
        elif source in INFERRED and value is not None and set_by not in INFERRED:
            chosen += (value, set_by, set_at)  # a region named by an import stays
        else:
            chosen += (given, source, stamp)
    return Known._make((current.id, record.customer_no or current.customer_no, record.name,
                        record.phone, given_or(record.birthday, current.birthday),
                        given_or(record.lunar_birthday, current.lunar_birthday), *chosen,
                        given_or(record.email, current.email), current.referred_by_id)), kept
