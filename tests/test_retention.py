"""Retention on given dates with an injected clock: claim documents 730 days after the claim
closed (files too, unless another document has the same content), inbound bodies after 365,
message parameters after 180 — statuses and counts stay; bounded batches; the dry run changes
nothing; the daily job runs once a day from its time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from bot.cli import main
from bot.documents import UploadLimits, store_document
from bot.retention_metrics import RetentionMetrics
from scheduler.config import RetentionSettings
from scheduler.forecast import StaticForecast
from scheduler.jobs import RETENTION, Jobs, SchedulerSettings, retention_cutoffs
from storage import retention
from storage.models import (
    Channel,
    Claim,
    ClaimEvent,
    ClaimStatus,
    Customer,
    Document,
    InboundSms,
    Message,
    MessageStatus,
)
from storage.scheduler_models import SchedulerRun
from tests import factories as f
from tests.test_sms_inbound import png

NOW = datetime(2029, 6, 1, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
KEEP = RetentionSettings()


async def claim_closed(owner: Customer, days_ago: int,
                       status: ClaimStatus = ClaimStatus.CLOSED) -> Claim:
    policy = await f.policy(owner)
    claim = await Claim.create(number=f"R{owner.id}-{days_ago}-{status.value}", policy=policy,
                               customer=owner, status=status,
                               reported_at=NOW - timedelta(days=days_ago + 30))
    if status not in (ClaimStatus.REPORTED, ClaimStatus.SURVEYED):
        await ClaimEvent.create(claim=claim, status=status,
                                occurred_at=NOW - timedelta(days=days_ago))
    return claim


async def document(owner: Customer, claim: Claim | None, uploads: Path, data: bytes,
                   *, days_ago: int = 800) -> Document:
    limits = UploadLimits(max_bytes=5_000_000, max_pixels=10_000_000, directory=uploads)
    doc, _ = await store_document(customer_id=owner.id, claim_id=claim.id if claim else None,
                                  channel=Channel.TELEGRAM, data=data, original_name="x.png",
                                  limits=limits, now=NOW - timedelta(days=days_ago))
    await Document.filter(id=doc.id).update(created_at=NOW - timedelta(days=days_ago))
    return doc


def image(n: int) -> bytes:
    return png((8 + n, 8))


async def seed(uploads: Path) -> dict[str, int]:
    owner = await f.customer()
    ids = {
        "old_closed": (await document(owner, await claim_closed(owner, 731), uploads,
                                      image(1))).id,
        "old_rejected": (await document(owner, await claim_closed(
            owner, 800, ClaimStatus.REJECTED), uploads, image(2))).id,
        "recent_closed": (await document(owner, await claim_closed(owner, 729), uploads,
                                         image(3))).id,
        "open": (await document(owner, await claim_closed(owner, 900, ClaimStatus.SURVEYED),
                                uploads, image(4))).id,
        "unfiled_old": (await document(owner, None, uploads, image(5), days_ago=731)).id,
        "unfiled_new": (await document(owner, None, uploads, image(6), days_ago=10)).id,
    }
    # the same photo on an old closed claim and on an open one: the file stays for the open one
    shared_claim = await claim_closed(owner, 1000)
    ids["shared_old"] = (await document(owner, shared_claim, uploads, image(4))).id
    for days, sid in ((366, "SMold"), (364, "SMnew")):
        await InboundSms.create(message_sid=sid, from_phone=owner.phone, customer=owner,
                                body=f"body {sid}", keyword="menu", reply="r",
                                created_at=NOW - timedelta(days=days))
    for days, status in ((181, MessageStatus.DELIVERED), (181, MessageStatus.PENDING),
                         (179, MessageStatus.SENT)):
        message = await f.queued(owner, status=status, params={"name": "张三", "plate": "沪A1"})
        await Message.filter(id=message.id).update(created_at=NOW - timedelta(days=days))
    return ids


async def test_each_kind_goes_on_its_date_and_totals_stay(db: str, tmp_path: Path) -> None:
    uploads = tmp_path / "uploads"
    ids = await seed(uploads)
    messages_before = await Message.all().count()
    statuses_before = sorted(await Message.all().values_list("status", flat=True))
    dry = await retention.run(retention_cutoffs(NOW, KEEP), uploads=uploads, batch=2,
                              max_batches=10, dry_run=True)
    assert (dry.documents, dry.inbound_bodies, dry.message_params) == (4, 1, 1)
    assert await Document.all().count() == 7  # a dry run changes nothing
    assert len(list(uploads.rglob("*.png"))) == 6
    report = await retention.run(retention_cutoffs(NOW, KEEP), uploads=uploads, batch=2,
                                 max_batches=10)
    assert (report.documents, report.files, report.inbound_bodies, report.message_params) == (
        4, 3, 1, 1)
    assert report.complete
    left = set(await Document.all().values_list("id", flat=True))
    assert left == {ids["recent_closed"], ids["open"], ids["unfiled_new"]}
    assert len(list(uploads.rglob("*.png"))) == 3  # image(4) stays for the open claim
    kept = {sid: (body, reply) for sid, body, reply in await InboundSms.all().values_list(
        "message_sid", "body", "reply")}
    assert kept == {"SMold": ("", ""), "SMnew": ("body SMnew", "r")}
    params = sorted((str(s), bool(p)) for s, p in await Message.all().values_list(
        "status", "params"))
    assert params == [("delivered", False), ("pending", True), ("sent", True)]
    assert await Message.all().count() == messages_before
    assert sorted(await Message.all().values_list("status", flat=True)) == statuses_before
    # a second pass finds nothing more
    again = await retention.run(retention_cutoffs(NOW, KEEP), uploads=uploads, batch=2,
                                max_batches=10)
    assert (again.documents, again.inbound_bodies, again.message_params) == (0, 0, 0)


async def test_batches_are_bounded_and_the_rest_waits(db: str, tmp_path: Path) -> None:
    uploads = tmp_path / "uploads"
    await seed(uploads)
    first = await retention.run(retention_cutoffs(NOW, KEEP), uploads=uploads, batch=1,
                                max_batches=2)
    assert first.documents == 2 and not first.complete
    second = await retention.run(retention_cutoffs(NOW, KEEP), uploads=uploads, batch=1,
                                 max_batches=2)
    assert second.documents == 2
    assert await Document.all().count() == 3


async def test_daily_job_runs_once_a_day_from_its_time(db: str, tmp_path: Path) -> None:
    uploads = tmp_path / "uploads"
    await seed(uploads)
    clock_now = [NOW.replace(hour=18, minute=59)]  # 02:59 in Shanghai: not yet
    registry = CollectorRegistry()
    jobs = Jobs(SchedulerSettings(uploads=uploads), clock=lambda: clock_now[0],
                forecast=StaticForecast(), on_retention=RetentionMetrics(registry).observe)
    assert await jobs.retention() is None
    assert await Document.all().count() == 7
    clock_now[0] = NOW.replace(hour=19, minute=0)  # 03:00 in Shanghai
    report = await jobs.retention()
    assert report is not None and report.documents == 4
    [run] = await SchedulerRun.filter(job=RETENTION)
    assert run.counts["documents"] == 4
    assert await jobs.retention() is None  # once a day
    # /metrics: what went, and whether everything due did
    assert registry.get_sample_value("engage_retention_removed_total",
                                     {"kind": "documents"}) == 4
    assert registry.get_sample_value("engage_retention_removed_total",
                                     {"kind": "message_params"}) == 1
    assert registry.get_sample_value("engage_retention_last_run_complete") == 1


def test_cli_dry_run_lists_and_changes_nothing(engage_url: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    async def old_inbound() -> None:
        owner = await f.customer()
        await InboundSms.create(message_sid="SMx", from_phone=owner.phone, customer=owner,
                                body="hello", created_at=datetime(2020, 1, 1, tzinfo=UTC))

    f.on_database(engage_url, old_inbound)
    assert main(["retention", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "dry run" in out and "inbound bodies            1 would remove" in out

    async def body() -> str:
        return str((await InboundSms.get(message_sid="SMx")).body)

    assert f.on_database(engage_url, body) == "hello"
    assert main(["retention"]) == 0
    assert "inbound bodies            1 removed" in capsys.readouterr().out
    assert f.on_database(engage_url, body) == ""
