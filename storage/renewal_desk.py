"""The renewal desk's records: who is responsible for renewing a policy and how its renewal
ended, and the operator tasks customers and the schedule create for it.

Responsibility: ``Policy.owner`` (the operator who claimed it), else ``Policy.agent`` (the
imported agent), else nobody — the policy is in its branch's pool. ``original_agent`` is the
agent the business is attributed to for life: a renewal imported with ``renews`` inherits it,
whoever sold the renewal.

Outcomes are written per car: a reminder names every policy of one car expiring on one day
(compulsory and commercial), so what a customer answers to it applies to each of them that
still waits for renewal. ``renewed`` is written by the import when the renewing policy arrives
and wins over anything recorded before; nothing else overwrites it.

Every task a customer's tap or SMS creates carries a ``dedup_key``: a double tap or a replayed
update finds the key taken and creates nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from storage.models import Policy, PolicyStatus, Task, TaskStatus


class Outcome(StrEnum):
    RENEWED = "renewed"
    RENEWED_ELSEWHERE = "renewed_elsewhere"
    NOT_RENEWING = "not_renewing"
    SOLD_SCRAPPED = "sold_scrapped"  # the car was transferred or scrapped
    UNREACHABLE = "unreachable"


class Reason(StrEnum):
    """Why a customer is not renewing (for ``not_renewing``)."""

    PRICE = "price"
    SERVICE = "service"
    CLAIM_EXPERIENCE = "claim_experience"
    SOLD_SCRAPPED = "sold_scrapped"
    OTHER = "other"


class TaskKind(StrEnum):
    CALLBACK = "renewal_callback"  # the customer asked to be called back
    CALL = "renewal_call"  # a call an operator logged, with its result
    ANSWER = "renewal_answer"  # the customer answered a reminder (a button, an SMS reply)
    ESCALATION = "renewal_escalation"  # T-10 / T-5 / T-2 prompts
    FOLLOW_UP = "lapse_follow_up"  # a lapsed policy without an outcome, monthly


class CallResult(StrEnum):
    REACHED = "reached"
    NO_ANSWER = "no_answer"
    CALL_BACK_LATER = "call_back_later"
    WRONG_NUMBER = "wrong_number"


OPEN_TASK = (TaskStatus.OPEN, TaskStatus.ASSIGNED)
WAITING_STATUSES = (PolicyStatus.ACTIVE, PolicyStatus.EXPIRED)


def responsible(policy: Policy) -> str:
    """Who must renew ``policy``: its claimer, else its agent; empty for the branch pool."""
    return policy.owner or policy.agent


async def car_policies(customer_id: int, policy_id: int) -> list[Policy]:
    """The customer's policies of the car and expiry of ``policy_id`` that still wait for their
    renewal (no outcome yet, or one that a later answer may change); empty when the policy is
    not this customer's — ids from a device or a message prove nothing."""
    anchor = await Policy.filter(id=policy_id, customer_id=customer_id).first()
    if anchor is None:
        return []
    return await Policy.filter(
        customer_id=customer_id, plate=anchor.plate, end_date=anchor.end_date,
        status__in=WAITING_STATUSES, renewed_by_id=None, cancelled_at=None,
    ).exclude(outcome=Outcome.RENEWED).order_by("id")


async def record_outcome(policies: Sequence[Policy], outcome: Outcome, *, by: str,
                         now: datetime, reason: Reason | None = None, note: str = "") -> int:
    """Write ``outcome`` on each policy not yet renewed; how many changed. Recording the same
    outcome and reason again changes nothing (a replayed answer)."""
    changed = 0
    for policy in policies:
        if policy.outcome == Outcome.RENEWED and outcome is not Outcome.RENEWED:
            continue
        new_reason = reason.value if reason else ""
        if policy.outcome == outcome and policy.outcome_reason == new_reason \
                and policy.outcome_note == note:
            continue
        policy.outcome, policy.outcome_reason, policy.outcome_note = outcome, new_reason, note
        policy.outcome_by, policy.outcome_at = by[:64], now
        await policy.save(update_fields=["outcome", "outcome_reason", "outcome_note",
                                         "outcome_by", "outcome_at", "updated_at"])
        changed += 1
    return changed


async def task_once(dedup_key: str, *, kind: TaskKind, customer_id: int, policy_id: int | None,
                    source: str, assignee: str = "", note: str = "", result: str = "",
                    due_at: datetime | None = None, status: TaskStatus = TaskStatus.OPEN,
                    closed_at: datetime | None = None) -> Task | None:
    """A new task under ``dedup_key``, or None when the key is taken (nothing written)."""
    if await Task.filter(dedup_key=dedup_key).exists():
        return None
    try:
        async with in_transaction():
            return await Task.create(
                dedup_key=dedup_key, kind=kind.value, customer_id=customer_id,
                policy_id=policy_id, source=source, assignee=assignee, note=note,
                result=result, due_at=due_at, status=status, closed_at=closed_at)
    except IntegrityError:  # another tap of the same button won the race
        return None
