from tortoise import migrations
from tortoise.migrations import operations as ops
from storage.models import Channel
from storage.desk_models import (
    Author,
    ComplaintStatus,
    ConversationStatus,
    Direction,
    SurveyCase,
)
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0014_task_due_at')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Conversation',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('key', fields.CharField(unique=True, description='c:<customer>, p:<phone> or t:<telegram user>', max_length=40)),
                ('customer', fields.ForeignKeyField('models.Customer', source_field='customer_id', null=True, db_constraint=True, to_field='id', related_name='conversations', on_delete=OnDelete.CASCADE)),
                ('phone', fields.CharField(default='', description='E.164, unknown senders', max_length=20)),
                ('telegram_user_id', fields.BigIntField(null=True)),
                ('status', fields.CharEnumField(default=ConversationStatus.BOT, description='BOT: bot\nWAITING: waiting\nHELD: held', enum_type=ConversationStatus, max_length=16)),
                ('handoff_reason', fields.CharField(default='', max_length=16)),
                ('assignee', fields.ForeignKeyField('models.Operator', source_field='assignee_id', null=True, db_constraint=True, to_field='id', related_name='conversations', on_delete=OnDelete.SET_NULL)),
                ('last_channel', fields.CharEnumField(description='TELEGRAM: telegram\nSMS: sms\nCONSOLE: console\nWEB: web', enum_type=Channel, max_length=16)),
                ('waiting_since', fields.DatetimeField(null=True, description='handed off at', auto_now=False, auto_now_add=False)),
                ('first_response_at', fields.DatetimeField(null=True, description="a person's first reply since then", auto_now=False, auto_now_add=False)),
                ('unread', fields.IntField(default=0, description='customer messages no operator opened')),
                ('misunderstood', fields.SmallIntField(default=0, description='free texts in a row the bot did not get')),
                ('last_inbound_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('last_message_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('resolved_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'conversation', 'app': 'models', 'indexes': [Index(fields=['status', 'waiting_since']), Index(fields=['assignee_id', 'status']), Index(fields=['last_message_at'])], 'pk_attr': 'id', 'table_description': 'One thread with a customer (or an unknown sender) across channels.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ConversationMessage',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('conversation', fields.ForeignKeyField('models.Conversation', source_field='conversation_id', db_constraint=True, to_field='id', related_name='messages', on_delete=OnDelete.CASCADE)),
                ('direction', fields.CharEnumField(description='IN: in\nOUT: out', enum_type=Direction, max_length=3)),
                ('author', fields.CharEnumField(description='CUSTOMER: customer\nBOT: bot\nOPERATOR: operator', enum_type=Author, max_length=16)),
                ('operator', fields.ForeignKeyField('models.Operator', source_field='operator_id', null=True, db_constraint=True, to_field='id', related_name='conversation_messages', on_delete=OnDelete.SET_NULL)),
                ('channel', fields.CharEnumField(description='TELEGRAM: telegram\nSMS: sms\nCONSOLE: console\nWEB: web', enum_type=Channel, max_length=16)),
                ('kind', fields.CharField(default='text', description='text, sticker, voice, location, photo…', max_length=16)),
                ('body', fields.TextField(default='')),
                ('outbox_id', fields.BigIntField(null=True, description='the outbox message of a reply')),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'conversation_message', 'app': 'models', 'indexes': [Index(fields=['conversation_id', 'id'])], 'pk_attr': 'id', 'table_description': 'A message of a thread: the customer\'s, the bot\'s answer or an operator\'s reply.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Complaint',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('reference', fields.CharField(unique=True, description='TS20261204-0001', max_length=20)),
                ('customer', fields.ForeignKeyField('models.Customer', source_field='customer_id', db_constraint=True, to_field='id', related_name='complaints', on_delete=OnDelete.RESTRICT)),
                ('conversation', fields.ForeignKeyField('models.Conversation', source_field='conversation_id', null=True, db_constraint=True, to_field='id', related_name='complaints', on_delete=OnDelete.SET_NULL)),
                ('channel', fields.CharEnumField(description='where it was received', enum_type=Channel, max_length=16)),
                ('category', fields.CharField(max_length=24)),
                ('policy_id', fields.IntField(null=True, description='the customer\'s own policy it is about')),
                ('claim_id', fields.IntField(null=True, description='the customer\'s own claim it is about')),
                ('description', fields.TextField(default='')),
                ('staff_complained', fields.CharField(default='', description='the staff member complained about', max_length=64)),
                ('handler', fields.ForeignKeyField('models.Operator', source_field='handler_id', null=True, db_constraint=True, to_field='id', related_name='complaints', on_delete=OnDelete.SET_NULL)),
                ('status', fields.CharEnumField(default=ComplaintStatus.OPEN, description='OPEN: open\nCLOSED: closed', enum_type=ComplaintStatus, max_length=16)),
                ('received_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('due_at', fields.DatetimeField(description='the end of the day the decision is due', auto_now=False, auto_now_add=False)),
                ('extension', fields.SmallIntField(default=0, description='0, 1 (30 days), 2 (a further 30)')),
                ('reminded_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('escalated_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('outcome', fields.TextField(default='')),
                ('closed_by', fields.CharField(default='', max_length=64)),
                ('closed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'complaint', 'app': 'models', 'indexes': [Index(fields=['status', 'due_at']), Index(fields=['customer_id']), Index(fields=['received_at'])], 'pk_attr': 'id', 'table_description': "A complaint on the regulator's clock, from receipt to the decision sent to the customer."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ComplaintExtension',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('complaint', fields.ForeignKeyField('models.Complaint', source_field='complaint_id', db_constraint=True, to_field='id', related_name='extensions', on_delete=OnDelete.CASCADE)),
                ('level', fields.SmallIntField()),
                ('reason', fields.TextField()),
                ('requested_by', fields.CharField(max_length=64)),
                ('requested_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('approved_by', fields.CharField(default='', max_length=64)),
                ('approved_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'complaint_extension', 'app': 'models', 'unique_together': (('complaint_id', 'level'),), 'pk_attr': 'id', 'table_description': "An extension of a complaint's deadline: who asked, why, and for the further 30 days the admin who approved it (until then it is pending)."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SatisfactionSurvey',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('case_kind', fields.CharEnumField(description='CLAIM: claim\nCOMPLAINT: complaint\nCONVERSATION: conversation', enum_type=SurveyCase, max_length=16)),
                ('case_id', fields.IntField()),
                ('customer', fields.ForeignKeyField('models.Customer', source_field='customer_id', db_constraint=True, to_field='id', related_name='surveys', on_delete=OnDelete.CASCADE)),
                ('operator_name', fields.CharField(default='', description='who handled the case, if a person did', max_length=64)),
                ('outbox_id', fields.BigIntField(null=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('score', fields.SmallIntField(null=True)),
                ('answered_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('answer_channel', fields.CharField(default='', max_length=16)),
            ],
            options={'table': 'satisfaction_survey', 'app': 'models', 'unique_together': (('case_kind', 'case_id'),), 'indexes': [Index(fields=['customer_id', 'created_at']), Index(fields=['created_at'])], 'pk_attr': 'id', 'table_description': 'One satisfaction survey per case, asked through the outbox, answered 1 to 5 once.'},
            bases=['Model'],
        ),
    ]
