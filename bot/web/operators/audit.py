"""The audit log: every write an operator makes, with the state before and after."""

from __future__ import annotations

import json
from datetime import date, datetime
from enum import Enum
from typing import Any

from bot.web.operators.access import Actor
from storage.operator_models import AuditLog


def _plain(value: Any) -> Any:
    """JSON-safe copy: dates as ISO text, enums as their values."""
    return json.loads(json.dumps(value, default=_default, ensure_ascii=False))


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


async def record(
    actor: Actor, action: str, target_type: str, target_id: object, *,
    before: Any = None, after: Any = None, now: datetime,
) -> AuditLog:
    """Write one audit row; call it inside the transaction that makes the change."""
    return await AuditLog.create(
        operator_id=actor.operator.id, operator_name=actor.name, action=action,
        target_type=target_type, target_id=str(target_id),
        before=None if before is None else _plain(before),
        after=None if after is None else _plain(after), created_at=now,
    )
