from tortoise import migrations
from tortoise.migrations import operations as ops
from storage.models import Category
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0009_message_partial_indexes')]

    initial = False

    operations = [
        ops.CreateModel(
            name='PhoneSuppression',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('phone', fields.CharField(description='E.164', max_length=20)),
                ('channel', fields.CharField(description='sms, or * for every channel', max_length=16)),
                ('category', fields.CharEnumField(description='SERVICE: service\nREMINDER: reminder\nCARE: care\nMARKETING: marketing', enum_type=Category, max_length=16)),
                ('suppressed', fields.BooleanField()),
                ('source', fields.CharField(max_length=64)),
                ('reference', fields.CharField(default='', description='what carried it: the MessageSid, a request id', max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'phone_suppression', 'app': 'models', 'indexes': [Index(fields=['phone', 'created_at'])], 'pk_attr': 'id', 'table_description': 'What the holder of a phone number asked, remembered by number, not by customer.'},
            bases=['Model'],
        ),
    ]
