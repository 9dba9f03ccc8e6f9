from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from storage.operator_models import CampaignStatus, Role
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0004_conversations')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Operator',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(unique=True, max_length=64)),
                ('role', fields.CharEnumField(description='VIEWER: viewer\nAGENT: agent\nADMIN: admin', enum_type=Role, max_length=16)),
                ('token_hash', fields.CharField(unique=True, max_length=64)),
                ('language', fields.CharField(default='zh-CN', max_length=8)),
                ('contact', fields.ForeignKeyField('models.Customer', source_field='contact_id', null=True, description='the record test sends go to, kept out of every campaign audience', db_constraint=True, to_field='id', related_name='operator_contacts', on_delete=OnDelete.SET_NULL)),
                ('active', fields.BooleanField(default=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'operator', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A person who works in the console or a system that calls the operator API.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='AuditLog',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('operator', fields.ForeignKeyField('models.Operator', source_field='operator_id', null=True, db_constraint=True, to_field='id', related_name='audit', on_delete=OnDelete.SET_NULL)),
                ('operator_name', fields.CharField(max_length=64)),
                ('action', fields.CharField(max_length=48)),
                ('target_type', fields.CharField(max_length=32)),
                ('target_id', fields.CharField(default='', max_length=64)),
                ('before', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('after', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'operator_audit', 'app': 'models', 'indexes': [Index(fields=['target_type', 'target_id']), Index(fields=['created_at'])], 'pk_attr': 'id', 'table_description': 'Who changed what and when, with the state before and after (append-only).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Campaign',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(max_length=100)),
                ('status', fields.CharEnumField(default=CampaignStatus.DRAFT, description='DRAFT: draft\nSCHEDULED: scheduled\nSENDING: sending\nPAUSED: paused\nCANCELLED: cancelled\nDONE: done', enum_type=CampaignStatus, max_length=16)),
                ('category', fields.CharField(description='care or marketing', max_length=16)),
                ('channel_policy', fields.CharField(default='telegram_then_sms', max_length=20)),
                ('audience', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('templates', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('send_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_by', fields.ForeignKeyField('models.Operator', source_field='created_by_id', null=True, db_constraint=True, to_field='id', related_name='campaigns', on_delete=OnDelete.SET_NULL)),
                ('started_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('cursor_id', fields.IntField(default=0)),
                ('until_id', fields.IntField(null=True)),
                ('enqueued', fields.BigIntField(default=0)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'campaign', 'app': 'models', 'indexes': [Index(fields=['status', 'send_at'])], 'pk_attr': 'id', 'table_description': 'A broadcast: an audience filter, a text per language, a channel policy and a send time.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ConsoleSession',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('key_hash', fields.CharField(unique=True, max_length=64)),
                ('operator', fields.ForeignKeyField('models.Operator', source_field='operator_id', db_constraint=True, to_field='id', related_name='sessions', on_delete=OnDelete.CASCADE)),
                ('csrf_token', fields.CharField(max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'operator_session', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A console login: the cookie carries the secret, only its sha256 is stored here.'},
            bases=['Model'],
        ),
    ]
