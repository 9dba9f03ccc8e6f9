from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0012_b_phone_contact_point')]

    initial = False

    operations = [
        ops.CreateModel(
            name='SmsStatusReport',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('message_sid', fields.CharField(db_index=True, max_length=64)),
                ('status', fields.CharField(max_length=16)),
                ('error_code', fields.CharField(default='', max_length=16)),
                ('received_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'sms_status_report', 'app': 'models', 'pk_attr': 'id', 'table_description': "A Twilio status callback that came before its message's outcome was written (the"},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Campaign',
            name='paused_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
    ]
