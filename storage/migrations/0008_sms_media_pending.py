from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0007_entry_basis')]

    initial = False

    operations = [
        ops.CreateModel(
            name='SmsMediaPending',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('message_sid', fields.CharField(db_index=True, max_length=64)),
                ('media_url', fields.TextField(unique=False)),
                ('attempts', fields.SmallIntField(default=0)),
                ('next_attempt_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('last_error', fields.CharField(default='', max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('gave_up_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'sms_media_pending', 'app': 'models', 'indexes': [Index(fields=['gave_up_at', 'next_attempt_at'])], 'pk_attr': 'id', 'table_description': 'An MMS media item still to delete from Twilio, written with the inbound message that'},
            bases=['Model'],
        ),
    ]
