from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0005_operators')]

    initial = False

    operations = [
        ops.AddIndex(
            model_name='Claim',
            index=Index(fields=['customer_id']),
        ),
        ops.AddIndex(
            model_name='Claim',
            index=Index(fields=['policy_id']),
        ),
        ops.AddIndex(
            model_name='ClaimEvent',
            index=Index(fields=['claim_id']),
        ),
        ops.AddIndex(
            model_name='Document',
            index=Index(fields=['customer_id']),
        ),
        ops.AddIndex(
            model_name='Document',
            index=Index(fields=['claim_id']),
        ),
        ops.AddIndex(
            model_name='Payment',
            index=Index(fields=['policy_id']),
        ),
        ops.AddIndex(
            model_name='Policy',
            index=Index(fields=['customer_id']),
        ),
        ops.AddIndex(
            model_name='TelegramAccount',
            index=Index(fields=['customer_id']),
        ),
    ]
