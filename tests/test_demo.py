"""The offline demo: deterministic demo data that is valid, idempotent and grows by prefix, and
the ``engage demo`` command end to end."""

from __future__ import annotations

import io
import re
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from tortoise.backends.base.executor import EXECUTOR_CACHE

from bot.cli import main
from bot.demo import resolve_day, run_demo
from bot.settings import Settings
from storage.demo_data import (
    DOCUMENT_KEYS,
    HOUSEHOLD_EVERY,
    PAYMENT_PREFIX,
    REFERRAL_ALPHABET,
    REGIONS,
    RENEWAL_MARKS,
    DemoCustomer,
    DemoDataReport,
    demo_customer_no,
    demo_household,
    demo_phone,
    generate_customer,
    generate_customers,
    seed_demo_data,
)
from storage.models import (
    Claim,
    ClaimEvent,
    ClaimStatus,
    Customer,
    Payment,
    PaymentKind,
    Policy,
    PolicyStatus,
    Product,
    Region,
)
from storage.phones import normalise_phone

TODAY = date(2026, 11, 21)
MAINLAND_MOBILE = re.compile(r"^\+861[3-9]\d{9}$")

# The claim state machine: reported → registered → surveyed → loss assessed → approved → paid
# → closed, with rejected and withdrawn branching off before the money moves.
NEXT_STATUSES: dict[ClaimStatus, set[ClaimStatus]] = {
    ClaimStatus.REPORTED: {ClaimStatus.REGISTERED, ClaimStatus.WITHDRAWN},
    ClaimStatus.REGISTERED: {ClaimStatus.SURVEYED, ClaimStatus.REJECTED, ClaimStatus.WITHDRAWN},
    ClaimStatus.SURVEYED: {ClaimStatus.LOSS_ASSESSED, ClaimStatus.REJECTED,
                           ClaimStatus.WITHDRAWN},
    ClaimStatus.LOSS_ASSESSED: {ClaimStatus.APPROVED, ClaimStatus.REJECTED},
    ClaimStatus.APPROVED: {ClaimStatus.PAID},
    ClaimStatus.PAID: {ClaimStatus.CLOSED},
    ClaimStatus.CLOSED: set(),
    ClaimStatus.REJECTED: set(),
    ClaimStatus.WITHDRAWN: set(),
}


def _year_before(day: date) -> date:
    try:
        return day.replace(year=day.year - 1)
    except ValueError:  # 29 February
        return date(day.year - 1, 2, 28)


async def _counts() -> dict[str, int]:
    return {
        "regions": await Region.filter(alias__in=[r.code for r in REGIONS]).count(),
        "customers": await Customer.all().count(),
        "policies": await Policy.all().count(),
        "claims": await Claim.all().count(),
        "claim events": await ClaimEvent.all().count(),
        "payments": await Payment.all().count(),
    }


# ---------------------------------------------------------------------------------------------
# Generation (pure)


@pytest.fixture(scope="module")
def people() -> list[DemoCustomer]:
    return list(generate_customers(600, today=TODAY))


def test_every_phone_is_a_valid_mainland_mobile_shared_only_by_couples(
        people: list[DemoCustomer]) -> None:
    phones = [c.phone for c in people]
    shared = {phone for phone in phones if phones.count(phone) > 1}
    assert max(phones.count(phone) for phone in phones) == 2
    assert len(shared) == len(people) // HOUSEHOLD_EVERY
    assert len({c.customer_no for c in people}) == len(people)
    for phone in phones:
        assert MAINLAND_MOBILE.match(phone), phone
        assert normalise_phone(phone) == phone


def test_referral_codes_are_unique_and_unambiguous(people: list[DemoCustomer]) -> None:
    codes = [c.referral_code for c in people]
    assert len(set(codes)) == len(codes)
    assert all(len(code) == 8 and set(code) <= set(REFERRAL_ALPHABET) for code in codes)
    assert not set("01IO") & set(REFERRAL_ALPHABET)
    referrers = [c.referred_by for c in people if c.referred_by is not None]
    assert referrers, "some customers were referred"
    assert all(r < c.index for c in people if (r := c.referred_by) is not None)


