"""Renewal escalation: who is prompted as an unresolved policy nears its expiry, and overdue
call-backs.

Levels (days before expiry from ``[renewal]``; defaults from the insurer's process):

- ``owner`` (``escalate_owner_days``, T-10): the responsible person — or, for the branch pool,
  nobody in particular — and the branch's admins are prompted;
- ``manager`` (``escalate_manager_days``, T-5): the branch manager is asked to confirm with the
  owner or reassign;
- ``head_office`` (``escalate_head_office_days``, T-2): a policy nobody claimed goes to the
  head-office pool (``head_office_pool`` becomes its owner) for outbound calls.

Each level covers the days from its offset down to the next level's, so a run missed for a
few days still prompts (catching up), and a policy that enters late gets only the level it is
in. Unresolved: still waiting for renewal, not expired, no outcome other than
``unreachable``. Every prompt is a ``renewal_escalation`` task under the key
``escalation:{policy}:{level}`` — one per policy and level however often this runs — and each
operator prompted gets one message a day per level on their own phone when they have one
(``engage operator add --phone``), through the outbox like every message.

A lapsed policy without an outcome gets a ``lapse_follow_up`` task each month after its
expiry, ``renewal.lapse_follow_ups`` times (``lapse_follow_up:{policy}:{month}``): the lapse
list the branch works through; winning it back shows in the KPIs as a win-back.

A customer's call-back still open after its ``due_at`` (``renewal.callback_due_working_hours``
of office time) is escalated to the branch manager once (``escalation:callback:{task}``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from scheduler.config import RenewalSettings
from storage.models import Category, Policy, PolicyStatus, Task, TaskStatus
from storage.operator_models import Operator, Role
from storage.outbox import Outbound, enqueue
from storage.renewal_desk import OPEN_TASK, Outcome, TaskKind, responsible, task_once

log = logging.getLogger(__name__)

KIND = "renewal_escalation"
LAPSE_FOLLOW_UP = "lapse_follow_up"
UNRESOLVED = ("", Outcome.UNREACHABLE.value)


class Level(StrEnum):
    OWNER = "owner"
    MANAGER = "manager"
    HEAD_OFFICE = "head_office"
    CALLBACK_OVERDUE = "callback_overdue"


@dataclass(frozen=True, slots=True)
class Window:
    level: Level
    first: date  # expiry dates covered, inclusive
    last: date


def windows(today: date, settings: RenewalSettings) -> list[Window]:
    """The expiry dates each level covers on ``today``."""
    owner, manager, head = (settings.escalate_owner_days, settings.escalate_manager_days,
                            settings.escalate_head_office_days)
    return [
        Window(Level.OWNER, today + timedelta(days=manager + 1), today + timedelta(days=owner)),
        Window(Level.MANAGER, today + timedelta(days=head + 1), today + timedelta(days=manager)),
        Window(Level.HEAD_OFFICE, today, today + timedelta(days=head)),
    ]


class _Staff:
    """The active operators by name and, per branch, its managers and admins."""

    def __init__(self, operators: list[Operator]) -> None:
        self.by_name = {o.name: o for o in operators}
        self.managers: dict[str, list[Operator]] = defaultdict(list)
        self.admins: dict[str, list[Operator]] = defaultdict(list)
        for o in operators:
            if o.branch and o.manager:
                self.managers[o.branch].append(o)
            if o.branch and o.role == Role.ADMIN:
                self.admins[o.branch].append(o)

    def manager_of(self, branch: str) -> str:
        found = self.managers.get(branch)
        return found[0].name if found else ""


async def run(*, now: datetime, today: date, settings: RenewalSettings,
              send_at: datetime) -> dict[str, int]:
    """Every prompt due at ``now``; counts of tasks created per level. Operators' messages
    go no earlier than ``send_at``."""
    staff = _Staff(await Operator.filter(active=True))
    counts: dict[str, int] = {}
    notify: dict[tuple[int, Level], int] = defaultdict(int)
    for window in windows(today, settings):
        counts[window.level.value] = await _level(window, staff, settings, now, notify)
    counts[Level.CALLBACK_OVERDUE.value] = await _overdue_callbacks(now, staff, notify)
    counts[LAPSE_FOLLOW_UP] = await _lapse_follow_ups(today, settings)
    await _messages(notify, today, send_at)
    if any(counts.values()):
        log.info("renewal escalation on %s: %s", today, counts)
    return counts


async def _level(window: Window, staff: _Staff, settings: RenewalSettings, now: datetime,
                 notify: dict[tuple[int, Level], int]) -> int:
    query = Policy.filter(
        end_date__gte=window.first, end_date__lte=window.last,
        status__in=(PolicyStatus.ACTIVE, PolicyStatus.EXPIRED), renewed_by_id=None,
        cancelled_at=None, outcome__in=UNRESOLVED)
    if window.level is Level.HEAD_OFFICE:
        query = query.filter(owner="")
    created = 0
    for policy in await query.order_by("end_date", "id"):
        prompted = _prompted(window.level, policy, staff, settings)
        task = await task_once(
            f"escalation:{policy.id}:{window.level.value}", kind=TaskKind.ESCALATION,
            customer_id=policy.customer_id, policy_id=policy.id, source="schedule",
            assignee=prompted[0] if prompted else "", result=window.level.value,
            status=TaskStatus.ASSIGNED if prompted else TaskStatus.OPEN)
        if task is None:
            continue
        created += 1
        if window.level is Level.HEAD_OFFICE:
            await Policy.filter(id=policy.id, owner="").update(
                owner=settings.head_office_pool, claimed_at=now)
        for name in prompted:
            if name in staff.by_name:
                notify[(staff.by_name[name].id, window.level)] += 1
    return created


def _prompted(level: Level, policy: Policy, staff: _Staff,
              settings: RenewalSettings) -> list[str]:
    """Who is prompted, first the one the task is assigned to."""
    if level is Level.OWNER:
        owner = responsible(policy)
        admins = [o.name for o in staff.admins.get(policy.branch, []) if o.name != owner]
        return ([owner] if owner else []) + admins
    if level is Level.MANAGER:
        manager = staff.manager_of(policy.branch)
        return [manager] if manager else []
    return [settings.head_office_pool]


async def _overdue_callbacks(now: datetime, staff: _Staff,
                             notify: dict[tuple[int, Level], int]) -> int:
    created = 0
    overdue = await Task.filter(kind=TaskKind.CALLBACK.value, status__in=OPEN_TASK,
                                due_at__lt=now).select_related("policy")
    for callback in overdue:
        branch = callback.policy.branch if callback.policy else ""
        manager = staff.manager_of(branch)
        task = await task_once(
            f"escalation:callback:{callback.id}", kind=TaskKind.ESCALATION,
            customer_id=callback.customer_id, policy_id=callback.policy_id, source="schedule",
            assignee=manager, result=Level.CALLBACK_OVERDUE.value,
            note=f"call-back task {callback.id} for {callback.assignee or 'the pool'}",
            status=TaskStatus.ASSIGNED if manager else TaskStatus.OPEN)
        if task is not None:
            created += 1
            if manager:
                notify[(staff.by_name[manager].id, Level.CALLBACK_OVERDUE)] += 1
    return created


def months_after(end: date, today: date) -> int:
    """Whole months from ``end`` to ``today`` (the 31 Jan + 1 month is 28/29 Feb)."""
    months = (today.year - end.year) * 12 + today.month - end.month
    return months - 1 if today.day < end.day and not _month_end(today) else months


def _month_end(day: date) -> bool:
    return (day + timedelta(days=1)).month != day.month


async def _lapse_follow_ups(today: date, settings: RenewalSettings) -> int:
    """A follow-up task for each lapsed policy without an outcome, once a month after its
    expiry, ``lapse_follow_ups`` times, for its responsible person (or the branch pool)."""
    if settings.lapse_follow_ups == 0:
        return 0
    oldest = today - timedelta(days=31 * settings.lapse_follow_ups + 31)
    lapsed = await Policy.filter(
        end_date__gte=oldest, end_date__lt=today, renewed_by_id=None, cancelled_at=None,
        status__in=(PolicyStatus.ACTIVE, PolicyStatus.EXPIRED), outcome__in=UNRESOLVED,
    ).order_by("end_date", "id")
    created = 0
    for policy in lapsed:
        month = min(months_after(policy.end_date, today), settings.lapse_follow_ups)
        if month < 1:
            continue
        owner = responsible(policy)
        task = await task_once(
            f"lapse_follow_up:{policy.id}:{month}", kind=TaskKind.FOLLOW_UP,
            customer_id=policy.customer_id, policy_id=policy.id, source="schedule",
            assignee=owner, result=f"month_{month}",
            status=TaskStatus.ASSIGNED if owner else TaskStatus.OPEN)
        created += task is not None
    return created


async def _messages(notify: dict[tuple[int, Level], int], today: date,
                    send_at: datetime) -> None:
    """One message a day per operator and level, to operators with a contact record."""
    if not notify:
        return
    contacts = dict(await Operator.filter(id__in={op for op, _ in notify},
                                          contact_id__not_isnull=True)
                    .values_list("id", "contact_id"))
    for (operator_id, level), count in sorted(notify.items()):
        contact = contacts.get(operator_id)
        if contact is None:
            continue
        await enqueue(Outbound(
            dedup_key=f"escalation:{operator_id}:{today.isoformat()}:{level.value}",
            kind=KIND, category=Category.SERVICE, customer_id=int(contact),
            template_key=f"renewal_escalation_{level.value}", params={"count": count},
            not_before=send_at))
