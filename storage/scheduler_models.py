"""Tortoise models owned by the scheduler."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from storage.models import Region

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


class WeatherAlert(Model):
    """A hazard the forecast gave a region for a day, and on which plan days it was seen (a
    hazard seen on an earlier day was announced then and is not announced again)."""

    id = fields.IntField(primary_key=True)
    region: fields.ForeignKeyRelation[Region] = fields.ForeignKeyField(
        "models.Region", related_name="weather_alerts", on_delete=fields.CASCADE)
    region_id: int
    day = fields.DateField()
    hazard = fields.CharField(max_length=16)
    first_seen_on = fields.DateField()
    last_seen_on = fields.DateField()

    class Meta:
        table = "weather_alert"
        unique_together = (("region", "day", "hazard"),)
