from tortoise import migrations
from tortoise.migrations import operations as ops

# The outbox's provider_id and campaign_id indexes only ever serve lookups of one value
# (a provider's status callback, a campaign's messages), and most rows have neither: a plan
# day queues hundreds of thousands of rows with both NULL. Indexing only the rows that have
# one spares every such insert two index entries. Both backends use a "column IS NOT NULL"
# partial index for "column = ?". The model still declares db_index=True, which is what the
# migration state records: an AlterField that makes SQLite rebuild the message table would
# bring them back as full indexes, and must be followed by these statements again.


def _partial(index: str, column: str) -> list[ops.RunSQL]:
    return [
        ops.RunSQL(f'DROP INDEX IF EXISTS "{index}"'),
        ops.RunSQL(f'CREATE INDEX IF NOT EXISTS "{index}" ON "message" ("{column}") '
                   f'WHERE "{column}" IS NOT NULL'),
    ]


class Migration(migrations.Migration):
    dependencies = [('models', '0008_sms_media_pending')]

    initial = False

    operations = [
        *_partial("idx_message_provide_85bc05", "provider_id"),
        *_partial("idx_message_campaig_6c5272", "campaign_id"),
    ]
