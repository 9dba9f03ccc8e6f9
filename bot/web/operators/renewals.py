"""The renewal worklist: expiring and lapsed policies by tab, who is responsible, every contact
so far, and the operator's actions on a row — claim (认领), log a call, set the outcome.

Tabs count days to expiry from today in ``schedule.timezone``: ≤ 30, 31–60, 61–90, and lapsed
(ended within the last ``LAPSED_DAYS`` days unrenewed). A policy is on the worklist while it
waits for its renewal: active or expired, not linked to a renewal, not cancelled.

Who may do what: an agent claims unclaimed policies for themselves, within their branch when
they have one; a branch manager (``Operator.manager``) and an admin also assign to someone
else and reassign claimed ones (a manager within their branch). Every change is audited.

The monthly claim window: the policies whose expiry lies 61 days or more after the 1st and
before the next month's 1st plus 61 days are that month's list; they must be claimed by day
``renewal.claim_by_day`` of the month. :func:`unclaimed_in_window` lists those still
unclaimed, for the branch manager.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from tortoise.expressions import Q
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from bot.web.operators import audit
from bot.web.operators.access import Actor
from bot.web.operators.errors import Refusal
from bot.web.operators.paging import DEFAULT_LIMIT, Page, PageQuery, page
from storage.models import Customer, Message, Policy, PolicyStatus, Task, TaskStatus
from storage.operator_models import Operator, Role
from storage.phones import mask_phone
from storage.renewal_desk import (
    OPEN_TASK,
    WAITING_STATUSES,
    CallResult,
    Outcome,
    Reason,
    TaskKind,
    record_outcome,
    responsible,
)

LAPSED_DAYS = 90
COUNT_CAP = 10_000
"""A worklist longer than this shows "of 10000+": counting all of a 90,000-row tab on every
page costs more than the page itself (bench/renewal_kpis.py)."""
RENEWAL_MESSAGE_KINDS = ("renewal", "renewal_holiday", "lapse_rescue")
# contacts of a row: renewal messages from this long before expiry on
_CONTACT_LOOKBACK = timedelta(days=100)


class Tab(StrEnum):
    DUE_30 = "30"
    DUE_60 = "60"
    DUE_90 = "90"
    LAPSED = "lapsed"


class RowState(StrEnum):
    POOL = "pool"  # no owner and no agent
    UNCLAIMED = "unclaimed"  # nobody claimed it (the agent may still be responsible)
    CLAIMED = "claimed"
    OPEN = "open"  # no outcome yet
    DONE = "done"  # an outcome recorded


class RenewalError(Refusal):
    code = "renewal_error"
    status = 409


class PolicyNotFound(RenewalError):
    code = "not_found"
    status = 404


class NotYourBranch(RenewalError):
    code = "not_your_branch"
    status = 403


class AlreadyClaimed(RenewalError):
    code = "already_claimed"


class NotYours(RenewalError):
    code = "claim_for_others"
    status = 403


class WorklistQuery(PageQuery):
    tab: Tab = Tab.DUE_30
    branch: str = Field(default="", max_length=32,
                        description="a branch code; default: the operator's own branch")
    agent: str = Field(default="", max_length=64,
                       description="the owner, the agent or the original agent")
    state: RowState | None = None


class ClaimIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    policy_ids: list[int] = Field(min_length=1, max_length=200)
    assignee: str = Field(default="", max_length=64,
                          description="whom to give them (managers and admins); "
                                      "default: the caller")


class CallIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    result: CallResult
    note: str = Field(default="", max_length=2000)


class OutcomeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: Outcome
    reason: Reason | None = None
    note: str = Field(default="", max_length=200,
                      description="for renewed_elsewhere: the other insurer")

    @model_validator(mode="after")
    def _reason_goes_with_not_renewing(self) -> OutcomeIn:
        if self.outcome is Outcome.RENEWED:
            raise ValueError("renewed is recorded by the import of the renewing policy")
        if self.outcome is Outcome.NOT_RENEWING and self.reason is None:
            raise ValueError("not_renewing needs a reason")
        if self.outcome is not Outcome.NOT_RENEWING and self.reason is not None:
            raise ValueError("a reason goes with not_renewing only")
        return self


# -- reading -------------------------------------------------------------------------------------


def waiting_policies() -> QuerySet[Policy]:
    return Policy.filter(status__in=WAITING_STATUSES, renewed_by_id=None, cancelled_at=None)


def tab_bounds(tab: Tab, today: date) -> tuple[date, date]:
    """The first and last expiry date of ``tab`` on ``today``."""
    if tab is Tab.LAPSED:
        return today - timedelta(days=LAPSED_DAYS), today - timedelta(days=1)
    upper = {Tab.DUE_30: 30, Tab.DUE_60: 60, Tab.DUE_90: 90}[tab]
    lower = 0 if tab is Tab.DUE_30 else upper - 29
    return today + timedelta(days=lower), today + timedelta(days=upper)


def _filtered(query: QuerySet[Policy], branch: str, agent: str,
              state: RowState | None) -> QuerySet[Policy]:
    if branch:
        query = query.filter(branch=branch)
    if agent:
        query = query.filter(Q(owner=agent) | Q(agent=agent) | Q(original_agent=agent))
    if state is RowState.POOL:
        query = query.filter(owner="", agent="")
    elif state is RowState.UNCLAIMED:
        query = query.filter(owner="")
    elif state is RowState.CLAIMED:
        query = query.exclude(owner="")
    elif state is RowState.OPEN:
        query = query.filter(outcome="")
    elif state is RowState.DONE:
        query = query.exclude(outcome="")
    return query


def default_branch(actor: Actor, branch: str) -> str:
    """The branch a list shows: the one asked for, else the operator's own (``*`` for all)."""
    if branch == "*":
        return ""
    return branch or actor.operator.branch


