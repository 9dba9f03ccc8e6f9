"""Renewal escalation on given dates with an injected clock: T-10 to the owner and branch
admins, T-5 to the branch manager, T-2 unclaimed to the head-office pool, overdue customer
call-backs to the manager — each once, with one message a day per operator and level. Each
test runs on every backend."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from bot.web.operators.access import create_operator
from scheduler.config import RenewalSettings
from scheduler.renewal_escalation import months_after, run, windows
from storage.models import Message, Policy, Task, TaskStatus
from storage.operator_models import Operator, Role
from tests import factories as f

TODAY = date(2026, 11, 23)
NOW = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
SETTINGS = RenewalSettings()


async def policy(days: int, *, branch: str = "310100", claimed_by: str = "",
                 **extra: Any) -> Policy:
    made = await f.policy(await f.customer(), end=TODAY + timedelta(days=days), branch=branch,
                          **extra)
    if claimed_by:
        await Policy.filter(id=made.id).update(owner=claimed_by)
    return made


async def staff() -> None:
    await create_operator("小李", Role.AGENT, branch="310100", contact_phone="13900000001")
    await create_operator("钱经理", Role.AGENT, branch="310100", manager=True,
                          contact_phone="13900000002")
    await create_operator("周管理", Role.ADMIN, branch="310100")
    await create_operator("外地经理", Role.AGENT, branch="320100", manager=True)


async def escalations() -> dict[tuple[int | None, str], str]:
    return {(t.policy_id, t.result): t.assignee
            for t in await Task.filter(kind="renewal_escalation")}


def test_levels_cover_the_days_down_to_the_next_level() -> None:
    spans = [(w.level.value, (w.first - TODAY).days, (w.last - TODAY).days)
             for w in windows(TODAY, SETTINGS)]
    assert spans == [("owner", 6, 10), ("manager", 3, 5), ("head_office", 0, 2)]
    custom = RenewalSettings(escalate_owner_days=7, escalate_manager_days=3,
                             escalate_head_office_days=1)
    assert [(w.first - TODAY).days for w in windows(TODAY, custom)] == [4, 2, 0]
    with pytest.raises(ValueError, match="escalate_owner_days"):
        RenewalSettings(escalate_owner_days=5, escalate_manager_days=5)


async def test_each_level_prompts_its_people_once(db: str) -> None:
    await staff()
    claimed = await policy(10, claimed_by="小李")
    pool = await policy(9)
    answered = await policy(8, outcome="not_renewing", outcome_reason="price")
    unreachable = await policy(7, agent="王五", outcome="unreachable")
    confirm = await policy(5, agent="王五")
    elsewhere = await policy(4, branch="320100")
    unclaimed = await policy(2, agent="王五")
    kept = await policy(1, claimed_by="小李")
    expired = await policy(-1)
    counts = await run(now=NOW, today=TODAY, settings=SETTINGS, send_at=NOW)
    assert counts == {"owner": 3, "manager": 2, "head_office": 1, "callback_overdue": 0,
                      "lapse_follow_up": 0}
    assert await escalations() == {
        (claimed.id, "owner"): "小李", (pool.id, "owner"): "周管理",
        (unreachable.id, "owner"): "王五", (confirm.id, "manager"): "钱经理",
        (elsewhere.id, "manager"): "外地经理", (unclaimed.id, "head_office"): "head_office"}
    assert answered.id not in {p for p, _ in await escalations()}
    assert {kept.id, expired.id}.isdisjoint({p for p, _ in await escalations()})
    await unclaimed.refresh_from_db()
    assert (unclaimed.owner, unclaimed.claimed_at) == ("head_office", NOW)

    # every operator with a phone gets one message a day per level
    messages = {m.dedup_key: m.params for m in await Message.filter(kind="renewal_escalation")}
    li, qian = await _ids("小李", "钱经理")
    assert messages == {f"escalation:{li}:2026-11-23:owner": {"count": 1},
                        f"escalation:{qian}:2026-11-23:manager": {"count": 1}}

    # run again the same day and the next: nothing new until a policy reaches the next level
    assert sum((await run(now=NOW + timedelta(hours=1), today=TODAY, settings=SETTINGS,
                          send_at=NOW)).values()) == 0
    later = await run(now=NOW + timedelta(days=5), today=TODAY + timedelta(days=5),
                      settings=SETTINGS, send_at=NOW)
    assert later["manager"] == 2  # claimed (T-5) and pool (T-4) reach the manager
    assert (claimed.id, "manager") in await escalations()


async def _ids(*names: str) -> list[int]:
    return [(await Operator.get(name=name)).id for name in names]


async def test_a_call_back_past_its_due_time_goes_to_the_manager_once(db: str) -> None:
    await staff()
    target = await policy(40)
    late = await Task.create(kind="renewal_callback", customer_id=target.customer_id,
                             policy_id=target.id, source="sms", assignee="小李",
                             status=TaskStatus.ASSIGNED, due_at=NOW - timedelta(minutes=1))
    await Task.create(kind="renewal_callback", customer_id=target.customer_id,
                      policy_id=target.id, source="sms", due_at=NOW + timedelta(hours=1))
    await Task.create(kind="renewal_callback", customer_id=target.customer_id,
                      policy_id=target.id, source="sms", status=TaskStatus.CLOSED,
                      due_at=NOW - timedelta(days=1))
    counts = await run(now=NOW, today=TODAY, settings=SETTINGS, send_at=NOW)
    assert counts["callback_overdue"] == 1
    [escalation] = await Task.filter(kind="renewal_escalation")
    assert (escalation.assignee, escalation.result, escalation.policy_id) == (
        "钱经理", "callback_overdue", target.id)
    assert str(late.id) in escalation.note
    again = await run(now=NOW + timedelta(hours=3), today=TODAY, settings=SETTINGS,
                      send_at=NOW)
    assert again["callback_overdue"] == 1  # the second call-back is now late too
    assert await Task.filter(kind="renewal_escalation").count() == 2


def test_months_after_expiry_count_whole_months() -> None:
    assert [months_after(date(2026, 9, 20), day) for day in (
        date(2026, 10, 19), date(2026, 10, 20), date(2026, 11, 23))] == [0, 1, 2]
    assert months_after(date(2026, 1, 31), date(2026, 2, 28)) == 1  # the month's last day


async def test_a_lapsed_policy_gets_a_follow_up_each_month_up_to_the_count(db: str) -> None:
    lapsed = await policy(-64, claimed_by="小李")  # ended 2026-09-20
    answered = await policy(-64, outcome="renewed_elsewhere")
    await policy(-64, renewed_by_id=answered.id)

    async def follow(day: date) -> list[str]:
        await run(now=NOW, today=day, settings=SETTINGS, send_at=NOW)
        return [t.result for t in await Task.filter(kind="lapse_follow_up").order_by("id")]

    assert await follow(TODAY) == ["month_2"]  # catching up: the current month only
    assert await follow(TODAY) == ["month_2"]
    assert await follow(date(2026, 12, 20)) == ["month_2", "month_3"]
    assert await follow(date(2027, 1, 25)) == ["month_2", "month_3"]  # three at most
    [first, _] = await Task.filter(kind="lapse_follow_up").order_by("id")
    assert (first.policy_id, first.assignee, first.status) == (
        lapsed.id, "小李", TaskStatus.ASSIGNED)
    none = RenewalSettings(lapse_follow_ups=0)
    assert (await run(now=NOW, today=date(2026, 12, 21), settings=none,
                      send_at=NOW))["lapse_follow_up"] == 0
