from tortoise import migrations
from tortoise.migrations import operations as ops
from storage.loyalty_models import EntryKind
from tortoise import fields
from tortoise.indexes import Index

# The new entry kind changes the enum field's description, and AlterField on SQLite rebuilds
# the table without its plain indexes: the two from 0002 are created again right after
# (IF NOT EXISTS: on PostgreSQL the column is only commented and they are still there).
# Entries of payments settled before this migration get the payment's amount as it stands
# now as their basis, the best that is known about what they were earned on.

class Migration(migrations.Migration):
    dependencies = [('models', '0006_customer_indexes')]

    initial = False

    operations = [
        ops.AlterField(
            model_name='LedgerEntry',
            name='kind',
            field=fields.CharEnumField(description='EARN_PREMIUM: earn_premium\nPREMIUM_REVERSAL: premium_reversal\nPAYMENT_CORRECTION: payment_correction\nCHECKIN: checkin\nCHECKIN_STREAK: checkin_streak\nREFERRAL: referral\nBIRTHDAY: birthday\nADJUSTMENT: adjustment\nREDEMPTION: redemption\nEXPIRY: expiry\nREVERSAL: reversal', enum_type=EntryKind, max_length=24),
        ),
        ops.RunSQL(
            'CREATE INDEX IF NOT EXISTS "idx_loyalty_ent_account_adff5b" '
            'ON "loyalty_entry" ("account_id", "occurred_at")'
        ),
        ops.RunSQL(
            'CREATE INDEX IF NOT EXISTS "idx_loyalty_ent_occurre_417ff5" '
            'ON "loyalty_entry" ("occurred_at", "kind")'
        ),
        ops.AddField(
            model_name='LedgerEntry',
            name='basis_cents',
            field=fields.BigIntField(null=True, description='the payment amount in cents an entry of a payment settled, refund negative'),
        ),
        ops.AddIndex(
            model_name='LedgerEntry',
            index=Index(fields=['payment_id', 'id']),
        ),
        ops.RunSQL(
            'UPDATE "loyalty_entry" SET "basis_cents" = (SELECT CASE WHEN p."kind" = \'refund\' '
            'THEN -p."amount_cents" ELSE p."amount_cents" END FROM "payment" p '
            'WHERE p."id" = "loyalty_entry"."payment_id") WHERE "payment_id" IS NOT NULL'
        ),
    ]
