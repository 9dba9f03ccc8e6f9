from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from storage.accident_models import CoreDeliveryStatus, DraftStatus
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0014_task_due_at')]

    initial = False

    operations = [
        ops.CreateModel(
            name='CoreDelivery',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('claim', fields.ForeignKeyField('models.Claim', source_field='claim_id', db_constraint=True, to_field='id', related_name='core_deliveries', on_delete=OnDelete.CASCADE)),
                ('reference', fields.CharField(unique=True, description='the report reference the customer was given', max_length=40)),
                ('idempotency_key', fields.CharField(unique=True, max_length=64)),
                ('payload', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('status', fields.CharEnumField(default=CoreDeliveryStatus.PENDING, description='PENDING: pending\nSENDING: sending\nDELIVERED: delivered\nDEAD: dead', enum_type=CoreDeliveryStatus, max_length=16)),
                ('attempts', fields.SmallIntField(default=0)),
                ('next_attempt_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('lease_expires_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('last_error', fields.CharField(default='', max_length=300)),
                ('core_claim_number', fields.CharField(null=True, max_length=40)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('delivered_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('dead_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'core_report_delivery', 'app': 'models', 'indexes': [Index(fields=['status', 'next_attempt_at'])], 'pk_attr': 'id', 'table_description': 'A confirmed report on its way to the core system (a durable queue row).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ReportDraft',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('customer', fields.ForeignKeyField('models.Customer', source_field='customer_id', db_constraint=True, to_field='id', related_name='report_drafts', on_delete=OnDelete.CASCADE)),
                ('open_for', fields.IntField(null=True, unique=True, description='the customer id while open (one open draft each)')),
                ('telegram_user_id', fields.BigIntField()),
                ('chat_id', fields.BigIntField()),
                ('step', fields.CharField(max_length=24)),
                ('data', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('status', fields.CharEnumField(default=DraftStatus.OPEN, description='OPEN: open\nSUBMITTED: submitted\nCANCELLED: cancelled\nEXPIRED: expired', enum_type=DraftStatus, max_length=16)),
                ('started_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('touched_at', fields.DatetimeField(description="the customer's last answer", auto_now=False, auto_now_add=False)),
                ('reminded_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('closed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('claim', fields.ForeignKeyField('models.Claim', source_field='claim_id', null=True, db_constraint=True, to_field='id', related_name='report_drafts', on_delete=OnDelete.SET_NULL)),
            ],
            options={'table': 'claim_report_draft', 'app': 'models', 'indexes': [Index(fields=['status', 'touched_at']), Index(fields=['customer_id', 'closed_at'])], 'pk_attr': 'id', 'table_description': 'An accident report being filled in through Telegram, step by step.'},
            bases=['Model'],
        ),
    ]
