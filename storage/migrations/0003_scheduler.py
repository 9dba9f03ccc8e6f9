from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0002_loyalty')]

    initial = False

    operations = [
        ops.CreateModel(
            name='SchedulerRun',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('job', fields.CharField(max_length=32)),
                ('day', fields.DateField()),
                ('finished_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('counts', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
            ],
            options={'table': 'scheduler_run', 'app': 'models', 'unique_together': (('job', 'day'),), 'pk_attr': 'id', 'table_description': 'A scheduler job that finished for one care-calendar day: the record catch-up reads.'},
            bases=['Model'],
        ),
    ]
