"""Policies: upsert by policy number; the owner by ``customer_no`` when the row has one, else by
``phone`` (which must then be one customer's alone); ``renews`` links a renewal to the policy
it replaces (that one becomes ``renewed``, with the renewal desk's outcome ``renewed``).

``agent`` and ``branch`` say who sold the policy and whose branch it is (an empty cell keeps
what is recorded). A new policy's ``original_agent`` — whom the business is attributed to for
life — is the renewed policy's when it renews one, else its own agent."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date
from typing import Any, NamedTuple

from tortoise.backends.base.client import BaseDBAsyncClient

from storage.choices import PLATE
from storage.models import Customer, Policy, PolicyStatus, Product, Region
from storage.phones import mask_phone
from storage.plates import plate_region
from storage.renewal_desk import Outcome as RenewalOutcome
from storage.sql import Params, Statements, execute

from . import cells
from .rows import Columns, Context, Outcome, Parsed, Problem, RowError
from .source import ImportFileError

PRODUCTS = cells.enum_options(Product, 交强险=Product.COMPULSORY, 商业险=Product.COMMERCIAL)
STATUSES = cells.enum_options(
    PolicyStatus, 有效=PolicyStatus.ACTIVE, 已过期=PolicyStatus.EXPIRED,
    过期=PolicyStatus.EXPIRED, 已退保=PolicyStatus.CANCELLED, 退保=PolicyStatus.CANCELLED,
    已续保=PolicyStatus.RENEWED,
)
# 沪A·12345, 沪A 12345 and 沪a-12345 are one plate: 沪A12345
_PLATE_NOISE = re.compile(r"[\s·•・.\-]")

# Policy columns an import sets, in the order of the tuples below.
_FIELDS = ("customer_id", "product", "plate", "vehicle", "start_date", "end_date",
           "premium_cents", "status", "cancelled_at", "agent", "branch")


class PolicyRecord(NamedTuple):
    number: str
    phone: str | None
    product: Product
    plate: str
    vehicle: str | None
    start_date: date
    end_date: date
    premium_cents: int
    status: PolicyStatus | None
    renews: str | None
    customer_no: str | None = None
    agent: str = ""
    branch: str = ""


class PolicyImport:
    required: tuple[str, ...] = ("number", "product", "plate", "start_date", "end_date",
                                 "premium")
    optional: tuple[str, ...] = ("phone", "customer_no", "vehicle", "status", "renews",
                                 "agent", "branch")

    def __init__(self, columns: Columns, context: Context) -> None:
        if not (columns.has("phone") or columns.has("customer_no")):
            raise ImportFileError("missing column(s) phone (or customer_no): whose policy "
                                  "is it?")
        self._pick = columns.picker("number", "phone", "product", "plate", "vehicle",
                                    "start_date", "end_date", "premium", "status", "renews",
                                    "customer_no", "agent", "branch")
        self._context = context
        self._region_ids: dict[str, int] = {}  # built-in region code → id
        self._phones = cells.Phones(context.default_region)

    async def prepare(self, conn: BaseDBAsyncClient) -> None:
        rows = await Region.filter(builtin=True).using_db(conn).values_list("code", "id")
        self._region_ids = {str(code): int(pk) for code, pk in rows}

    def keys(self, record: PolicyRecord) -> tuple[str, ...]:
        return (record.number,)

    def parse(self, values: list[str]) -> PolicyRecord:
        (number, phone_text, product_text, plate_text, vehicle, start_text, end_text,
         premium_text, status_text, renews_text, customer_no, agent, branch) = self._pick(values)
        cells.bounded(cells.required(number, "number"), "number", 40)
        cells.bounded(customer_no, "customer_no", 40)
        cells.bounded(agent, "agent", 64)
        cells.bounded(branch, "branch", 32)
        phone = (self._phones(phone_text, "phone") if phone_text
                 else None if customer_no else cells.required(phone_text, "phone"))
        product = cells.choice(cells.required(product_text, "product"), "product", PRODUCTS)
        plate = _PLATE_NOISE.sub("", cells.required(plate_text, "plate")).upper()
        cells.bounded(plate, "plate", 16)
        cells.bounded(vehicle, "vehicle", 100)
        start = cells.iso_date(cells.required(start_text, "start_date"), "start_date")
        end = cells.iso_date(cells.required(end_text, "end_date"), "end_date")
        if end <= start:
            raise RowError("end_date", "must be after start_date")
        premium = cells.cents(cells.required(premium_text, "premium"), "premium")
        status = cells.choice(status_text, "status", STATUSES) if status_text else None
        renews = renews_text or None
        if renews is not None:
            cells.bounded(renews, "renews", 40)
            if renews == number:
                raise RowError("renews", "a policy cannot renew itself")
        return PolicyRecord(number, phone, product, plate, vehicle or None, start, end, premium,
                            status, renews, customer_no or None, agent.strip(), branch.strip())

    async def write(self, conn: BaseDBAsyncClient,
                    batch: Sequence[Parsed[PolicyRecord]]) -> Outcome:
        outcome = Outcome()
        now = self._context.now
        numbers = {item.record.number for item in batch}
        renewed = {item.record.renews for item in batch if item.record.renews}
        statements = Statements(conn)
        stamp = statements.stored(now)
        owners = await _owners(statements, [item.record for item in batch])
        originals = await _original_agents(statements, renewed)
        existing: dict[str, tuple[Any, ...]] = {
            row[1]: row for row in await statements.select_in(
                Policy, "number", numbers | renewed, ("id", "number", *_FIELDS, "renewed_by_id"))
        }
        inserts: list[list[Any]] = []
        updates: list[list[Any]] = []
        links: list[tuple[str, str]] = []  # (renewal, renewed) still to be linked
        ends = {row[1]: row[7] for row in existing.values()}  # policy number: end date
        starts: dict[str, date] = {}  # this batch's renewals: start date
        arrived: set[str] = set()  # numbers of this batch's rows accepted so far
        plates: dict[int, str] = {}  # an owner's first plate in the batch
        claimed: set[str] = set()  # policies renewed by this batch's rows so far
        for item in batch:
            record = item.record
            found = owners.get(record.customer_no or record.phone or "", [])
            if len(found) != 1:
                outcome.problems.append(Problem(item.line, *_no_owner(record, found)))
                continue
            owner = found[0]
            current = existing.get(record.number)
            link = False
            if record.renews is not None:
                old = existing.get(record.renews)
                problem = _renewal_problem(record.renews, current, old, arrived, claimed)
                if problem is not None:
                    outcome.problems.append(Problem(item.line, "renews", problem))
                    continue
                claimed.add(record.renews)
                link = old is None or old[-1] is None
                if link:
                    links.append((record.number, record.renews))
            arrived.add(record.number)
            plates.setdefault(owner, record.plate)
            ends[record.number] = record.end_date
            starts[record.number] = record.start_date
            if current is None:
                status = record.status or PolicyStatus.ACTIVE
                original = (originals.get(record.renews, "") if record.renews else "") \
                    or record.agent
                originals[record.number] = original
                inserts.append([
                    owner, str(record.product), record.plate, record.vehicle or "",
                    record.start_date, record.end_date, record.premium_cents, str(status),
                    now if status == PolicyStatus.CANCELLED else None, record.agent,
                    record.branch, original, record.number,
                ])
                outcome.created += 1
                continue
            old_values = current[2:-1]
            renewed_by = current[-1]
            status = record.status or current[9]
            if renewed_by is not None and status in (PolicyStatus.ACTIVE, PolicyStatus.EXPIRED):
                status = PolicyStatus.RENEWED  # the renewal link decides, not an older export
            cancelled_at = current[10]
            if status == PolicyStatus.CANCELLED and cancelled_at is None:
                cancelled_at = now
            new = (owner, record.product, record.plate, record.vehicle or current[5],
                   record.start_date, record.end_date, record.premium_cents, status,
                   cancelled_at, record.agent or current[11], record.branch or current[12])
            if new == old_values and not link:
                outcome.unchanged += 1
                continue
            updates.append([stamp, owner, str(record.product), *new[2:7], str(status),
                            *new[8:], current[0]])
            outcome.updated += 1

        await statements.insert(
            Policy, ("created_at", "updated_at", *_FIELDS, "original_agent", "number",
                     "coverage"),
            [[stamp, stamp, *row, "{}"] for row in inserts])
        await statements.update(Policy, ("updated_at", *_FIELDS), updates)
        if links:
            ids = dict(await statements.select_in(
                Policy, "number", {n for pair in links for n in pair}, ("number", "id")))
            await statements.update(
                Policy, ("renewed_by_id", "status", "renewed_at", "updated_at", "outcome",
                         "outcome_reason", "outcome_note", "outcome_by", "outcome_at",
                         "renewal_gap_days"),
                [[ids[renewal], str(PolicyStatus.RENEWED), stamp, stamp,
                  str(RenewalOutcome.RENEWED), "", "", "import", stamp,
                  _gap(ends.get(old), starts[renewal]), ids[old]] for renewal, old in links])
        await self._regions_from_plates(conn, plates)
        return outcome

    async def _regions_from_plates(self, conn: BaseDBAsyncClient,
                                   plates: dict[int, str]) -> None:
        """Owners without a region get their plate's (storage.plates): one statement per
        region, and only where no region is set, so nobody's named region changes."""
        owners: dict[int, list[int]] = {}
        for owner, plate in plates.items():
            code = plate_region(plate)
            if code is not None and (region := self._region_ids.get(code)) is not None:
                owners.setdefault(region, []).append(owner)
        for region, ids in owners.items():
            params = Params(region=region, by=PLATE, at=self._context.now)
            await execute(conn, "UPDATE customer SET region_id = :region, region_set_by = :by, "
                          f"region_set_at = :at WHERE region_id IS NULL AND id IN "
                          f"({params.add_all(ids)})", params)


