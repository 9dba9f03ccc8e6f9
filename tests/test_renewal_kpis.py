"""Renewal KPIs against hand-computed fixtures on each backend: the rate by expiry month,
branch, agent, product and channel of the last contact, reach per channel, contacts, lapse
reasons, win-backs and call-back times — in the API, the CSV and the console page with its
charts."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.settings import Settings
from bot.web.operators import renewal_kpis
from storage.models import (
    Customer,
    Message,
    MessageStatus,
    Policy,
    Product,
    RenewalKpiDirty,
    RenewalKpiRollup,
    Task,
    TaskStatus,
)
from storage.operator_models import Role
from storage.renewal_desk import Outcome, Reason, record_outcome
from tests import factories as f
from tests import test_operators_api
from tests.test_import import run as import_run
from tests.test_operators_api import Rig, console_login

rig = test_operators_api.rig  # its clock: 2026-11-21 12:00 in Shanghai


def at(day: str, hour: int = 2) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


async def expired(end: str, *, branch: str, renewed_gap: int | None = None,
                  **extra: Any) -> tuple[Customer, Policy]:
    owner = await f.customer()
    policy = await f.policy(owner, end=date.fromisoformat(end), branch=branch, **extra)
    if renewed_gap is not None:
        renewal = await f.policy(owner, end=date(2027, 3, 1), plate=policy.plate)
        await Policy.filter(id=policy.id).update(renewed_by_id=renewal.id, status="renewed",
                                                 renewal_gap_days=renewed_gap,
                                                 outcome="renewed")
    return owner, policy


async def message(owner: Customer, day: str, channel: str | None, status: MessageStatus) -> None:
    made = await f.queued(owner, kind="renewal", template="renewal_reminder",
                          not_before=at(day), status=status, channel=channel)
    await Message.filter(id=made.id).update(created_at=at(day))


async def task(policy: Policy, kind: str, asked: datetime, *, closed: datetime | None = None,
               due: datetime | None = None) -> None:
    made = await Task.create(kind=kind, customer_id=policy.customer_id, policy_id=policy.id,
                             source="sms", due_at=due, closed_at=closed,
                             status=TaskStatus.CLOSED if closed else TaskStatus.OPEN)
    await Task.filter(id=made.id).update(created_at=asked)


async def fixtures() -> None:
    a_owner, _ = await expired("2026-03-10", branch="310100", renewed_gap=1,
                               original_agent="王五")
    await message(a_owner, "2026-02-10", "sms", MessageStatus.DELIVERED)
    await message(a_owner, "2026-03-01", "telegram", MessageStatus.SENT)
    b_owner, b = await expired("2026-03-20", branch="310100", renewed_gap=20, agent="王五",
                               product=Product.COMPULSORY)
    await message(b_owner, "2026-02-20", "sms", MessageStatus.SENT)
    await task(b, "renewal_call", at("2026-03-01"), closed=at("2026-03-01"))
    c_owner, _ = await expired("2026-03-25", branch="320100", renewed_gap=45,
                               original_agent="赵六")
    await message(c_owner, "2026-03-01", "sms", MessageStatus.DELIVERED)
    d_owner, _ = await expired("2026-03-28", branch="320100", outcome="not_renewing",
                               outcome_reason="price")
    await message(d_owner, "2026-03-01", None, MessageStatus.SKIPPED)
    _, e = await expired("2026-04-05", branch="310100")
    await expired("2026-04-06", branch="310100", status="cancelled",
                  cancelled_at=at("2026-01-01"))
    await expired("2025-11-30", branch="310100")  # before the window
    await expired("2026-11-25", branch="310100")  # not expired yet
    # call-backs: 5 working hours (late), 3 working hours over the weekend (on time), open
    await task(e, "renewal_callback", at("2026-11-20", 2), closed=at("2026-11-20", 7),
               due=at("2026-11-20", 6))
    await task(e, "renewal_callback", at("2026-11-20", 8), closed=at("2026-11-23", 2),
               due=at("2026-11-23", 3))
    await task(e, "renewal_callback", at("2026-11-21", 1))


def month(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(row for row in data["months"] if row["month"] == name)


async def test_kpis_match_the_hand_computed_figures(rig: Rig) -> None:
    await fixtures()
    status, data = await rig.call("GET", "/api/v1/renewals/kpis", Role.VIEWER)
    assert status == 200, data
    assert (data["as_of"], data["first_expiry"]) == ("2026-11-21", "2025-12-01")
    assert len(data["months"]) == 12 and data["months"][0]["month"] == "2025-12"
    assert month(data, "2026-03") == {"month": "2026-03", "expired": 4, "renewed": 2,
                                      "rate": 0.5, "won_back": 2, "contacted_twice": 2}
    assert month(data, "2026-04") == {"month": "2026-04", "expired": 1, "renewed": 0,
                                      "rate": 0.0, "won_back": 0, "contacted_twice": 0}
    assert month(data, "2026-05")["rate"] is None
    assert data["totals"] == {"expired": 5, "renewed": 2, "rate": 0.4, "won_back": 2,
                              "contacted_twice": 2}

    def groups(name: str) -> list[tuple[str, int, int]]:
        return [(g["key"], g["expired"], g["renewed"]) for g in data[f"by_{name}"]]

    assert groups("branch") == [("310100", 3, 2), ("320100", 2, 0)]
    assert data["by_branch"][0]["rate"] == 0.6667
    assert groups("agent") == [("", 2, 0), ("王五", 2, 2), ("赵六", 1, 0)]
    assert groups("product") == [("commercial", 4, 1), ("compulsory", 1, 1)]
    assert groups("channel") == [("", 2, 0), ("sms", 2, 1), ("telegram", 1, 1)]
    assert [(r["channel"], r["due"], r["reached"]) for r in data["reach"]] == [
        ("none", 1, 0), ("sms", 3, 2), ("telegram", 1, 1)]
    assert [(r["outcome"], r["reason"], r["count"]) for r in data["lapse_reasons"]] == [
        ("", "", 1), ("not_renewing", "price", 1)]
    assert data["callbacks"] == {"asked": 3, "answered": 2, "on_time": 1,
                                 "median_working_hours": 4.0}

    resp = await rig.client.get("/api/v1/renewals/kpis.csv", headers=rig.auth(Role.VIEWER))
    assert resp.status == 200 and resp.content_type == "text/csv"
    rows = list(csv.reader(io.StringIO(await resp.text())))
    assert rows[0] == ["section", "key", "count", "part", "rate"]
    assert ["renewal_rate_by_month", "2026-03", "4", "2", "0.5"] in rows
    assert ["renewal_rate_by_branch", "310100", "3", "2", "0.6667"] in rows
    assert ["reach_by_channel", "sms", "3", "2", "0.6667"] in rows
    assert ["lapse_reasons", "not_renewing:price", "1", "", ""] in rows


async def test_the_kpi_page_shows_the_figures_and_charts_in_both_languages(rig: Rig) -> None:
    await fixtures()
    await console_login(rig.client, rig.tokens[Role.VIEWER])
    zh = await (await rig.client.get("/console/renewals/kpis?lang=zh-CN")).text()
    assert "续保率（按到期月）" in zh and "到期 5 张，30天内续保 2 张，续保率 40.0%" in zh
    assert 'src="/console/renewals/kpis/months.svg?lang=zh-CN"' in zh
    en = await (await rig.client.get("/console/renewals/kpis?lang=en")).text()
    assert "5 policies expired from 2025-12-01 to 2026-11-21; 2 renewed within 30 days" in en
    for name, title in (("months", "续保率（按到期月）"), ("branch", "续保率（按机构）"),
                        ("reach", "提醒触达率（按渠道）"), ("reasons", "脱保原因")):
        resp = await rig.client.get(f"/console/renewals/kpis/{name}.svg?lang=zh-CN")
        assert resp.status == 200 and resp.content_type == "image/svg+xml"
        body = await resp.text()
        assert title in body
        assert "script-src" not in resp.headers["Content-Security-Policy"]
    assert "短信" in await (await rig.client.get(
        "/console/renewals/kpis/reach.svg?lang=zh-CN")).text()
    assert (await rig.client.get("/console/renewals/kpis/nope.svg")).status == 404
    # the page's CSV link works with the console session
    resp = await rig.client.get("/api/v1/renewals/kpis.csv")
    assert resp.status == 200 and "renewal_rate_by_month,2026-03,4,2,0.5" in await resp.text()


async def test_a_days_report_is_computed_once_for_five_minutes(rig: Rig) -> None:
    await fixtures()
    _, first = await rig.call("GET", "/api/v1/renewals/kpis", Role.VIEWER)
    await expired("2026-05-05", branch="310100")
    _, cached = await rig.call("GET", "/api/v1/renewals/kpis", Role.VIEWER)
    assert cached["totals"]["expired"] == first["totals"]["expired"] == 5
    rig.clock.now += timedelta(minutes=5)
    _, fresh = await rig.call("GET", "/api/v1/renewals/kpis", Role.VIEWER)
    assert fresh["totals"]["expired"] == 6


async def test_the_rollup_gives_the_live_figures_after_every_change(rig: Rig,
                                                                    tmp_path: Path) -> None:
    """The page's figures come from the rollup of past days; after each kind of write the
    triggers mark, the rollup and the live computation agree figure for figure."""
    settings = Settings()
    today = date(2026, 11, 21)

    async def same(day: date = today) -> dict[str, Any]:
        kept = await renewal_kpis.report(day, settings)
        assert kept == await renewal_kpis.report(day, settings, live=True)
        return kept

    await fixtures()
    before = await same()
    assert await RenewalKpiRollup.filter(dimension="total").count() == 355  # 2025-12-01 on
    assert await RenewalKpiRollup.filter(dimension="month").count() == 11
    assert await RenewalKpiDirty.all().count() == 0
    # an outcome recorded on a lapsed policy
    lapsed = await Policy.get(end_date=date(2026, 4, 5))
    await record_outcome([lapsed], Outcome.NOT_RENEWING, by="op", now=at("2026-11-21"),
                         reason=Reason.SERVICE)
    after = await same()
    assert ("not_renewing", "service", 1) in [
        (r["outcome"], r["reason"], r["count"]) for r in after["lapse_reasons"]]
    # the import of the policy that renews it (a win-back), and of a new expired one
    owner = await Customer.get(id=lapsed.customer_id)
    await Customer.filter(id=owner.id).update(customer_no="K1")
    path = tmp_path / "p.csv"
    path.write_text(
        "number,customer_no,product,plate,start_date,end_date,premium,agent,branch,renews\n"
        f"R1,K1,商业险,{lapsed.plate},2026-04-20,2027-04-19,3600,孙七,330100,{lapsed.number}\n"
        f"R2,K1,交强险,{lapsed.plate},2025-10-02,2026-10-01,950,孙七,330100,\n",
        encoding="utf-8")
    await import_run("policies", path)
    after = await same()
    assert after["totals"]["won_back"] == before["totals"]["won_back"] + 1
    assert after["totals"]["expired"] == before["totals"]["expired"] + 1
    assert ("孙七", 1, 0) in [(g["key"], g["expired"], g["renewed"]) for g in after["by_agent"]]
    # a reminder's delivery failing late, a call logged before an expiry, a policy moved
    await Message.filter(status=MessageStatus.DELIVERED).update(status=MessageStatus.FAILED)
    await task(lapsed, "renewal_call", at("2026-03-20"), closed=at("2026-03-20"))
    await Policy.filter(branch="320100").update(branch="320200")
    after = await same()
    assert after["totals"]["contacted_twice"] == 1
    assert [g["key"] for g in after["by_branch"]] == ["310100", "320200", "330100"]
    # a later day (a month complete since) and an earlier one read the same rows
    await same(date(2026, 12, 2))
    await same(date(2026, 9, 1))
    assert await RenewalKpiDirty.all().count() == 0
