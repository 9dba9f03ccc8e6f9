from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

# Customers get the core system's customer number and a record of who set their language,
# time zone and region. A language the customer picked with /language before this migration
# shows as the linked Telegram account's language code equal to the customer's language: that
# is recorded as the customer's own choice (when is not known), so the next import keeps it.


class Migration(migrations.Migration):
    dependencies = [('models', '0009_message_partial_indexes')]

    initial = False

    operations = [
        ops.CreateModel(
            name='SharedPhone',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('phone', fields.CharField(unique=True, max_length=20)),
                ('customers', fields.IntField(description='how many customers have it, at the last count')),
                ('flagged_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('released_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('released_by', fields.CharField(default='', max_length=64)),
            ],
            options={'table': 'shared_phone', 'app': 'models', 'pk_attr': 'id', 'table_description': "A phone number three or more customers have, often a salesperson's own number put on"},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Customer',
            name='customer_no',
            field=fields.CharField(null=True, unique=True, description="the core system's customer number", max_length=40),
        ),
        ops.AddField(
            model_name='Customer',
            name='language_set_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Customer',
            name='language_set_by',
            field=fields.CharField(default='', db_default='', max_length=64),
        ),
        ops.AddField(
            model_name='Customer',
            name='region_set_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Customer',
            name='region_set_by',
            field=fields.CharField(default='', db_default='', max_length=64),
        ),
        ops.AddField(
            model_name='Customer',
            name='timezone_set_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Customer',
            name='timezone_set_by',
            field=fields.CharField(default='', db_default='', max_length=64),
        ),
        ops.AddField(
            model_name='TelegramAccount',
            name='second_customer',
            field=fields.ForeignKeyField('models.Customer', source_field='second_customer_id', null=True, description='the other customer of a phone two customers share, linked with customer', db_constraint=True, to_field='id', related_name='second_telegram_accounts', on_delete=OnDelete.SET_NULL),
        ),
        ops.AddIndex(
            model_name='TelegramAccount',
            index=Index(fields=['second_customer_id']),
        ),
        ops.RunSQL(
            'UPDATE "customer" SET "language_set_by" = \'telegram\' WHERE EXISTS ('
            'SELECT 1 FROM "telegram_account" t WHERE t."customer_id" = "customer"."id" '
            'AND t."linked_at" IS NOT NULL AND t."language_code" = "customer"."language")'
        ),
    ]