def test_birthdays_languages_and_regions_are_spread(people: list[DemoCustomer]) -> None:
    for c in people:
        assert c.birthday_md == (c.birthday.month * 100 + c.birthday.day if c.birthday else None)
        assert c.timezone == next(r.timezone for r in REGIONS if r.code == c.region_code)
    assert sum(c.birthday_md == 1121 for c in people) >= 3  # greetings on the demo day
    assert any(c.birthday is not None and (c.birthday.month, c.birthday.day) == (2, 29)
               for c in people)
    assert any(c.lunar_birthday for c in people)
    english = [c for c in people if c.language == "en"]
    assert 0.05 < len(english) / len(people) < 0.15
    assert all(re.fullmatch(r"[A-Za-zü]+ [A-Za-zü]+", c.name) for c in english)
    chinese = [c for c in people if c.language == "zh-CN"]
    assert all(re.fullmatch(r"[\u4e00-\u9fff]{2,4}", c.name) for c in chinese)
    assert {c.region_code for c in people} == {r.code for r in REGIONS}
    assert any(c.timezone == "Asia/Urumqi" for c in people)


def test_policy_statuses_agree_with_their_dates(people: list[DemoCustomer]) -> None:
    start_of_today = datetime.combine(TODAY, time(0), tzinfo=ZoneInfo("Asia/Shanghai"))
    numbers = [p.number for c in people for p in c.policies]
    assert len(set(numbers)) == len(numbers)
    for c in people:
        region = next(r for r in REGIONS if r.code == c.region_code)
        by_number = {p.number: p for p in c.policies}
        for p in c.policies:
            assert p.start_date == _year_before(p.end_date) + timedelta(days=1)
            assert p.plate.split("·")[0] in region.plate_prefixes
            assert p.paid_at < start_of_today
            low, high = (95_000, 110_000) if p.product is Product.COMPULSORY \
                else (200_000, 900_000)
            assert low <= p.premium_cents <= high
            if p.status is PolicyStatus.ACTIVE:
                assert p.end_date >= TODAY and p.renewed_by is None
            elif p.status is PolicyStatus.EXPIRED:
                assert p.end_date < TODAY and p.renewed_by is None
            elif p.status is PolicyStatus.RENEWED:
                assert p.renewed_by is not None and p.renewed_at is not None
                successor = by_number[p.renewed_by]
                assert successor.start_date == p.end_date + timedelta(days=1)
                assert (successor.plate, successor.product) == (p.plate, p.product)
                assert p.renewed_at < start_of_today
            else:
                assert p.status is PolicyStatus.CANCELLED
                assert p.cancelled_at is not None
                assert p.start_date < p.cancelled_at.date() < TODAY


def test_renewal_rules_have_work_on_every_mark(people: list[DemoCustomer]) -> None:
    unrenewed_ends = Counter(
        (p.end_date - TODAY).days for c in people for p in c.policies
        if p.status in (PolicyStatus.ACTIVE, PolicyStatus.EXPIRED)
    )
    for mark in RENEWAL_MARKS:
        assert unrenewed_ends[mark] >= 2, mark
    ends = [(p.end_date - TODAY).days for c in people for p in c.policies]
    assert min(ends) < 0 and max(ends) > 300  # spread over the year around the day


def test_claims_follow_the_state_machine(people: list[DemoCustomer]) -> None:
    start_of_today = datetime.combine(TODAY, time(0), tzinfo=ZoneInfo("Asia/Shanghai"))
    claims = [(c, claim) for c in people for claim in c.claims]
    assert {claim.status for _, claim in claims} == set(ClaimStatus)
    for c, claim in claims:
        events = claim.events
        assert events[0].status is ClaimStatus.REPORTED
        assert events[0].occurred_at == claim.reported_at
        assert events[-1].status is claim.status
        for before, after in pairwise(events):
            assert after.status in NEXT_STATUSES[before.status]
            assert after.occurred_at > before.occurred_at
        assert events[-1].occurred_at < start_of_today
        policy = next(p for p in c.policies if p.number == claim.policy_number)
        assert policy.start_date <= claim.reported_at.date() <= policy.end_date
        statuses = {e.status for e in events}
        assert (claim.paid_cents is not None) == (ClaimStatus.PAID in statuses)
        assert (claim.estimated_cents is not None) == (ClaimStatus.SURVEYED in statuses)
        if claim.paid_cents is not None:
            assert claim.estimated_cents is not None
            assert 0 < claim.paid_cents <= claim.estimated_cents
        assert set(claim.required_documents) <= set(DOCUMENT_KEYS)
        assert {"driving_licence", "vehicle_licence", "photos"} <= set(claim.required_documents)


