"""Tortoise models owned by the scheduler."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

# Model docstrings become SQL table comments, and the migration executor splits SQL on
# semicolons: keep semicolons out of model docstrings and field descriptions.


class SchedulerRun(Model):
    """A scheduler job that finished for one care-calendar day: the record catch-up reads."""

    id = fields.IntField(primary_key=True)
    job = fields.CharField(max_length=32)
    day = fields.DateField()
    finished_at = fields.DatetimeField()
    counts: fields.Field[dict[str, int]] = fields.JSONField(default=dict)

    class Meta:
        table = "scheduler_run"
        unique_together = (("job", "day"),)
