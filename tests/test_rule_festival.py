"""Festival rule: lunar and solar festival dates, greetings only to customers with an active
policy, one per customer per festival per year, a configurable extra festival."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime

import pytest
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from scheduler import festival
from scheduler.config import FestivalSettings, ScheduleSettings
from scheduler.context import OutboxSink, PlanContext
from scheduler.plan import run_plan
from storage.models import Message, MessageStatus, PolicyStatus
from storage.outbox import NewRanges, Outbound
from storage.sql import Fragment, is_postgres
from tests import factories


@pytest.mark.parametrize(
    ("code", "expected"),
    [("spring_festival", [date(2026, 2, 17), date(2027, 2, 6), date(2028, 1, 26)]),
     ("mid_autumn", [date(2026, 9, 25), date(2027, 9, 15), date(2028, 10, 3)]),
     ("lantern", [date(2026, 3, 3), date(2027, 2, 20), date(2028, 2, 9)]),
     ("dragon_boat", [date(2026, 6, 19), date(2027, 6, 9), date(2028, 5, 28)]),
     ("new_year", [date(2026, 1, 1), date(2027, 1, 1), date(2028, 1, 1)]),
     ("national_day", [date(2026, 10, 1), date(2027, 10, 1), date(2028, 10, 1)])],
)
def test_festival_dates(code: str, expected: list[date]) -> None:
    assert [festival.festival_dates(y)[code] for y in (2026, 2027, 2028)] == expected
    for day in expected:
        found = festival.festival_on(day)
        assert found is not None and found.code == code


def test_ordinary_day_has_no_festival() -> None:
    assert festival.festival_on(date(2026, 11, 21)) is None


def test_coinciding_festivals_make_one_greeting_naming_both() -> None:
    found = festival.festival_on(date(2020, 10, 1))
    assert found is not None
    assert found.code == "national_day+mid_autumn"
    assert found.name == {"zh-CN": "国庆节、中秋节", "en": "National Day and Mid-Autumn Festival"}


def test_extra_festival_must_be_a_real_yearly_date_with_a_new_code() -> None:
    with pytest.raises(ValueError, match="29 February"):
        FestivalSettings(code="leap", month=2, day=29, name_zh="闰", name_en="Leap")
    with pytest.raises(ValueError, match="built-in"):
        FestivalSettings(code="mid_autumn", month=3, day=1, name_zh="x", name_en="x")
    with pytest.raises(ValueError, match="not a date"):
        FestivalSettings(code="x", month=4, day=31, name_zh="x", name_en="x")


async def test_greets_each_customer_care_reaches_once(db: str) -> None:
    insured = await factories.customer()
    await factories.policy(insured, end=date(2026, 12, 31))
    await factories.policy(insured, end=date(2026, 11, 30))  # two policies: one greeting
    lapsed = await factories.customer()  # within care.lapsed_days
    await factories.policy(lapsed, end=date(2026, 1, 31), status=PolicyStatus.EXPIRED)
    long_gone = await factories.customer()
    await factories.policy(long_gone, end=date(2025, 9, 24), status=PolicyStatus.EXPIRED)
    cancelled = await factories.customer()
    await factories.policy(cancelled, status=PolicyStatus.CANCELLED)
    await factories.customer()  # no policy at all
    ctx = PlanContext(day=date(2026, 9, 25), today=date(2026, 9, 25),
                      schedule=ScheduleSettings(batch_size=10))
    assert (await run_plan(ctx)).counts["festival"] == 2
    assert (await run_plan(ctx)).counts["festival"] == 0
    assert set(await Message.filter(kind="festival").values_list("customer_id", flat=True)) \
        == {insured.id, lapsed.id}
    msg = await Message.get(kind="festival", customer_id=insured.id)
    assert msg.dedup_key == f"festival:2026-09-25:{insured.id}"
    assert msg.params == {"name": insured.name,
                          "festival": {"zh-CN": "中秋节", "en": "Mid-Autumn Festival"}}


async def test_configured_extra_festival_is_greeted_and_not_sent_late(db: str) -> None:
    owner = await factories.customer()
    await factories.policy(owner, end=date(2027, 6, 30))
    schedule = ScheduleSettings(festivals=[FestivalSettings(
        code="womens_day", month=3, day=8, name_zh="妇女节", name_en="Women's Day")])
    late = PlanContext(day=date(2027, 3, 8), today=date(2027, 3, 9), schedule=schedule)
    assert (await run_plan(late)).counts["festival"] == 0
    on_time = PlanContext(day=date(2027, 3, 8), today=date(2027, 3, 8), schedule=schedule)
    assert (await run_plan(on_time)).counts["festival"] == 1
    msg = await Message.get(kind="festival")
    assert msg.dedup_key == f"festival:2027-03-08:{owner.id}"
    assert msg.params["festival"] == {"zh-CN": "妇女节", "en": "Women's Day"}


async def test_set_based_greetings_equal_the_ones_built_in_python(db: str) -> None:
    """The outbox sink queues greetings with INSERT … SELECT over customer-id ranges: the rows
    must be exactly what the message builder makes, send and stale times in every customer's
    time zone (unknown ones too) included."""
    owners = [await factories.customer(name=f"客户{i}", timezone=zone) for i, zone in
              enumerate(["Asia/Shanghai", "Europe/Berlin", "Not/AZone", "", "America/New_York"])]
    for owner in owners:
        await factories.policy(owner, end=date(2026, 12, 31))
    await factories.policy(owners[1], end=date(2027, 3, 31))  # a second policy, one greeting
    ctx = PlanContext(day=date(2026, 9, 25), today=date(2026, 9, 25),
                      schedule=ScheduleSettings(batch_size=10))

    built: list[Outbound] = []

    async def collect(items: Iterable[Outbound]) -> int:
        built.extend(items)
        return len(built)

    await festival.queue(ctx, collect)
    assert await festival.queue(ctx, OutboxSink(10)) == len(owners)
    expected = {item.dedup_key: item for item in built}
    rows = await Message.filter(kind="festival").order_by("id")
    assert sorted(m.dedup_key for m in rows) == sorted(expected)
    for msg in rows:
        item = expected[msg.dedup_key]
        assert (msg.kind, msg.category, msg.customer_id, msg.template_key, msg.params,
                msg.not_before, msg.stale_after, msg.channel_policy, msg.campaign_id,
                msg.status, msg.attempts) == (
            item.kind, item.category, item.customer_id, item.template_key, item.params,
            item.not_before, item.stale_after, item.channel_policy, None,
            MessageStatus.PENDING, 0)
    assert await festival.queue(ctx, OutboxSink(10)) == 0


async def test_set_based_queueing_covers_every_key_range(db: str) -> None:
    owners = [await factories.customer() for _ in range(7)]
    for owner in owners:
        await factories.policy(owner, end=date(2026, 12, 31))
    ctx = PlanContext(day=date(2026, 9, 25), today=date(2026, 9, 25))
    selection = festival.reached_customers(ctx)
    sink = OutboxSink(10)
    columns = festival._greeting_columns(
        ctx, festival.Festival("mid_autumn", {"zh-CN": "中秋节", "en": "Mid-Autumn Festival"}),
        [], postgres=is_postgres())
    assert await sink.insert_select(selection, columns, span=2) == 7
    assert await Message.filter(kind="festival").count() == 7
    assert await sink.insert_select(selection, columns, span=3) == 0


async def test_a_range_of_reached_customers_reads_as_the_whole_selection_cut_by_id(
        db: str) -> None:
    reached = []
    for n in range(9):
        owner = await factories.customer()
        if n % 3:  # every third one has no cover: care does not reach them
            await factories.policy(owner, end=date(2026, 12, 31))
            reached.append(owner.id)
    ctx = PlanContext(day=date(2026, 9, 25), today=date(2026, 9, 25))
    selection = festival.reached_customers(ctx)
    everyone = [row["customer_id"] async for page in selection.pages(100) for row in page]
    assert everyone == reached
    low, high = reached[0], reached[-2]
    part = selection.within(low, high)
    assert "cov.customer_id >" in part.source.sql  # the policies' lookup is bounded too
    assert [row["customer_id"] async for page in part.pages(100) for row in page] == [
        c for c in reached if low < c <= high]
    assert await part.count() == len([c for c in reached if low < c <= high])


async def test_several_writers_queue_every_range_once_and_one_inside_a_transaction(
        db: str) -> None:
    owners = [await factories.customer() for _ in range(11)]
    for owner in owners[1:]:
        await factories.policy(owner, end=date(2026, 12, 31))
    ctx = PlanContext(day=date(2026, 9, 25), today=date(2026, 9, 25))
    selection = festival.reached_customers(ctx)
    columns = festival._greeting_columns(
        ctx, festival.Festival("mid_autumn", {"zh-CN": "中秋节", "en": "Mid-Autumn Festival"}),
        [], postgres=is_postgres())
    sink = OutboxSink(10)
    assert await sink.insert_select(selection, columns, span=2, writers=3) == 10
    assert sorted(await Message.filter(kind="festival").values_list("customer_id", flat=True)
                  ) == [o.id for o in owners[1:]]
    await Message.filter(customer_id__in=[o.id for o in owners[5:]]).delete()
    async with in_transaction():  # the statements share its one connection
        assert await sink.insert_select(selection, columns, span=2, writers=3) == 6
    assert await Message.filter(kind="festival").count() == 10
    assert await sink.insert_select(selection, columns, span=5, writers=2) == 0


def _mid_autumn_columns(ctx: PlanContext) -> dict[str, Fragment]:
    return festival._greeting_columns(
        ctx, festival.Festival("mid_autumn", {"zh-CN": "中秋节", "en": "Mid-Autumn Festival"}),
        [], postgres=is_postgres())


async def test_ranges_written_as_new_leave_keys_already_queued_as_they_were(db: str) -> None:
    """Ranges are written by plain INSERTs first on PostgreSQL: a range meeting a key already
    queued fails, is rolled back and written again leaving that key alone, and so is every
    later range. SQLite leaves such keys alone from the start."""
    owners = [await factories.customer() for _ in range(8)]
    for owner in owners:
        await factories.policy(owner, end=date(2026, 12, 31))
    ctx = PlanContext(day=date(2026, 9, 25), today=date(2026, 9, 25))
    selection = festival.reached_customers(ctx)
    columns = _mid_autumn_columns(ctx)
    sent = {o.id: await factories.queued(o, key=f"festival:2026-09-25:{o.id}", kind="festival",
                                          status=MessageStatus.SENT, params={"kept": True})
            for o in (owners[2], owners[3], owners[6])}

    fresh = NewRanges(columns, created_at=datetime.now(UTC))
    assert await fresh.insert(selection.within(owners[0].id - 1, owners[1].id).source) == 2
    assert not fresh.found_keys  # a range of new keys only: written as it was
    assert await fresh.insert(selection.within(owners[1].id, owners[4].id).source) == 1
    assert fresh.found_keys == is_postgres()
    assert await fresh.insert(selection.within(owners[4].id, owners[7].id).source) == 2
    rows = {m.customer_id: m for m in await Message.filter(kind="festival")}
    assert sorted(rows) == sorted(o.id for o in owners)
    for customer_id, old in sent.items():  # untouched
        assert (rows[customer_id].id, rows[customer_id].status, rows[customer_id].params) == (
            old.id, MessageStatus.SENT, {"kept": True})
    assert all(m.status == MessageStatus.PENDING for c, m in rows.items() if c not in sent)


async def test_a_range_failing_for_another_reason_than_a_queued_key_still_fails(
        db: str) -> None:
    if not is_postgres():
        pytest.skip("SQLite's INSERT OR IGNORE leaves out a row breaking NOT NULL as well")
    owner = await factories.customer()
    await factories.policy(owner, end=date(2026, 12, 31))
    ctx = PlanContext(day=date(2026, 9, 25), today=date(2026, 9, 25))
    columns = {**_mid_autumn_columns(ctx), "kind": Fragment("NULL")}  # kind is NOT NULL
    inserts = NewRanges(columns, created_at=datetime.now(UTC))
    with pytest.raises(IntegrityError):
        await inserts.insert(festival.reached_customers(ctx).source)
    assert await Message.all().count() == 0


async def test_planning_a_festival_day_again_queues_only_the_new_customers(db: str) -> None:
    owners = [await factories.customer() for _ in range(5)]
    for owner in owners:
        await factories.policy(owner, end=date(2026, 12, 31))
    ctx = PlanContext(day=date(2026, 9, 25), today=date(2026, 9, 25),
                      schedule=ScheduleSettings(batch_size=10))
    assert (await run_plan(ctx)).counts["festival"] == 5
    first = dict(await Message.filter(kind="festival").values_list("customer_id", "id"))
    later = await factories.customer()
    await factories.policy(later, end=date(2026, 12, 31))
    assert (await run_plan(ctx)).counts["festival"] == 1
    again = dict(await Message.filter(kind="festival").values_list("customer_id", "id"))
    assert {c: i for c, i in again.items() if c != later.id} == first
    assert later.id in again
