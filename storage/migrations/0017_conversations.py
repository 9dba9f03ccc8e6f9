from tortoise import migrations
from tortoise.migrations import operations as ops
from storage.models import Channel
from storage.desk_models import Author, ConversationStatus, Direction
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
    ]
