from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0013_delivery_reports')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Task',
            name='due_at',
            field=fields.DatetimeField(null=True, description='when it should be done (UTC)', auto_now=False, auto_now_add=False),
        ),
    ]