async def _owners(statements: Statements,
                  records: Sequence[PolicyRecord]) -> dict[str, list[int]]:
    """The customers each row's customer number or, without one, phone names."""
    owners: dict[str, list[int]] = {}
    nos = {r.customer_no for r in records if r.customer_no}
    for no, pk in await statements.select_in(Customer, "customer_no", nos, ("customer_no", "id")):
        owners[no] = [pk]
    phones = {r.phone for r in records if r.phone and not r.customer_no}
    for phone, pk in await statements.select_in(Customer, "phone", phones, ("phone", "id")):
        owners.setdefault(phone, []).append(pk)
    return owners


def _gap(end: date | None, start: date) -> int | None:
    """Days from a policy's expiry to its renewal's start (1: no gap), kept in a small int."""
    if end is None:
        return None
    return max(-32768, min(32767, (start - end).days))


async def _original_agents(statements: Statements, renewed: set[str]) -> dict[str, str]:
    """The agent each renewed policy's business is attributed to, by policy number."""
    return {number: original or agent for number, original, agent in await statements.select_in(
        Policy, "number", renewed, ("number", "original_agent", "agent"))}


def _no_owner(record: PolicyRecord, found: list[int]) -> tuple[str, str]:
    """The column and problem of a row whose owner is not one known customer."""
    if record.customer_no:
        return "customer_no", f"no customer with customer_no {record.customer_no}"
    masked = mask_phone(record.phone or "")
    if not found:
        return "phone", f"no customer with phone {masked}"
    return "phone", (f"{masked} belongs to {len(found)} customers — add customer_no to say "
                     "whose policy it is")


def _renewal_problem(renews: str, current: tuple[Any, ...] | None, old: tuple[Any, ...] | None,
                     arrived: set[str], claimed: set[str]) -> str | None:
    """Why this row may not renew policy ``renews``, if it may not.

    ``current`` and ``old`` are the database rows of this policy and of the renewed one
    (``renewed_by_id`` last); ``arrived`` and ``claimed`` are the policies accepted and renewed
    by earlier rows of the batch.
    """
    if old is None and renews not in arrived:
        return f"no policy with number {renews} (imported already or earlier in the file)"
    if renews in claimed:
        return f"policy {renews} is renewed by another row of this file"
    this_id = None if current is None else current[0]
    if old is not None and old[-1] is not None and old[-1] != this_id:
        return f"policy {renews} is already renewed by another policy"
    return None
