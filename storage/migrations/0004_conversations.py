from tortoise import migrations
from tortoise.migrations import operations as ops
from storage.models import TaskStatus
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0003_scheduler')]

    initial = False

    operations = [
        ops.CreateModel(
            name='InboundSms',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('message_sid', fields.CharField(unique=True, max_length=64)),
                ('from_phone', fields.CharField(max_length=20)),
                ('customer', fields.ForeignKeyField('models.Customer', source_field='customer_id', null=True, db_constraint=True, to_field='id', related_name='inbound_sms', on_delete=OnDelete.SET_NULL)),
                ('body', fields.TextField(default='', unique=False)),
                ('keyword', fields.CharField(default='', max_length=16)),
                ('reply', fields.TextField(default='', unique=False)),
                ('num_media', fields.SmallIntField(default=0)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'sms_inbound', 'app': 'models', 'pk_attr': 'id', 'table_description': 'An inbound SMS/MMS by Twilio MessageSid: a retried webhook gets the same reply.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='LinkAttempt',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('telegram_user_id', fields.BigIntField(db_index=True)),
                ('phone', fields.CharField(default='', max_length=20)),
                ('outcome', fields.CharField(max_length=24)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'telegram_link_attempt', 'app': 'models', 'indexes': [Index(fields=['telegram_user_id', 'created_at'])], 'pk_attr': 'id', 'table_description': 'One try at linking a Telegram account to a customer (rate-limited per user).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='LinkCode',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('telegram_user_id', fields.BigIntField(db_index=True)),
                ('customer', fields.ForeignKeyField('models.Customer', source_field='customer_id', db_constraint=True, to_field='id', related_name='link_codes', on_delete=OnDelete.CASCADE)),
                ('code_hash', fields.CharField(max_length=64)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('tries', fields.SmallIntField(default=0)),
                ('used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'telegram_link_code', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A one-time code sent by SMS to confirm re-linking a phone to another Telegram user.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ProcessedUpdate',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('update_id', fields.BigIntField(unique=True)),
                ('processed_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'telegram_processed_update', 'app': 'models', 'pk_attr': 'id', 'table_description': 'Telegram update ids already handled, so a redelivered update has no second effect.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Task',
            fields=[
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('kind', fields.CharField(max_length=32)),
                ('customer', fields.ForeignKeyField('models.Customer', source_field='customer_id', db_constraint=True, to_field='id', related_name='tasks', on_delete=OnDelete.CASCADE)),
                ('policy', fields.ForeignKeyField('models.Policy', source_field='policy_id', null=True, db_constraint=True, to_field='id', related_name='tasks', on_delete=OnDelete.SET_NULL)),
                ('status', fields.CharEnumField(default=TaskStatus.OPEN, description='OPEN: open\nASSIGNED: assigned\nCLOSED: closed', enum_type=TaskStatus, max_length=16)),
                ('source', fields.CharField(description='telegram, sms or web', max_length=16)),
                ('assignee', fields.CharField(default='', max_length=64)),
                ('note', fields.TextField(default='', unique=False)),
                ('closed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'task', 'app': 'models', 'indexes': [Index(fields=['status', 'created_at'])], 'pk_attr': 'id', 'table_description': 'Work for an operator, such as a renewal call-back a customer asked for.'},
            bases=['TimestampMixin', 'Model'],
        ),
    ]
