"""The renewal desk: owners from the import and the operator command, the worklist by tab with
every contact, claiming (single, bulk, reassigning), calls and outcomes, the monthly claim
window, and ``renewed`` recorded by the import of the renewing policy. Each test runs on every
backend."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from bot.web.operators.access import create_operator
from storage.models import Message, MessageStatus, Policy, Task, TaskStatus
from storage.operator_models import AuditLog, Role
from tests import factories as f
from tests import test_operators_api
from tests.test_import import run, write
from tests.test_operators_api import Rig, console_login

rig = test_operators_api.rig
TODAY = date(2026, 11, 21)  # f.NOON_SHANGHAI's day in Asia/Shanghai


async def token_of(name: str, role: Role = Role.AGENT, **extra: Any) -> dict[str, str]:
    _, token = await create_operator(name, role, **extra)
    return {"Authorization": f"Bearer {token}"}


async def call(rig: Rig, method: str, path: str, headers: dict[str, str],
               **kw: Any) -> tuple[int, Any]:
    resp = await rig.client.request(method, path, headers=headers, **kw)
    return resp.status, await resp.json()


async def expiring(days: int, *, branch: str = "310100", agent: str = "", claimed_by: str = "",
                   **extra: Any) -> Policy:
    """A policy of a new customer expiring ``days`` from TODAY (``claimed_by``: its owner)."""
    policy = await f.policy(await f.customer(), end=TODAY + timedelta(days=days), branch=branch,
                            agent=agent, **extra)
    if claimed_by:
        policy.owner = claimed_by
        await policy.save()
    return policy


# -- owners from the import and the command -------------------------------------------------------


async def test_import_records_agent_branch_and_keeps_the_original_agent_through_renewal(
        db: str, tmp_path: Path) -> None:
    await f.customer(phone="+8613800130001", customer_no="C1")
    first = write(tmp_path, "p1.csv", (
        "number,customer_no,product,plate,start_date,end_date,premium,agent,branch\n"
        "P1,C1,商业险,沪A11111,2025-12-01,2026-11-30,3500,王五,310100\n"))
    report, _ = await run("policies", first)
    assert report.created == 1
    old = await Policy.get(number="P1")
    assert (old.agent, old.original_agent, old.branch, old.outcome) == (
        "王五", "王五", "310100", "")

    # renewed by another agent: the business stays the original agent's; the old one renewed
    second = write(tmp_path, "p2.csv", (
        "number,customer_no,product,plate,start_date,end_date,premium,agent,branch,renews\n"
        "P2,C1,商业险,沪A11111,2026-12-01,2027-11-30,3600,赵六,310100,P1\n"
        "P1,C1,商业险,沪A11111,2025-12-01,2026-11-30,3500,,310100,\n"))
    report, problems = await run("policies", second)
    assert (report.created, report.rejected) == (1, 0), problems
    new, old = await Policy.get(number="P2"), await Policy.get(number="P1")
    assert (new.agent, new.original_agent) == ("赵六", "王五")
    assert old.agent == "王五"  # an empty cell keeps what is recorded
    assert (old.renewed_by_id, old.outcome, old.outcome_by) == (new.id, "renewed", "import")
    assert old.renewal_gap_days == 1  # renewed without a day uncovered
    assert old.outcome_at is not None


async def test_import_renewal_wins_over_an_earlier_outcome(db: str, tmp_path: Path) -> None:
    owner = await f.customer(customer_no="C2")
    old = await f.policy(owner, number="Q1", plate="沪B22222", end=TODAY + timedelta(days=5),
                         outcome="not_renewing", outcome_reason="price", outcome_by="op")
    path = write(tmp_path, "p.csv", (
        "number,customer_no,product,plate,start_date,end_date,premium,renews\n"
        f"Q2,C2,商业险,沪B22222,{old.end_date},{old.end_date + timedelta(days=365)},3600,Q1\n"))
    await run("policies", path)
    await old.refresh_from_db()
    assert (old.outcome, old.outcome_reason, old.outcome_by) == ("renewed", "", "import")


# -- the worklist ---------------------------------------------------------------------------------


async def test_worklist_tabs_split_by_days_to_expiry_and_skip_what_is_settled(rig: Rig) -> None:
    by_days = {d: await expiring(d) for d in (0, 30, 31, 60, 61, 90, 91, -1, -90, -91)}
    renewed = await expiring(10)
    renewed.renewed_by_id = by_days[91].id
    await renewed.save()
    await expiring(12, status="cancelled")
    headers = await token_of("小李", branch="310100")
    seen = {}
    for tab in ("30", "60", "90", "lapsed"):
        status, body = await call(rig, "GET", "/api/v1/renewals/worklist", headers,
                                  params={"tab": tab})
        assert status == 200, body
        seen[tab] = [row["days_left"] for row in body["items"]]
    assert seen == {"30": [0, 30], "60": [31, 60], "90": [61, 90], "lapsed": [-90, -1]}


async def test_worklist_filters_by_branch_agent_and_state(rig: Rig) -> None:
    pool = await expiring(5)
    mine = await expiring(6, agent="王五")
    claimed = await expiring(7, agent="王五", claimed_by="小李")
    done = await expiring(8, outcome="unreachable")
    await expiring(9, branch="320100")
    headers = await token_of("小李", branch="310100")

    async def ids(**params: str) -> list[int]:
        status, body = await call(rig, "GET", "/api/v1/renewals/worklist", headers,
                                  params=params)
        assert status == 200, body
        return [row["id"] for row in body["items"]]

    assert await ids() == [pool.id, mine.id, claimed.id, done.id]  # the operator's branch
    assert len(await ids(branch="*")) == 5
    assert await ids(branch="320100") != await ids()
    assert await ids(state="pool") == [pool.id, done.id]
    assert await ids(agent="王五") == [mine.id, claimed.id]
    assert await ids(agent="小李") == [claimed.id]
    assert await ids(state="claimed") == [claimed.id]
    assert await ids(state="done") == [done.id]
    status, body = await call(rig, "GET", "/api/v1/renewals/worklist", headers,
                              params={"tab": "45"})
    assert status == 422 and body["details"][0]["path"] == "query.tab"


async def test_a_row_shows_the_car_and_every_contact_with_its_count(rig: Rig) -> None:
    policy = await expiring(20, plate="沪C33333")
    compulsory = await f.policy(await policy.customer, end=policy.end_date, plate="沪C33333",
                                product="compulsory", branch="310100")
    await f.queued(await policy.customer, key=f"renewal:{policy.id}:T-30", kind="renewal",
                   template="renewal_reminder")
    await Message.filter(dedup_key=f"renewal:{policy.id}:T-30").update(
        status=MessageStatus.DELIVERED, channel="sms",
        created_at=f.NOON_SHANGHAI - timedelta(days=9))
    await f.queued(await policy.customer, key="birthday:x", kind="birthday")  # not a contact
    await Task.create(kind="renewal_callback", customer_id=policy.customer_id,
                      policy_id=policy.id, source="telegram")
    headers = await token_of("小李", branch="310100")
    status, body = await call(rig, "POST", f"/api/v1/renewals/{policy.id}/call", headers,
                              json={"result": "no_answer", "note": "打了两次"})
    assert status == 201 and body["kind"] == "renewal_call" and body["status"] == "closed"
    _, body = await call(rig, "GET", "/api/v1/renewals/worklist", headers)
    row = next(r for r in body["items"] if r["id"] == policy.id)
    assert {p["id"] for p in row["car"]} == {policy.id, compulsory.id}
    assert [(c["type"], c["kind"], c["status"]) for c in row["contacts"]] == [
        ("message", "renewal", "delivered"), ("task", "renewal_callback", "open"),
        ("task", "renewal_call", "closed")]
    assert row["contact_count"] == 3 and row["contacts"][2]["result"] == "no_answer"
    assert row["customer"]["phone"].count("*") >= 4

    # reaching the customer closes the call-back they asked for
    await call(rig, "POST", f"/api/v1/renewals/{policy.id}/call", headers,
               json={"result": "reached"})
    callback = await Task.get(kind="renewal_callback", policy_id=policy.id)
    assert (callback.status, callback.assignee) == (TaskStatus.CLOSED, "小李")


# -- claiming -------------------------------------------------------------------------------------


async def test_agents_claim_unclaimed_policies_of_their_branch_only(rig: Rig) -> None:
    ours, theirs = await expiring(10), await expiring(11, branch="320100")
    li = await token_of("小李", branch="310100")
    wang = await token_of("小王", branch="310100")
    status, body = await call(rig, "POST", "/api/v1/renewals/claim", li,
                              json={"policy_ids": [ours.id]})
    assert status == 200 and body["claimed"][0]["owner"] == "小李"
    assert body["claimed"][0]["responsible"] == "小李"
    # taken: another agent cannot take it over, nor claim for someone else
    status, body = await call(rig, "POST", "/api/v1/renewals/claim", wang,
                              json={"policy_ids": [ours.id]})
    assert (status, body["error"]) == (409, "already_claimed")
    status, body = await call(rig, "POST", "/api/v1/renewals/claim", wang,
                              json={"policy_ids": [ours.id], "assignee": "小王"})
    assert status == 409
    status, body = await call(rig, "POST", "/api/v1/renewals/claim", wang,
                              json={"policy_ids": [theirs.id]})
    assert (status, body["error"]) == (403, "not_your_branch")
    status, body = await call(rig, "POST", "/api/v1/renewals/claim", wang,
                              json={"policy_ids": [theirs.id], "assignee": "小李"})
    assert (status, body["error"]) == (403, "claim_for_others")
    await ours.refresh_from_db()
    assert ours.owner == "小李"
    assert await AuditLog.filter(action="renewal.claim").count() == 1


async def test_a_bulk_claim_is_all_or_nothing_and_a_manager_reassigns(rig: Rig) -> None:
    a, b, c = await expiring(61), await expiring(62), await expiring(63, claimed_by="小王")
    li = await token_of("小李", branch="310100")
    await token_of("小王", branch="310100")
    await token_of("外地", branch="320100")
    manager = await token_of("钱经理", branch="310100", manager=True)
    status, _ = await call(rig, "POST", "/api/v1/renewals/claim", li,
                           json={"policy_ids": [a.id, b.id, c.id]})
    assert status == 409
    assert [p.owner for p in await Policy.filter(id__in=[a.id, b.id]).order_by("id")] == ["", ""]
    status, body = await call(rig, "POST", "/api/v1/renewals/claim", li,
                              json={"policy_ids": [a.id, b.id]})
    assert status == 200 and len(body["claimed"]) == 2
    status, body = await call(rig, "POST", "/api/v1/renewals/claim", manager,
                              json={"policy_ids": [a.id, c.id], "assignee": "小王"})
    assert status == 200
    assert {p.id: p.owner for p in await Policy.filter(id__in=[a.id, b.id, c.id])} == {
        a.id: "小王", b.id: "小李", c.id: "小王"}
    status, body = await call(rig, "POST", "/api/v1/renewals/claim", manager,
                              json={"policy_ids": [b.id], "assignee": "外地"})
    assert (status, body["error"]) == (403, "not_your_branch")
    status, body = await call(rig, "POST", "/api/v1/renewals/claim", manager,
                              json={"policy_ids": [b.id, 999_999]})
    assert status == 404


# -- outcomes -------------------------------------------------------------------------------------


async def test_outcomes_need_their_reason_and_renewed_comes_from_the_import(rig: Rig) -> None:
    policy = await expiring(15)
    li = await token_of("小李", branch="310100")
    url = f"/api/v1/renewals/{policy.id}/outcome"
    for bad in ({"outcome": "not_renewing"}, {"outcome": "renewed"},
                {"outcome": "unreachable", "reason": "price"}, {"outcome": "lost"}):
        status, _ = await call(rig, "POST", url, li, json=bad)
        assert status == 422, bad
    status, body = await call(rig, "POST", url, li,
                              json={"outcome": "not_renewing", "reason": "claim_experience"})
    assert status == 200
    assert (body["outcome"], body["outcome_reason"], body["outcome_by"]) == (
        "not_renewing", "claim_experience", "小李")
    status, body = await call(rig, "POST", url, li,
                              json={"outcome": "renewed_elsewhere", "note": "平安"})
    assert (body["outcome"], body["outcome_reason"], body["outcome_note"]) == (
        "renewed_elsewhere", "", "平安")
    await Policy.filter(id=policy.id).update(outcome="renewed")
    status, body = await call(rig, "POST", url, li, json={"outcome": "unreachable"})
    assert status == 409
    viewer = await token_of("只读", role=Role.VIEWER)
    status, _ = await call(rig, "POST", url, viewer, json={"outcome": "unreachable"})
    assert status == 403


# -- the monthly claim window ---------------------------------------------------------------------


async def test_the_claim_window_lists_the_months_unclaimed_policies(rig: Rig) -> None:
    # November 2026: expiries from 1 Nov + 61 days (2027-01-01) to 1 Dec + 60 (2027-01-30)
    first = date(2027, 1, 1)
    inside = await f.policy(await f.customer(), end=first, branch="310100")
    last = await f.policy(await f.customer(), end=date(2027, 1, 30), branch="310100")
    await f.policy(await f.customer(), end=date(2027, 1, 31), branch="310100")  # next month's
    await f.policy(await f.customer(), end=date(2026, 12, 31), branch="310100")  # last month's
    await expiring((date(2027, 1, 10) - TODAY).days, claimed_by="小李")
    await f.policy(await f.customer(), end=date(2027, 1, 11), branch="320100")
    manager = await token_of("钱经理", branch="310100", manager=True)
    status, body = await call(rig, "GET", "/api/v1/renewals/claim-window", manager)
    assert status == 200
    assert [row["id"] for row in body["items"]] == [inside.id, last.id]
    _, body = await call(rig, "GET", "/api/v1/renewals/claim-window", manager,
                         params={"branch": "*"})
    assert body["total"] == 3


# -- the console ----------------------------------------------------------------------------------


async def test_console_worklist_claims_logs_and_records_in_both_languages(rig: Rig) -> None:
    policy = await expiring(12, agent="王五", original_agent="王五")
    other = await expiring(13)
    _, token = await create_operator("小李", Role.AGENT, branch="310100")
    await Task.create(kind="renewal_escalation", customer_id=policy.customer_id,
                      policy_id=policy.id, source="schedule", assignee="小李",
                      status=TaskStatus.ASSIGNED, result="owner")
    csrf = await console_login(rig.client, token)
    page = await (await rig.client.get("/console/renewals?lang=zh-CN")).text()
    assert "30天内到期" in page and policy.number in page and "公共池" in page
    assert "您有 1 条续保督办待处理" in page and "T-10 提醒责任人" in page
    assert "原业务员" not in page
    resp = await rig.client.post("/console/renewals/claim", data={
        "csrf_token": csrf, "policy_id": [str(policy.id), str(other.id)],
        "back": "/console/renewals?tab=30"}, allow_redirects=False)
    assert resp.status == 303 and "ok=renewal_claim" in resp.headers["Location"]
    assert {p.owner for p in await Policy.filter(id__in=[policy.id, other.id])} == {"小李"}
    resp = await rig.client.post(f"/console/renewals/{policy.id}/outcome", data={
        "csrf_token": csrf, "outcome": "not_renewing", "reason": ""}, allow_redirects=False)
    assert "err=invalid_outcome" in resp.headers["Location"]
    resp = await rig.client.post(f"/console/renewals/{policy.id}/outcome", data={
        "csrf_token": csrf, "outcome": "not_renewing", "reason": "price"},
        allow_redirects=False)
    assert "ok=renewal_outcome" in resp.headers["Location"]
    await rig.client.post(f"/console/renewals/{policy.id}/call", data={
        "csrf_token": csrf, "result": "reached", "note": "客户考虑中"})
    page = await (await rig.client.get("/console/renewals?lang=en")).text()
    assert "Due in ≤ 30 days" in page and "not renewing · price" in page
    assert "original agent 王五" in page and "Renewal call · closed" in page
    assert re.search(r"<summary>2</summary>", page)
    window = await (await rig.client.get("/console/renewals/window?lang=en")).text()
    assert "must be claimed by 2026-11-05" in window and "The claim deadline has passed" in window


async def test_a_long_worklist_counts_up_to_its_cap(rig: Rig, monkeypatch: Any) -> None:
    """Beyond ``COUNT_CAP`` rows the list says "3+" instead of counting them all; at or under
    it, the exact total as before."""
    from bot.web.operators import renewals

    monkeypatch.setattr(renewals, "COUNT_CAP", 3)
    for days in (1, 2, 3):
        await expiring(days)
    headers = await token_of("小李", branch="310100")
    status, body = await call(rig, "GET", "/api/v1/renewals/worklist", headers,
                              params={"limit": "2"})
    assert status == 200 and body["total"] == 3 and "total_capped" not in body
    await expiring(4)
    _, body = await call(rig, "GET", "/api/v1/renewals/worklist", headers,
                         params={"limit": "2"})
    assert (body["total"], body["total_capped"], len(body["items"])) == (3, True, 2)
    _, more = await call(rig, "GET", body["next"], headers)
    assert [row["days_left"] for row in more["items"]] == [3, 4] and more["next"] is None
    await console_login(rig.client, rig.tokens[Role.ADMIN])
    page = await (await rig.client.get("/console/renewals?branch=310100&lang=en")).text()
    assert "1–4 of 4+" in page  # a page longer than the cap counts at least its own rows