def test_every_status_appears_in_a_small_demo() -> None:
    few = list(generate_customers(50, today=TODAY))
    assert {claim.status for c in few for claim in c.claims} == set(ClaimStatus)
    ends = {(p.end_date - TODAY).days for c in few for p in c.policies}
    assert set(RENEWAL_MARKS) <= ends


def test_generation_is_deterministic_and_grows_by_prefix(people: list[DemoCustomer]) -> None:
    assert list(generate_customers(200, today=TODAY)) == people[:200]
    assert generate_customer(123, today=TODAY) == people[123]
    assert generate_customer(5, today=TODAY, seed=7) != people[5]


def test_who_the_customers_are_does_not_depend_on_the_day(people: list[DemoCustomer]) -> None:
    later = list(generate_customers(100, today=date(2027, 3, 1)))

    def identity(c: DemoCustomer) -> tuple[object, ...]:
        return (c.name, c.phone, c.referral_code, c.region_code, c.language, c.referred_by,
                [p.number for p in c.policies], [claim.number for claim in c.claims],
                [e.external_id for claim in c.claims for e in claim.events])

    assert [identity(c) for c in later] == [identity(c) for c in people[:100]]


# ---------------------------------------------------------------------------------------------
# Persistence


async def test_seeding_writes_a_consistent_database(db: str) -> None:
    report = await seed_demo_data(customers=60, today=TODAY)

    counts = await _counts()
    assert counts == {name: count.total for name, count in report.entities()}
    assert all(count.existing == 0 and count.created > 0
               for name, count in report.entities() if name != "regions")
    # the demo's cities are built-in regions (their short codes are aliases)
    assert (report.regions.existing, report.regions.created) == (12, 0)
    assert counts["regions"] == 12 and counts["customers"] == 60

    customers = await Customer.all()
    assert all(normalise_phone(c.phone) == c.phone for c in customers)
    assert all(c.birthday_md == (c.birthday.month * 100 + c.birthday.day if c.birthday else None)
               for c in customers)
    assert len({c.referral_code for c in customers}) == 60
    assert all(c.region_id is not None for c in customers)
    linked = [c for c in customers if c.referred_by_id is not None]
    assert linked and all(c.referred_by_id != c.id for c in linked)

    for claim in await Claim.all():
        events = await ClaimEvent.filter(claim_id=claim.id).order_by("occurred_at", "id")
        assert events and events[-1].status == claim.status
        assert events[0].status == ClaimStatus.REPORTED

    policies = {p.id: p for p in await Policy.all()}
    for p in policies.values():
        if p.status == PolicyStatus.RENEWED:
            assert p.renewed_by_id is not None
            assert policies[p.renewed_by_id].start_date == p.end_date + timedelta(days=1)
        else:
            assert p.renewed_by_id is None
        if p.status == PolicyStatus.ACTIVE:
            assert p.end_date >= TODAY
        if p.status == PolicyStatus.EXPIRED:
            assert p.end_date < TODAY

    payments = await Payment.all()
    assert {pay.external_id for pay in payments} == {
        f"{PAYMENT_PREFIX}{p.number}" for p in policies.values()
    }
    for pay in payments:
        policy = policies[pay.policy_id]
        assert pay.kind == PaymentKind.PREMIUM
        assert (pay.amount_cents, pay.customer_id) == (policy.premium_cents, policy.customer_id)


async def test_second_run_creates_nothing(db: str) -> None:
    first = await seed_demo_data(customers=40, today=TODAY)
    before = await _counts()

    again = await seed_demo_data(customers=40, today=TODAY)

    assert await _counts() == before
    assert again.created == 0
    for (name, now), (_, then) in zip(again.entities(), first.entities(), strict=True):
        assert now.existing == then.total, name


async def test_a_demo_seeded_before_customer_numbers_is_numbered_not_doubled(db: str) -> None:
    await seed_demo_data(customers=60, today=TODAY)
    # as a database seeded before migration 0012: no numbers, and no shared phones yet
    for index in range(60):
        if demo_household(index) != index:
            await Customer.filter(customer_no=demo_customer_no(index)).update(
                phone=demo_phone(index))
    await Customer.all().update(customer_no=None)
    before = await _counts()
    again = await seed_demo_data(customers=60, today=TODAY)
    assert again.created == 0 and await _counts() == before
    numbers = await Customer.all().values_list("customer_no", flat=True)
    assert sorted(numbers) == [demo_customer_no(i) for i in range(60)]


