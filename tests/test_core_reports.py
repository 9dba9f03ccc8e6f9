"""Confirmed accident reports to the core system (issue 20): signed POSTs the fake core
receiver verifies with the shared secret, retries on 5xx and timeouts with back-off, dead
letters (with a retry and a metric), the repeat after a crash between send and
acknowledgement absorbed by the idempotency key, and the core claim number — from the answer
or a later PUT — that the claim takes and the customer is told."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from bot.accident import drafts
from bot.accident.core import CoreMetrics, CoreReports, assign_core_number, retry
from bot.cli import main
from bot.settings import CoreSettings
from storage.accident_models import CoreDelivery, CoreDeliveryStatus
from storage.models import Claim, Message
from tests import factories as f
from tests.fakes.core import FakeCore

SECRET = "s3cret-shared-with-core"


class Clock:
    def __init__(self, now: datetime = f.NOON_SHANGHAI) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def core(clock: Clock) -> AsyncIterator[FakeCore]:
    async with FakeCore(SECRET, now=lambda: clock().timestamp()) as fake:
        yield fake


def sender(core: FakeCore, clock: Clock, registry: CollectorRegistry | None = None,
           **settings: object) -> CoreReports:
    config = CoreSettings(**{"report_webhook_url": core.url, "report_webhook_secret": SECRET,
                             "timeout_seconds": 2.0, "max_attempts": 4, **settings})
    metrics = CoreMetrics(registry) if registry is not None else None
    return CoreReports(config, clock=clock, metrics=metrics)


async def reported(clock: Clock) -> Claim:
    """A report confirmed in Telegram: its claim, with a delivery row queued."""
    owner = await f.customer()
    await f.policy(owner, plate="沪A12345", end=date(2026, 12, 31))
    draft, _ = await drafts.start(owner.id, 1, 1, timezone=owner.timezone, max_per_day=3,
                                  now=clock())
    await drafts.advance(draft, drafts.Step.CONFIRM, now=clock(), danger=False,
                         plate="沪A12345", occurred_at=clock().isoformat(),
                         where={"address": "世纪大道100号"}, type="scrape", documents=[])
    return (await drafts.submit(draft, description="剐蹭", max_per_day=3, now=clock())).claim


async def test_a_report_is_delivered_signed_and_takes_the_core_claim_number(
        db: str, core: FakeCore, clock: Clock) -> None:
    claim = await reported(clock)
    reference = claim.number
    registry = CollectorRegistry()
    reports = sender(core, clock, registry)
    try:
        assert await reports.deliver_due() == 1
    finally:
        await reports.close()
    assert core.refused == []
    [request] = core.received
    row = await CoreDelivery.get(claim_id=claim.id)
    assert request.body["idempotency_key"] == row.idempotency_key
    assert request.body["reference"] == reference
    assert request.body["accident"]["type"] == "scrape"
    assert request.headers["X-Engage-Timestamp"] == str(int(clock().timestamp()))
    assert (row.status, row.attempts, row.core_claim_number) == (
        CoreDeliveryStatus.DELIVERED, 1, "CLM00000001")
    await claim.refresh_from_db()
    assert claim.number == "CLM00000001"  # the core system's later updates find it
    [told] = await Message.filter(kind="report_core_number")
    assert told.params == {"reference": reference, "claim": "CLM00000001"}
    assert registry.get_sample_value("engage_core_report_attempts_total",
                                     {"outcome": "delivered"}) == 1


async def test_a_wrong_secret_is_refused_by_the_receiver_and_becomes_a_dead_letter(
        db: str, core: FakeCore, clock: Clock) -> None:
    claim = await reported(clock)
    registry = CollectorRegistry()
    reports = sender(core, clock, registry, report_webhook_secret="not-the-secret")
    try:
        await reports.deliver_due()
    finally:
        await reports.close()
    assert (core.refused, core.received) == (["bad signature"], [])
    row = await CoreDelivery.get(claim_id=claim.id)
    assert row.status == CoreDeliveryStatus.DEAD and row.last_error.startswith("HTTP 401")
    assert registry.get_sample_value("engage_core_reports_dead") == 1


async def test_a_stale_timestamp_is_refused_as_a_replay(db: str, core: FakeCore,
                                                        clock: Clock) -> None:
    await reported(clock)
    core.clock = lambda: clock().timestamp() + 3600  # the receiver's clock is an hour on
    reports = sender(core, clock)
    try:
        await reports.deliver_due()
    finally:
        await reports.close()
    assert core.refused == ["stale timestamp"]


async def test_5xx_and_timeouts_are_retried_with_back_off(db: str, core: FakeCore,
                                                          clock: Clock) -> None:
    claim = await reported(clock)
    core.fail_next(503)
    core.hang_next()
    reports = sender(core, clock, timeout_seconds=0.3)
    try:
        await reports.deliver_due()
        row = await CoreDelivery.get(claim_id=claim.id)
        assert (row.status, row.attempts) == (CoreDeliveryStatus.PENDING, 1)
        assert row.last_error.startswith("HTTP 503")
        assert row.next_attempt_at == clock() + timedelta(seconds=30)
        assert await reports.deliver_due() == 0  # not due yet
        clock.advance(seconds=30)
        await reports.deliver_due()
        row = await CoreDelivery.get(claim_id=claim.id)
        assert (row.status, row.attempts, row.last_error) == (
            CoreDeliveryStatus.PENDING, 2, "timeout")
        assert row.next_attempt_at == clock() + timedelta(seconds=60)
        clock.advance(seconds=60)
        await reports.deliver_due()
    finally:
        await reports.close()
    row = await CoreDelivery.get(claim_id=claim.id)
    assert (row.status, row.attempts) == (CoreDeliveryStatus.DELIVERED, 3)
    assert len(core.received) == 1 and len(core.claims) == 1


async def test_after_the_last_attempt_a_dead_letter_that_a_retry_sends_again(
        db: str, core: FakeCore, clock: Clock) -> None:
    claim = await reported(clock)
    core.fail_next(500, times=2)
    registry = CollectorRegistry()
    reports = sender(core, clock, registry, max_attempts=2)
    try:
        await reports.deliver_due()
        clock.advance(seconds=30)
        await reports.deliver_due()
        row = await CoreDelivery.get(claim_id=claim.id)
        assert (row.status, row.dead_at) == (CoreDeliveryStatus.DEAD, clock())
        assert registry.get_sample_value("engage_core_reports_dead") == 1
        clock.advance(hours=5)
        assert await reports.deliver_due() == 0  # a dead letter stays dead
        assert await retry(row.id, now=clock()) is not None
        assert await retry(row.id, now=clock()) is None  # not dead any more
        await reports.deliver_due()
    finally:
        await reports.close()
    row = await CoreDelivery.get(claim_id=claim.id)
    assert row.status == CoreDeliveryStatus.DELIVERED
    assert registry.get_sample_value("engage_core_reports_dead") == 0


async def test_a_crash_between_send_and_acknowledgement_repeats_under_the_same_key(
        db: str, core: FakeCore, clock: Clock) -> None:
    claim = await reported(clock)
    first = sender(core, clock)
    try:
        [row] = await first.lease()
        await first.send(row)  # the core system took it ... and this process died here
    finally:
        await first.close()
    clock.advance(seconds=60)
    second = sender(core, clock)
    try:
        assert await second.deliver_due() == 0  # still leased by the dead process
        clock.advance(seconds=61)
        assert await second.deliver_due() == 1
    finally:
        await second.close()
    keys = [r.body["idempotency_key"] for r in core.received]
    assert len(keys) == 2 and len(set(keys)) == 1  # sent twice, one claim at the core
    assert len(core.claims) == 1
    row = await CoreDelivery.get(claim_id=claim.id)
    assert (row.status, row.attempts, row.core_claim_number) == (
        CoreDeliveryStatus.DELIVERED, 2, "CLM00000001")
    assert await Message.filter(kind="report_core_number").count() == 1


async def test_a_core_number_that_comes_later_is_taken_once(db: str, core: FakeCore,
                                                             clock: Clock) -> None:
    claim = await reported(clock)
    reference = claim.number
    core.assign_numbers = False
    reports = sender(core, clock)
    try:
        await reports.deliver_due()
    finally:
        await reports.close()
    row = await CoreDelivery.get(claim_id=claim.id)
    assert (row.status, row.core_claim_number) == (CoreDeliveryStatus.DELIVERED, None)
    assert await Message.filter(kind="report_core_number").count() == 0
    later, changed = await assign_core_number(reference, "RDAA2026000123", now=clock())
    assert (later.number, changed) == ("RDAA2026000123", True)
    _, changed = await assign_core_number(reference, "RDAA2026000123", now=clock())
    assert changed is False
    assert await Message.filter(kind="report_core_number").count() == 1
    assert await Claim.filter(number=reference).count() == 0
    assert (await CoreDelivery.get(id=row.id)).core_claim_number == "RDAA2026000123"


async def test_nothing_is_sent_while_no_url_is_configured(db: str, clock: Clock) -> None:
    await reported(clock)
    reports = CoreReports(CoreSettings(), clock=clock)
    stop = asyncio.Event()
    beats: list[int] = []

    def beat(**_: str) -> None:
        beats.append(1)
        stop.set()

    await reports.run(stop, beat)
    assert beats == [1]
    assert (await CoreDelivery.first()).status == CoreDeliveryStatus.PENDING  # type: ignore[union-attr]


@pytest.mark.parametrize(("toml", "expected"), [
    ('[core]\nreport_webhook_url = "https://core.example.com/r"\n',
     "core.report_webhook_secret: required when report_webhook_url is set"),
    ('[core]\nreport_webhook_url = "core.example.com"\nreport_webhook_secret = "s"\n',
     "core.report_webhook_url: must start with http:// or https://"),
    ('[report]\nreminder_minutes = 1500\n',
     "report.reminder_minutes: must be shorter than expire_hours"),
    ('[report]\nmax_per_day = 0\n', "report.max_per_day"),
])
def test_a_report_setting_mistake_is_one_line_naming_the_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], toml: str, expected: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(toml, encoding="utf-8")
    assert main(["--config", str(cfg), "db", "upgrade"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and expected in err
    assert CoreSettings().enabled is False
