from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.fields.base import OnDelete
from tortoise.indexes import Index

from storage.regions import BuiltinRegion, builtin_regions
from storage.sql import execute, fetch

# Regions out of the box, and the weather alerts each region was given: every province-level unit and prefecture-level city (storage/regions.csv,
# see storage.regions_build) coded by its administrative code. A region an earlier install or
# the demo created under a short code (SH, BJ, ...) becomes the built-in one: its code is now
# the administrative code and the short code its alias, so its customers, campaign audiences
# and import files keep working. A row that already has a built-in code is left as it is.


async def _load_builtin_regions(apps, schema_editor) -> None:
    client = schema_editor.client
    rows = await fetch(client, "SELECT id, code FROM region")
    by_code = {str(r["code"]): int(r["id"]) for r in rows}
    for region in builtin_regions():
        if region.code in by_code:
            continue
        legacy = by_code.get(region.alias) if region.alias else None
        if legacy is not None:
            await execute(client, _ADOPT, {**_values(region), "id": legacy})
            by_code[region.code] = legacy
        else:
            await execute(client, _INSERT, _values(region))


def _values(region: BuiltinRegion) -> dict[str, object]:
    return {"code": region.code, "name": region.name, "full_name": region.full_name,
            "name_en": region.name_en, "latitude": region.latitude,
            "longitude": region.longitude, "timezone": region.timezone,
            "parent": region.parent, "alias": region.alias or None, "builtin": True}


_ADOPT = ("UPDATE region SET code = :code, name = :name, full_name = :full_name, "
          "name_en = :name_en, latitude = :latitude, longitude = :longitude, "
          "timezone = :timezone, parent = :parent, alias = :alias, builtin = :builtin "
          "WHERE id = :id")
_INSERT = ("INSERT INTO region (code, name, full_name, name_en, latitude, longitude, timezone, "
           "parent, alias, builtin) VALUES (:code, :name, :full_name, :name_en, :latitude, "
           ":longitude, :timezone, :parent, :alias, :builtin)")


class Migration(migrations.Migration):
    dependencies = [('models', '0014_task_due_at')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Region',
            name='full_name',
            field=fields.CharField(default='', db_default='', max_length=64),
        ),
        ops.AddField(
            model_name='Region',
            name='parent',
            field=fields.CharField(default='', db_default='', description='the code of the region it lies in', max_length=32),
        ),
        ops.AddField(
            model_name='Region',
            name='alias',
            field=fields.CharField(null=True, unique=True, description='an earlier code imports still accept', max_length=32),
        ),
        ops.AddField(
            model_name='Region',
            name='builtin',
            field=fields.BooleanField(default=False, db_default=False),
        ),
        ops.RunPython(_load_builtin_regions),
        ops.AddIndex(
            model_name='Customer',
            index=Index(fields=['region_id']),
        ),
        ops.CreateModel(
            name='WeatherAlert',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('region', fields.ForeignKeyField('models.Region', source_field='region_id', db_constraint=True, to_field='id', related_name='weather_alerts', on_delete=OnDelete.CASCADE)),
                ('day', fields.DateField()),
                ('hazard', fields.CharField(max_length=16)),
                ('first_seen_on', fields.DateField()),
                ('last_seen_on', fields.DateField()),
            ],
            options={'table': 'weather_alert', 'app': 'models', 'unique_together': (('region', 'day', 'hazard'),), 'pk_attr': 'id', 'table_description': 'A hazard the forecast gave a region for a day, and on which plan days it was seen (a hazard seen on an earlier day was announced then and is not announced again).'},
            bases=['Model'],
        ),
    ]