async def test_more_customers_later_adds_only_the_new_ones(db: str) -> None:
    first = await seed_demo_data(customers=200, today=TODAY)

    # On another day, and in small batches: still the same first 200 people.
    more = await seed_demo_data(customers=300, today=TODAY + timedelta(days=1), batch_size=64)

    assert (more.customers.created, more.customers.existing) == (100, 200)
    assert more.regions.created == 0
    for (name, now), (_, then) in zip(more.entities(), first.entities(), strict=True):
        assert now.existing == then.total, name
    assert await Customer.all().count() == 300
    newcomers = await Customer.filter(
        customer_no__in=[demo_customer_no(i) for i in range(200, 300)])
    assert len(newcomers) == 100
    assert any(c.referred_by_id is not None for c in newcomers)


async def test_run_demo_resolves_the_day_from_the_injected_clock(db: str) -> None:
    out = io.StringIO()
    late_evening_utc = datetime(2026, 11, 20, 17, 30, tzinfo=UTC)  # 01:30 on the 21st in China

    await run_demo(Settings(), customers=12, day=None, out=out, now=lambda: late_evening_utc)

    text = out.getvalue()
    assert "plan day 2026-11-21 (Asia/Shanghai)" in text
    assert "customers 12 (12 new)" in text
    assert "Birthdays on 2026-11-21: 1" in text  # customer 3 of the sequence


def test_the_clock_must_be_timezone_aware() -> None:
    tz = ZoneInfo("Asia/Shanghai")
    with pytest.raises(ValueError, match="timezone-aware"):
        resolve_day(None, tz, lambda: datetime(2026, 11, 21, 9, 0))
    assert resolve_day(TODAY, tz, lambda: datetime(2000, 1, 1, tzinfo=UTC)) == TODAY


def test_report_totals() -> None:
    report = DemoDataReport()
    report.customers.created, report.customers.existing = 3, 2
    report.payments.created = 4
    assert (report.customers.total, report.created) == (5, 7)


# ---------------------------------------------------------------------------------------------
# The command


def test_engage_demo_command_seeds_prints_a_summary_and_reruns_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ENGAGE_CONFIG", raising=False)
    monkeypatch.setenv("ENGAGE_DATABASE__URL", f"sqlite://{tmp_path / 'demo.sqlite3'}")
    EXECUTOR_CACHE.clear()  # SQL rendered for another backend by earlier tests
    argv = ["demo", "--customers", "50", "--date", "2026-11-21"]

    assert main(argv) == 0
    first = capsys.readouterr().out

    assert "plan day 2026-11-21" in first
    assert "regions 12 (0 new)" in first
    assert re.search(r"weather [1-9]\d* \(offline forecast\)", first)  # the scripted storm
    assert "customers 50 (50 new)" in first
    assert re.search(r"policies (\d+) \(\1 new\)", first)
    samples = first.split("Sample customers:")[1].split("\n\n")[0]
    assert len(re.findall(r"\+86\*{7}\d{4}", samples)) == 3  # three sample customers, masked
    assert not re.search(r"\+861\d{10}", first)  # no full number anywhere, SMS lines included
    assert "Active policies expiring in the next 60 days" in first
    assert re.search(r"Claims by status: reported \d+ · registered \d+", first)

    planned = re.search(r"Plan for 2026-11-21: (.*)", first)
    assert planned and "renewal" in planned.group(1)
    delivered = first.split("through the console channel:")[1].split("Summary by kind")[0]
    telegram = re.findall(r"^\[telegram → chat \d+\] .+", delivered, flags=re.M)
    sms = re.findall(r"^\[sms → \+86\*{7}\d{4}\] 【安行保险】.+", delivered, flags=re.M)
    assert telegram and sms
    summary = first.split("Summary by kind and status:")[1]
    sent = sum(int(n) for n in re.findall(r"sent (\d+)", summary))
    assert sent == len(telegram) + len(sms)  # every message printed once, and counted

    assert main(argv) == 0
    second = capsys.readouterr().out
    assert "Plan for 2026-11-21: birthday 0, festival 0, renewal 0" in second
    redelivered = second.split("through the console channel:")[1].split("Summary by kind")[0]
    assert "[telegram" not in redelivered and "[sms" not in redelivered  # nothing sent twice

    assert "customers 50 (0 new)" in second
    assert set(re.findall(r"\((\d+) new\)", second)) == {"0"}
    assert len(re.findall(r"\((\d+) new\)", second)) == 6