async def worklist(actor: Actor, q: WorklistQuery, *, today: date,
                   limit: int = DEFAULT_LIMIT) -> tuple[list[dict[str, Any]], Page[Policy]]:
    first, last = tab_bounds(q.tab, today)
    query = _filtered(waiting_policies().filter(end_date__gte=first, end_date__lte=last),
                      default_branch(actor, q.branch), q.agent.strip(), q.state)
    found = await page(query, ("end_date", "id"), limit=min(limit, q.limit), cursor=q.cursor,
                       count_cap=COUNT_CAP)
    return await rows_json(found.rows, today), found


async def rows_json(policies: Sequence[Policy], today: date) -> list[dict[str, Any]]:
    """Worklist rows: the policy, its customer, the car's other policies and every contact."""
    if not policies:
        return []
    customer_ids = {p.customer_id for p in policies}
    customers = {c.id: c for c in await Customer.filter(id__in=customer_ids)}
    plates = {p.plate for p in policies}
    cars: dict[tuple[int, str], list[Policy]] = defaultdict(list)
    for other in await Policy.filter(customer_id__in=customer_ids, plate__in=plates) \
            .order_by("-end_date", "id"):
        cars[(other.customer_id, other.plate)].append(other)
    contacts = await _contacts(policies)
    rows = []
    for policy in policies:
        customer = customers[policy.customer_id]
        events = contacts.get(policy.id, [])
        rows.append({
            **policy_json(policy, today),
            "customer": {"id": customer.id, "name": customer.name,
                         "phone": mask_phone(customer.phone)},
            "car": [{"id": p.id, "number": p.number, "product": str(p.product),
                     "end_date": p.end_date.isoformat(), "status": str(p.status)}
                    for p in cars[(policy.customer_id, policy.plate)]],
            "contacts": events,
            "contact_count": len(events),
        })
    return rows


