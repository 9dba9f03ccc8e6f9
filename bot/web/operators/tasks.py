"""Operator tasks (renewal call-back requests): list, assign, close."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from tortoise.transactions import in_transaction

from bot.web.operators import audit
from bot.web.operators.access import Actor
from bot.web.operators.errors import Refusal
from bot.web.operators.paging import DEFAULT_LIMIT, Page, page
from bot.web.operators.rows import TaskJson
from storage.models import Task, TaskStatus
from storage.phones import mask_phone


class TaskError(Refusal):
    code = "task_error"
    status = 409


class TaskNotFound(TaskError):
    code = "not_found"
    status = 404


class TaskClosed(TaskError):
    code = "task_closed"


class AssignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    assignee: str = Field(min_length=1, max_length=64)


class CloseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = Field(default="", max_length=2000)


def task_json(task: Task, phone: str | None = None) -> TaskJson:
    return {"id": task.id, "kind": task.kind, "customer_id": task.customer_id,
            "policy_id": task.policy_id, "status": TaskStatus(task.status).value,
            "source": task.source, "assignee": task.assignee, "note": task.note,
            "phone": mask_phone(phone) if phone else None,
            "created_at": task.created_at.isoformat(),
            "closed_at": task.closed_at.isoformat() if task.closed_at else None}


async def list_tasks(status: str | None, *, limit: int = DEFAULT_LIMIT,
                     cursor: str = "") -> tuple[list[TaskJson], Page[Task]]:
    """A page of tasks, newest first, as JSON rows (phones masked) and the page itself."""
    query = Task.all()
    if status:
        query = query.filter(status=status)
    found = await page(query, ("-created_at", "-id"), limit=limit, cursor=cursor)
    await Task.fetch_for_list(found.rows, "customer")
    return [task_json(t, t.customer.phone) for t in found.rows], found


async def _locked(task_id: int) -> Task:
    task = await Task.filter(id=task_id).select_for_update().first()
    if task is None:
        raise TaskNotFound(f"no task {task_id}")
    if task.status == TaskStatus.CLOSED:
        raise TaskClosed(f"task {task_id} is closed")
    return task


async def assign(actor: Actor, task_id: int, data: AssignIn, *, now: datetime) -> Task:
    async with in_transaction():
        task = await _locked(task_id)
        before = task_json(task)
        task.assignee = data.assignee.strip()
        task.status = TaskStatus.ASSIGNED
        await task.save(update_fields=["assignee", "status", "updated_at"])
        await audit.record(actor, "task.assign", "task", task.id, before=before,
                           after=task_json(task), now=now)
    return task


async def close(actor: Actor, task_id: int, data: CloseIn, *, now: datetime) -> Task:
    async with in_transaction():
        task = await _locked(task_id)
        before = task_json(task)
        task.status = TaskStatus.CLOSED
        task.closed_at = now
        if data.note.strip():
            task.note = data.note.strip()
        if not task.assignee:
            task.assignee = actor.name
        await task.save(update_fields=["status", "closed_at", "note", "assignee", "updated_at"])
        await audit.record(actor, "task.close", "task", task.id, before=before,
                           after=task_json(task), now=now)
    return task
