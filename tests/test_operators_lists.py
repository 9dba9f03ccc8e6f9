"""Lists in pages (API and console), search by what operators have in hand, a claim's status
and timeline agreeing whatever path changed it, and the dashboard's "today" by the local day.
Every test runs on each backend."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from storage.models import Claim, ClaimEvent, Message, MessageStatus, Task
from storage.operator_models import AuditLog, Role
from tests import factories as f
from tests import test_operators_api
from tests.test_operators_api import Rig, _campaign, console_login

rig = test_operators_api.rig  # the API rig: an operator per role, uploads, a set clock


async def walk(rig: Rig, url: str, **params: Any) -> tuple[list[dict[str, Any]], set[int]]:
    """Every item of a list, following ``next`` links; and the totals the pages gave."""
    items: list[dict[str, Any]] = []
    totals: set[int] = set()
    status, body = await rig.call("GET", url, Role.VIEWER if "audit" not in url else Role.ADMIN,
                                  params=params)
    while True:
        assert status == 200, body
        items.extend(body["items"])
        totals.add(body["total"])
        if body["next"] is None:
            return items, totals
        assert body["next"].startswith(url)
        status, body = await rig.call("GET", body["next"],
                                      Role.VIEWER if "audit" not in url else Role.ADMIN)


async def claims_spread(count: int) -> list[Claim]:
    """Claims over a few report times, several sharing one (the id breaks the tie)."""
    owner = await f.customer(name="孙八", phone="+8613812345678")
    policy = await f.policy(owner, number="PSUN2026", plate="沪C77777")
    made = []
    for n in range(count):
        made.append(await Claim.create(
            number=f"C{n:04d}", policy=policy, customer=owner,
            reported_at=f.NOON_SHANGHAI - timedelta(hours=n % 3)))
    return made


async def test_claims_come_in_pages_in_a_stable_order_with_total_and_next(rig: Rig) -> None:
    made = await claims_spread(8)
    expected = [c.number for c in sorted(made, key=lambda c: (c.reported_at, c.id),
                                         reverse=True)]
    items, totals = await walk(rig, "/api/v1/claims", limit=3)
    assert [c["number"] for c in items] == expected and totals == {8}

    # a claim reported while someone pages does not shift the next page
    _, first = await rig.call("GET", "/api/v1/claims", Role.VIEWER, params={"limit": 3})
    await Claim.create(number="CNEW", policy_id=made[0].policy_id, customer_id=made[0].customer_id,
                       reported_at=f.NOON_SHANGHAI + timedelta(hours=1))
    _, second = await rig.call("GET", first["next"], Role.VIEWER)
    assert [c["number"] for c in second["items"]] == expected[3:6] and second["total"] == 9


async def test_a_page_asks_at_most_200_and_a_bad_cursor_is_422(rig: Rig) -> None:
    status, answer = await rig.call("GET", "/api/v1/claims", Role.VIEWER,
                                    params={"limit": "201"})
    assert status == 422 and answer["details"][0]["path"] == "query.limit"
    for cursor in ("nonsense!", "W10", "WyJ4IiwgMV0"):
        status, answer = await rig.call("GET", "/api/v1/claims", Role.VIEWER,
                                        params={"cursor": cursor})
        assert status == 422 and answer["error"] == "invalid_cursor", cursor


async def test_claims_are_found_by_number_policy_plate_and_masked_phone(rig: Rig) -> None:
    await claims_spread(3)
    other = await f.customer(name="周九", phone="+8613900001111")
    policy = await f.policy(other, number="PZHOU", plate="京A12345")
    await Claim.create(number="X9", policy=policy, customer=other,
                       reported_at=f.NOON_SHANGHAI)
    searches = {"C000": 3, "C0001": 1, "PSUN2026": 3, "沪c 77777": 3, "138****5678": 3,
                "+86*******5678": 3, "5678": 3, "13812345678": 3, "1111": 1, "京A12345": 1,
                "139****5678": 0, "nothing": 0}
    for q, count in searches.items():
        items, totals = await walk(rig, "/api/v1/claims", q=q)
        assert totals == {count} and len(items) == count, q


async def test_every_list_pages_to_its_end(rig: Rig) -> None:
    owner = await f.customer(name="吴十", phone="+8613700000001")
    for n in range(5):
        await rig.call("POST", "/api/v1/campaigns", json=_campaign(name=f"活动{n}"))
        await Task.create(kind="renewal_callback", customer=owner, source="sms")
        await f.policy(owner, number=f"PW{n}")
    lists = {"/api/v1/campaigns": 5, "/api/v1/tasks": 5, "/api/v1/audit": 5}
    for url, count in lists.items():
        items, totals = await walk(rig, url, limit=2)
        ids = [item["id"] for item in items]
        assert len(ids) == count == len(set(ids)) and totals == {count}, url
        assert ids == sorted(ids, reverse=True), url  # newest first
    # a customer found through five policies is one row, not five
    items, totals = await walk(rig, "/api/v1/customers", q="0001", limit=2)
    assert [c["id"] for c in items] == [owner.id] and totals == {1}
    assert await AuditLog.all().count() == 5


async def test_console_lists_say_which_rows_of_how_many_and_page_on(rig: Rig) -> None:
    await claims_spread(55)
    await console_login(rig.client, rig.tokens[Role.VIEWER])
    page = await (await rig.client.get("/console/claims?lang=zh-CN")).text()
    assert "第 1–50 条，共 55 条" in page
    following = re.search(r'href="([^"]+)" id="page-next"', page)
    assert following is not None
    second = await (await rig.client.get(following.group(1).replace("&amp;", "&"))).text()
    assert "第 51–55 条，共 55 条" in second and 'id="page-next"' not in second
    assert 'id="page-restart"' in second
    assert second.count('href="/console/claims/C') == 5
    found = await (await rig.client.get("/console/claims?lang=en&q=138****5678")).text()
    assert "1–50 of 55" in found
    found = await (await rig.client.get("/console/claims?lang=en&q=C0054")).text()
    assert "1–1 of 1" in found and 'href="/console/claims/C0054"' in found


# -- a claim's status and its timeline ---------------------------------------------------------


async def agree(number: str) -> list[tuple[str, str]]:
    """Assert the claim's status is its latest step's; the steps in time order."""
    claim = await Claim.get(number=number)
    steps = await ClaimEvent.filter(claim_id=claim.id).order_by("occurred_at", "id")
    assert steps, "every claim has at least the step that created it"
    assert claim.status == steps[-1].status
    return [(s.status.value, s.occurred_at.astimezone(UTC).isoformat()) for s in steps]


async def test_a_claims_status_and_timeline_agree_by_every_path(rig: Rig) -> None:
    owner = await f.customer()
    policy = await f.policy(owner)
    body = {"policy_number": policy.number, "reported_at": "2026-11-20T09:00:00+08:00"}
    status, created = await rig.call("PUT", "/api/v1/claims/C7", Role.AGENT, json=body)
    assert status == 201 and created["status"] == "reported"
    assert await agree("C7") == [("reported", "2026-11-20T01:00:00+00:00")]
    assert await Message.filter(kind="claim_update").count() == 1  # the customer hears of it

    await rig.call("POST", "/api/v1/claims/C7/events", Role.AGENT, json={
        "external_id": "core-1", "status": "surveyed", "occurred_at": "2026-11-21T10:00:00+08:00"})
    assert [s for s, _ in await agree("C7")] == ["reported", "surveyed"]

    # a stale snapshot from the core system, dated: recorded where it belongs, no regression
    status, put = await rig.call("PUT", "/api/v1/claims/C7", Role.AGENT, json={
        **body, "status": "registered", "status_at": "2026-11-20T15:00:00+08:00"})
    assert status == 200 and put["status"] == "surveyed"
    assert [s for s, _ in await agree("C7")] == ["reported", "registered", "surveyed"]
    assert await Message.filter(kind="claim_update").count() == 2  # not for the late step
    again = await rig.call("PUT", "/api/v1/claims/C7", Role.AGENT, json={
        **body, "status": "registered", "status_at": "2026-11-20T15:00:00+08:00"})
    assert again[0] == 200 and len(await agree("C7")) == 3  # the same step, not a second

    # an undated change takes effect now: a step, and the customer is told
    status, put = await rig.call("PUT", "/api/v1/claims/C7", Role.AGENT,
                                 json={**body, "status": "reported"})
    assert status == 200 and put["status"] == "reported"
    steps = await agree("C7")
    assert steps[-1] == ("reported", rig.clock.now.astimezone(UTC).isoformat())
    assert await Message.filter(kind="claim_update").count() == 3
    # the same status again, or other fields only, is no step
    await rig.call("PUT", "/api/v1/claims/C7", Role.AGENT,
                   json={**body, "status": "reported", "description": "追尾，已定责"})
    assert len(await agree("C7")) == 4
    status, detail = await rig.call("GET", "/api/v1/claims/C7", Role.VIEWER)
    assert [e["status"] for e in detail["events"]] == [s for s, _ in steps]


# -- the dashboard's day -------------------------------------------------------------------------


async def test_dashboard_counts_the_local_day_by_its_utc_bounds(rig: Rig) -> None:
    # 01:30 in Shanghai is 17:30 UTC the day before: the hours where text times went wrong
    rig.clock.now = datetime(2026, 11, 20, 17, 30, tzinfo=UTC)
    local = datetime(2026, 11, 21, tzinfo=UTC) - timedelta(hours=8)  # 00:00 Shanghai, in UTC
    who = await f.customer()

    async def message(kind: str, *, due: datetime, created: datetime,
                      sent: datetime | None = None, status: MessageStatus = MessageStatus.PENDING,
                      changed: datetime | None = None) -> None:
        row = await f.queued(who, kind=kind, not_before=due)
        await Message.filter(id=row.id).update(
            created_at=created, sent_at=sent, status=status, updated_at=changed or created)

    yesterday = local - timedelta(hours=12)
    await message("weather", due=local + timedelta(hours=7), created=yesterday)  # 07:00 today
    await message("birthday", due=local + timedelta(hours=8, minutes=30), created=yesterday)
    await message("renewal", due=yesterday, created=yesterday, sent=local + timedelta(hours=1),
                  status=MessageStatus.SENT, changed=local + timedelta(hours=1))
    await message("campaign", due=datetime(9999, 1, 1, tzinfo=UTC),  # held by a pause
                  created=local + timedelta(hours=1, minutes=10))
    await message("lapse_rescue", due=yesterday, created=yesterday, sent=yesterday,
                  status=MessageStatus.SENT)
    await message("claim_update", due=local + timedelta(days=1, minutes=30), created=yesterday)

    status, board = await rig.call("GET", "/api/v1/dashboard", Role.VIEWER)
    assert status == 200 and board["day"] == "2026-11-21"
    assert board["planned"] == {"weather": 1, "birthday": 1, "renewal": 1, "campaign": 1}
    assert board["planned_total"] == 4
    assert board["delivery"]["sent"] == 1  # the renewal, changed today; not yesterday's lapse