def policy_json(policy: Policy, today: date) -> dict[str, Any]:
    return {
        "id": policy.id, "number": policy.number, "product": str(policy.product),
        "plate": policy.plate, "end_date": policy.end_date.isoformat(),
        "days_left": (policy.end_date - today).days, "status": str(policy.status),
        "branch": policy.branch, "agent": policy.agent,
        "original_agent": policy.original_agent, "owner": policy.owner,
        "responsible": responsible(policy),
        "claimed_at": policy.claimed_at.isoformat() if policy.claimed_at else None,
        "outcome": policy.outcome, "outcome_reason": policy.outcome_reason,
        "outcome_note": policy.outcome_note, "outcome_by": policy.outcome_by,
        "outcome_at": policy.outcome_at.isoformat() if policy.outcome_at else None,
    }


async def _contacts(policies: Sequence[Policy]) -> dict[int, list[dict[str, Any]]]:
    """Each policy's contacts, oldest first: renewal messages to its customer around its
    expiry (with their delivery status) and its tasks (call-backs asked, customer answers,
    calls logged, escalations)."""
    earliest = min(p.end_date for p in policies) - _CONTACT_LOOKBACK
    messages = await Message.filter(
        customer_id__in={p.customer_id for p in policies}, kind__in=RENEWAL_MESSAGE_KINDS,
        created_at__gte=datetime.combine(earliest, time(), tzinfo=UTC),
    ).order_by("created_at", "id")
    tasks = await Task.filter(policy_id__in=[p.id for p in policies]).order_by("created_at",
                                                                               "id")
    found: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for policy in policies:
        window = (policy.end_date - _CONTACT_LOOKBACK, policy.end_date + timedelta(days=60))
        for msg in messages:
            if msg.customer_id == policy.customer_id \
                    and window[0] <= msg.created_at.date() <= window[1]:
                found[policy.id].append({
                    "type": "message", "kind": msg.kind, "at": msg.created_at.isoformat(),
                    "channel": str(msg.channel) if msg.channel else None,
                    "status": str(msg.status), "by": "", "result": "", "note": ""})
    for task in tasks:
        assert task.policy_id is not None
        found[task.policy_id].append({
            "type": "task", "kind": task.kind, "at": task.created_at.isoformat(),
            "channel": task.source, "status": str(task.status), "by": task.assignee,
            "result": task.result, "note": task.note})
    for events in found.values():
        events.sort(key=lambda e: e["at"])
    return found


async def open_prompts(actor: Actor) -> int:
    """Escalation prompts (T-10, T-5, overdue call-backs) waiting for this operator."""
    return await Task.filter(kind=TaskKind.ESCALATION.value, assignee=actor.name,
                             status__in=OPEN_TASK).count()


# -- claiming --------------------------------------------------------------------------------


OPERATOR_OUTCOMES = [o for o in Outcome if o is not Outcome.RENEWED]
"""What an operator may record (``renewed`` comes from the import)."""


def may_assign(actor: Actor) -> bool:
    return actor.may(Role.ADMIN) or actor.operator.manager


async def claim(actor: Actor, data: ClaimIn, *, now: datetime) -> list[Policy]:
    """Make the caller (or ``assignee``) responsible for each policy; all or nothing."""
    assignee = data.assignee.strip() or actor.name
    if assignee != actor.name and not may_assign(actor):
        raise NotYours("only a branch manager or an admin assigns to someone else")
    if assignee != actor.name:
        target = await Operator.filter(name=assignee, active=True).first()
        if target is None:
            raise PolicyNotFound(f"no operator named {assignee!r}")
        if actor.operator.branch and target.branch != actor.operator.branch \
                and not actor.may(Role.ADMIN):
            raise NotYourBranch(f"{assignee} is not in branch {actor.operator.branch}")
    async with in_transaction():
        policies = await waiting_policies().filter(id__in=data.policy_ids) \
            .select_for_update().order_by("id")
        missing = set(data.policy_ids) - {p.id for p in policies}
        if missing:
            raise PolicyNotFound(f"no policy waiting for renewal with id {min(missing)}")
        for policy in policies:
            _check_claim(actor, policy, assignee)
        for policy in policies:
            before = {"owner": policy.owner}
            policy.owner, policy.claimed_at = assignee, now
            await policy.save(update_fields=["owner", "claimed_at", "updated_at"])
            await audit.record(actor, "renewal.claim", "policy", policy.id, before=before,
                               after={"owner": assignee}, now=now)
    return policies


