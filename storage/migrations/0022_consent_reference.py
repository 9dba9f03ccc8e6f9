from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0021_second_wave')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Consent',
            name='reference',
            field=fields.CharField(default='', db_default='', description='what proves it: an SMS MessageSid, a Telegram update id, an import line', max_length=64),
        ),
    ]
