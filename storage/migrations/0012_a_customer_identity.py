from datetime import UTC, datetime, timedelta

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

# Customers get the core system's customer number and a record of who set their language,
# time zone and region. A language the customer picked with /language before this migration
# shows as the linked Telegram account's language code equal to the customer's language: that
# is recorded as the customer's own choice (when is not known), so the next import keeps it.
#
# Festival greetings are now keyed by day (festival:{date}:{customer}) instead of by festival
# codes and year. The greetings of the last two days get the new key (one per customer and
# day; the day is the send time's in Asia/Shanghai, the default care calendar), so planning
# today again right after the upgrade does not greet anyone twice. Older ones keep theirs:
# a past festival is never planned again.


async def _festival_keys_by_day(apps, schema_editor) -> None:
    client = schema_editor.client
    since = datetime.now(UTC) - timedelta(days=2)
    if client.capabilities.dialect == "postgres":
        day = "to_char(m.not_before AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD')"
        marks, values = ("$1", "$1"), [since]
    else:
        day = "date(m.not_before, '+8 hours')"
        marks, values = ("?", "?"), [since.isoformat(" "), since.isoformat(" ")]
    await client.execute_query(
        f"UPDATE message SET dedup_key = (SELECT 'festival:' || {day} || ':' || m.customer_id "
        "FROM message m WHERE m.id = message.id) WHERE id IN (SELECT MIN(m.id) FROM message m "
        f"WHERE m.kind = 'festival' AND m.not_before >= {marks[0]} GROUP BY m.customer_id, "
        f"{day}) AND kind = 'festival' AND not_before >= {marks[1]}", values)


class Migration(migrations.Migration):
    dependencies = [('models', '0010_campaign_failure_preview'),
                    ('models', '0011_phone_suppression')]

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
        ops.RunPython(_festival_keys_by_day),
    ]