def _check_claim(actor: Actor, policy: Policy, assignee: str) -> None:
    branch = actor.operator.branch
    if branch and policy.branch != branch and not actor.may(Role.ADMIN):
        raise NotYourBranch(f"policy {policy.number} is not in branch {branch}")
    if policy.owner and policy.owner != assignee and not may_assign(actor):
        raise AlreadyClaimed(f"policy {policy.number} is claimed by {policy.owner}")


async def _waiting(policy_id: int) -> Policy:
    policy = await Policy.filter(id=policy_id).exclude(status=PolicyStatus.CANCELLED).first()
    if policy is None:
        raise PolicyNotFound(f"no policy {policy_id}")
    return policy


# -- calls and outcomes --------------------------------------------------------------------------


async def log_call(actor: Actor, policy_id: int, data: CallIn, *, now: datetime) -> Task:
    """A call made about ``policy_id``, as a closed task; reaching the customer closes the
    call-backs they asked for."""
    policy = await _waiting(policy_id)
    async with in_transaction():
        task = await Task.create(
            kind=TaskKind.CALL.value, customer_id=policy.customer_id, policy_id=policy.id,
            source="web", assignee=actor.name, note=data.note.strip(),
            result=data.result.value, status=TaskStatus.CLOSED, closed_at=now)
        if data.result is CallResult.REACHED:
            await Task.filter(policy_id=policy.id, kind=TaskKind.CALLBACK.value,
                              status__in=OPEN_TASK).update(
                status=TaskStatus.CLOSED, closed_at=now, assignee=actor.name, updated_at=now)
        await audit.record(actor, "renewal.call", "policy", policy.id,
                           after={"result": data.result.value, "task": task.id}, now=now)
    return task


async def set_outcome(actor: Actor, policy_id: int, data: OutcomeIn, *,
                      now: datetime) -> Policy:
    policy = await _waiting(policy_id)
    if policy.outcome == Outcome.RENEWED:
        raise RenewalError(f"policy {policy.number} is renewed")
    async with in_transaction():
        before = {"outcome": policy.outcome, "reason": policy.outcome_reason}
        await record_outcome([policy], data.outcome, by=actor.name, now=now,
                             reason=data.reason, note=data.note.strip())
        await audit.record(actor, "renewal.outcome", "policy", policy.id, before=before,
                           after={"outcome": policy.outcome, "reason": policy.outcome_reason},
                           now=now)
    return policy


# -- the monthly claim window --------------------------------------------------------------------


def window_of(month: date) -> tuple[date, date]:
    """The expiry dates of ``month``'s claim list (first and last)."""
    first = month.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return first + timedelta(days=61), following + timedelta(days=60)


def claim_deadline(month: date, claim_by_day: int) -> date:
    return month.replace(day=claim_by_day)


async def unclaimed_in_window(actor: Actor, month: date, *, branch: str, today: date,
                              limit: int = DEFAULT_LIMIT,
                              cursor: str = "") -> tuple[list[dict[str, Any]], Page[Policy]]:
    """``month``'s claim list still unclaimed (nobody has claimed them), soonest first."""
    first, last = window_of(month)
    query = waiting_policies().filter(end_date__gte=first, end_date__lte=last, owner="")
    wanted = default_branch(actor, branch)
    if wanted:
        query = query.filter(branch=wanted)
    found = await page(query, ("end_date", "id"), limit=limit, cursor=cursor)
    return await rows_json(found.rows, today), found

