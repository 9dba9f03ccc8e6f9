from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.fields.base import OnDelete
from tortoise.indexes import Index
from storage.privacy_models import PendingStatus

class Migration(migrations.Migration):
    dependencies = [('models', '0014_task_due_at')]

    initial = False

    operations = [
        ops.CreateModel(
            name='SmsRedemption',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('customer', fields.ForeignKeyField('models.Customer', source_field='customer_id', db_constraint=True, to_field='id', related_name='sms_redemptions', on_delete=OnDelete.CASCADE)),
                ('message_sid', fields.CharField(description='the SMS that chose the reward', max_length=64)),
                ('reward_code', fields.CharField(max_length=40)),
                ('entitlement', fields.BooleanField(default=False)),
                ('points_cost', fields.IntField(description='as quoted when chosen')),
                ('code', fields.CharField(max_length=4)),
                ('status', fields.CharEnumField(default=PendingStatus.OPEN, description='OPEN: open\nCONFIRMED: confirmed\nVOID: void', enum_type=PendingStatus, max_length=12)),
                ('attempts', fields.SmallIntField(default=0, description='wrong codes so far')),
                ('voucher_id', fields.IntField(null=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('closed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'sms_redemption', 'app': 'models', 'indexes': [Index(fields=['customer_id', 'status'])], 'pk_attr': 'id', 'table_description': 'A reward an SMS customer chose, waiting for the confirmation code sent back to them.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Erasure',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('customer', fields.OneToOneField('models.Customer', source_field='customer_id', db_constraint=True, to_field='id', related_name='erasure', on_delete=OnDelete.RESTRICT)),
                ('requested_by', fields.CharField(max_length=64)),
                ('documents', fields.IntField(default=0, description='document files deleted')),
                ('inbound', fields.IntField(default=0, description='inbound messages deleted')),
                ('erased_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'customer_erasure', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A customer erased on request (PIPL): the record stays as a pseudonym for the totals.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='RetentionCursor',
            fields=[
                ('name', fields.CharField(primary_key=True, max_length=32)),
                ('last_id', fields.BigIntField(default=0)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'retention_cursor', 'app': 'models', 'pk_attr': 'name', 'table_description': 'How far a retention pass over a large table has come (by id).'},
            bases=['Model'],
        ),
        ops.AddIndex(
            model_name='InboundSms',
            index=Index(fields=['customer_id']),
        ),
        ops.AddIndex(
            model_name='InboundSms',
            index=Index(fields=['from_phone']),
        ),
        ops.AddIndex(
            model_name='InboundSms',
            index=Index(fields=['created_at']),
        ),
        ops.AddIndex(
            model_name='Task',
            index=Index(fields=['customer_id']),
        ),
    ]
